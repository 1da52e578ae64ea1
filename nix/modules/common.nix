# What both modules share: the secret-path type and the sandbox of config/jellyfin-pusher.service,
# which the DMZ agent and the DMZ-facing ingress both run in (each adds what differs).
{ lib }:
rec {
  # The host of a URL, lower-cased, IPv6 in brackets; "" when it is not a URL.
  urlHost = url:
    let m = builtins.match "[A-Za-z][A-Za-z0-9+.-]*://([^@/]*@)?(\\[[^]/]*]|[^:/?#]*).*" url;
    in if m == null then "" else lib.toLower (lib.elemAt m 1);
  isIP = h: builtins.match "[0-9]{1,3}(\\.[0-9]{1,3}){3}" h != null || builtins.match "\\[[0-9a-f:.]+]" h != null;
  # An IP literal as IPAddressAllow= takes it (no brackets).
  bare = h: lib.removePrefix "[" (lib.removeSuffix "]" h);
  isLocal = h: h == "localhost" || lib.hasSuffix ".localhost" h;
  # As the agent decides (src/config/validate.rs is_loopback): 127.0.0.0/8, ::1, localhost.
  isLoopback = h:
    let name = lib.removeSuffix "." h; in
    (isIP h && lib.hasPrefix "127." h) || h == "[::1]" || isLocal name;
  # http:// to another host: what is sent can be read on the way.
  leavesInClear = url: lib.hasPrefix "http://" (lib.toLower url) && !isLoopback (urlHost url);

  secretPath = lib.types.addCheck lib.types.str (p: lib.hasPrefix "/" p && !lib.hasPrefix builtins.storeDir p) // {
    description = "absolute path outside the Nix store (a secret must not be world-readable)";
  };

  sandbox = { memoryMax, tasksMax }: {
    DynamicUser = true;
    UMask = "0077";
    MemoryMax = memoryMax;
    TasksMax = tasksMax;
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
}
