# The jellyfin-pusher package. Usage: pkgs.callPackage ./nix/package.nix { }
# Building needs no protoc: build.rs compiles proto/ with protox, a pure-Rust compiler.
#
# Needs the rustc of Cargo.toml's rust-version (1.89, edition 2024): nixpkgs of NixOS 25.11
# (rustc 1.91) and 26.05 (1.95) build it; 25.05 (1.86) stops here with a message, before
# any build starts. lib.fileset needs Nix 2.18 or later to evaluate.
{ lib, rustPlatform, rustc }:

let
  manifest = lib.importTOML ../Cargo.toml;
  needs = manifest.package.rust-version;
  has = rustPlatform.rust.rustc.version or rustc.version;
in
assert lib.assertMsg (lib.versionAtLeast has needs)
  "jellyfin-pusher needs rustc ${needs} or later (edition ${manifest.package.edition}); this nixpkgs has rustc ${has}. Use NixOS 25.11 or later, or a newer rustPlatform (e.g. from an overlay).";
rustPlatform.buildRustPackage {
  pname = manifest.package.name;
  inherit (manifest.package) version;

  # Only what the build reads, so that editing docs, dashboards or tests does not rebuild.
  src = lib.fileset.toSource {
    root = ../.;
    fileset = lib.fileset.unions [
      ../Cargo.toml
      ../Cargo.lock
      ../build.rs
      ../proto
      ../src
      ../benches
      ../config
    ];
  };

  cargoLock.lockFile = ../Cargo.lock;

  # The test suite starts real VictoriaMetrics, Prometheus, vmauth and systemd-analyze and
  # needs root for a tmpfs; it runs in the project's CI (tests/run.sh), not in the sandbox.
  doCheck = false;

  postInstall = ''
    install -Dm644 config/jellyfin-pusher.service $out/lib/systemd/system/jellyfin-pusher.service
    substituteInPlace $out/lib/systemd/system/jellyfin-pusher.service \
      --replace-fail /usr/bin/jellyfin-pusher $out/bin/jellyfin-pusher
    install -Dm644 config/jellyfin-pusher.example.toml $out/share/doc/jellyfin-pusher/config.example.toml
  '';

  meta = {
    description = "Pushes Jellyfin metrics to VictoriaMetrics over Prometheus remote write, with a disk buffer";
    license = lib.licenses.mit;
    mainProgram = "jellyfin-pusher";
    platforms = lib.platforms.linux;
  };
}
