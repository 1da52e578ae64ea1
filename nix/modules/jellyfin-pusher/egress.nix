# Egress pinned (IPAddressDeny=any): the unit may reach localhost, the IP literals in the
# Jellyfin and receiver URLs (the proxy's, for a remote with proxyUrl), the configured DNS servers and egress.allowedAddresses. systemd
# filters by address, so a URL with a host name needs its address in allowedAddresses; an
# assertion names the URL otherwise.
{ lib, cfg, config }:

let
  # A remote behind a proxy is reached through the proxy only: the proxy resolves its name.
  urls = [ cfg.settings.jellyfin.url ]
    ++ map (rw: if rw.proxyUrl or null != null then rw.proxyUrl else rw.url) cfg.remoteWrite;
  inherit (import ../common.nix { inherit lib; }) urlHost isIP bare isLocal;
  named = lib.filter (url: let h = urlHost url; in !(isIP h || isLocal h)) urls;
  literals = lib.unique (map (url: bare (urlHost url)) (lib.filter (url: isIP (urlHost url)) urls));
  dns = lib.optionals (named != [ ]) (config.networking.nameservers or [ ]);
in
{
  serviceConfig = lib.optionalAttrs cfg.egress.restrict {
    IPAddressDeny = "any";
    IPAddressAllow = [ "localhost" ] ++ literals ++ dns ++ cfg.egress.allowedAddresses;
  };

  assertions = [
    {
      assertion = !cfg.egress.restrict || named == [ ] || cfg.egress.allowedAddresses != [ ];
      message = "systemFoundry.monitoringStack.jellyfinPusher.egress: ${lib.concatStringsSep ", " named} uses a host name; list its address in egress.allowedAddresses (systemd's IPAddressAllow= takes addresses), or set egress.restrict = false.";
    }
  ];
}
