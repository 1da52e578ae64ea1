//! The alert rules load in Prometheus and vmalert, and every alert's unit test passes
//! (alerts/tests/*.test.yml: each alert shown firing and not firing).

use crate::common;

use std::path::Path;
use std::process::Command;

use common::{require_binary, run};

const ALERTS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/alerts");

fn rule_files() -> Vec<String> {
    let mut files: Vec<String> = std::fs::read_dir(ALERTS)
        .unwrap()
        .filter_map(|e| e.ok()?.path().to_str().map(str::to_string))
        .filter(|p| p.ends_with(".yml"))
        .collect();
    files.sort();
    assert!(!files.is_empty());
    files
}

#[test]
fn promtool_checks_the_rules_and_every_alert_has_a_passing_unit_test() {
    let promtool = require_binary("promtool");
    let (ok, report) = run(Command::new(&promtool)
        .args(["check", "rules"])
        .args(rule_files()));
    assert!(ok, "{report}");
    let tests = Path::new(ALERTS).join("tests");
    let (ok, report) = run(Command::new(&promtool).current_dir(&tests).args([
        "test",
        "rules",
        "jellyfin.test.yml",
    ]));
    assert!(ok && report.contains("SUCCESS"), "{report}");
    // Every alert of the rule files is exercised by the tests, both ways.
    let rules = rule_files()
        .iter()
        .map(|f| std::fs::read_to_string(f).unwrap())
        .collect::<String>();
    let test = std::fs::read_to_string(tests.join("jellyfin.test.yml")).unwrap();
    for alert in rules
        .lines()
        .filter_map(|l| l.trim().strip_prefix("- alert: "))
    {
        assert!(
            test.contains(&format!("alertname: {alert}\n")),
            "{alert} has no firing test"
        );
        assert!(
            test.contains(&format!("alertname: {alert}, exp_alerts: []")),
            "{alert} has no not-firing test"
        );
    }
}

#[test]
fn vmalert_loads_every_rule_file() {
    let vmalert = require_binary("vmalert");
    for file in rule_files() {
        let (ok, report) = run(Command::new(&vmalert)
            .arg("-dryRun")
            .arg(format!("-rule={file}")));
        assert!(ok, "{file}: {report}");
    }
}

/// GitHub's anchor for a Markdown heading: lower case, punctuation dropped, spaces to dashes.
fn anchor(heading: &str) -> String {
    heading
        .trim()
        .to_lowercase()
        .chars()
        .filter(|c| c.is_alphanumeric() || *c == ' ' || *c == '-')
        .map(|c| if c == ' ' { '-' } else { c })
        .collect()
}

/// Alertmanager shows a runbook link as is, so it must be absolute: the repository URL of
/// Cargo.toml, then the README as the forge shows it (`/blob/main/README.md#<anchor>`).
fn runbook_base() -> String {
    let manifest =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.toml")).unwrap();
    let repository = manifest
        .lines()
        .find_map(|l| l.strip_prefix("repository = "))
        .expect("Cargo.toml names its repository")
        .trim_matches('"');
    assert!(repository.starts_with("https://"), "{repository}");
    format!("{repository}/blob/main/README.md#")
}

#[test]
fn every_runbook_link_leads_to_a_troubleshooting_section_of_the_readme() {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let anchors: Vec<String> = readme
        .lines()
        .filter_map(|l| l.strip_prefix("### "))
        .map(anchor)
        .collect();
    assert!(
        anchors.contains(&"jellyfin-is-down".to_string()),
        "{anchors:?}"
    );
    let base = runbook_base();
    let mut links = 0;
    for file in rule_files() {
        let rules = std::fs::read_to_string(&file).unwrap();
        for line in rules.lines().filter(|l| l.contains("runbook_url")) {
            links += 1;
            let target = line
                .split(&format!("\"{base}"))
                .nth(1)
                .map(|t| t.trim_end_matches('"'))
                .unwrap_or_else(|| panic!("{file}: runbook_url not under {base}: {line}"));
            assert!(
                anchors.iter().any(|a| a == target),
                "{file}: {target} is not a README heading ({anchors:?})"
            );
        }
    }
    let alerts = rule_files()
        .iter()
        .map(|f| {
            std::fs::read_to_string(f)
                .unwrap()
                .matches("- alert: ")
                .count()
        })
        .sum::<usize>();
    assert_eq!(links, alerts, "every alert has a runbook_url");
}
