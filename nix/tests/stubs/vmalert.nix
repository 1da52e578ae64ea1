# services.vmalert as nixos/modules/services/monitoring/vmalert.nix declares it since nixpkgs
# PR #410856 (first released in nixos-25.11, also nixos-26.05): `instances.<name>` with
# enable, settings (freeform flags plus datasource.url, notifier.url, rule) and rules; the
# instance's own rules file is always in settings.rule. The old single-instance options are
# renamed into instances."".
{ lib, pkgs, ... }:

let
  inherit (lib) mkOption types;
  valueType = types.oneOf [ types.bool types.int types.path types.str ];
  confType = types.attrsOf (types.either valueType (types.listOf valueType));
  vmalertName = name: "vmalert" + lib.optionalString (name != "") ("-" + name);
in
{
  imports = [
    (lib.mkRenamedOptionModule [ "services" "vmalert" "enable" ] [ "services" "vmalert" "instances" "" "enable" ])
    (lib.mkRenamedOptionModule [ "services" "vmalert" "rules" ] [ "services" "vmalert" "instances" "" "rules" ])
    (lib.mkRenamedOptionModule [ "services" "vmalert" "settings" ] [ "services" "vmalert" "instances" "" "settings" ])
  ];

  options.services.vmalert.package = mkOption { type = types.package; default = pkgs.victoriametrics; };
  options.services.vmalert.instances = mkOption {
    default = { };
    type = types.attrsOf (types.submodule ({ name, ... }: {
      options = {
        enable = mkOption { type = types.bool; default = false; };
        settings = mkOption {
          default = { };
          type = types.submodule {
            freeformType = confType;
            options = {
              "datasource.url" = mkOption { type = types.nonEmptyStr; };
              "notifier.url" = mkOption { type = types.listOf types.nonEmptyStr; default = [ ]; };
              rule = mkOption { type = types.listOf types.path; };
            };
          };
        };
        rules = mkOption { type = (pkgs.formats.yaml { }).type; default = { }; };
      };
      config.settings.rule = [ "/etc/${vmalertName name}/rules.yml" ];
    }));
  };
}
