# The DMZ host: runs jellyfin-pusher as the hardened systemd service of
# config/jellyfin-pusher.service. Secrets reach it only as systemd credentials (LoadCredential):
# never in the Nix store, the command line or the environment. No vmagent scrape config is
# needed: the agent pushes.
#
# Runs only when both systemFoundry.monitoringStack.enable (the stack's gate) and
# jellyfinPusher.enable are set; hosts outside the stack use services.jellyfin-pusher (an
# alias of the same options) and need no gate.
#
# Supported NixOS releases: 25.11 and 26.05 (nix/tests/releases.nix; each is evaluated by
# tests/it/nix.rs against the option declarations of that release).
{ config, options, lib, pkgs, ... }:

let
  inherit (lib) mkOption mkEnableOption mkIf types;
  cfg = config.systemFoundry.monitoringStack.jellyfinPusher;
  stack = config.systemFoundry.monitoringStack;
  prefix = "systemFoundry.monitoringStack.jellyfinPusher";
  # Set through the alias: a host outside the stack, where the gate does not apply.
  viaAlias = options.services.jellyfin-pusher.isDefined;
  active = cfg.enable && (stack.enable || viaAlias);
  toml = pkgs.formats.toml { };
  credentials = "/run/credentials/jellyfin-pusher.service";
  jellyfin = config.services.jellyfin;
  schema = import ./jellyfin-pusher/settings.nix { inherit lib; };
  access = import ./jellyfin-pusher/access.nix { inherit lib cfg jellyfin; };
  egress = import ./jellyfin-pusher/egress.nix { inherit lib cfg config; };

  common = import ./common.nix { inherit lib; };
  inherit (common) secretPath;

  # An optional setting of a remote: null leaves it out of the config.
  unset = type: description: mkOption {
    type = types.nullOr type;
    default = null;
    inherit description;
  };

  remoteWriteType = types.submodule {
    options = {
      name = mkOption {
        type = types.strMatching "[A-Za-z0-9_-]{1,64}";
        description = "Names the target in metrics (remote label), logs and the queue folder.";
      };
      url = mkOption {
        type = types.str;
        example = "https://tiger.example.invalid:8427/api/v1/write";
        description = "Remote-write endpoint (VictoriaMetrics, or vmauth in front of it).";
      };
      bearerTokenFile = unset secretPath "File with a bearer token; passed to the service as a credential.";
      basicAuthUser = unset types.str "Basic-auth user (with basicAuthPasswordFile).";
      basicAuthPasswordFile = unset secretPath "File with the basic-auth password; passed as a credential.";
      caFile = unset types.path "Extra PEM CA certificates (public, may live in the store).";
      tlsCertFile = unset types.path "Client certificate (PEM) for a receiver that requires one; passed as a credential.";
      tlsKeyFile = unset secretPath "Private key (PEM) of tlsCertFile; passed as a credential.";
      tlsServerName = unset types.str "Name the receiver's certificate is checked against when url names it by address (not with proxyUrl).";
      proxyUrl = unset types.str ''
        HTTP proxy for this remote only (http://host:port, e.g. http://192.0.2.20:3128; https
        goes through it with CONNECT). Jellyfin never goes through it. With egress.restrict,
        the proxy's address is what the unit may reach, not the receiver's.
      '';
      proxyUser = unset types.str "Proxy basic-auth user (with proxyPasswordFile).";
      proxyPasswordFile = unset secretPath "File with the proxy's basic-auth password; passed as a credential.";
      kind = mkOption {
        type = types.enum [ "victoriametrics" "prometheus" ];
        default = "victoriametrics";
        description = ''
          What receives the samples: victoriametrics (also vmagent, vmauth in front) stores them
          in any order, prometheus refuses out-of-order samples. Decides the defaults of
          concurrency (4 or 1) and newestFirst (true or false).
        '';
      };
      concurrency = unset (types.ints.between 1 16) "Requests in flight at once while a backlog drains; null: 4 for victoriametrics, 1 for prometheus.";
      newestFirst = unset types.bool "After an outage the newest cycle first, the backlog behind it; null: true for victoriametrics, false for prometheus.";
      insecureHttp = mkOption {
        type = types.bool;
        default = false;
        description = "Allow an http:// url (or proxyUrl, with proxyUser) to a host other than loopback with credentials: they then cross the network in clear text (the agent refuses it otherwise).";
      };
    };
  };

  credentialName = rw: kind: "remote-write-${rw.name}-${kind}";

  # Every file a remote reads becomes a credential: (setting, credential kind, option value).
  remoteFiles = rw: lib.filter (f: f.file != null) [
    { key = "bearer_token_file"; kind = "token"; file = rw.bearerTokenFile; }
    { key = "basic_auth_password_file"; kind = "password"; file = rw.basicAuthPasswordFile; }
    { key = "proxy_password_file"; kind = "proxy-password"; file = rw.proxyPasswordFile; }
    { key = "tls_cert_file"; kind = "cert"; file = rw.tlsCertFile; }
    { key = "tls_key_file"; kind = "key"; file = rw.tlsKeyFile; }
  ];

  remoteWriteSettings = rw:
    { inherit (rw) name url kind; }
    // lib.optionalAttrs (rw.concurrency != null) { inherit (rw) concurrency; }
    // lib.optionalAttrs (rw.newestFirst != null) { newest_first = rw.newestFirst; }
    // lib.listToAttrs (map (f: lib.nameValuePair f.key "${credentials}/${credentialName rw f.kind}") (remoteFiles rw))
    // lib.optionalAttrs (rw.basicAuthUser != null) { basic_auth_user = rw.basicAuthUser; }
    // lib.optionalAttrs (rw.caFile != null) { ca_file = "${rw.caFile}"; }
    // lib.optionalAttrs (rw.tlsServerName != null) { tls_server_name = rw.tlsServerName; }
    // lib.optionalAttrs (rw.proxyUrl != null) { proxy_url = rw.proxyUrl; }
    // lib.optionalAttrs (rw.proxyUser != null) { proxy_user = rw.proxyUser; }
    // lib.optionalAttrs rw.insecureHttp { insecure_http = true; };

  remoteCredentials = lib.concatMap
    (rw: map (f: "${credentialName rw f.kind}:${f.file}") (remoteFiles rw))
    cfg.remoteWrite;

  # state_dir and jellyfin.token_file stay unset: systemd's $STATE_DIRECTORY and
  # $CREDENTIALS_DIRECTORY provide them. Unset options (null) mean the agent's default.
  configFile = toml.generate "jellyfin-pusher.toml" (schema.withoutNulls cfg.settings);

  names = map (rw: rw.name) cfg.remoteWrite;
  duplicateNames = lib.unique (lib.filter (n: lib.count (m: m == n) names > 1) names);
in
{
  imports = [
    ./monitoring-stack.nix
    (lib.mkAliasOptionModule [ "services" "jellyfin-pusher" ] [ "systemFoundry" "monitoringStack" "jellyfinPusher" ])
  ];

  options.systemFoundry.monitoringStack.jellyfinPusher = {
    enable = mkEnableOption "jellyfin-pusher, which pushes Jellyfin metrics to VictoriaMetrics";

    package = mkOption {
      type = types.package;
      default = pkgs.jellyfin-pusher or (pkgs.callPackage ../package.nix { });
      defaultText = lib.literalExpression "pkgs.callPackage ./nix/package.nix { }";
    };

    tokenFile = mkOption {
      type = secretPath;
      example = "/run/secrets/jellyfin_api_token";
      description = ''
        File with a Jellyfin API key; passed to the service as the credential jellyfin-token.
        systemd copies it at start: after rotating it, restart the unit (sops-nix:
        `sops.secrets.<name>.restartUnits = [ "jellyfin-pusher.service" ]`).
      '';
    };

    remoteWrite = mkOption {
      type = types.listOf remoteWriteType;
      description = "Where to push. Each target gets its own disk buffer. Token and password files become credentials (restart the unit after rotating them).";
    };

    jellyfinLogDir = mkOption {
      type = types.nullOr types.str;
      default = if jellyfin.enable or false then jellyfin.logDir else null;
      defaultText = lib.literalExpression "if config.services.jellyfin.enable then config.services.jellyfin.logDir else null";
      description = ''
        Jellyfin's log folder: the transcode_log collector reads it
        (settings.collectors.transcode_log.dir), and the unit is given read access to it as
        `runAs` describes. null: the collector stays off.
      '';
    };

    runAs = mkOption {
      type = types.enum [ "jellyfin-pusher" "jellyfin" ];
      default = "jellyfin-pusher";
      description = ''
        The user the agent runs as. The nixpkgs Jellyfin module keeps its folders 0700 with
        UMask=0077, so group membership cannot open them.

        - `jellyfin-pusher` (default, least privilege): its own static system user, given
          read access to jellyfinLogDir only, by POSIX ACLs from systemd-tmpfiles
          (traverse-only on Jellyfin's data folder when the logs live inside it; a default
          ACL makes each new log file readable). It cannot read Jellyfin's database, config
          or cache, nor signal Jellyfin. The process collector reports CPU, memory, threads
          and limits but not open files or IO, which the kernel shows only to the same user.
        - `jellyfin`: Jellyfin's own user, with Jellyfin's data folder replaced by an empty
          read-only tmpfs except a read-only bind of the log folder, and its cache hidden.
          Adds process_open_fds and the IO counters, at the cost of sharing Jellyfin's uid
          (the agent could signal Jellyfin).
      '';
    };

    settings = mkOption {
      type = schema.type;
      default = { };
      example = { collect.interval = "30s"; buffer.max_size = "1GiB"; collectors.sessions.geoip_database = "/var/lib/GeoIP/GeoLite2-Country.mmdb"; };
      description = ''
        The config file (config/jellyfin-pusher.example.toml), typed (RFC 42). Unset (null)
        keys take the agent's default. state_dir and jellyfin.token_file are systemd's;
        remote_write is generated from remoteWrite.
      '';
    };

    limits = {
      memoryMax = mkOption {
        type = types.str;
        default = "256M";
        description = "MemoryMax= of the unit: the kernel stops the agent, not Jellyfin, if a peer makes it grow.";
      };
      tasksMax = mkOption {
        type = types.ints.positive;
        default = 64;
        description = "TasksMax= of the unit.";
      };
    };

    egress = {
      restrict = mkOption {
        type = types.bool;
        default = true;
        description = "IPAddressDeny=any with IPAddressAllow= for Jellyfin, the receivers, DNS and localhost only.";
      };
      allowedAddresses = mkOption {
        type = types.listOf types.str;
        default = [ ];
        example = [ "192.0.2.10/32" ];
        description = ''
          Addresses (CIDR) the agent may reach besides those written as IP literals in
          settings.jellyfin.url and remoteWrite.*.url: needed for every host name there
          (systemd filters by address, not by name).
        '';
      };
    };

    configFile = mkOption {
      type = types.path;
      readOnly = true;
      default = configFile;
      description = "The generated config file (holds no secret).";
    };
  };

  config = lib.mkMerge [
    {
      warnings = lib.optional (cfg.enable && !stack.enable && !viaAlias)
        "${prefix}.enable is set but systemFoundry.monitoringStack.enable is not: jellyfin-pusher does not run.";
    }
    (mkIf active {
      systemFoundry.monitoringStack.jellyfinPusher.settings = {
        remote_write = map remoteWriteSettings cfg.remoteWrite;
        collectors.transcode_log.dir = mkIf (cfg.jellyfinLogDir != null) (lib.mkDefault cfg.jellyfinLogDir);
      };

      assertions = [
        {
          assertion = cfg.remoteWrite != [ ];
          message = "${prefix}.remoteWrite needs at least one target.";
        }
        {
          assertion = duplicateNames == [ ];
          message = "${prefix}.remoteWrite: the name ${lib.concatStringsSep ", " duplicateNames} is used twice; each target needs its own (it names its queue folder).";
        }
        {
          assertion = lib.all (rw: rw.bearerTokenFile == null || rw.basicAuthUser == null) cfg.remoteWrite;
          message = "jellyfinPusher.remoteWrite: use bearerTokenFile or basic auth, not both.";
        }
        {
          assertion = lib.all (rw: (rw.basicAuthUser == null) == (rw.basicAuthPasswordFile == null)) cfg.remoteWrite;
          message = "jellyfinPusher.remoteWrite: basicAuthUser and basicAuthPasswordFile go together.";
        }
        {
          assertion = lib.all (rw: (rw.proxyUser == null) == (rw.proxyPasswordFile == null)) cfg.remoteWrite;
          message = "jellyfinPusher.remoteWrite: proxyUser and proxyPasswordFile go together.";
        }
        {
          assertion = lib.all (rw: (rw.tlsCertFile == null) == (rw.tlsKeyFile == null)) cfg.remoteWrite;
          message = "jellyfinPusher.remoteWrite: tlsCertFile and tlsKeyFile go together.";
        }
      ]
      # The agent refuses credentials over http:// to another host unless the table opts in;
      # refused here too, so the unit never restart-loops on it.
      ++ map (rw: {
        assertion = !(common.leavesInClear rw.url && (rw.bearerTokenFile != null || rw.basicAuthUser != null) && !rw.insecureHttp);
        message = "${prefix}.remoteWrite \"${rw.name}\": http:// to ${common.urlHost rw.url} would send its credentials in clear text; use https://, or set insecureHttp = true if the link is protected otherwise.";
      }) cfg.remoteWrite
      ++ [{
        assertion = !(common.leavesInClear cfg.settings.jellyfin.url && cfg.settings.jellyfin.insecure_http != true);
        message = "${prefix}.settings.jellyfin.url: http:// to ${common.urlHost cfg.settings.jellyfin.url} would send the API key in clear text; use https://, or set settings.jellyfin.insecure_http = true if the link is protected otherwise.";
      }]
      ++ schema.assertions "${prefix}.settings" cfg.settings
      ++ access.assertions
      ++ egress.assertions;

      users = access.users;
      systemd.tmpfiles.settings = access.tmpfiles;

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
          # With a static user of this name (users.users above), systemd uses it and keeps
          # DynamicUser's sandbox.
          User = access.user;
          Group = access.group;
          # The process collector reads Jellyfin's /proc/<pid> entry (see the plain unit).
          ProtectProc = "default";
          ProcSubset = "all";
          RestrictAddressFamilies = [ "AF_INET" "AF_INET6" "AF_UNIX" ];
        }
        // common.sandbox { inherit (cfg.limits) memoryMax tasksMax; }
        // egress.serviceConfig
        // access.serviceConfig;
      };
    })
  ];
}
