# services.jellyfin as nixos/modules/services/misc/jellyfin.nix declares it in nixos-25.11
# and nixos-26.05 (the options this project reads or its tests set), with the part of its
# config this project must live with: systemd-tmpfiles makes dataDir, configDir, logDir and
# cacheDir 0700 (settings.jellyfinDirs) and the service runs with UMask=0077 and PrivateUsers.
{ config, lib, pkgs, ... }:

let
  inherit (lib) mkOption types;
  cfg = config.services.jellyfin;
  dir = path: { d = { mode = "700"; inherit (cfg) user group; }; };
in
{
  options.services.jellyfin = {
    enable = lib.mkEnableOption "Jellyfin Media Server";
    package = mkOption { type = types.package; default = pkgs.jellyfin; };
    user = mkOption { type = types.str; default = "jellyfin"; };
    group = mkOption { type = types.str; default = "jellyfin"; };
    dataDir = mkOption { type = types.path; default = "/var/lib/jellyfin"; };
    configDir = mkOption { type = types.path; default = "${cfg.dataDir}/config"; };
    cacheDir = mkOption { type = types.path; default = "/var/cache/jellyfin"; };
    logDir = mkOption { type = types.path; default = "${cfg.dataDir}/log"; };
    openFirewall = mkOption { type = types.bool; default = false; };
  };

  config = lib.mkIf cfg.enable {
    systemd.tmpfiles.settings.jellyfinDirs = lib.genAttrs [ cfg.dataDir cfg.configDir cfg.logDir cfg.cacheDir ] dir;
    systemd.services.jellyfin.serviceConfig = {
      User = cfg.user;
      Group = cfg.group;
      UMask = "0077";
      PrivateUsers = true;
    };
    users.users = lib.mkIf (cfg.user == "jellyfin") { jellyfin = { inherit (cfg) group; isSystemUser = true; }; };
    users.groups = lib.mkIf (cfg.group == "jellyfin") { jellyfin = { }; };
  };
}
