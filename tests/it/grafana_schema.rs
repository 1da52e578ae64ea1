//! The dashboards match Grafana's own schema: tests/grafana-schema/check.mjs type-checks them
//! against the types `@grafana/schema` generates from Grafana's CUE kinds (dashboard model and
//! each panel plugin's options), with the versions pinned in its package-lock.json.

use std::path::Path;
use std::process::Command;

use crate::common::{require_binary, run};

const CHECKER: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/grafana-schema");
const DASHBOARDS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/dashboards");

/// Runs the checker on a folder of dashboards: (exit status, output).
fn check(dir: &Path) -> (bool, String) {
    run(Command::new(require_binary("node"))
        .current_dir(CHECKER)
        .arg("check.mjs")
        .arg(dir))
}

#[test]
fn every_dashboard_matches_grafanas_schema_and_a_broken_one_does_not() {
    if !Path::new(CHECKER)
        .join("node_modules/@grafana/schema")
        .is_dir()
    {
        // tests/run.sh installs them; a bare `cargo test` does it here.
        let status = Command::new(require_binary("npm"))
            .current_dir(CHECKER)
            .args(["ci", "--no-audit", "--no-fund", "--silent"])
            .status()
            .expect("npm runs");
        assert!(status.success(), "npm ci in {CHECKER} failed");
    }
    let (ok, report) = check(Path::new(DASHBOARDS));
    assert!(ok && report.contains("5 dashboards match"), "{report}");

    // The check can fail: a stat's colour mode Grafana does not know, and a misspelt option.
    let broken = tempfile::tempdir().unwrap();
    let file = "jellyfin-pusher-health.json";
    let mut json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(Path::new(DASHBOARDS).join(file)).unwrap())
            .unwrap();
    let panels = json["panels"].as_array_mut().unwrap();
    let stat = panels.iter_mut().find(|p| p["type"] == "stat").unwrap();
    stat["options"]["colorMode"] = "rainbow".into();
    let series = panels
        .iter_mut()
        .find(|p| p["type"] == "timeseries")
        .unwrap();
    series["fieldConfig"]["defaults"]["custom"] = serde_json::json!({ "lineWidht": 1 });
    std::fs::write(broken.path().join(file), json.to_string()).unwrap();
    let (ok, report) = check(broken.path());
    assert!(!ok, "{report}");
    assert!(
        report.contains("\"rainbow\"") && report.contains("lineWidht"),
        "{report}"
    );
}
