# Evaluates the project's NixOS modules with nixpkgs' lib alone (no nixpkgs checkout) against
# stubs that declare the NixOS options they set exactly as nixpkgs declares them in
# `release` (nix/tests/releases.nix, nix/tests/stubs/). pkgs is a stub whose derivations are
# plain records. Returns what the tests assert on, as JSON-friendly values.
#
#   nix-instantiate --eval --strict --json nix/tests/eval.nix \
#     --arg lib 'import /path/to/nixpkgs/lib' --arg configuration ./case.nix --argstr release 26.05
{ lib, configuration, release ? "26.05" }:

let
  releases = import ./releases.nix;
  pkgs = import ./stubs/pkgs.nix { inherit lib; };

  eval = lib.evalModules {
    modules = [
      ./stubs/nixos-core.nix
      ./stubs/grafana.nix
      ./stubs/jellyfin.nix
      { config._module.args.pkgs = pkgs; }
      ../modules/jellyfin-pusher.nix
      ../modules/monitoring-host.nix
      configuration
    ] ++ releases.${release}.modules;
  };
  c = eval.config;
  # The fields a unit file is written from (startLimitBurst & co. have no default in NixOS).
  service = name: if c.systemd.services ? ${name} then {
    inherit (c.systemd.services.${name}) description wantedBy after wants serviceConfig restartTriggers;
  } else null;
  ingress = c.systemFoundry.monitoringStack.jellyfinMonitoring.ingress;
in
{
  failedAssertions = map (a: a.message) (lib.filter (a: !a.assertion) c.assertions);
  inherit (c) warnings;
  users = { inherit (c.users) users groups; };
  tmpfiles = c.systemd.tmpfiles.settings;
  pusher = {
    service = service "jellyfin-pusher";
    settings = c.systemFoundry.monitoringStack.jellyfinPusher.configFile.value or null;
    configFile = toString (c.systemFoundry.monitoringStack.jellyfinPusher.configFile or "");
  };
  monitoring = {
    grafana = c.services.grafana.provision;
    vmalert = if c.services.vmalert ? instances then c.services.vmalert.instances
      else if c.services.vmalert.enable then c.services.vmalert.settings else null;
    ingress = service "jellyfin-ingress";
    ingressFiles = if service "jellyfin-ingress" == null then null else {
      script = { path = toString ingress.startScript; inherit (ingress.startScript) text; };
      template = { path = toString ingress.authTemplate; inherit (ingress.authTemplate) text; };
    };
  };
}
