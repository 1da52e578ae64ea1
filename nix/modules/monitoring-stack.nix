# The gate of the plan's systemFoundry.monitoringStack: nothing of jellyfin-pusher's runs on a
# host whose stack is off, whatever its own `enable` says. Both modules import this file (the
# module system imports it once). A tree that already declares
# systemFoundry.monitoringStack.enable itself lists this file in `disabledModules`.
{ lib, ... }:
{
  options.systemFoundry.monitoringStack.enable = lib.mkEnableOption "the monitoring stack (the gate of every systemFoundry.monitoringStack.* module)";
}
