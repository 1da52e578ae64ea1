# The NixOS releases, as of 2026-11-25: 26.05 is the current stable release, 25.11 the one
# before (26.11 is not released yet; 25.05 reached its end of life). What differs between
# them for this project: services.vmalert.instances (nixpkgs PR #410856, first in 25.11) and
# the rustc of nixpkgs (pkgs/development/compilers/rust/1_*.nix: 1.86 in 25.05, 1.91 in
# 25.11, 1.95 in 26.05; the package needs 1.89 for edition 2024 and rust-version).
#
# Provenance: the stubs were written from nixpkgs' own files as the project's source index
# holds them (vmalert.nix at 1aa461a4, tmpfiles.nix at 04659916, the current jellyfin.nix,
# grafana.nix, systemd-unit-options.nix and systemd-lib.nix, and vmalert.nix before PR
# #410856 for 25.05); the release branches could not be checked out here, so a declaration
# that changed inside a release branch after branch-off would not be seen.
{
  "25.11" = { supported = true; modules = [ ./stubs/vmalert.nix ]; rustc = "1.91.1"; };
  "26.05" = { supported = true; modules = [ ./stubs/vmalert.nix ]; rustc = "1.95.0"; };
  "25.05" = { supported = false; modules = [ ./stubs/vmalert-25.05.nix ]; rustc = "1.86.0"; };
}
