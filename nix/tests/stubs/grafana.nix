# services.grafana.provision as nixos/modules/services/monitoring/grafana.nix declares it in
# nixos-25.11 and nixos-26.05 (provision.enable, provision.dashboards.{path,settings}, each
# provider a grafanaTypes.dashboardConfig: name, type, options.path, freeform YAML values).
{ lib, pkgs, ... }:

let
  inherit (lib) mkOption types;
  yaml = (pkgs.formats.yaml { }).type;
  dashboardConfig = types.submodule {
    freeformType = yaml;
    options = {
      name = mkOption { type = types.str; };
      type = mkOption { type = types.str; default = "file"; };
      options.path = mkOption { type = types.path; };
    };
  };
in
{
  options.services.grafana = {
    enable = lib.mkEnableOption "grafana";
    provision = {
      enable = lib.mkEnableOption "provision";
      dashboards = mkOption {
        default = { };
        type = types.submodule {
          options.path = mkOption { type = types.nullOr types.path; default = null; };
          options.settings = mkOption {
            default = null;
            type = types.nullOr (types.submodule {
              options.apiVersion = mkOption { type = types.int; default = 1; };
              options.providers = mkOption { type = types.listOf dashboardConfig; default = [ ]; };
            });
          };
        };
      };
    };
  };
}
