# The DMZ host: runs jellyfin-pusher as the hardened systemd service of
# config/jellyfin-pusher.service. Secrets reach it only as systemd credentials (LoadCredential):
# never in the Nix store, the command line or the environment. No vmagent scrape config is
# needed: the agent pushes.
{ config, lib, pkgs, ... }:

let
  inherit (lib) mkOption mkEnableOption mkIf types;
  cfg = config.systemFoundry.monitoringStack.jellyfinPusher;
  toml = pkgs.formats.toml { };
  credentials = "/run/credentials/jellyfin-pusher.service";

  secretPath = types.addCheck types.str (p: lib.hasPrefix "/" p && !lib.hasPrefix builtins.storeDir p) // {
    description = "absolute path outside the Nix store (a secret must not be world-readable)";
  };

  remoteWriteType = types.submodule {
    options = {
      name = mkOption {
        type = types.strMatching "[A-Za-z0-9_-]{1,64}";
        description = "Names the target in metrics (remote label), logs and the queue folder.";
      };
      url = mkOption {
        type = types.str;
        example = "https://tiger.example:8427/api/v1/write";
        description = "Remote-write endpoint (VictoriaMetrics, or vmauth in front of it).";
      };
      bearerTokenFile = mkOption {
        type = types.nullOr secretPath;
        default = null;
        description = "File with a bearer token; passed to the service as a credential.";
      };
      basicAuthUser = mkOption {
        type = types.nullOr types.str;
        default = null;
      };
      basicAuthPasswordFile = mkOption {
        type = types.nullOr secretPath;
        default = null;
        description = "File with the basic-auth password; passed as a credential.";
      };
      caFile = mkOption {
        type = types.nullOr types.path;
        default = null;
        description = "Extra PEM CA certificates (public, may live in the store).";
      };
    };
  };

  credentialName = rw: kind: "remote-write-${rw.name}-${kind}";

  remoteWriteSettings = rw:
    { inherit (rw) name url; }
    // lib.optionalAttrs (rw.bearerTokenFile != null) {
      bearer_token_file = "${credentials}/${credentialName rw "token"}";
    }
    // lib.optionalAttrs (rw.basicAuthUser != null) {
      basic_auth_user = rw.basicAuthUser;
      basic_auth_password_file = "${credentials}/${credentialName rw "password"}";
    }
    // lib.optionalAttrs (rw.caFile != null) { ca_file = "${rw.caFile}"; };

  remoteCredentials = lib.concatMap
    (rw:
      lib.optional (rw.bearerTokenFile != null) "${credentialName rw "token"}:${rw.bearerTokenFile}"
      ++ lib.optional (rw.basicAuthPasswordFile != null) "${credentialName rw "password"}:${rw.basicAuthPasswordFile}")
    cfg.remoteWrite;

  # state_dir and jellyfin.token_file are left out: systemd's $STATE_DIRECTORY and
  # $CREDENTIALS_DIRECTORY provide them.
  generated = {
    jellyfin.url = cfg.jellyfinUrl;
    labels = cfg.labels;
    collectors = cfg.collectors;
    remote_write = map remoteWriteSettings cfg.remoteWrite;
  };
  configFile = toml.generate "jellyfin-pusher.toml" (lib.recursiveUpdate generated cfg.settings);
in
{
  options.systemFoundry.monitoringStack.jellyfinPusher = {
    enable = mkEnableOption "jellyfin-pusher, which pushes Jellyfin metrics to VictoriaMetrics";

    package = mkOption {
      type = types.package;
      default = pkgs.jellyfin-pusher or (pkgs.callPackage ../package.nix { });
      defaultText = lib.literalExpression "pkgs.callPackage ./nix/package.nix { }";
    };

    jellyfinUrl = mkOption {
      type = types.str;
      default = "http://127.0.0.1:8096";
      description = "Jellyfin's base URL, with any base path.";
    };

    tokenFile = mkOption {
      type = secretPath;
      example = "/run/secrets/jellyfin_api_token";
      description = "File with a Jellyfin API key; passed to the service as the credential jellyfin-token.";
    };

    labels = mkOption {
      type = types.attrsOf types.str;
      default = { job = "jellyfin"; };
      example = { job = "jellyfin"; instance = "jellyfin-dmz"; };
      description = "Static labels on every series.";
    };

    collectors = mkOption {
      type = types.attrsOf (types.submodule {
        options = {
          enabled = mkOption { type = types.bool; default = true; };
          interval = mkOption { type = types.nullOr types.str; default = null; example = "30s"; };
        };
      });
      default = { };
      apply = lib.mapAttrs (_: c: lib.filterAttrs (_: v: v != null) c);
      example = { system.interval = "15s"; };
      description = "Per-collector switches ([collectors.<name>] in the config file).";
    };

    remoteWrite = mkOption {
      type = types.listOf remoteWriteType;
      description = "Where to push. Each target gets its own disk buffer.";
    };

    settings = mkOption {
      type = toml.type;
      default = { };
      example = { collect.interval = "30s"; buffer.max_size = "1GiB"; };
      description = "Any other config-file keys (see config/jellyfin-pusher.example.toml); merged over the generated ones.";
    };

    configFile = mkOption {
      type = types.path;
      readOnly = true;
      default = configFile;
      description = "The generated config file (holds no secret).";
    };
  };

  config = mkIf cfg.enable {
    assertions = [
      {
        assertion = cfg.remoteWrite != [ ];
        message = "systemFoundry.monitoringStack.jellyfinPusher.remoteWrite needs at least one target.";
      }
      {
        assertion = lib.all (rw: rw.bearerTokenFile == null || rw.basicAuthUser == null) cfg.remoteWrite;
        message = "jellyfinPusher.remoteWrite: use bearerTokenFile or basic auth, not both.";
      }
      {
        assertion = lib.all (rw: (rw.basicAuthUser == null) == (rw.basicAuthPasswordFile == null)) cfg.remoteWrite;
        message = "jellyfinPusher.remoteWrite: basicAuthUser and basicAuthPasswordFile go together.";
      }
    ];

    systemd.services.jellyfin-pusher = {
      description = "jellyfin-pusher: push Jellyfin metrics to VictoriaMetrics";
      wantedBy = [ "multi-user.target" ];
      after = [ "network-online.target" "jellyfin.service" ];
      wants = [ "network-online.target" ];
      restartTriggers = [ configFile ];
      # The same unit as config/jellyfin-pusher.service (a test keeps the two in step).
      serviceConfig = {
        Type = "notify";
        NotifyAccess = "main";
        ExecStart = "${lib.getExe cfg.package} --config ${configFile}";
        Restart = "always";
        RestartSec = "5s";
        WatchdogSec = "2min";
        TimeoutStartSec = "30s";
        TimeoutStopSec = "30s";
        LoadCredential = [ "jellyfin-token:${cfg.tokenFile}" ] ++ remoteCredentials;
        StateDirectory = "jellyfin-pusher";
        StateDirectoryMode = "0700";
        DynamicUser = true;
        UMask = "0077";
        CapabilityBoundingSet = "";
        AmbientCapabilities = "";
        NoNewPrivileges = true;
        PrivateUsers = true;
        PrivateTmp = true;
        PrivateMounts = true;
        PrivateDevices = true;
        DevicePolicy = "closed";
        ProtectSystem = "strict";
        ProtectHome = true;
        ProtectClock = true;
        ProtectHostname = true;
        ProtectKernelLogs = true;
        ProtectKernelModules = true;
        ProtectKernelTunables = true;
        ProtectControlGroups = true;
        ProtectProc = "default";
        ProcSubset = "all";
        RestrictAddressFamilies = [ "AF_INET" "AF_INET6" "AF_UNIX" ];
        RestrictNamespaces = true;
        RestrictRealtime = true;
        RestrictSUIDSGID = true;
        RemoveIPC = true;
        LockPersonality = true;
        MemoryDenyWriteExecute = true;
        SystemCallArchitectures = "native";
        SystemCallFilter = [ "@system-service" "~@privileged @resources" ];
        SystemCallErrorNumber = "EPERM";
        KeyringMode = "private";
      };
    };
  };
}
