# The monitoring host ("tiger"): provisions the Jellyfin dashboards into Grafana, loads the
# alert rules into vmalert, and optionally puts a write-only ingress (vmauth, with TLS) in
# front of VictoriaMetrics so that the DMZ agent's token can write samples and read nothing.
#
# Supported NixOS releases: 25.11 and 26.05 (services.vmalert.instances). On 25.05 the rules
# can join the host's single vmalert (vmalert.instance = ""); a vmalert of this module's own
# is refused there by an assertion.
{ config, options, lib, pkgs, ... }:

let
  inherit (lib) mkOption mkEnableOption mkIf types;
  cfg = config.systemFoundry.monitoringStack.jellyfinMonitoring;
  active = cfg.enable && config.systemFoundry.monitoringStack.enable;
  ingress = cfg.ingress;
  hasInstances = options.services.vmalert ? instances;
  ownVmalert = cfg.vmalert.instance == "jellyfin";
  ruleFiles = [ "${cfg.alertRules}/*.yml" ];
  common = import ./common.nix { inherit lib; };
  inherit (common) secretPath;
  # VictoriaMetrics, which the ingress reaches through the same IPAddressAllow= list.
  vmHost = common.urlHost ingress.victoriametricsUrl;
  vmAddress = lib.optional (common.isIP vmHost) (common.bare vmHost);
  labelPart = types.strMatching "[A-Za-z0-9_.-]+";

  # extra_label in url_prefix: vmauth puts it on every write, so a stolen DMZ token cannot
  # write series under another job or instance.
  urlPrefix = "${ingress.victoriametricsUrl}?"
    + lib.concatStringsSep "&" (lib.mapAttrsToList (k: v: "extra_label=${k}=${v}") ingress.extraLabels);

  # JSON is YAML: built with toJSON, so no configured value can break the file. The token is
  # only known at start; the start script escapes it for a JSON string before filling it in.
  authTemplate = pkgs.writeText "jellyfin-ingress-auth.yml" (builtins.toJSON {
    users = [
      {
        bearer_token = "@TOKEN@";
        url_map = [{ src_paths = [ "/api/v1/write" ]; url_prefix = urlPrefix; }];
      }
    ];
  } + "\n");

  tlsFlags = lib.optionalString ingress.tls.enable
    " -tls -tlsCertFile=\"$CREDENTIALS_DIRECTORY/tls-cert\" -tlsKeyFile=\"$CREDENTIALS_DIRECTORY/tls-key\"";

  # No secret in argv: the token is read with the shell's own `read` and written with
  # `printf` (builtins, no child process). vmauth's own endpoints (/metrics, /flags, pprof,
  # reload) get random keys through its environment, so the DMZ cannot read them either.
  startIngress = pkgs.writeShellScript "jellyfin-ingress-start" ''
    set -eu
    umask 077
    # `read` fails at a missing final newline but still sets the variable.
    IFS= read -r token < "$CREDENTIALS_DIRECTORY/ingress-token" || [ -n "$token" ]
    case $token in
      "" | *[[:cntrl:]]*)
        echo "jellyfin-ingress: the token in credential ingress-token is empty or holds a control character" >&2
        exit 1 ;;
    esac
    # A JSON string: backslash and double quote escaped (control characters refused above).
    token=''${token//\\/\\\\}
    token=''${token//\"/\\\"}
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
      -httpListenAddr=${lib.escapeShellArg ingress.listenAddress}${tlsFlags}
  '';
in
{
  imports = [ ./monitoring-stack.nix ];

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
      instance = mkOption {
        type = types.str;
        default = "jellyfin";
        example = "";
        description = ''
          The services.vmalert.instances entry that evaluates the rules. "jellyfin" (the
          default): this module adds that instance, with datasourceUrl, notifierUrl and its
          own listenAddress. Any other name: the rule files join that existing instance of
          the host ("" is the one services.vmalert.settings configures), which keeps its own
          datasource, notifier and address.
        '';
      };
      datasourceUrl = mkOption {
        type = types.str;
        default = "http://127.0.0.1:8428";
        description = "VictoriaMetrics, which vmalert queries (own instance only).";
      };
      notifierUrl = mkOption {
        type = types.str;
        default = "http://127.0.0.1:9093";
        description = "Alertmanager (own instance only).";
      };
      listenAddress = mkOption {
        type = types.str;
        default = "127.0.0.1:8881";
        description = "httpListenAddr of the own instance: not vmalert's default :8880, which a host's existing vmalert holds.";
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
        type = types.strMatching "https?://[^?#]+";
        default = "http://127.0.0.1:8428";
      };
      extraLabels = mkOption {
        type = types.attrsOf labelPart;
        default = { job = "jellyfin"; };
        description = "Labels vmauth pins on every written series (extra_label in url_prefix): the token can write these jobs only.";
      };
      allowedClients = mkOption {
        type = types.listOf types.str;
        default = [ ];
        example = [ "192.0.2.20/32" ];
        description = ''
          When set, IPAddressDeny=any and IPAddressAllow= of the unit: these (the DMZ host),
          localhost and victoriametricsUrl's address (an IP literal, or local) only.
        '';
      };
      tls = {
        enable = mkOption {
          type = types.bool;
          default = true;
          description = "Serve HTTPS (the token crosses the DMZ link). Off only behind a TLS proxy on the same host.";
        };
        certificateFile = mkOption {
          type = types.nullOr types.str;
          default = null;
          example = "/var/lib/acme/tiger.example.invalid/fullchain.pem";
          description = "PEM certificate chain; passed as a credential (restart the unit after renewal).";
        };
        keyFile = mkOption {
          type = types.nullOr secretPath;
          default = null;
          example = "/var/lib/acme/tiger.example.invalid/key.pem";
          description = "PEM private key; passed as a credential (restart the unit after renewal).";
        };
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
        type = secretPath;
        example = "/run/secrets/jellyfin_dmz_write_token";
        description = ''
          File with the DMZ agent's bearer token (the agent's bearerTokenFile holds the same).
          systemd copies it at start: after rotating it, restart jellyfin-ingress.service (sops-nix:
          `sops.secrets.<name>.restartUnits = [ "jellyfin-ingress.service" ]`).
        '';
      };
    };
  };

  config = mkIf active (lib.mkMerge [
    {
      assertions = [
        {
          assertion = ownVmalert || (if hasInstances
            then config.services.vmalert.instances.${cfg.vmalert.instance}.enable
            else cfg.vmalert.instance == "" && config.services.vmalert.enable);
          message = "systemFoundry.monitoringStack.jellyfinMonitoring.vmalert.instance = \"${cfg.vmalert.instance}\": the host has no such enabled vmalert (services.vmalert.instances.\"${cfg.vmalert.instance}\"${lib.optionalString (!hasInstances) ", or on this release services.vmalert with instance \"\""}), so the rules would load nowhere.";
        }
        {
          assertion = hasInstances || !ownVmalert;
          message = "systemFoundry.monitoringStack.jellyfinMonitoring: this NixOS release has no services.vmalert.instances (NixOS 25.11 or later has it; 25.11 and 26.05 are supported). On an older release set vmalert.instance = \"\" to add the rules to the host's services.vmalert.";
        }
      ];

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
    }
    (lib.optionalAttrs hasInstances {
      services.vmalert.instances.${cfg.vmalert.instance} =
        if ownVmalert then {
          enable = true;
          settings = {
            "datasource.url" = cfg.vmalert.datasourceUrl;
            "notifier.url" = [ cfg.vmalert.notifierUrl ];
            "httpListenAddr" = cfg.vmalert.listenAddress;
            rule = ruleFiles;
          };
        } else {
          settings.rule = ruleFiles;
        };
    })
    (lib.optionalAttrs (!hasInstances) {
      services.vmalert.settings.rule = mkIf (cfg.vmalert.instance == "") ruleFiles;
    })
    (mkIf ingress.enable {
      assertions = [
        {
          assertion = !ingress.tls.enable || (ingress.tls.certificateFile != null && ingress.tls.keyFile != null);
          message = "systemFoundry.monitoringStack.jellyfinMonitoring.ingress.tls: set certificateFile and keyFile (the DMZ token must not cross the link in clear text), or tls.enable = false behind a TLS proxy on this host.";
        }
        {
          assertion = ingress.allowedClients == [ ] || common.isIP vmHost || common.isLocal vmHost;
          message = "jellyfinMonitoring.ingress.allowedClients restricts the unit's addresses, and victoriametricsUrl names the host ${vmHost}: write its address in the URL.";
        }
      ];
      warnings = lib.optional (!ingress.tls.enable)
        "jellyfinMonitoring.ingress.tls.enable = false: vmauth serves plain HTTP; the DMZ write token crosses the link in clear text unless a proxy on this host terminates TLS.";

      systemd.services.jellyfin-ingress = {
        description = "vmauth: write-only ingress for the DMZ jellyfin-pusher";
        wantedBy = [ "multi-user.target" ];
        after = [ "network.target" ];
        restartTriggers = [ startIngress ];
        # The same sandbox as the agent's unit (config/jellyfin-pusher.service), for the one
        # service that faces the DMZ.
        serviceConfig = {
          ExecStart = "${startIngress}";
          LoadCredential = [ "ingress-token:${ingress.tokenFile}" ]
            ++ lib.optional (ingress.tls.enable && ingress.tls.certificateFile != null) "tls-cert:${ingress.tls.certificateFile}"
            ++ lib.optional (ingress.tls.enable && ingress.tls.keyFile != null) "tls-key:${ingress.tls.keyFile}";
          RuntimeDirectory = "jellyfin-ingress";
          RuntimeDirectoryMode = "0700";
          Restart = "always";
          RestartSec = "5s";
          # Stricter than the agent: vmauth needs no other process and no AF_UNIX.
          ProtectProc = "invisible";
          ProcSubset = "pid";
          RestrictAddressFamilies = [ "AF_INET" "AF_INET6" ];
        }
        // common.sandbox { memoryMax = "256M"; tasksMax = 64; }
        // lib.optionalAttrs (ingress.allowedClients != [ ]) {
          IPAddressDeny = "any";
          IPAddressAllow = [ "localhost" ] ++ ingress.allowedClients ++ vmAddress;
        };
      };
    })
  ]);
}
