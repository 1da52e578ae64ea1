//! The metric catalogue (../shared/design/metrics.md, or $METRIC_CATALOGUE): the names that
//! the agent, the dashboards and the alerts agree on.

use std::collections::BTreeSet;

/// The one family the catalogue names but says is never exported (the API has no transcode
/// queue).
pub const NEVER_EXPORTED: &str = "jellyfin_transcode_queue_length";

/// Every metric family name the catalogue defines: the first column of its tables, and the
/// list of the agent's own metrics (written without their `jellyfin_pusher_` prefix).
pub fn catalogue() -> BTreeSet<String> {
    let path = std::env::var("METRIC_CATALOGUE")
        .unwrap_or_else(|_| format!("{}/../shared/design/metrics.md", env!("CARGO_MANIFEST_DIR")));
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{path}: {e} (set METRIC_CATALOGUE)"));
    let is_name = |n: &str| {
        !n.is_empty() && n.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') && n.contains('_')
    };
    let mut names = BTreeSet::new();
    for line in text
        .lines()
        .filter(|l| l.starts_with("| ") && !l.starts_with("| name"))
    {
        let first = line.split('|').nth(1).unwrap_or("");
        for name in first
            .split([',', '/'])
            // A name may be followed by its labels or a note in parentheses.
            .map(|n| n.split(['{', '(']).next().unwrap_or("").trim())
            .filter(|n| is_name(n))
        {
            names.insert(name.to_string());
        }
    }
    let own = text
        .split("(prefix jellyfin_pusher_)")
        .nth(1)
        .unwrap_or_default();
    let own = own.split("`remote` is").next().unwrap_or_default();
    let mut depth = 0;
    let mut without_labels = String::new();
    for c in own.chars() {
        match c {
            '{' => depth += 1,
            '}' => depth -= 1,
            c if depth == 0 => without_labels.push(c),
            _ => {}
        }
    }
    for name in without_labels
        .split([',', '.', '\n', ':'])
        .map(str::trim)
        .filter(|n| is_name(n))
    {
        names.insert(format!("jellyfin_pusher_{name}"));
    }
    names
}
