# Two-node NixOS VM test (a nixosTest): `dmz` runs Jellyfin and jellyfin-pusher, `tiger` runs
# VictoriaMetrics, the TLS vmauth ingress, Grafana and vmalert from this repository's modules.
# It proves on real NixOS what tests/it/nix.rs can only evaluate: the units start, the agent's
# samples cross the link through vmauth with TLS (the token holds `"` and `\`), vmauth pins
# job="jellyfin", the write token reads nothing, and the agent's user can read Jellyfin's
# logs through the ACL but not its database.
#
# Needs a nixpkgs of a supported release (25.11 or 26.05), Nix 2.18+ and KVM:
#   nix-build nix/tests/vm.nix --arg pkgs 'import <nixpkgs> { }'
# (tests/it/nix.rs only parses this file: the CI machine has neither nixpkgs nor KVM.)
{ pkgs ? import <nixpkgs> { } }:

let
  token = "vm-test-token-\"with\\quotes";
  # A self-signed certificate for tiger, which the DMZ host trusts (not a CA: rustls refuses
  # a CA certificate as a server's).
  cert = pkgs.runCommand "tiger-certificate" { nativeBuildInputs = [ pkgs.openssl ]; } ''
    mkdir $out
    cat > openssl.cnf <<'EOF'
    [req]
    distinguished_name = dn
    x509_extensions = leaf
    prompt = no
    [dn]
    CN = tiger
    [leaf]
    subjectAltName = DNS:tiger
    basicConstraints = critical,CA:FALSE
    keyUsage = critical,digitalSignature
    extendedKeyUsage = serverAuth
    EOF
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 3650 \
      -config openssl.cnf -keyout $out/key.pem -out $out/cert.pem
  '';
in
pkgs.testers.runNixOSTest {
  name = "jellyfin-pusher";

  nodes.tiger = { ... }: {
    imports = [ ../modules/monitoring-host.nix ];
    networking.firewall.allowedTCPPorts = [ 8427 ];
    services.victoriametrics = { enable = true; listenAddress = "127.0.0.1:8428"; };
    services.grafana = {
      enable = true;
      settings.server.http_addr = "127.0.0.1";
      settings.security.secret_key = "vm-test-only";
    };
    # Test secrets only: in a deployment they come from sops-nix, never from the store.
    environment.etc."dmz-token" = { text = token; mode = "0400"; };
    environment.etc."tiger-key.pem" = { source = "${cert}/key.pem"; mode = "0400"; };
    systemFoundry.monitoringStack = {
      enable = true;
      jellyfinMonitoring = {
        enable = true;
        ingress = {
          enable = true;
          tokenFile = "/etc/dmz-token";
          tls = { certificateFile = "${cert}/cert.pem"; keyFile = "/etc/tiger-key.pem"; };
          allowedClients = [ "192.168.1.0/24" ];
        };
      };
    };
  };

  nodes.dmz = { ... }: {
    imports = [ ../modules/jellyfin-pusher.nix ];
    services.jellyfin.enable = true;
    security.pki.certificateFiles = [ "${cert}/cert.pem" ];
    environment.etc."dmz-token" = { text = token; mode = "0400"; };
    # Jellyfin has no API key on a first start: the agent reports jellyfin_up 0, which is
    # enough to prove the path to VictoriaMetrics.
    environment.etc."jellyfin-token" = { text = "no-key-yet"; mode = "0400"; };
    systemFoundry.monitoringStack = {
      enable = true;
      jellyfinPusher = {
        enable = true;
        tokenFile = "/etc/jellyfin-token";
        egress.allowedAddresses = [ "192.168.1.0/24" ];
        settings.labels.instance = "jellyfin-dmz";
        remoteWrite = [{
          name = "tiger";
          url = "https://tiger:8427/api/v1/write";
          bearerTokenFile = "/etc/dmz-token";
        }];
      };
    };
  };

  testScript = ''
    import json

    start_all()
    tiger.wait_for_unit("victoriametrics.service")
    tiger.wait_for_unit("jellyfin-ingress.service")
    tiger.wait_for_unit("vmalert-jellyfin.service")
    tiger.wait_for_open_port(8427)
    dmz.wait_for_unit("jellyfin.service")
    dmz.wait_for_unit("jellyfin-pusher.service")

    with subtest("samples cross the link through vmauth, with the pinned job"):
        tiger.wait_until_succeeds(
            "curl -gsf 'http://127.0.0.1:8428/api/v1/export?match[]=jellyfin_up' | grep -q jellyfin-dmz",
            timeout=180,
        )
        line = tiger.succeed("curl -gsf 'http://127.0.0.1:8428/api/v1/export?match[]=jellyfin_up' | head -n1")
        assert json.loads(line)["metric"]["job"] == "jellyfin", line

    with subtest("the write token reads nothing, and only TLS is served"):
        dmz.fail("curl -sf -H \"Authorization: Bearer $(cat /etc/dmz-token)\" 'https://tiger:8427/api/v1/query?query=up'")
        dmz.fail("curl -sf http://tiger:8427/health")
        dmz.succeed("curl -s -o /dev/null https://tiger:8427/health")

    with subtest("the agent's user reads Jellyfin's logs, not its data"):
        dmz.wait_until_succeeds("ls /var/lib/jellyfin/log/log_*.log")
        dmz.succeed("runuser -u jellyfin-pusher -- ls /var/lib/jellyfin/log")
        dmz.fail("runuser -u jellyfin-pusher -- ls /var/lib/jellyfin")
        dmz.fail("runuser -u jellyfin-pusher -- cat /var/lib/jellyfin/data/jellyfin.db")
        dmz.fail("runuser -u jellyfin-pusher -- ls /var/lib/jellyfin/config")

    with subtest("the unit is sandboxed"):
        dmz.succeed("systemd-analyze security jellyfin-pusher.service --threshold=2.0")
        tiger.succeed("systemd-analyze security jellyfin-ingress.service --threshold=2.0")
  '';
}
