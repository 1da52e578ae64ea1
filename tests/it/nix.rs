//! The Nix side, evaluated for real with nix-instantiate and nixpkgs' lib (nix/tests/eval.nix
//! declares the few NixOS options the modules touch). The generated config is fed to the
//! agent's own config loader, the unit is compared with config/jellyfin-pusher.service, and
//! the ingress start script is run against real vmauth and VictoriaMetrics.

use crate::common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

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

/// Evaluates the modules with `configuration` (a NixOS module body); Err is nix's message.
fn evaluate(configuration: &str) -> Result<Value, String> {
    let dir = tempfile::tempdir().unwrap();
    let case = dir.path().join("case.nix");
    std::fs::write(&case, format!("{{ ... }}: {{ {configuration} }}")).unwrap();
    let out = nix_instantiate()
        .args(["--eval", "--strict", "--json"])
        .arg(Path::new(ROOT).join("nix/tests/eval.nix"))
        .args(["--arg", "lib"])
        .arg(format!("import {}", nixpkgs_lib().display()))
        .args(["--arg", "configuration"])
        .arg(&case)
        .output()
        .unwrap();
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr).to_string());
    }
    Ok(serde_json::from_slice(&out.stdout).expect("nix-instantiate --json"))
}

const DMZ: &str = r#"
  systemFoundry.monitoringStack.jellyfinPusher = {
    enable = true;
    jellyfinUrl = "http://127.0.0.1:8096/jellyfin";
    tokenFile = "/run/secrets/jellyfin_api_token";
    labels = { job = "jellyfin"; instance = "jellyfin-dmz"; };
    collectors.system.interval = "30s";
    remoteWrite = [
      { name = "tiger"; url = "https://tiger.example:8427/api/v1/write"; bearerTokenFile = "/run/secrets/dmz_write_token"; }
      { name = "backup"; url = "http://10.0.0.9:8428/api/v1/write"; basicAuthUser = "dmz"; basicAuthPasswordFile = "/run/secrets/backup_password"; }
    ];
    settings = { collect.interval = "20s"; buffer.max_size = "1GiB"; };
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
    let result = evaluate(DMZ).unwrap();
    assert_eq!(result["failedAssertions"], Value::Array(vec![]));
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
            "remote-write-backup-password:/run/secrets/backup_password"
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
    assert_eq!(
        config.collectors.system.interval,
        Some(Duration::from_secs(30))
    );
    assert_eq!(config.buffer.max_size.as_u64(), 1 << 30);
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
    for (key, values) in &plain {
        if matches!(key.as_str(), "ExecStart" | "LoadCredential") {
            continue; // store paths and secret paths differ by design
        }
        let rendered = nixos
            .get(key)
            .map(nix_words)
            .unwrap_or_else(|| panic!("{key} missing from the NixOS unit"));
        assert_eq!(rendered, words(values), "{key}");
    }
    for key in nixos.keys() {
        assert!(plain.contains_key(key), "{key} is in the NixOS unit only");
    }
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
    let none = r#"systemFoundry.monitoringStack.jellyfinPusher = { enable = true; tokenFile = "/run/secrets/t"; remoteWrite = [ ]; };"#;
    let result = evaluate(none).unwrap();
    assert_eq!(
        result["failedAssertions"][0],
        "systemFoundry.monitoringStack.jellyfinPusher.remoteWrite needs at least one target."
    );
}

const TIGER: &str = r#"
  systemFoundry.monitoringStack.jellyfinMonitoring = {
    enable = true;
    dashboards = "/srv/jellyfin/dashboards";
    alertRules = "/srv/jellyfin/alerts";
    vmalert.notifierUrl = "http://127.0.0.1:9093";
    ingress = { enable = true; tokenFile = "/run/secrets/dmz_write_token"; listenAddress = "LISTEN"; victoriametricsUrl = "VMURL"; };
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
        vmalert["settings"]["rule"],
        serde_json::json!(["/srv/jellyfin/alerts/*.yml"])
    );
    let ingress = &result["monitoring"]["ingress"]["serviceConfig"];
    assert_eq!(
        ingress["LoadCredential"],
        serde_json::json!(["ingress-token:/run/secrets/dmz_write_token"])
    );
    assert!(
        !result.to_string().contains("REPLACE"),
        "no placeholder token anywhere"
    );
}

/// The ingress service's start script, run as systemd would run it (credentials and runtime
/// folders), with the stub store paths pointed at the real vmauth: the token from the
/// credential works for writes and only for writes, and it is in no process's argv.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_ingress_start_script_serves_a_write_only_vmauth_from_the_credential() {
    let vm = VictoriaMetrics::start().await;
    let port = free_port();
    let tiger = TIGER
        .replace("LISTEN", &format!("127.0.0.1:{port}"))
        .replace("VMURL", &vm.base_url());
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
    let token = "token-from-the-credential";
    std::fs::write(dir.path().join("credentials/ingress-token"), token).unwrap(); // no final newline
    let mut child = Command::new("bash")
        .arg(&script_path)
        .env("CREDENTIALS_DIRECTORY", dir.path().join("credentials"))
        .env("RUNTIME_DIRECTORY", dir.path().join("runtime"))
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let base = format!("http://127.0.0.1:{port}");
    wait_for("the ingress", Duration::from_secs(20), || {
        let url = format!("{base}/health");
        async move { reqwest::get(&url).await.ok().map(|_| ()) }
    })
    .await;
    let cmdline = std::fs::read(format!("/proc/{}/cmdline", child.id())).unwrap();
    assert!(
        !String::from_utf8_lossy(&cmdline).contains(token),
        "the token is not in argv"
    );

    let client = reqwest::Client::new();
    let write = client
        .post(format!("{base}/api/v1/write"))
        .bearer_auth(token)
        .header("Content-Encoding", "snappy")
        .body(
            jellyfin_pusher::remote_write::encode(
                &jellyfin_pusher::sample::Batch {
                    timestamp_ms: common::now_ms(),
                    families: vec![
                        jellyfin_pusher::sample::Family::gauge("jellyfin_up", "").with(vec![], 1.0),
                    ],
                },
                &[],
            )
            .data,
        )
        .send()
        .await
        .unwrap();
    assert_eq!(write.status(), 204);
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
        1,
        "the write went through"
    );
}
