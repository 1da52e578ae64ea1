#!/usr/bin/env bash
# Runs every check and test of jellyfin-pusher on a Debian machine, installing the real
# servers and tools the tests start (they are never mocked): VictoriaMetrics, vmagent,
# vmalert, vmauth (victoria-metrics), Prometheus and promtool (prometheus), nix-instantiate
# (nix-bin), systemd-analyze and systemd-tmpfiles (systemd), /usr/bin/time (time), openssl
# (test certificates), ip (iproute2, for the DMZ link test's network namespaces), for the
# DMZ egress tests tinyproxy and nginx (nginx-light), and node/npm (nodejs, npm: the
# dashboards are type-checked against Grafana's @grafana/schema). Needs root, or sudo, for
# apt-get and for the full-disk test's tmpfs mount.
set -euo pipefail
cd "$(dirname "$0")/.."

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

missing=()
# /usr/bin/time (package time, not installed by default) measures peak RSS in tests/it/inventory.rs;
# by its path, because `time` alone is the shell's keyword.
for pair in victoria-metrics:victoria-metrics vmalert:victoria-metrics vmauth:victoria-metrics \
            prometheus:prometheus promtool:prometheus nix-instantiate:nix-bin systemd-analyze:systemd \
            systemd-tmpfiles:systemd /usr/bin/time:time openssl:openssl ip:iproute2 \
            tinyproxy:tinyproxy nginx:nginx-light node:nodejs npm:npm; do
  command -v "${pair%%:*}" >/dev/null 2>&1 || missing+=("${pair#*:}")
done
if [ ${#missing[@]} -gt 0 ]; then
  packages=$(printf '%s\n' "${missing[@]}" | sort -u | tr '\n' ' ')
  echo "== installing: $packages"
  as_root apt-get update -qq
  # policy-rc.d: Debian would start the packaged services; the tests start their own.
  as_root sh -c 'printf "#!/bin/sh\nexit 101\n" > /usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d'
  # shellcheck disable=SC2086
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $packages
  as_root rm -f /usr/sbin/policy-rc.d
fi

# The first nix-instantiate calls create the Nix store's state (/nix/var/nix); parallel first
# calls race ("creating symlink … File exists", "db.sqlite is busy"). One call here, before the
# tests run them in parallel (tests/it/nix.rs guards the same way for a bare `cargo test`).
nix-instantiate --eval -E 1 >/dev/null

echo "== dashboards against Grafana's schema (@grafana/schema)"
# The versions pinned in tests/grafana-schema/package-lock.json, from the npm registry.
(cd tests/grafana-schema && npm ci --no-audit --no-fund --silent && node check.mjs)

echo "== cargo fmt"
cargo fmt --all -- --check
echo "== cargo clippy"
cargo clippy --locked --all-targets -- -D warnings
echo "== cargo test"
# Benches (cargo bench) print figures for the docs; they are not tests. --no-fail-fast: every
# test runs even after a failure, so one failure never hides the others. Six tests at a time
# even on two cores: the integration tests mostly wait (on the agent's cycles, on servers,
# on a dark link for two minutes), so they overlap well; the longest one sets the floor.
cargo test --locked --no-fail-fast --lib --bins --tests -- --test-threads=6
