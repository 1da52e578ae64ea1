# The NixOS releases, as of 2026-11-25: 26.05 is the current stable release, 25.11 the one
# before (26.11 is not released yet; 25.05 reached its end of life). What differs between
# them for this project: services.vmalert.instances (nixpkgs PR #410856, first in 25.11) and
# the rustc of nixpkgs (pkgs/development/compilers/rust/1_*.nix: 1.86 in 25.05, 1.91 in
# 25.11, 1.95 in 26.05; the package needs 1.89 for edition 2024 and rust-version).
{
  "25.11" = { supported = true; modules = [ ./stubs/vmalert.nix ]; rustc = "1.91.1"; };
  "26.05" = { supported = true; modules = [ ./stubs/vmalert.nix ]; rustc = "1.95.0"; };
  "25.05" = { supported = false; modules = [ ./stubs/vmalert-25.05.nix ]; rustc = "1.86.0"; };
}
