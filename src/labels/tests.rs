//! Unit tests of the bounds, and the worst case the README states.

use super::*;
use crate::sample::Family;

fn family(name: &'static str, samples: &[(&[(&'static str, &str)], f64)]) -> Family {
    let mut f = Family::gauge(name, "test");
    for (labels, value) in samples {
        f.push(
            labels.iter().map(|(k, v)| (*k, v.to_string())).collect(),
            *value,
        );
    }
    f
}

fn pairs(f: &Family) -> Vec<(Vec<String>, f64)> {
    f.samples
        .iter()
        .map(|s| {
            (
                s.labels.iter().map(|(k, v)| format!("{k}={v}")).collect(),
                s.value,
            )
        })
        .collect()
}

#[test]
fn closed_sets_map_strangers_to_other_and_sum_them() {
    let mut families = [family(
        "jellyfin_transcode_conversions",
        &[
            (&[("from_codec", "hevc"), ("to_codec", "h264")], 1.0),
            (&[("from_codec", "evil-1"), ("to_codec", "h264")], 1.0),
            (&[("from_codec", "evil-2"), ("to_codec", "h264")], 2.0),
            (&[("from_codec", "h264"), ("to_codec", "<script>")], 1.0),
        ],
    )];
    bound(&mut families);
    assert_eq!(
        pairs(&families[0]),
        [
            (vec!["from_codec=hevc".into(), "to_codec=h264".into()], 1.0),
            (vec!["from_codec=other".into(), "to_codec=h264".into()], 3.0),
            (vec!["from_codec=h264".into(), "to_codec=other".into()], 1.0),
        ]
    );
}

#[test]
fn open_sets_keep_the_largest_and_fold_the_rest_into_other() {
    let devices: Vec<String> = (0..100).map(|i| format!("veth{i:03}")).collect();
    let samples: Vec<(&[(&'static str, &str)], f64)> = Vec::new();
    let mut f = family("node_network_receive_bytes_total", &samples);
    for (i, d) in devices.iter().enumerate() {
        f.push(vec![("device", d.clone())], i as f64);
    }
    let total: f64 = f.samples.iter().map(|s| s.value).sum();
    let mut families = [f];
    bound(&mut families);
    let f = &families[0];
    assert_eq!(f.samples.len(), TOP_DEVICES + 1);
    assert!(f.samples.iter().any(|s| s.labels[0].1 == "veth099"));
    assert!(!f.samples.iter().any(|s| s.labels[0].1 == "veth000"));
    let sum: f64 = f.samples.iter().map(|s| s.value).sum();
    assert_eq!(sum, total, "nothing is lost, only folded");
}

#[test]
fn non_additive_open_sets_keep_the_first_values_and_drop_the_rest() {
    let names: Vec<String> = (0..200).map(|i| format!("task{i:03}")).collect();
    let mut f = Family::gauge("jellyfin_scheduled_task_progress_ratio", "t");
    for name in &names {
        f.push(vec![("task", name.clone())], 0.5);
    }
    let mut families = [f];
    bound(&mut families);
    assert_eq!(families[0].samples.len(), MAX_TASKS);
    assert_eq!(families[0].samples[0].labels[0].1, "task000");
}

#[test]
fn values_already_folded_by_a_collector_stay_folded() {
    let mut f = Family::gauge("jellyfin_sessions", "t");
    for i in 0..TOP_CLIENTS {
        f.push(vec![("client", format!("app{i}"))], 1.0);
    }
    f.push(vec![("client", OTHER.into())], 5.0);
    let before = f.clone();
    let mut families = [f];
    bound(&mut families);
    assert_eq!(families[0], before);
}

/// (family, labels) of every row of the README's metric table.
fn catalogue() -> Vec<(String, Vec<String>)> {
    let readme = include_str!("../../README.md");
    let table = readme
        .split("## Metrics")
        .nth(1)
        .and_then(|rest| rest.split("\n## ").next())
        .expect("a Metrics section");
    let mut out = Vec::new();
    for row in table.lines().filter(|l| l.starts_with("| `")) {
        let cells: Vec<&str> = row.split('|').map(str::trim).collect();
        let (names, labels) = (cells[1], cells[3]);
        // Drop the explanations in parentheses, which may hold commas.
        let mut plain = String::new();
        let mut depth = 0;
        for c in labels.chars() {
            match c {
                '(' => depth += 1,
                ')' => depth -= 1,
                _ if depth == 0 => plain.push(c),
                _ => {}
            }
        }
        let labels: Vec<String> = plain
            .split(',')
            .map(|l| l.trim().to_string())
            .filter(|l| !l.is_empty())
            .collect();
        for name in names.split(',') {
            out.push((name.trim().trim_matches('`').to_string(), labels.clone()));
        }
    }
    out
}

/// The README and SECURITY.md state the worst case these bounds allow, computed here from RULES.
#[test]
fn every_catalogued_label_is_bounded_and_the_readme_states_the_worst_case() {
    let families = catalogue();
    assert!(families.len() > 50, "{families:?}");
    let mut total = 0usize;
    let mut rows = Vec::new();
    for (family, labels) in &families {
        let labels: Vec<&str> = labels.iter().map(String::as_str).collect();
        let n = worst_case_series(family, &labels).unwrap();
        total += n;
        rows.push((n, family.clone()));
    }
    rows.sort();
    for (n, family) in rows.iter().rev().take(8) {
        println!("{n:>6} {family}");
    }
    println!("worst case: {total} series");
    let figure = with_commas(total);
    let readme = include_str!("../../README.md");
    let stated = format!("**{figure} series**");
    assert!(readme.contains(&stated), "the README should state {stated}");
    // SECURITY.md repeats the figure in its promise against flooding the database.
    let security = include_str!("../../SECURITY.md");
    let stated = format!("at most {figure} series per host");
    assert!(
        security.contains(&stated),
        "SECURITY.md should state {stated}"
    );
}

fn with_commas(n: usize) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}
