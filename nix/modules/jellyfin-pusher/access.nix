# How the agent reads Jellyfin's logs and process (the `runAs` option; see its description
# for the trade-off). The nixpkgs Jellyfin module creates dataDir, configDir, cacheDir and
# logDir 0700 through systemd-tmpfiles and runs Jellyfin with UMask=0077 and PrivateUsers, so
# neither group membership (mapped away by PrivateUsers, and 0700 anyway) nor the file mode
# can grant read access: a named-user ACL can.
{ lib, cfg, jellyfin }:

let
  own = cfg.runAs == "jellyfin-pusher";
  logDir = cfg.jellyfinLogDir;
  dataDir = jellyfin.dataDir or null;
  inside = parent: parent != null && logDir != null && lib.hasPrefix "${parent}/" logDir;
  user = if own then "jellyfin-pusher" else jellyfin.user or "jellyfin";
  group = if own then "jellyfin-pusher" else jellyfin.group or "jellyfin";
  # Explicit masks: the Jellyfin module's `d … 700` lines run on every tmpfiles pass and a
  # chmod of a folder with an ACL rewrites its mask to ---; these lines (in a file sorting
  # after Jellyfin's jellyfinDirs.conf) set it back. The default ACL makes each log file
  # Jellyfin creates later readable (.NET creates files 0666; a default ACL replaces the umask)
  # and by no one else (explicit default base entries: tmpfiles would otherwise derive
  # group::r-x from the mask).
  # Files that existed before the first pass stay unreadable to the agent until Jellyfin
  # rolls over to the next daily log.
  acl = path: entries: { "${path}"."a+".argument = lib.concatStringsSep "," entries; };
in
{
  inherit user group;

  users = lib.optionalAttrs own {
    users.jellyfin-pusher = {
      isSystemUser = true;
      group = "jellyfin-pusher";
      description = "jellyfin-pusher (reads Jellyfin's logs through an ACL)";
    };
    groups.jellyfin-pusher = { };
  };

  tmpfiles = lib.optionalAttrs (own && logDir != null) {
    jellyfinPusherAccess =
      acl logDir [ "u:jellyfin-pusher:r-x" "m::r-x" "d:u::rwx" "d:u:jellyfin-pusher:r--" "d:g::---" "d:m::r--" "d:o::---" ]
      // lib.optionalAttrs (inside dataDir) (acl dataDir [ "u:jellyfin-pusher:--x" "m::--x" ]);
  };

  # As Jellyfin's user, everything Jellyfin owns would be readable and writable: its data
  # folder becomes an empty read-only tmpfs with only the log folder bound back read-only,
  # and its cache folder is hidden.
  serviceConfig = lib.optionalAttrs (!own) ({
    TemporaryFileSystem = [ "${jellyfin.dataDir}:ro" ];
    InaccessiblePaths = [ "-${jellyfin.cacheDir}" ]
      ++ lib.optional (!lib.hasPrefix "${jellyfin.dataDir}/" jellyfin.configDir) "-${jellyfin.configDir}";
  } // lib.optionalAttrs (logDir != null) {
    BindReadOnlyPaths = [ logDir ];
  });

  assertions = [
    {
      assertion = own || (jellyfin.enable or false);
      message = "systemFoundry.monitoringStack.jellyfinPusher.runAs = \"jellyfin\" needs services.jellyfin on this host.";
    }
  ];
}
