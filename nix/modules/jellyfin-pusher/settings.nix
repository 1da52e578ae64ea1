# The typed `settings` of the DMZ module (RFC 42): the keys of src/config/mod.rs with their
# types, null meaning "the agent's default". The root and [collectors] are freeform so that
# what the agent would refuse (an unknown key or collector) reaches an assertion that says
# so, instead of a restart loop at start.
{ lib }:

let
  inherit (lib) mkOption types;
  opt = type: description: mkOption { type = types.nullOr type; default = null; inherit description; };
  # The shapes humantime and bytesize parse (the agent checks the unit names).
  duration = types.strMatching "[[:space:]]*([0-9]+(\\.[0-9]+)?[[:space:]]*([A-Za-z]|µ)+[[:space:]]*)+"
    // { description = "duration (\"15s\", \"5m\", \"1h 30m\")"; };
  size = types.strMatching "[0-9]+|[0-9.]+[[:space:]]*([Bb]|[KkMmGgTtPpEe][Ii]?[Bb]?)"
    // { description = "size (\"512MiB\", \"1GiB\", bytes)"; };
  absolute = types.strMatching "/.*" // { description = "absolute path"; };
  toml = (import ./toml-value.nix { inherit lib; });

  # Every collector has these two; the table lists each collector's own further keys.
  toggle = {
    enabled = opt types.bool "false turns the collector off.";
    interval = opt duration "How often it runs (its own default otherwise).";
  };
  collectors = {
    system = { };
    sessions = {
      active_within = opt duration "Sessions seen within this window count as active.";
      geoip_database = opt absolute "A MaxMind Country database (.mmdb): sessions per country too.";
    };
    users = { };
    library = { };
    inventory = {
      page_size = opt (types.ints.between 1 10000) "Items per GET /Items request.";
      page_timeout = opt duration "How long one GET /Items page may take (in place of jellyfin.timeout).";
      min_page_size = opt types.ints.positive "A page that times out is asked again with half as many items, down to this many.";
      recent = opt types.ints.unsigned "Newest items per library in jellyfin_library_recently_added.";
    };
    tasks = { };
    activity = { };
    transcode_log = {
      dir = opt absolute "Jellyfin's log folder (log_YYYYMMDD.log); the module sets it from jellyfinLogDir.";
    };
    process = {
      pid_file = opt absolute "Jellyfin's pid file (wins over unit and name).";
      unit = opt types.str "The systemd unit in Jellyfin's cgroup.";
      name = opt types.str "Jellyfin's process name (comm).";
    };
    host = { };
    # Off unless enabled: watch time from the Playback Reporting plugin.
    playback_reporting = { };
  };
  collectorType = extra: types.submodule { options = toggle // extra; };

  section = options: mkOption { type = types.submodule { inherit options; }; default = { }; };

  type = types.submodule {
    freeformType = toml;
    options = {
      log_level = opt types.str "Log level or RUST_LOG-style filter.";
      state_dir = opt types.str "Left to systemd ($STATE_DIRECTORY); setting it is refused.";
      jellyfin = section {
        url = mkOption {
          type = types.strMatching "https?://.+";
          default = "http://127.0.0.1:8096";
          description = "Jellyfin's base URL, with any base path.";
        };
        token_file = opt types.str "Left to systemd ($CREDENTIALS_DIRECTORY); setting it is refused: use tokenFile.";
        timeout = opt duration "Per-request timeout.";
        max_response_size = opt size "Larger answers are refused.";
        insecure_http = opt types.bool "Allow http:// to a host other than loopback: the API key then crosses the network in clear text.";
      };
      collect = section { interval = opt duration "The fast collectors' interval."; };
      labels = mkOption {
        type = types.attrsOf (types.strMatching ".+");
        default = { job = "jellyfin"; };
        example = { job = "jellyfin"; instance = "jellyfin-dmz"; };
        description = "Static labels on every series.";
      };
      collectors = mkOption {
        type = types.submodule {
          freeformType = types.attrsOf toml;
          options = lib.mapAttrs (_: extra: mkOption { type = collectorType extra; default = { }; }) collectors;
        };
        default = { };
        description = "Per-collector switches and options ([collectors.<name>]).";
      };
      privacy = section {
        user_label = opt (types.enum [ "hash" "id" "name" "none" ]) "What the user label says.";
        top_items = opt types.ints.unsigned "How many items jellyfin_item_plays_total tracks.";
      };
      buffer = section {
        max_size = opt size "Unsent data kept per target.";
        max_age = opt duration "Blocks older than this are dropped unsent.";
        segment_size = opt size "Size of one queue data file.";
        memory_fallback_size = opt size "Blocks kept in memory while the disk refuses writes.";
      };
      remote_write = mkOption {
        type = types.listOf toml;
        default = [ ];
        internal = true;
        description = "Generated from remoteWrite (credentials included); set remoteWrite instead.";
      };
    };
  };

  known = [ "log_level" "state_dir" "jellyfin" "collect" "labels" "collectors" "privacy" "buffer" "remote_write" ];
  credentialsDir = "/run/credentials/jellyfin-pusher.service/";

  # [ { path = "a.b"; value = …; } ] of every string leaf whose key names a secret file.
  secretFiles = path: value:
    if lib.isAttrs value then
      lib.concatLists (lib.mapAttrsToList (k: v: secretFiles (path ++ [ k ]) v) value)
    else if lib.isList value then
      lib.concatLists (lib.imap0 (i: v: secretFiles (path ++ [ "[${toString i}]" ]) v) value)
    else
      let key = lib.last path; in
      lib.optional (lib.isString value && (lib.hasSuffix "_file" key && key != "ca_file" && key != "pid_file"
        || lib.hasPrefix "/run/secrets" value || lib.hasPrefix "/run/agenix" value))
        { path = lib.concatStringsSep "." path; inherit value; };

  withoutNulls = value:
    if lib.isAttrs value then lib.mapAttrs (_: withoutNulls) (lib.filterAttrs (_: v: v != null) value)
    else if lib.isList value then map withoutNulls value
    else value;
in
{
  inherit type withoutNulls;

  assertions = where: settings:
    let
      unknownKeys = lib.subtractLists known (lib.attrNames settings);
      unknownCollectors = lib.subtractLists (lib.attrNames collectors) (lib.attrNames settings.collectors);
      # remote_write is generated with credential paths only; anything else is a bypass.
      secrets = lib.filter (s: !(lib.hasPrefix "remote_write." s.path && lib.hasPrefix credentialsDir s.value))
        (secretFiles [ ] (withoutNulls settings));
    in
    [
      {
        assertion = unknownKeys == [ ];
        message = "${where}: unknown key ${lib.concatStringsSep ", " unknownKeys} (the agent refuses it); known: ${lib.concatStringsSep ", " known}.";
      }
      {
        assertion = unknownCollectors == [ ];
        message = "${where}.collectors: unknown collector ${lib.concatStringsSep ", " unknownCollectors} (the agent refuses it); known: ${lib.concatStringsSep ", " (lib.attrNames collectors)}.";
      }
      {
        assertion = settings.state_dir == null;
        message = "${where}.state_dir: leave it unset; systemd's StateDirectory= is the only folder the unit may write.";
      }
      {
        assertion = secrets == [ ];
        message = "${where}: ${lib.concatMapStringsSep ", " (s: "${s.path} = \"${s.value}\"") secrets} names a secret file; secrets reach the agent only as credentials (tokenFile, remoteWrite.*.bearerTokenFile / basicAuthPasswordFile), never by a path in the config.";
      }
    ];
}
