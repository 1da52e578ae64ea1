# The core NixOS options the project's modules set, declared with the names and types of
# nixpkgs (the same in nixos-25.05, nixos-25.11 and nixos-26.05 for these options):
# - assertions, warnings: nixos/modules/misc/assertions.nix
# - networking.nameservers: nixos/modules/tasks/network-interfaces.nix
# - users.users, users.groups (the options set, and the module's two assertions on system
#   users): nixos/modules/config/users-groups.nix
# - systemd.services.<name> (the stage-2 service options): nixos/lib/systemd-unit-options.nix,
#   with serviceConfig's `unitOption` merge (lists concatenate, other values must agree) and
#   checkService (Type=, Restart=) with checkUnitConfig from nixos/lib/systemd-lib.nix
# - systemd.tmpfiles.rules / .settings: nixos/modules/system/boot/systemd/tmpfiles.nix
# A misspelt option name fails here as it fails on NixOS: none of these is freeform.
{ lib, config, ... }:

let
  inherit (lib) mkOption types;
  unitNames = mkOption { type = types.listOf types.str; default = [ ]; };
  lines = mkOption { type = types.lines; default = ""; };

  # No check of its own: lists concatenate (a lone value joins them as a one-item list),
  # other values must agree.
  unitOption = lib.mkOptionType {
    name = "systemd option";
    merge = loc: defs:
      let defs' = lib.filterOverrides defs; in
      if lib.any (def: lib.isList def.value) defs'
      then lib.concatMap (def: lib.toList def.value) defs'
      else lib.mergeEqualOption loc defs';
  };
  # systemd-lib.nix's assertValueOneOf and checkUnitConfig: the errors are traced, and the
  # definition then fails its type check.
  assertValueOneOf = name: values: group: attr:
    lib.optional (attr ? ${name} && !lib.elem attr.${name} values)
      "Systemd ${group} field `${name}' cannot have value `${toString attr.${name}}'.";
  checkUnitConfig = group: checks: attrs:
    let
      defs = lib.mapAttrs (_: v: if v._type or "" == "override" || v._type or "" == "if" then v.content else v) attrs;
      errors = lib.concatMap (c: c group defs) checks;
    in
    if errors == [ ] then true else builtins.trace (lib.concatStringsSep "\n" errors) false;
  checkService = checkUnitConfig "Service" [
    (assertValueOneOf "Type" [ "exec" "simple" "forking" "oneshot" "dbus" "notify" "notify-reload" "idle" ])
    (assertValueOneOf "Restart" [ "no" "on-success" "on-failure" "on-abnormal" "on-abort" "always" ])
  ];

  service = types.submodule {
    options = {
      enable = mkOption { type = types.bool; default = true; };
      description = mkOption { type = types.singleLineStr; default = ""; };
      documentation = mkOption { type = types.listOf types.str; default = [ ]; };
      requires = unitNames; wants = unitNames; upholds = unitNames; after = unitNames;
      before = unitNames; bindsTo = unitNames; partOf = unitNames; conflicts = unitNames;
      requisite = unitNames; wantedBy = unitNames; requiredBy = unitNames; upheldBy = unitNames;
      aliases = unitNames; onFailure = unitNames; onSuccess = unitNames;
      unitConfig = mkOption { type = types.attrsOf unitOption; default = { }; };
      startLimitBurst = mkOption { type = types.int; };
      startLimitIntervalSec = mkOption { type = types.int; };
      restartTriggers = mkOption { type = types.listOf types.unspecified; default = [ ]; };
      reloadTriggers = mkOption { type = types.listOf unitOption; default = [ ]; };
      environment = mkOption { type = types.attrsOf (types.nullOr (types.oneOf [ types.str types.path types.package ])); default = { }; };
      path = mkOption { type = types.listOf (types.oneOf [ types.package types.str ]); default = [ ]; };
      serviceConfig = mkOption { type = types.addCheck (types.attrsOf unitOption) checkService; default = { }; };
      script = lines; preStart = lines; postStart = lines; reload = lines; preStop = lines; postStop = lines;
      scriptArgs = mkOption { type = types.str; default = ""; };
      restartIfChanged = mkOption { type = types.bool; default = true; };
      reloadIfChanged = mkOption { type = types.bool; default = false; };
      stopIfChanged = mkOption { type = types.bool; default = true; };
      startAt = mkOption { type = types.either types.str (types.listOf types.str); default = [ ]; };
    };
  };

  tmpfilesEntry = types.submodule ({ name, ... }: {
    options = {
      type = mkOption { type = types.str; default = name; };
      mode = mkOption { type = types.str; default = "-"; };
      user = mkOption { type = types.str; default = "-"; };
      group = mkOption { type = types.str; default = "-"; };
      age = mkOption { type = types.str; default = "-"; };
      argument = mkOption { type = types.str; default = ""; };
    };
  });

  user = types.submodule ({ name, ... }: {
    options = {
      name = mkOption {
        type = types.passwdEntry types.str;
        default = name;
        apply = x: assert (lib.stringLength x < 32 || abort "Username '${x}' is longer than 31 characters which is not allowed!"); x;
      };
      description = mkOption { type = types.passwdEntry types.str; default = ""; };
      uid = mkOption { type = types.nullOr types.int; default = null; };
      isSystemUser = mkOption { type = types.bool; default = false; };
      isNormalUser = mkOption { type = types.bool; default = false; };
      group = mkOption {
        type = types.str;
        default = "";
        apply = x: assert (lib.stringLength x < 32 || abort "Group name '${x}' is longer than 31 characters which is not allowed!"); x;
      };
      extraGroups = mkOption { type = types.listOf types.str; default = [ ]; };
      home = mkOption { type = types.passwdEntry types.path; default = "/var/empty"; };
      createHome = mkOption { type = types.bool; default = false; };
    };
  });
  group = types.submodule ({ name, ... }: {
    options = {
      name = mkOption { type = types.passwdEntry types.str; default = name; };
      gid = mkOption { type = types.nullOr types.int; default = null; };
      members = mkOption { type = types.listOf (types.passwdEntry types.str); default = [ ]; };
    };
  });
in
{
  options = {
    assertions = mkOption { type = types.listOf types.unspecified; internal = true; default = [ ]; };
    warnings = mkOption { type = types.listOf types.str; internal = true; default = [ ]; };
    networking.nameservers = mkOption { type = types.listOf types.str; default = [ ]; };
    users.users = mkOption { type = types.attrsOf user; default = { }; };
    users.groups = mkOption { type = types.attrsOf group; default = { }; };
    systemd.services = mkOption { type = types.attrsOf service; default = { }; };
    systemd.tmpfiles.rules = mkOption { type = types.listOf types.str; default = [ ]; };
    systemd.tmpfiles.settings = mkOption { type = types.attrsOf (types.attrsOf (types.attrsOf tmpfilesEntry)); default = { }; };
  };

  # users-groups.nix refuses a system user without a group, and one neither system nor normal.
  config.assertions = lib.concatLists (lib.mapAttrsToList (name: u: [
    { assertion = u.group != ""; message = "users.users.${name}.group is unset."; }
    { assertion = u.isSystemUser != u.isNormalUser; message = "Exactly one of users.users.${name}.isSystemUser and users.users.${name}.isNormalUser must be set."; }
  ]) config.users.users);
}
