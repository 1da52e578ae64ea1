# Evaluates the project's NixOS modules with nixpkgs' lib alone (no nixpkgs checkout): the
# few NixOS options they touch are declared here, and pkgs is a stub whose derivations are
# plain records. Returns what the tests assert on, as JSON-friendly values.
#
#   nix-instantiate --eval --strict --json nix/tests/eval.nix \
#     --arg lib 'import /path/to/nixpkgs/lib' --arg configuration ./case.nix
{ lib, configuration }:

let
  store = builtins.storeDir;
  stubPackage = name:
    let self = {
      type = "derivation";
      inherit name;
      outPath = "${store}/00000000000000000000000000000000-${name}";
      outputs = [ "out" ];
      out = self;
      meta.mainProgram = name;
    };
    in self;
  stubFile = name: fields: { outPath = "${store}/11111111111111111111111111111111-${name}"; inherit name; } // fields;

  pkgs = {
    jellyfin-pusher = stubPackage "jellyfin-pusher";
    victoriametrics = stubPackage "victoriametrics";
    formats.toml = { }: {
      type = lib.types.attrsOf lib.types.anything;
      generate = name: value: stubFile name { inherit value; };
    };
    writeText = name: text: stubFile name { inherit text; };
    writeShellScript = name: text: stubFile name { text = "#!/bin/sh\n" + text; };
    callPackage = _: _: stubPackage "jellyfin-pusher";
  };

  nixosStubs = { ... }: {
    options = {
      assertions = lib.mkOption { type = lib.types.listOf lib.types.unspecified; default = [ ]; };
      systemd.services = lib.mkOption {
        type = lib.types.attrsOf (lib.types.submodule { freeformType = lib.types.attrsOf lib.types.anything; });
        default = { };
      };
      services.grafana.provision = lib.mkOption { type = lib.types.anything; default = { }; };
      services.vmalert.instances = lib.mkOption { type = lib.types.attrsOf lib.types.anything; default = { }; };
    };
    config._module.args.pkgs = pkgs;
  };

  eval = lib.evalModules {
    modules = [ nixosStubs ../modules/jellyfin-pusher.nix ../modules/monitoring-host.nix configuration ];
  };
  c = eval.config;
  service = name: c.systemd.services.${name} or null;
in
{
  failedAssertions = map (a: a.message) (lib.filter (a: !a.assertion) c.assertions);
  pusher = {
    service = service "jellyfin-pusher";
    settings = c.systemFoundry.monitoringStack.jellyfinPusher.configFile.value or null;
    configFile = toString (c.systemFoundry.monitoringStack.jellyfinPusher.configFile or "");
  };
  monitoring = {
    grafana = c.services.grafana.provision;
    vmalert = c.services.vmalert.instances;
    ingress = service "jellyfin-ingress";
    ingressFiles = if service "jellyfin-ingress" == null then null else
      let i = c.systemFoundry.monitoringStack.jellyfinMonitoring.ingress; in {
        script = { path = toString i.startScript; inherit (i.startScript) text; };
        template = { path = toString i.authTemplate; inherit (i.authTemplate) text; };
      };
  };
}
