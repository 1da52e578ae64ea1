//! The Nix side, evaluated for real with nix-instantiate and nixpkgs' lib against stubs that
//! declare the NixOS options the modules set as each supported release declares them
//! (nix/tests/stubs/, nix/tests/releases.nix). The generated config is fed to the agent's own
//! config loader, the unit is compared with config/jellyfin-pusher.service, and the ingress
//! start script is run against real vmauth (with TLS) and VictoriaMetrics.

use crate::common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::agent::{AgentDir, BIN};
use common::fake_jellyfin::FakeJellyfin;
use common::servers::VictoriaMetrics;
use common::{free_port, require_binary, wait_for};
use jellyfin_pusher::config::Config;
use serde_json::Value;

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

/// A `nix-instantiate` command, after the store was initialised once: on a fresh machine the
/// first calls create /nix/var/nix, and parallel first calls race ("creating symlink …
/// File exists").
fn nix_instantiate() -> Command {
    static STORE: std::sync::OnceLock<Result<(), String>> = std::sync::OnceLock::new();
    let binary = require_binary("nix-instantiate");
    let ready = STORE.get_or_init(|| {
        let out = Command::new(&binary)
            .args(["--eval", "-E", "1"])
            .output()
            .map_err(|e| e.to_string())?;
        match out.status.success() {
            true => Ok(()),
            false => Err(String::from_utf8_lossy(&out.stderr).to_string()),
        }
    });
    if let Err(message) = ready {
        panic!("nix-instantiate could not initialise the Nix store: {message}");
    }
    Command::new(binary)
}

/// nixpkgs' lib: $NIXPKGS_LIB, else the copy in ../shared next to the checkout.
fn nixpkgs_lib() -> PathBuf {
    let path = std::env::var("NIXPKGS_LIB")
        .map(PathBuf::from)
        .unwrap_or_else(|_| Path::new(ROOT).join("../shared/nixpkgs-lib/lib"));
    assert!(
        path.join("default.nix").is_file(),
        "nixpkgs lib not found at {} (set NIXPKGS_LIB)",
        path.display()
    );
    path
}

/// The NixOS releases the modules support (nix/tests/releases.nix): current stable first.
const SUPPORTED: [&str; 2] = ["26.05", "25.11"];

/// Evaluates the modules on the current stable release; Err is nix's message.
fn evaluate(configuration: &str) -> Result<Value, String> {
    evaluate_on("26.05", configuration)
}

/// Evaluates the modules with `configuration` (a NixOS module body) against the option
/// declarations of `release`.
fn evaluate_on(release: &str, configuration: &str) -> Result<Value, String> {
    evaluate_tree(Path::new(ROOT), release, configuration)
}

/// The same, with the nix/ folder of `root` (a mutated copy in the tests that prove a wrong
/// option fails).
fn evaluate_tree(root: &Path, release: &str, configuration: &str) -> Result<Value, String> {
    let dir = tempfile::tempdir().unwrap();
    let case = dir.path().join("case.nix");
    std::fs::write(&case, format!("{{ ... }}: {{ {configuration} }}")).unwrap();
    let out = nix_instantiate()
        .args(["--eval", "--strict", "--json"])
        .arg(root.join("nix/tests/eval.nix"))
        .args(["--arg", "lib"])
        .arg(format!("import {}", nixpkgs_lib().display()))
        .args(["--arg", "configuration"])
        .arg(&case)
        .args(["--argstr", "release", release])
        .output()
        .unwrap();
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr).to_string());
    }
    Ok(serde_json::from_slice(&out.stdout).expect("nix-instantiate --json"))
}

const DMZ: &str = r#"
  systemFoundry.monitoringStack.enable = true;
  services.jellyfin.enable = true;
  systemFoundry.monitoringStack.jellyfinPusher = {
    enable = true;
    tokenFile = "/run/secrets/jellyfin_api_token";
    egress.allowedAddresses = [ "192.0.2.10" ];
    remoteWrite = [
      { name = "tiger"; url = "https://tiger.example.invalid:8427/api/v1/write"; bearerTokenFile = "/run/secrets/dmz_write_token"; }
      { name = "backup"; kind = "prometheus"; url = "https://10.0.0.9:8428/api/v1/write"; basicAuthUser = "dmz"; basicAuthPasswordFile = "/run/secrets/backup_password"; }
      { name = "proxied"; url = "https://offsite.example.invalid/api/v1/write"; proxyUrl = "http://192.0.2.20:3128";
        proxyUser = "dmz"; proxyPasswordFile = "/run/secrets/proxy_password"; insecureHttp = true; }
      { name = "mtls"; url = "https://10.0.0.11:8443/api/v1/write"; caFile = "/etc/jellyfin-pusher/ca.pem";
        tlsCertFile = "/etc/jellyfin-pusher/client.pem"; tlsKeyFile = "/run/secrets/client_key"; tlsServerName = "mtls.example.invalid";
        concurrency = 8; newestFirst = false; }
    ];
    settings = {
      jellyfin = { url = "http://127.0.0.1:8096/jellyfin"; timeout = "1m 30s"; max_response_size = "48mib"; };
      labels = { job = "jellyfin"; instance = "jellyfin-dmz"; };
      collect.interval = "20s";
      buffer.max_size = "1GiB";
      collectors = {
        system.interval = "30s";
        sessions.geoip_database = "/var/lib/GeoIP/GeoLite2-Country.mmdb";
        process = { pid_file = "/run/jellyfin/jellyfin.pid"; name = "jellyfin"; };
        inventory.page_size = 200;
      };
    };
  };
"#;

#[test]
fn the_package_expression_parses_and_builds_from_the_lock_file() {
    let out = nix_instantiate()
        .arg("--parse")
        .arg(Path::new(ROOT).join("nix/package.nix"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = std::fs::read_to_string(Path::new(ROOT).join("nix/package.nix")).unwrap();
    for expected in [
        "rustPlatform.buildRustPackage",
        "cargoLock.lockFile = ../Cargo.lock;",
        "lib.fileset.toSource",
        "mainProgram = \"jellyfin-pusher\"",
    ] {
        assert!(text.contains(expected), "{expected} missing");
    }
    // Every file the build reads is in the source set.
    for needed in [
        "../Cargo.toml",
        "../Cargo.lock",
        "../build.rs",
        "../proto",
        "../src",
        "../benches",
    ] {
        assert!(
            text.contains(&format!("      {needed}\n")),
            "{needed} missing from the fileset"
        );
    }
}

#[test]
fn the_dmz_module_renders_a_config_the_agent_accepts_and_keeps_secrets_in_credentials() {
    for release in SUPPORTED {
        dmz_module_on(release);
    }
}

fn dmz_module_on(release: &str) {
    let result = evaluate_on(release, DMZ).unwrap_or_else(|e| panic!("{release}: {e}"));
    assert_eq!(
        result["failedAssertions"],
        Value::Array(vec![]),
        "{release}"
    );
    let service = &result["pusher"]["service"]["serviceConfig"];
    let config_file = result["pusher"]["configFile"].as_str().unwrap();
    assert_eq!(
        service["ExecStart"],
        format!(
            "/nix/store/00000000000000000000000000000000-jellyfin-pusher/bin/jellyfin-pusher --config {config_file}"
        )
    );
    assert_eq!(
        service["LoadCredential"],
        serde_json::json!([
            "jellyfin-token:/run/secrets/jellyfin_api_token",
            "remote-write-tiger-token:/run/secrets/dmz_write_token",
            "remote-write-backup-password:/run/secrets/backup_password",
            "remote-write-proxied-proxy-password:/run/secrets/proxy_password",
            "remote-write-mtls-cert:/etc/jellyfin-pusher/client.pem",
            "remote-write-mtls-key:/run/secrets/client_key"
        ])
    );
    // The rendered settings name credential paths only: no secret file and no secret.
    let settings = &result["pusher"]["settings"];
    let text = settings.to_string();
    assert!(!text.contains("/run/secrets"), "{text}");
    // The agent's own loader accepts it, with systemd's directories filling the defaults.
    let toml = toml::to_string(settings).unwrap();
    let env = |key: &str| match key {
        "STATE_DIRECTORY" => Some("/var/lib/jellyfin-pusher".to_string()),
        "CREDENTIALS_DIRECTORY" => Some("/run/credentials/jellyfin-pusher.service".to_string()),
        _ => None,
    };
    let config = Config::from_toml(&toml, Path::new("nix.toml"), &env)
        .unwrap_or_else(|e| panic!("{e}\n{toml}"));
    assert_eq!(
        config.jellyfin.url.as_str(),
        "http://127.0.0.1:8096/jellyfin/"
    );
    assert_eq!(
        config.jellyfin.token_file,
        Path::new("/run/credentials/jellyfin-pusher.service/jellyfin-token")
    );
    assert_eq!(config.state_dir, Path::new("/var/lib/jellyfin-pusher"));
    assert_eq!(config.collect.interval, Duration::from_secs(20));
    assert_eq!(config.jellyfin.timeout, Duration::from_secs(90));
    assert_eq!(config.jellyfin.max_response_size, 48 << 20);
    assert_eq!(
        config.collectors.system.interval,
        Some(Duration::from_secs(30))
    );
    assert_eq!(config.buffer.max_size.as_u64(), 1 << 30);
    // The real collector keys the module once refused, and the log folder of services.jellyfin.
    let c = &config.collectors;
    assert_eq!(
        c.sessions.geoip_database.as_deref(),
        Some(Path::new("/var/lib/GeoIP/GeoLite2-Country.mmdb"))
    );
    assert_eq!(
        c.process.pid_file.as_deref(),
        Some(Path::new("/run/jellyfin/jellyfin.pid"))
    );
    assert_eq!(c.inventory.page_size, 200);
    assert_eq!(
        c.transcode_log.dir.as_deref(),
        Some(Path::new("/var/lib/jellyfin/log"))
    );
    assert_eq!(
        config.labels,
        [
            ("instance".into(), "jellyfin-dmz".into()),
            ("job".into(), "jellyfin".into())
        ]
    );
    let tiger = &config.remote_write[0];
    assert_eq!(
        tiger.bearer_token_file.as_deref(),
        Some(Path::new(
            "/run/credentials/jellyfin-pusher.service/remote-write-tiger-token"
        ))
    );
    let backup = &config.remote_write[1];
    assert_eq!(backup.basic_auth_user.as_deref(), Some("dmz"));
    assert_eq!(
        backup.basic_auth_password_file.as_deref(),
        Some(Path::new(
            "/run/credentials/jellyfin-pusher.service/remote-write-backup-password"
        ))
    );
    // kind decides the delivery order's defaults; concurrency and newestFirst override them.
    use jellyfin_pusher::config::{DeliveryOrder, ReceiverKind};
    let order = |concurrency, newest_first| DeliveryOrder {
        concurrency,
        newest_first,
    };
    assert_eq!(tiger.kind, ReceiverKind::VictoriaMetrics);
    assert_eq!(tiger.delivery_order(), order(4, true));
    assert_eq!(backup.kind, ReceiverKind::Prometheus);
    assert_eq!(backup.delivery_order(), order(1, false));
    assert_eq!(config.remote_write[3].delivery_order(), order(8, false));
    let credential = |name: &str| format!("/run/credentials/jellyfin-pusher.service/{name}");
    let mtls = &config.remote_write[3];
    assert_eq!(
        mtls.tls_cert_file.as_deref(),
        Some(Path::new(&credential("remote-write-mtls-cert")))
    );
    assert_eq!(
        mtls.tls_key_file.as_deref(),
        Some(Path::new(&credential("remote-write-mtls-key")))
    );
    assert_eq!(
        mtls.tls_server_name.as_deref(),
        Some("mtls.example.invalid")
    );
    assert_eq!(
        mtls.ca_file.as_deref(),
        Some(Path::new("/etc/jellyfin-pusher/ca.pem"))
    );
    let proxied = &config.remote_write[2];
    assert_eq!(
        proxied.proxy_url.as_ref().map(|u| u.as_str()),
        Some("http://192.0.2.20:3128/")
    );
    assert_eq!(proxied.proxy_user.as_deref(), Some("dmz"));
    assert!(
        proxied.insecure_http,
        "the proxy password over http:// needs the opt-in"
    );
    assert_eq!(
        proxied.proxy_password_file.as_deref(),
        Some(Path::new(&credential(
            "remote-write-proxied-proxy-password"
        )))
    );
}

/// `[Service]` of the plain unit as key -> values (a key may repeat).
fn unit_service_section() -> BTreeMap<String, Vec<String>> {
    let unit =
        std::fs::read_to_string(Path::new(ROOT).join("config/jellyfin-pusher.service")).unwrap();
    let mut map: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut in_service = false;
    for line in unit.lines() {
        if line.starts_with('[') {
            in_service = line == "[Service]";
        } else if let Some((k, v)) = line
            .split_once('=')
            .filter(|_| in_service && !line.starts_with('#'))
        {
            map.entry(k.to_string()).or_default().push(v.to_string());
        }
    }
    map
}

/// A directive's value as systemd reads it: repeated lines and space-separated items both
/// become one list of words (NixOS writes a Nix list as repeated lines).
fn words(values: &[String]) -> Vec<String> {
    values
        .iter()
        .flat_map(|v| v.split_whitespace().map(str::to_string))
        .collect()
}

fn nix_words(value: &Value) -> Vec<String> {
    let items: Vec<String> = match value {
        Value::Bool(b) => vec![if *b { "yes" } else { "no" }.to_string()],
        Value::String(s) => vec![s.clone()],
        Value::Array(items) => items
            .iter()
            .map(|i| i.as_str().unwrap_or_default().to_string())
            .collect(),
        other => vec![other.to_string()],
    };
    words(&items)
}

#[test]
fn the_nixos_unit_carries_the_same_sandbox_as_the_plain_unit() {
    let result = evaluate(DMZ).unwrap();
    let nixos = result["pusher"]["service"]["serviceConfig"]
        .as_object()
        .unwrap();
    let plain = unit_service_section();
    // Store paths, secret paths and the egress addresses (derived from the module's URLs)
    // differ by design.
    let by_design = [
        "ExecStart",
        "LoadCredential",
        "IPAddressDeny",
        "IPAddressAllow",
    ];
    for (key, values) in &plain {
        if by_design.contains(&key.as_str()) {
            continue;
        }
        let rendered = nixos
            .get(key)
            .map(nix_words)
            .unwrap_or_else(|| panic!("{key} missing from the NixOS unit"));
        assert_eq!(rendered, words(values), "{key}");
    }
    for key in nixos.keys() {
        assert!(
            plain.contains_key(key) || by_design.contains(&key.as_str()),
            "{key} is in the NixOS unit only"
        );
    }
    // Egress pinned: localhost, the IP literals of the URLs and the listed addresses only.
    assert_eq!(nixos["IPAddressDeny"], "any");
    assert_eq!(
        nixos["IPAddressAllow"],
        // The proxied remote is reached through its proxy's address, not its own name.
        serde_json::json!([
            "localhost",
            "127.0.0.1",
            "10.0.0.9",
            "192.0.2.20",
            "10.0.0.11",
            "192.0.2.10"
        ])
    );
    let named = DMZ.replace("egress.allowedAddresses = [ \"192.0.2.10\" ];", "");
    let result = evaluate(&named).unwrap();
    assert_refused(
        &result,
        "https://tiger.example.invalid:8427/api/v1/write uses a host name",
    );
}

#[test]
fn secrets_in_the_store_and_contradictory_auth_are_refused() {
    let in_store = DMZ.replace("/run/secrets/jellyfin_api_token", "/nix/store/abc-token");
    let err = evaluate(&in_store).unwrap_err();
    assert!(err.contains("absolute path outside the Nix store"), "{err}");
    let both = DMZ.replace(
        "bearerTokenFile = \"/run/secrets/dmz_write_token\";",
        "bearerTokenFile = \"/run/secrets/dmz_write_token\"; basicAuthUser = \"x\"; basicAuthPasswordFile = \"/run/secrets/x\";",
    );
    let result = evaluate(&both).unwrap();
    assert_eq!(
        result["failedAssertions"][0],
        "jellyfinPusher.remoteWrite: use bearerTokenFile or basic auth, not both."
    );
    let twice = DMZ.replace("name = \"backup\"", "name = \"tiger\"");
    let result = evaluate(&twice).unwrap();
    assert_refused(&result, "the name tiger is used twice");
    let none = r#"systemFoundry.monitoringStack.enable = true; systemFoundry.monitoringStack.jellyfinPusher = { enable = true; tokenFile = "/run/secrets/t"; remoteWrite = [ ]; };"#;
    let result = evaluate(none).unwrap();
    assert_eq!(
        result["failedAssertions"][0],
        "systemFoundry.monitoringStack.jellyfinPusher.remoteWrite needs at least one target."
    );
}

/// Every key of config/jellyfin-pusher.example.toml (which documents every key the agent
/// knows) is a setting the module accepts and renders unchanged, so the typed settings
/// cannot fall behind the agent (the keys systemd and remoteWrite provide excepted).
#[test]
fn every_key_of_the_example_config_is_a_typed_setting() {
    let text = std::fs::read_to_string(Path::new(ROOT).join("config/jellyfin-pusher.example.toml"))
        .unwrap();
    let mut example: toml::Table = toml::from_str(&text).unwrap();
    example.remove("state_dir");
    example.remove("remote_write");
    example["jellyfin"]
        .as_table_mut()
        .unwrap()
        .remove("token_file");
    let json = serde_json::to_string(&example).unwrap();
    assert!(!json.contains("''") && !json.contains("${"), "{json}");
    let configuration = format!(
        r#"systemFoundry.monitoringStack.enable = true;
        systemFoundry.monitoringStack.jellyfinPusher = {{
          enable = true;
          tokenFile = "/run/secrets/t";
          egress.restrict = false;
          remoteWrite = [ {{ name = "tiger"; url = "https://192.0.2.10/api/v1/write"; }} ];
          settings = builtins.fromJSON ''{json}'';
        }};"#
    );
    let result = evaluate(&configuration).unwrap();
    assert_eq!(result["failedAssertions"], Value::Array(vec![]));
    let mut rendered = result["pusher"]["settings"].clone();
    rendered.as_object_mut().unwrap().remove("remote_write");
    assert_eq!(rendered, serde_json::to_value(&example).unwrap());
}

/// The failed assertion messages of an evaluation.
fn failed(result: &Value) -> Vec<String> {
    result["failedAssertions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m.as_str().unwrap().to_string())
        .collect()
}

/// The evaluation's failed assertions include one that says `message`.
fn assert_refused(result: &Value, message: &str) {
    assert!(
        failed(result).iter().any(|m| m.contains(message)),
        "no failed assertion says {message:?}: {}",
        result["failedAssertions"]
    );
}

/// A JSON list of strings, sorted (the module system's merge order is no contract).
fn sorted(list: &Value) -> Vec<String> {
    let mut items: Vec<String> = list
        .as_array()
        .unwrap_or_else(|| panic!("not a list: {list}"))
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect();
    items.sort();
    items
}

/// DMZ with `extra` added inside jellyfinPusher.settings.
fn dmz_with_settings(extra: &str) -> String {
    DMZ.replace(
        "collect.interval = \"20s\";",
        &format!("collect.interval = \"20s\"; {extra}"),
    )
}

#[test]
fn settings_the_agent_would_refuse_fail_at_evaluation_with_a_clear_message() {
    let cases = [
        // The plan's collector: the agent has none of that name.
        (
            "collectors.playback.enabled = true;",
            "settings.collectors: unknown collector playback (the agent refuses it)",
        ),
        (
            "jellyfin.token_file = \"/run/secrets/jellyfin_api_token\";",
            "jellyfin.token_file = \"/run/secrets/jellyfin_api_token\" names a secret file",
        ),
        (
            "state_dir = \"/srv/pusher\";",
            "settings.state_dir: leave it unset",
        ),
        ("colect.interval = \"5s\";", "unknown key colect"),
    ];
    let secret_geoip = DMZ.replace("/var/lib/GeoIP/GeoLite2-Country.mmdb", "/run/secrets/geoip");
    let cases = cases.map(|(setting, message)| (dmz_with_settings(setting), message));
    let geoip = (
        secret_geoip,
        "collectors.sessions.geoip_database = \"/run/secrets/geoip\" names a secret file",
    );
    for (setting, message) in cases.into_iter().chain([geoip]) {
        let result = evaluate(&setting).unwrap();
        let failed = failed(&result);
        assert!(
            failed.iter().any(|m| m.contains(message)),
            "{setting}: {failed:?}"
        );
    }
    // A known collector's unknown key or a wrong type fails as the agent would fail.
    let err = evaluate(&DMZ.replace("page_size = 200;", "page_size = 0;")).unwrap_err();
    assert!(err.contains("page_size"), "{err}");
    let err = evaluate(&DMZ.replace("pid_file =", "pidfile =")).unwrap_err();
    assert!(err.contains("pidfile' does not exist"), "{err}");
    // remote_write comes from remoteWrite: a target added by hand with a secret path is refused.
    let by_hand = dmz_with_settings(
        "remote_write = [ { name = \"x\"; url = \"https://x.invalid\"; bearer_token_file = \"/run/secrets/x\"; } ];",
    );
    let result = evaluate(&by_hand).unwrap();
    assert_refused(
        &result,
        // After the four of remoteWrite.
        "remote_write.[4].bearer_token_file = \"/run/secrets/x\" names a secret file",
    );
}

#[test]
fn the_monitoring_stack_gate_is_honoured_and_the_services_alias_needs_none() {
    let gated = DMZ.replace("systemFoundry.monitoringStack.enable = true;", "");
    let result = evaluate(&gated).unwrap();
    assert_eq!(result["pusher"]["service"], Value::Null, "the gate is off");
    assert!(
        result["warnings"][0]
            .as_str()
            .unwrap()
            .contains("systemFoundry.monitoringStack.enable is not"),
        "{}",
        result["warnings"]
    );
    let outside = gated.replace(
        "systemFoundry.monitoringStack.jellyfinPusher = {",
        "services.jellyfin-pusher = {",
    );
    let result = evaluate(&outside).unwrap();
    assert_eq!(result["failedAssertions"], Value::Array(vec![]));
    assert_eq!(
        result["pusher"]["service"]["serviceConfig"]["User"], "jellyfin-pusher",
        "the alias runs the same unit outside the stack"
    );
    // A tree that declares the gate itself disables ours (README).
    let own_gate = format!(
        "imports = [ ({{ lib, ... }}: {{ options.systemFoundry.monitoringStack.enable = lib.mkEnableOption \"own\"; }}) ]; \
         disabledModules = [ {ROOT}/nix/modules/monitoring-stack.nix ]; {DMZ}"
    );
    let result = evaluate(&own_gate).unwrap();
    assert_eq!(
        result["pusher"]["service"]["serviceConfig"]["Type"],
        "notify"
    );
    let tiger = TIGER.replace("systemFoundry.monitoringStack.enable = true;", "");
    let result = evaluate(&tiger).unwrap();
    assert_eq!(result["monitoring"]["ingress"], Value::Null);
    assert_eq!(result["monitoring"]["grafana"]["enable"], false);
}

#[test]
fn jellyfin_logs_are_read_through_an_acl_by_default_and_as_jellyfin_in_a_narrowed_view() {
    let result = evaluate(DMZ).unwrap();
    let unit = &result["pusher"]["service"]["serviceConfig"];
    assert_eq!(unit["User"], "jellyfin-pusher");
    assert_eq!(unit["DynamicUser"], true);
    assert_eq!(
        result["users"]["users"]["jellyfin-pusher"]["isSystemUser"],
        true
    );
    let tmpfiles = result["tmpfiles"].as_object().unwrap();
    let acl = &tmpfiles["jellyfinPusherAccess"];
    assert_eq!(
        acl["/var/lib/jellyfin/log"]["a+"]["argument"],
        "u:jellyfin-pusher:r-x,m::r-x,d:u::rwx,d:u:jellyfin-pusher:r--,d:g::---,d:m::r--,d:o::---"
    );
    assert_eq!(
        acl["/var/lib/jellyfin"]["a+"]["argument"], "u:jellyfin-pusher:--x,m::--x",
        "traverse only: the database and config stay closed"
    );
    // Jellyfin's own `d 700` lines (which reset the mask) are applied first: the file name
    // of our settings sorts after theirs.
    assert!(tmpfiles.contains_key("jellyfinDirs"));
    assert!("jellyfinPusherAccess.conf" > "jellyfinDirs.conf");

    // A log folder of its own is followed (no traversal ACL outside the data folder).
    let moved = DMZ.replace(
        "services.jellyfin.enable = true;",
        "services.jellyfin = { enable = true; logDir = \"/var/log/jellyfin\"; };",
    );
    let result = evaluate(&moved).unwrap();
    assert_eq!(
        result["pusher"]["settings"]["collectors"]["transcode_log"]["dir"],
        "/var/log/jellyfin"
    );
    let acl = &result["tmpfiles"]["jellyfinPusherAccess"];
    assert!(acl.get("/var/lib/jellyfin").is_none(), "{acl}");

    // runAs = "jellyfin": Jellyfin's uid (open files and IO readable), its data hidden.
    let as_jellyfin = DMZ.replace(
        "enable = true;\n    tokenFile",
        "enable = true; runAs = \"jellyfin\";\n    tokenFile",
    );
    let result = evaluate(&as_jellyfin).unwrap();
    assert_eq!(result["failedAssertions"], Value::Array(vec![]));
    let unit = &result["pusher"]["service"]["serviceConfig"];
    assert_eq!(unit["User"], "jellyfin");
    assert_eq!(
        unit["TemporaryFileSystem"],
        serde_json::json!(["/var/lib/jellyfin:ro"])
    );
    assert_eq!(
        unit["BindReadOnlyPaths"],
        serde_json::json!(["/var/lib/jellyfin/log"])
    );
    assert_eq!(
        unit["InaccessiblePaths"],
        serde_json::json!(["-/var/cache/jellyfin"])
    );
    assert!(result["tmpfiles"].get("jellyfinPusherAccess").is_none());
    let no_jellyfin = as_jellyfin.replace("services.jellyfin.enable = true;", "");
    let result = evaluate(&no_jellyfin).unwrap();
    assert_refused(&result, "needs services.jellyfin");
}

/// tmpfiles.d lines of one `systemd.tmpfiles.settings.<name>`, written as nixpkgs'
/// tmpfiles.nix writes them (settingsEntryToRule).
fn tmpfiles_conf(setting: &Value) -> String {
    let mut text = String::new();
    for (path, types) in setting.as_object().unwrap() {
        for entry in types.as_object().unwrap().values() {
            let field = |k: &str| entry[k].as_str().unwrap().to_string();
            text += &format!(
                "'{}' '{path}' '{}' '{}' '{}' '{}' {}\n",
                field("type"),
                field("mode"),
                field("user"),
                field("group"),
                field("age"),
                field("argument")
            );
        }
    }
    text
}

/// Runs `program` as `uid` (no supplementary groups) with umask 077, as Jellyfin runs.
fn run_as(uid: u32, script: &str) -> std::process::Output {
    use std::os::unix::process::CommandExt;
    Command::new("sh")
        .args(["-c", &format!("umask 077; {script}")])
        .uid(uid)
        .gid(uid)
        .output()
        .unwrap()
}

/// The ACL lines the module generates, applied by the real systemd-tmpfiles together with
/// the Jellyfin module's own `d … 700` lines, three times (boot, then two switches): the
/// agent's user reads the log files Jellyfin writes with UMask=0077 and nothing else of
/// Jellyfin's. The user is `nobody` here (the ACL names a user the host knows).
#[test]
fn the_acl_lets_the_agent_read_jellyfins_logs_and_nothing_else_under_real_tmpfiles() {
    let tmpfiles = require_binary("systemd-tmpfiles");
    assert_eq!(
        unsafe { libc::geteuid() },
        0,
        "needs root, as tests/run.sh does"
    );
    let result = evaluate(DMZ).unwrap();
    let root = tempfile::tempdir().unwrap();
    let r = root.path();
    std::fs::set_permissions(r, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    std::fs::create_dir_all(r.join("etc/tmpfiles.d")).unwrap();
    std::fs::create_dir_all(r.join("var/lib")).unwrap();
    let (jellyfin, agent) = (64990u32, 65534u32);
    std::fs::write(
        r.join("etc/passwd"),
        format!(
            "root:x:0:0::/root:/bin/sh\njellyfin:x:{jellyfin}:{jellyfin}::/var/empty:/bin/false\n"
        ),
    )
    .unwrap();
    std::fs::write(
        r.join("etc/group"),
        format!("root:x:0:\njellyfin:x:{jellyfin}:\n"),
    )
    .unwrap();
    for (name, setting) in result["tmpfiles"].as_object().unwrap() {
        let conf = tmpfiles_conf(setting).replace("jellyfin-pusher", "nobody");
        std::fs::write(r.join(format!("etc/tmpfiles.d/{name}.conf")), conf).unwrap();
    }
    let apply = || {
        let out = Command::new(&tmpfiles)
            .arg("--create")
            .arg(format!("--root={}", r.display()))
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            out.status.success() && stderr.is_empty(),
            "systemd-tmpfiles: {stderr}"
        );
    };
    apply();
    let data = r.join("var/lib/jellyfin");
    let log = data.join("log/log_20261125.log");
    let jellyfin_writes = run_as(
        jellyfin,
        &format!(
            "echo 'FFmpeg exited with code 1' > {log}; mkdir {data}/data && echo key > {data}/data/jellyfin.db && echo conf > {data}/config/system.xml",
            log = log.display(),
            data = data.display()
        ),
    );
    assert!(jellyfin_writes.status.success(), "{jellyfin_writes:?}");
    for pass in 0..3 {
        if pass > 0 {
            apply(); // Jellyfin's `d 700` chmods the folders again; the masks must survive it
        }
        let reads = run_as(
            agent,
            &format!("cat {} && ls {}/log", log.display(), data.display()),
        );
        assert!(
            reads.status.success(),
            "pass {pass}: {}",
            String::from_utf8_lossy(&reads.stderr)
        );
        assert_eq!(
            String::from_utf8_lossy(&reads.stdout),
            "FFmpeg exited with code 1\nlog_20261125.log\n"
        );
        for denied in [
            format!("ls {}", data.display()),
            format!("cat {}/data/jellyfin.db", data.display()),
            format!("cat {}/config/system.xml", data.display()),
            format!("ls {}/config", data.display()),
            format!("echo x > {}/log/forged.log", data.display()),
        ] {
            assert!(
                !run_as(agent, &denied).status.success(),
                "pass {pass}: {denied} was allowed"
            );
        }
    }
}

/// Why runAs = "jellyfin" exists: the kernel shows a process's open files and IO only to
/// its own user (or CAP_SYS_PTRACE, which the unit never gets). The real agent runs --once
/// against a stand-in "Jellyfin" owned by one uid: as that uid it reports process_open_fds
/// and the IO counters, as any other uid (runAs = "jellyfin-pusher") only the rest.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn open_files_and_io_are_reported_only_as_jellyfins_own_user() {
    use std::os::unix::process::CommandExt;
    assert_eq!(
        unsafe { libc::geteuid() },
        0,
        "needs root, as tests/run.sh does"
    );
    let jellyfin = FakeJellyfin::start("").await;
    let owner = 64990u32;
    let mut stand_in = Command::new("sleep")
        .arg("60")
        .uid(owner)
        .gid(owner)
        .spawn()
        .unwrap();
    let mut figures = Vec::new();
    for agent in [owner, 65534] {
        let dir = AgentDir::new(&jellyfin.url(), &[], "15s", "");
        let pid_file = dir.dir.path().join("jellyfin.pid");
        std::fs::write(&pid_file, format!("{}\n", stand_in.id())).unwrap();
        let config = std::fs::read_to_string(dir.config()).unwrap()
            + &format!(
                "[collectors.process]\npid_file = \"{}\"\n",
                pid_file.display()
            );
        std::fs::write(dir.config(), config).unwrap();
        let chown = Command::new("chown")
            .args(["-R", &format!("{agent}:{agent}")])
            .arg(dir.dir.path())
            .status()
            .unwrap();
        assert!(chown.success());
        let out = tokio::task::block_in_place(|| {
            Command::new(BIN)
                .arg("--config")
                .arg(dir.config())
                .arg("--once")
                .env_remove("RUST_LOG")
                .uid(agent)
                .gid(agent)
                .output()
                .unwrap()
        });
        let stdout = String::from_utf8_lossy(&out.stdout).to_string();
        assert!(
            stdout.contains("process_cpu_seconds_total{"),
            "uid {agent} sees the process: {stdout}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        figures.push((
            stdout.contains("process_open_fds{"),
            stdout.contains("process_io_read_bytes_total{"),
        ));
    }
    let _ = stand_in.kill();
    let _ = stand_in.wait();
    assert_eq!(figures, [(true, true), (false, false)]);
}

#[test]
fn vmalert_is_used_as_each_release_declares_it() {
    for release in SUPPORTED {
        let result = evaluate_on(release, TIGER).unwrap_or_else(|e| panic!("{release}: {e}"));
        assert_eq!(
            result["failedAssertions"],
            Value::Array(vec![]),
            "{release}"
        );
        let own = &result["monitoring"]["vmalert"]["jellyfin"]["settings"];
        assert_eq!(
            own["httpListenAddr"], "127.0.0.1:8881",
            "{release}: not :8880"
        );
        assert_eq!(
            sorted(&own["rule"]),
            [
                "/etc/vmalert-jellyfin/rules.yml",
                "/srv/jellyfin/alerts/*.yml"
            ]
        );
        // Joining the host's existing instance adds the rule files and nothing else.
        let existing = TIGER.replace(
            "vmalert.notifierUrl = \"http://127.0.0.1:9093\";",
            "vmalert.instance = \"main\";",
        ) + r#"services.vmalert.instances.main = { enable = true; settings."datasource.url" = "http://127.0.0.1:8428"; };"#;
        let result = evaluate_on(release, &existing).unwrap_or_else(|e| panic!("{release}: {e}"));
        assert_eq!(
            result["failedAssertions"],
            Value::Array(vec![]),
            "{release}"
        );
        let vmalert = result["monitoring"]["vmalert"].as_object().unwrap();
        assert_eq!(vmalert.keys().collect::<Vec<_>>(), ["main"], "{release}");
        let missing = existing.replace("instances.main = { enable = true;", "instances.main = {");
        assert_refused(
            &evaluate_on(release, &missing).unwrap(),
            "vmalert.instance = \"main\": the host has no such enabled vmalert",
        );
        assert_eq!(
            sorted(&vmalert["main"]["settings"]["rule"]),
            ["/etc/vmalert-main/rules.yml", "/srv/jellyfin/alerts/*.yml"]
        );
    }
    // 25.05 has no instances: an own vmalert is refused by name, the host's one still works.
    let result = evaluate_on("25.05", TIGER).unwrap();
    assert_refused(
        &result,
        "has no services.vmalert.instances (NixOS 25.11 or later",
    );
    let old = TIGER.replace(
        "vmalert.notifierUrl = \"http://127.0.0.1:9093\";",
        "vmalert.instance = \"\";",
    ) + r#"services.vmalert = { enable = true; settings."datasource.url" = "http://127.0.0.1:8428"; };"#;
    let result = evaluate_on("25.05", &old).unwrap();
    assert_eq!(result["failedAssertions"], Value::Array(vec![]));
    assert_eq!(
        result["monitoring"]["vmalert"]["rule"],
        serde_json::json!(["/srv/jellyfin/alerts/*.yml"])
    );
}

/// A copy of nix/ with one edit in `file`, evaluated like the real one.
fn evaluate_mutated(
    file: &str,
    from: &str,
    to: &str,
    configuration: &str,
) -> Result<Value, String> {
    let copy = tempfile::tempdir().unwrap();
    let status = Command::new("cp")
        .arg("-r")
        .arg(Path::new(ROOT).join("nix"))
        .arg(copy.path())
        .status()
        .unwrap();
    assert!(status.success());
    let path = copy.path().join("nix").join(file);
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(text.contains(from), "{from} not in {file}");
    std::fs::write(&path, text.replacen(from, to, 1)).unwrap();
    evaluate_tree(copy.path(), "26.05", configuration)
}

#[test]
fn a_wrong_option_name_type_or_release_fails_the_evaluation() {
    assert!(evaluate(TIGER).is_ok() && evaluate(DMZ).is_ok());
    // (file, text, its wrong twin, configuration, what nix must say)
    let mutations = [
        (
            "modules/monitoring-host.nix",
            "dashboards.settings.providers",
            "dashboard.settings.providers",
            TIGER,
            "services.grafana.provision.dashboard' does not exist",
        ),
        (
            "modules/jellyfin-pusher.nix",
            "tmpfiles.settings",
            "tmpfiles.setting",
            DMZ,
            "systemd.tmpfiles.setting' does not exist",
        ),
        (
            "modules/jellyfin-pusher/access.nix",
            "isSystemUser = true;",
            "systemUser = true;",
            DMZ,
            "systemUser' does not exist",
        ),
        (
            "modules/monitoring-host.nix",
            "\"notifier.url\" = [ cfg.vmalert.notifierUrl ];",
            "\"notifier.url\" = cfg.vmalert.notifierUrl;",
            TIGER,
            "is not of type `list of",
        ),
        (
            "modules/jellyfin-pusher.nix",
            "Type = \"notify\";",
            "Type = \"notifiy\";",
            DMZ,
            "Systemd Service field `Type' cannot have value `notifiy'.",
        ),
    ];
    for (file, from, to, configuration, message) in mutations {
        let err = evaluate_mutated(file, from, to, configuration).unwrap_err();
        assert!(err.contains(message), "{file}: {to}: {err}");
    }
}

/// Evaluates nix/package.nix's pname with a rustc of `version` (the build itself needs
/// lib.fileset, which Nix 2.8 cannot evaluate).
fn package_with_rustc(version: &str) -> Result<String, String> {
    let expr = format!(
        "(import {root}/nix/package.nix {{ lib = import {lib}; rustc = {{ version = \"{version}\"; }}; rustPlatform.buildRustPackage = a: a; }}).pname",
        root = ROOT,
        lib = nixpkgs_lib().display()
    );
    let out = nix_instantiate()
        .args(["--eval", "--expr", &expr])
        .output()
        .unwrap();
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).to_string())
    }
}

#[test]
fn the_package_states_its_rust_and_stops_early_on_an_older_one() {
    // nix/tests/releases.nix: the rustc each release ships.
    for (release, rustc, builds) in [
        ("25.05", "1.86.0", false),
        ("25.11", "1.91.1", true),
        ("26.05", "1.95.0", true),
    ] {
        let out = nix_instantiate()
            .args(["--eval", "--expr"])
            .arg(format!(
                "(import {ROOT}/nix/tests/releases.nix).\"{release}\".rustc"
            ))
            .output()
            .unwrap();
        assert_eq!(
            String::from_utf8_lossy(&out.stdout).trim(),
            format!("\"{rustc}\"")
        );
        match package_with_rustc(rustc) {
            Ok(name) => assert!(builds, "{release}: {name}"),
            Err(e) => {
                assert!(!builds, "{release}: {e}");
                assert!(
                    e.contains("jellyfin-pusher needs rustc 1.89 or later (edition 2024); this nixpkgs has rustc 1.86.0"),
                    "{e}"
                );
            }
        }
    }
    assert_eq!(package_with_rustc("1.89.0").unwrap(), "\"jellyfin-pusher\"");
}

#[test]
fn the_ingress_unit_is_sandboxed_like_the_agent_and_refuses_to_serve_without_tls_keys() {
    let result = evaluate(TIGER).unwrap();
    let ingress = result["monitoring"]["ingress"]["serviceConfig"]
        .as_object()
        .unwrap();
    let agent = unit_service_section();
    // Every sandbox directive of the agent's unit, with the same value...
    for key in [
        "UMask",
        "CapabilityBoundingSet",
        "AmbientCapabilities",
        "NoNewPrivileges",
        "PrivateUsers",
        "PrivateTmp",
        "PrivateMounts",
        "PrivateDevices",
        "DevicePolicy",
        "ProtectSystem",
        "ProtectHome",
        "ProtectClock",
        "ProtectHostname",
        "ProtectKernelLogs",
        "ProtectKernelModules",
        "ProtectKernelTunables",
        "ProtectControlGroups",
        "RestrictNamespaces",
        "RestrictRealtime",
        "RestrictSUIDSGID",
        "RemoveIPC",
        "LockPersonality",
        "MemoryDenyWriteExecute",
        "SystemCallArchitectures",
        "SystemCallFilter",
        "SystemCallErrorNumber",
        "KeyringMode",
        "DynamicUser",
        "MemoryMax",
        "TasksMax",
    ] {
        let value = ingress.get(key).unwrap_or_else(|| panic!("{key} missing"));
        assert_eq!(nix_words(value), words(&agent[key]), "{key}");
    }
    // ... and stricter where vmauth needs no other process and no AF_UNIX.
    assert_eq!(ingress["ProtectProc"], "invisible");
    assert_eq!(ingress["ProcSubset"], "pid");
    assert_eq!(
        ingress["RestrictAddressFamilies"],
        serde_json::json!(["AF_INET", "AF_INET6"])
    );
    let pinned = TIGER.replace(
        "listenAddress = \"LISTEN\";",
        "allowedClients = [ \"192.0.2.20/32\" ];",
    );
    let result = evaluate(&pinned).unwrap();
    let unit = &result["monitoring"]["ingress"]["serviceConfig"];
    assert_eq!(unit["IPAddressDeny"], "any");
    assert_eq!(
        unit["IPAddressAllow"],
        serde_json::json!(["localhost", "192.0.2.20/32", "127.0.0.1"])
    );
    let named_vm = pinned.replace("http://127.0.0.1:8428", "http://vm.example.invalid:8428");
    assert_refused(
        &evaluate(&named_vm).unwrap(),
        "victoriametricsUrl names the host vm.example.invalid",
    );
    let no_keys = TIGER.replace(" tls = { certificateFile = \"/var/lib/acme/tiger/cert.pem\"; keyFile = \"/var/lib/acme/tiger/key.pem\"; };", "");
    let result = evaluate(&no_keys).unwrap();
    assert_refused(&result, "ingress.tls: set certificateFile and keyFile");
}

/// A unit file from a NixOS serviceConfig, written as NixOS writes one (a list becomes
/// repeated lines, booleans yes/no).
fn unit_file(description: &str, service: &serde_json::Map<String, Value>) -> String {
    let mut text = format!("[Unit]\nDescription={description}\n\n[Service]\n");
    for (key, value) in service {
        let values = match value {
            Value::Array(items) => items.clone(),
            other => vec![other.clone()],
        };
        for v in values {
            let v = match v {
                Value::Bool(b) => if b { "yes" } else { "no" }.to_string(),
                Value::String(s) => s,
                other => other.to_string(),
            };
            text += &format!("{key}={v}\n");
        }
    }
    text
}

/// The exposure of `unit` written to a file called `name`.
fn exposure(name: &str, unit: &str) -> f64 {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(name);
    std::fs::write(&path, unit).unwrap();
    crate::systemd::exposure(&path)
}

/// The agent refuses credentials over http:// to another host unless the remote opts in:
/// the module passes the opt-in through, and leaves it out by default.
#[test]
fn insecure_http_reaches_the_agent_only_when_a_remote_asks_for_it() {
    let opted_in = DMZ.replace(
        "basicAuthPasswordFile = \"/run/secrets/backup_password\"; }",
        "basicAuthPasswordFile = \"/run/secrets/backup_password\"; insecureHttp = true; }",
    );
    assert_ne!(opted_in, DMZ);
    let remotes = |result: &Value| result["pusher"]["settings"]["remote_write"].clone();
    let result = evaluate(&opted_in).unwrap();
    assert_eq!(remotes(&result)[1]["insecure_http"], Value::Bool(true));
    assert_eq!(remotes(&result)[0].get("insecure_http"), None);
    let result = evaluate(DMZ).unwrap();
    assert_eq!(remotes(&result)[1].get("insecure_http"), None);

    // What the agent would refuse at start is refused at evaluation.
    let clear = DMZ.replace("https://10.0.0.9:8428", "http://10.0.0.9:8428");
    assert_refused(
        &evaluate(&clear).unwrap(),
        "remoteWrite \"backup\": http:// to 10.0.0.9 would send its credentials in clear text",
    );
    let result = evaluate(&clear.replace(
        "basicAuthPasswordFile = \"/run/secrets/backup_password\"; }",
        "basicAuthPasswordFile = \"/run/secrets/backup_password\"; insecureHttp = true; }",
    ))
    .unwrap();
    assert_eq!(result["failedAssertions"], Value::Array(vec![]));
    let toml = toml::to_string(&result["pusher"]["settings"]).unwrap();
    let env = |key: &str| match key {
        "STATE_DIRECTORY" => Some("/var/lib/jellyfin-pusher".to_string()),
        "CREDENTIALS_DIRECTORY" => Some("/run/credentials/jellyfin-pusher.service".to_string()),
        _ => None,
    };
    Config::from_toml(&toml, Path::new("nix.toml"), &env).unwrap_or_else(|e| panic!("{e}\n{toml}"));
    let remote_jellyfin = DMZ.replace("http://127.0.0.1:8096/jellyfin", "http://192.0.2.5:8096");
    assert_refused(
        &evaluate(&remote_jellyfin).unwrap(),
        "settings.jellyfin.url: http:// to 192.0.2.5 would send the API key in clear text",
    );
    let opted = remote_jellyfin.replace(
        "timeout = \"1m 30s\";",
        "timeout = \"1m 30s\"; insecure_http = true;",
    );
    assert_eq!(
        evaluate(&opted).unwrap()["failedAssertions"],
        Value::Array(vec![])
    );
    let local = DMZ.replace("http://127.0.0.1:8096/jellyfin", "http://localhost:8096");
    assert_eq!(
        evaluate(&local).unwrap()["failedAssertions"],
        Value::Array(vec![])
    );
}

#[test]
fn both_nixos_units_score_like_the_plain_unit_in_systemd_analyze_security() {
    let dmz = evaluate(DMZ).unwrap();
    let tiger = evaluate(TIGER).unwrap();
    let agent = exposure(
        "jellyfin-pusher.service",
        &unit_file(
            "agent",
            dmz["pusher"]["service"]["serviceConfig"]
                .as_object()
                .unwrap(),
        ),
    );
    let ingress = exposure(
        "jellyfin-ingress.service",
        &unit_file(
            "ingress",
            tiger["monitoring"]["ingress"]["serviceConfig"]
                .as_object()
                .unwrap(),
        ),
    );
    // Like for like: the plain unit with the addresses added that its comment asks for, the
    // ones the module derived for this host (loopback alone scores better than any real list).
    let allowed = nix_words(&dmz["pusher"]["service"]["serviceConfig"]["IPAddressAllow"]);
    let plain_text =
        std::fs::read_to_string(Path::new(ROOT).join("config/jellyfin-pusher.service")).unwrap();
    assert!(plain_text.contains("\nIPAddressAllow=localhost\n"));
    let plain = exposure(
        "jellyfin-pusher.service",
        &plain_text.replace(
            "\nIPAddressAllow=localhost\n",
            &format!("\nIPAddressAllow={}\n", allowed.join(" ")),
        ),
    );
    eprintln!(
        "systemd-analyze security --offline=yes: plain unit {plain}, NixOS agent {agent}, NixOS ingress {ingress}"
    );
    assert!(agent <= plain, "NixOS agent {agent} > plain unit {plain}");
    assert!(
        ingress <= plain,
        "ingress {ingress} > the agent's plain unit {plain}"
    );
}

#[test]
fn the_two_node_vm_test_is_written_and_skipped_here() {
    let vm = Path::new(ROOT).join("nix/tests/vm.nix");
    let out = nix_instantiate().arg("--parse").arg(&vm).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = std::fs::read_to_string(&vm).unwrap();
    for node in ["dmz = ", "tiger = ", "testScript"] {
        assert!(text.contains(node), "{node} missing from vm.nix");
    }
    eprintln!(
        "SKIPPED: nix/tests/vm.nix (a two-node nixosTest: DMZ and monitoring host) needs a nixpkgs \
         checkout, Nix 2.18+ and KVM; run it with \
         `nix-build nix/tests/vm.nix --arg pkgs 'import <nixpkgs> {{ }}'` (README, NixOS)."
    );
}

const TIGER: &str = r#"
  systemFoundry.monitoringStack.enable = true;
  systemFoundry.monitoringStack.jellyfinMonitoring = {
    enable = true;
    dashboards = "/srv/jellyfin/dashboards";
    alertRules = "/srv/jellyfin/alerts";
    vmalert.notifierUrl = "http://127.0.0.1:9093";
    ingress = { enable = true; tokenFile = "/run/secrets/dmz_write_token"; listenAddress = "LISTEN"; victoriametricsUrl = "http://127.0.0.1:8428"; tls = { certificateFile = "/var/lib/acme/tiger/cert.pem"; keyFile = "/var/lib/acme/tiger/key.pem"; }; };
  };
"#;

#[test]
fn the_monitoring_host_module_provisions_dashboards_and_rules() {
    let result = evaluate(TIGER).unwrap();
    let grafana = &result["monitoring"]["grafana"];
    assert_eq!(grafana["enable"], true);
    assert_eq!(
        grafana["dashboards"]["settings"]["providers"][0]["options"]["path"],
        "/srv/jellyfin/dashboards"
    );
    let vmalert = &result["monitoring"]["vmalert"]["jellyfin"];
    assert_eq!(vmalert["enable"], true);
    assert_eq!(
        sorted(&vmalert["settings"]["rule"]),
        [
            "/etc/vmalert-jellyfin/rules.yml",
            "/srv/jellyfin/alerts/*.yml"
        ]
    );
    let ingress = &result["monitoring"]["ingress"]["serviceConfig"];
    assert_eq!(
        ingress["LoadCredential"],
        serde_json::json!([
            "ingress-token:/run/secrets/dmz_write_token",
            "tls-cert:/var/lib/acme/tiger/cert.pem",
            "tls-key:/var/lib/acme/tiger/key.pem"
        ])
    );
    assert!(
        !result.to_string().contains("REPLACE"),
        "no placeholder token anywhere"
    );
}

/// A self-signed certificate for 127.0.0.1 (cert.pem, key.pem in `dir`), made with openssl.
fn self_signed_certificate(dir: &Path) -> (PathBuf, PathBuf) {
    let config = dir.join("openssl.cnf");
    std::fs::write(
        &config,
        "[req]\ndistinguished_name = dn\nx509_extensions = leaf\nprompt = no\n[dn]\nCN = 127.0.0.1\n\
         [leaf]\nsubjectAltName = IP:127.0.0.1\nbasicConstraints = critical,CA:FALSE\n\
         keyUsage = critical,digitalSignature\nextendedKeyUsage = serverAuth\n",
    )
    .unwrap();
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    let out = Command::new(require_binary("openssl"))
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
        ])
        .args(["-nodes", "-days", "1", "-config"])
        .arg(&config)
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    (cert, key)
}

/// The ingress service's start script, run as systemd would run it (credentials and runtime
/// folders), with the stub store paths pointed at the real vmauth: it serves TLS; the token
/// from the credential (holding `"` and `\`, which a naive template would break on) works for
/// writes and only for writes; every write lands under the pinned job whatever extra_label
/// the client sends; and the token is in no process's argv.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_ingress_start_script_serves_a_write_only_vmauth_from_the_credential() {
    let vm = VictoriaMetrics::start().await;
    let port = free_port();
    let tiger = TIGER
        .replace("LISTEN", &format!("127.0.0.1:{port}"))
        .replace("http://127.0.0.1:8428", &vm.base_url());
    let result = evaluate(&tiger).unwrap();
    let files = &result["monitoring"]["ingressFiles"];
    let dir = tempfile::tempdir().unwrap();
    let template = dir.path().join("auth-template.yml");
    std::fs::write(&template, files["template"]["text"].as_str().unwrap()).unwrap();
    let vmauth_dir = require_binary("vmauth").parent().unwrap().to_path_buf();
    let script = files["script"]["text"]
        .as_str()
        .unwrap()
        .replace(
            files["template"]["path"].as_str().unwrap(),
            template.to_str().unwrap(),
        )
        .replace(
            "/nix/store/00000000000000000000000000000000-victoriametrics/bin",
            vmauth_dir.to_str().unwrap(),
        );
    let script_path = dir.path().join("start.sh");
    std::fs::write(&script_path, script).unwrap();
    for sub in ["credentials", "runtime"] {
        std::fs::create_dir(dir.path().join(sub)).unwrap();
    }
    let (cert, key) = self_signed_certificate(dir.path());
    std::fs::copy(&cert, dir.path().join("credentials/tls-cert")).unwrap();
    std::fs::copy(&key, dir.path().join("credentials/tls-key")).unwrap();
    let token = r#"token-"from"-the\credential"#;
    std::fs::write(dir.path().join("credentials/ingress-token"), token).unwrap(); // no final newline
    let mut child = Command::new("bash")
        .arg(&script_path)
        .env("CREDENTIALS_DIRECTORY", dir.path().join("credentials"))
        .env("RUNTIME_DIRECTORY", dir.path().join("runtime"))
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let client = reqwest::Client::builder()
        .add_root_certificate(
            reqwest::Certificate::from_pem(&std::fs::read(&cert).unwrap()).unwrap(),
        )
        .build()
        .unwrap();
    let base = format!("https://127.0.0.1:{port}");
    wait_for("the ingress", Duration::from_secs(20), || {
        let request = client.get(format!("{base}/health"));
        async move { request.send().await.ok().map(|_| ()) }
    })
    .await;
    let plain = reqwest::get(format!("http://127.0.0.1:{port}/health")).await;
    assert!(
        plain.map_or(true, |r| !r.status().is_success()),
        "plain HTTP is not served"
    );
    let cmdline = std::fs::read(format!("/proc/{}/cmdline", child.id())).unwrap();
    assert!(
        !String::from_utf8_lossy(&cmdline).contains("from"),
        "the token is not in argv"
    );

    let now = common::now_ms();
    for (i, query) in ["", "?extra_label=job=forged"].iter().enumerate() {
        let write = client
            .post(format!("{base}/api/v1/write{query}"))
            .bearer_auth(token)
            .header("Content-Encoding", "snappy")
            .body(
                jellyfin_pusher::remote_write::encode(
                    &jellyfin_pusher::sample::Batch {
                        timestamp_ms: now + i as i64 * 1000,
                        families: vec![
                            jellyfin_pusher::sample::Family::gauge("jellyfin_up", "")
                                .with(vec![], 1.0),
                        ],
                    },
                    &[],
                )
                .data,
            )
            .send()
            .await
            .unwrap();
        assert_eq!(write.status(), 204, "write{query}");
    }
    for path in [
        "/api/v1/export?match[]=jellyfin_up",
        "/api/v1/query?query=jellyfin_up",
        "/metrics",
        "/flags",
    ] {
        let response = client
            .get(format!("{base}{path}"))
            .bearer_auth(token)
            .send()
            .await
            .unwrap();
        assert!(
            !response.status().is_success(),
            "{path}: {}",
            response.status()
        );
    }
    let _ = child.kill();
    let _ = child.wait();
    vm.settle().await;
    assert_eq!(
        common::up_timestamps(&vm).await.len(),
        2,
        "both writes went through"
    );
    let series = vm.export("jellyfin_up").await;
    assert!(!series.is_empty());
    for s in &series {
        assert_eq!(
            s.label("job"),
            Some("jellyfin"),
            "the job is pinned by vmauth"
        );
    }
}
