# The monitoring host ("tiger"): provisions the Jellyfin dashboards into Grafana, loads the
# alert rules into vmalert, and optionally puts a write-only ingress (vmauth) in front of
# VictoriaMetrics so that the DMZ agent's token can write samples and read nothing.
{ config, lib, pkgs, ... }:

let
  inherit (lib) mkOption mkEnableOption mkIf types;
  cfg = config.systemFoundry.monitoringStack.jellyfinMonitoring;
  ingress = cfg.ingress;

  # The token is filled in at service start from a systemd credential, so it never enters
  # the Nix store; see config/vmauth.example.yml for the same routes.
  authTemplate = pkgs.writeText "jellyfin-ingress-auth.yml" ''
    users:
      - bearer_token: "@TOKEN@"
        url_map:
          - src_paths:
              - "/api/v1/write"
            url_prefix: "${ingress.victoriametricsUrl}"
  '';

  # No secret in argv: the token is read with the shell's own `read` and written with
  # `printf` (builtins, no child process). vmauth's own endpoints (/metrics, /flags, pprof,
  # reload) get random keys through its environment, so the DMZ cannot read them either.
  startIngress = pkgs.writeShellScript "jellyfin-ingress-start" ''
    set -eu
    umask 077
    # `read` fails at a missing final newline but still sets the variable.
    IFS= read -r token < "$CREDENTIALS_DIRECTORY/ingress-token" || [ -n "$token" ]
    while IFS= read -r line; do
      case $line in
        *@TOKEN@*) printf '%s\n' "''${line%%@TOKEN@*}$token''${line#*@TOKEN@}" ;;
        *) printf '%s\n' "$line" ;;
      esac
    done < ${authTemplate} > "$RUNTIME_DIRECTORY/auth.yml"
    unset token
    key() { od -An -N16 -tx1 /dev/urandom | tr -d ' \n'; }
    metricsAuthKey=$(key) pprofAuthKey=$(key) flagsAuthKey=$(key) reloadAuthKey=$(key)
    export metricsAuthKey pprofAuthKey flagsAuthKey reloadAuthKey
    exec ${lib.getExe' ingress.package "vmauth"} -envflag.enable \
      -auth.config="$RUNTIME_DIRECTORY/auth.yml" \
      -httpListenAddr=${lib.escapeShellArg ingress.listenAddress}
  '';
in
{
  options.systemFoundry.monitoringStack.jellyfinMonitoring = {
    enable = mkEnableOption "the Jellyfin dashboards and alert rules on the monitoring host";

    dashboards = mkOption {
      type = types.path;
      default = ../../dashboards;
      description = "Folder of Grafana dashboard JSON files to provision.";
    };

    alertRules = mkOption {
      type = types.path;
      default = ../../alerts;
      description = "Folder of vmalert rule files (*.yml).";
    };

    grafanaFolder = mkOption {
      type = types.str;
      default = "Jellyfin";
    };

    vmalert = {
      datasourceUrl = mkOption {
        type = types.str;
        default = "http://127.0.0.1:8428";
        description = "VictoriaMetrics, which vmalert queries.";
      };
      notifierUrl = mkOption {
        type = types.str;
        default = "http://127.0.0.1:9093";
        description = "Alertmanager.";
      };
    };

    ingress = {
      enable = mkEnableOption "a write-only vmauth in front of VictoriaMetrics for the DMZ agent";
      package = mkOption {
        type = types.package;
        default = pkgs.victoriametrics;
        defaultText = lib.literalExpression "pkgs.victoriametrics";
      };
      listenAddress = mkOption {
        type = types.str;
        default = ":8427";
        description = "Where the DMZ agent connects (open it in the firewall for the DMZ host only).";
      };
      victoriametricsUrl = mkOption {
        type = types.str;
        default = "http://127.0.0.1:8428";
      };
      authTemplate = mkOption {
        type = types.path;
        readOnly = true;
        internal = true;
        default = authTemplate;
        description = "The vmauth config with the token left out (for tests and inspection).";
      };
      startScript = mkOption {
        type = types.path;
        readOnly = true;
        internal = true;
        default = startIngress;
        description = "The ingress service's start script (for tests and inspection).";
      };
      tokenFile = mkOption {
        type = types.addCheck types.str (p: lib.hasPrefix "/" p && !lib.hasPrefix builtins.storeDir p);
        example = "/run/secrets/jellyfin_dmz_write_token";
        description = "File with the DMZ agent's bearer token (the agent's bearerTokenFile holds the same).";
      };
    };
  };

  config = mkIf cfg.enable (lib.mkMerge [
    {
      services.grafana.provision = {
        enable = true;
        dashboards.settings.providers = [
          {
            name = "jellyfin";
            folder = cfg.grafanaFolder;
            options.path = cfg.dashboards;
            allowUiUpdates = false;
          }
        ];
      };

      services.vmalert.instances.jellyfin = {
        enable = true;
        settings = {
          "datasource.url" = cfg.vmalert.datasourceUrl;
          "notifier.url" = [ cfg.vmalert.notifierUrl ];
          rule = [ "${cfg.alertRules}/*.yml" ];
        };
      };
    }
    (mkIf ingress.enable {
      systemd.services.jellyfin-ingress = {
        description = "vmauth: write-only ingress for the DMZ jellyfin-pusher";
        wantedBy = [ "multi-user.target" ];
        after = [ "network.target" ];
        serviceConfig = {
          ExecStart = "${startIngress}";
          LoadCredential = [ "ingress-token:${ingress.tokenFile}" ];
          RuntimeDirectory = "jellyfin-ingress";
          RuntimeDirectoryMode = "0700";
          DynamicUser = true;
          Restart = "always";
          NoNewPrivileges = true;
          ProtectSystem = "strict";
          ProtectHome = true;
          PrivateTmp = true;
          PrivateDevices = true;
          ProtectKernelTunables = true;
          ProtectKernelModules = true;
          ProtectControlGroups = true;
          RestrictAddressFamilies = [ "AF_INET" "AF_INET6" ];
          CapabilityBoundingSet = "";
          SystemCallFilter = [ "@system-service" ];
        };
      };
    })
  ]);
}
