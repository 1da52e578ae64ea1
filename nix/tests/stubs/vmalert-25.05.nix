# services.vmalert as nixos/modules/services/monitoring/vmalert.nix declares it up to
# nixos-25.05: one vmalert (enable, package, settings, rules), no `instances`.
{ lib, pkgs, ... }:

let
  inherit (lib) mkOption types;
  valueType = types.oneOf [ types.bool types.int types.path types.str ];
  confType = types.attrsOf (types.either valueType (types.listOf valueType));
in
{
  options.services.vmalert = {
    enable = lib.mkEnableOption "vmalert";
    package = mkOption { type = types.package; default = pkgs.victoriametrics; };
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
}
