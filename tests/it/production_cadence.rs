//! Issue #12 item 6: the dashboards and alerts at production cadence. Seven hours of two
//! hosts' history, the agent's own output at its default intervals (common/history.rs:
//! fast collectors every 15 s, tasks and activity every minute, library and users every 5,
//! the inventory every hour), go into a real VictoriaMetrics (import API) and a real
//! Prometheus (remote write). Host `dmz-b` goes dark for the last 40 minutes.
//!
//! Then every target of every panel is asked as Grafana asks it (common/grafana_time.rs: the
//! dashboard's default range, the step and `$__interval` from the panel's width and min
//! interval, `$__rate_interval` from Grafana's formula, the range aligned to the step, instant
//! or range) at 13 moments spread over the last hour, on both backends: each must show data
//! for `dmz-a`, whose every subject exists all the time (a range panel: at its last point),
//! and, at every fourth moment, for the selection the dashboards open with (All jobs, All
//! instances). The job and instance variables must offer both hosts at every moment.
//! `dmz-b`'s freshness panels must show its outage: "Last successful push" and "Agent last
//! seen" say the time since its last cycle at every moment (under 15 s before the outage,
//! growing through it), "Jellyfin up" is green before and empty once its 2-minute window has
//! passed rather than its last green value; and JellyfinPusherNoData must fire for `dmz-b`
//! alone: its expression at the same moments on both backends, and live from vmalert and
//! Prometheus.

use crate::common;

use std::collections::BTreeSet;
use std::path::Path;
use std::time::Duration;

use common::dashboards;
use common::grafana_time::{self, ALL, Timing};
use common::history::{self, Recording};
use common::servers::{Prometheus, VictoriaMetrics, VmAlert};

const MINUTE: i64 = 60_000;
const HOUR: i64 = 60 * MINUTE;
/// The last stretch of the history in which `dmz-b` sends nothing.
const OUTAGE: i64 = 40 * MINUTE;
/// When the agent started, past a round minute.
const PHASE: i64 = 23_456;
const RULES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/alerts/jellyfin.yml");

/// Panel targets whose subject never exists in this history, and why. The recorded host
/// pushes without a failure, so nothing fails there to show.
const NO_SUBJECT: [(&str, &str); 0] = [];

/// The moments the dashboards are looked at: 13, spread over the hour before `end`, none on
/// a cycle boundary.
fn moments(end: i64) -> Vec<i64> {
    (0..13)
        .map(|i| end - HOUR + i * (5 * MINUTE - 7_000))
        .collect()
}

/// Data at the moment asked: an instant result with a finite value, or a range result with
/// a finite value at its last step.
fn shows_data(result: &[serde_json::Value], t: &Timing, instant: bool) -> bool {
    let finite = |v: &serde_json::Value| {
        v[1].as_str()
            .and_then(|s| s.parse::<f64>().ok())
            .is_some_and(f64::is_finite)
    };
    let at_end = |v: &serde_json::Value| {
        v[0].as_f64()
            .is_some_and(|ts| (ts * 1000.0).round() as i64 == t.end_ms)
    };
    result.iter().any(|series| {
        if instant {
            series.get("value").is_some_and(finite)
        } else {
            series["values"]
                .as_array()
                .is_some_and(|vs| vs.iter().any(|v| at_end(v) && finite(v)))
        }
    })
}

/// The single value of an instant result (None when empty).
fn single_value(result: &[serde_json::Value]) -> Option<f64> {
    assert!(result.len() <= 1, "more than one series: {result:?}");
    result.first()?["value"][1].as_str()?.parse().ok()
}

/// JellyfinPusherNoData's expression, as the rule file has it.
fn no_data_expr() -> String {
    let rules = std::fs::read_to_string(RULES).expect("rule file");
    let rule = rules
        .split("- alert: ")
        .find(|r| r.starts_with("JellyfinPusherNoData"))
        .expect("JellyfinPusherNoData in the rule file");
    let body = rule.split("expr: |\n").nth(1).expect("a block expr");
    body.lines()
        .take_while(|l| l.starts_with("          "))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Grafana's rules worked by hand: 6 h on a 1000-point panel is a 20 s interval
/// and `$__rate_interval` is at least 4 scrape intervals; a panel's min interval raises
/// the interval (and so the rate interval by as much), a target's min step raises both.
#[test]
fn intervals_match_grafanas() {
    let target = serde_json::json!({});
    let panel = serde_json::json!({"maxDataPoints": 1000});
    let t = grafana_time::timing(&panel, &target, 6 * 3_600_000, 1_000_000_007);
    assert_eq!((t.step_ms, t.rate_interval_ms), (20_000, 60_000));
    assert_eq!(t.end_ms % 20_000, 0);
    let slow = serde_json::json!({"maxDataPoints": 1000, "interval": "1m"});
    let t = grafana_time::timing(&slow, &target, 6 * 3_600_000, 1_000_000_007);
    assert_eq!((t.step_ms, t.rate_interval_ms), (60_000, 75_000));
    let min_step = serde_json::json!({"interval": "1m"});
    let t = grafana_time::timing(&panel, &min_step, 6 * 3_600_000, 1_000_000_007);
    assert_eq!((t.step_ms, t.rate_interval_ms), (60_000, 240_000));
    let week = grafana_time::timing(&panel, &target, 7 * 86_400_000, 0);
    assert_eq!((week.step_ms, week.rate_interval_ms), (600_000, 615_000));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_panel_shows_data_at_production_cadence_and_an_outage_shows_for_its_host() {
    let recording = Recording::busy_host().await;
    let all = dashboards::load_all();
    let range = all
        .iter()
        .map(|d| grafana_time::default_range_ms(&d.json))
        .max()
        .expect("dashboards");
    // History up to now, long enough for the default range before every moment looked at.
    let end = common::now_ms();
    // The agent started at some odd moment: its cycles fall on no round minute, as in life
    // (a history on round minutes hides rate windows that hold one sample).
    let start = (end - range - HOUR) / HOUR * HOUR - HOUR + PHASE;
    let dark_from = end - OUTAGE;
    let (a, b) = (history::host_labels("dmz-a"), history::host_labels("dmz-b"));

    let vm = VictoriaMetrics::start().await;
    let prometheus = Prometheus::start().await;
    let mut body = Vec::new();
    for (labels, until) in [(&a, end), (&b, dark_from)] {
        history::write_vm_import(recording.batches(start, until), labels, HOUR, &mut body)
            .expect("import body");
    }
    vm.import(body).await;
    let hosts = |at: i64| {
        if at < dark_from {
            vec![a.clone(), b.clone()]
        } else {
            vec![a.clone()]
        }
    };
    let blocks = history::for_hosts(recording.batches(start, end), hosts);
    history::push_remote_write(&prometheus.write_url(), blocks, 200).await;
    vm.settle().await;

    // Live first, while dmz-a's last cycle is recent (the rule looks back 10 minutes): the
    // shipped rule file in vmalert on VictoriaMetrics and in Prometheus's own evaluation.
    let vmalert = VmAlert::start(&vm, Path::new(RULES)).await;
    prometheus.load_rules(Path::new(RULES)).await;
    let fired = common::wait_for(
        "JellyfinPusherNoData from vmalert and Prometheus",
        Duration::from_secs(30),
        || async {
            let from_vmalert: Vec<_> = vmalert
                .active()
                .await
                .into_iter()
                .filter(|(name, state, _)| name == "JellyfinPusherNoData" && state == "firing")
                .map(|(_, _, labels)| labels)
                .collect();
            let from_prometheus: Vec<_> = prometheus
                .alerts()
                .await
                .into_iter()
                .filter(|(name, state, _)| name == "JellyfinPusherNoData" && state == "firing")
                .map(|(_, _, labels)| labels)
                .collect();
            (!from_vmalert.is_empty() && !from_prometheus.is_empty())
                .then_some((from_vmalert, from_prometheus))
        },
    )
    .await;
    for labels in [fired.0, fired.1] {
        assert_eq!(labels.len(), 1, "{labels:?}");
        assert_eq!(
            (&labels[0]["instance"], &labels[0]["job"]),
            (&"dmz-b".into(), &"jellyfin".into()),
            "{labels:?}"
        );
    }

    let backends = [
        ("VictoriaMetrics", vm.base_url()),
        ("Prometheus", prometheus.base_url()),
    ];
    let looked_at = moments(end);

    // The instance variable offers both hosts at every moment (dmz-b too while it is dark:
    // it pushed within the range), the job variable the one job.
    for d in &all {
        let range = grafana_time::default_range_ms(&d.json);
        for (name, expected) in [
            ("job", vec!["jellyfin"]),
            ("instance", vec!["dmz-a", "dmz-b"]),
        ] {
            let variable = d.variable(name).expect("job and instance variables");
            let query = variable["query"]["query"]
                .as_str()
                .expect("a query variable");
            let query = query.replace("$job", ALL);
            for (backend, url) in &backends {
                for &now in &looked_at {
                    let offered = grafana_time::label_values(url, &query, range, now).await;
                    assert_eq!(offered, expected, "{backend}: {} / ${name}", d.file);
                }
            }
        }
    }

    // Every target shows data at every moment, on both backends.
    let mut empty = BTreeSet::new();
    let mut asked = 0;
    for d in &all {
        let range = grafana_time::default_range_ms(&d.json);
        for target in d.targets() {
            let title = target.panel_title();
            if NO_SUBJECT.iter().any(|(panel, _)| *panel == title) {
                continue;
            }
            // dmz-a at every moment; at every fourth, also the selection the dashboards open
            // with (All jobs, All instances).
            let selections = looked_at.iter().enumerate().flat_map(|(i, now)| {
                let all = (i % 4 == 0).then_some((*now, ALL, ALL));
                [Some((*now, "jellyfin", "dmz-a")), all]
                    .into_iter()
                    .flatten()
            });
            for (now, job, instance) in selections {
                let t = grafana_time::timing(target.panel, target.json, range, now);
                let expr = grafana_time::fill(&target.expr, job, instance, &t);
                // Both backends at once: the queries mostly wait.
                let answers = tokio::join!(
                    grafana_time::query(&backends[0].1, &expr, &t, target.instant),
                    grafana_time::query(&backends[1].1, &expr, &t, target.instant),
                );
                for ((backend, _), result) in backends.iter().zip([answers.0, answers.1]) {
                    asked += 1;
                    if !shows_data(&result, &t, target.instant) {
                        empty.insert(format!(
                            "{backend}: {} / {title:?} / {} ({}, step {} s, rate interval {} s) for {instance} at {} min before the end:\n    {expr}",
                            d.file,
                            target.ref_id,
                            if target.instant { "instant" } else { "range" },
                            t.step_ms / 1000,
                            t.rate_interval_ms / 1000,
                            (end - now) / MINUTE,
                        ));
                    }
                }
            }
        }
    }
    assert!(asked > 1500, "only {asked} queries");
    assert!(
        empty.is_empty(),
        "{} of {asked} queries showed no data:\n{}",
        empty.len(),
        empty.into_iter().collect::<Vec<_>>().join("\n")
    );
    eprintln!("{asked} panel queries showed data at production cadence");

    // dmz-b's outage on its freshness panels: the age grows with the time since its last
    // cycle, "Jellyfin up" goes empty instead of staying green.
    // dmz-b's last cycle before `at` (its cycles are every 15 s from the start, none dark).
    let b_cycle_before = |at: i64| start + (at.min(dark_from) - 1 - start) / 15_000 * 15_000;
    let last_cycle = b_cycle_before(dark_from);
    let panel = |title: &str| {
        all.iter()
            .flat_map(|d| {
                let range = grafana_time::default_range_ms(&d.json);
                d.targets().into_iter().map(move |t| (range, t))
            })
            .find(|(_, t)| t.panel_title() == title)
            .unwrap_or_else(|| panic!("no panel {title:?}"))
    };
    for (backend, url) in &backends {
        for &now in &looked_at {
            for title in ["Last successful push", "Agent last seen", "Jellyfin up"] {
                let (range, target) = panel(title);
                assert!(target.instant, "{title} is an instant query");
                let t = grafana_time::timing(target.panel, target.json, range, now);
                let expr = grafana_time::fill(&target.expr, "jellyfin", "dmz-b", &t);
                let seen = single_value(&grafana_time::query(url, &expr, &t, true).await);
                // dmz-b's last cycle by the time the query is evaluated.
                let last = b_cycle_before(t.end_ms + 1);
                let age = (t.end_ms - last) as f64 / 1000.0;
                let when = format!("{backend}: {title} {age} s after dmz-b's last cycle");
                match title {
                    // Its lookback is 2 minutes: green while fresh, then nothing.
                    "Jellyfin up" if age <= 120.0 => assert_eq!(seen, Some(1.0), "{when}"),
                    "Jellyfin up" if age > 135.0 => assert_eq!(seen, None, "{when}"),
                    "Jellyfin up" => {}
                    // The age, growing through the outage (a push lags its cycle by the
                    // collectors' run time).
                    _ => {
                        let shown = seen.unwrap_or_else(|| panic!("{when}: shows nothing"));
                        assert!((shown - age).abs() < 5.0, "{when}: shows {shown} s");
                    }
                }
            }
        }
    }

    // And JellyfinPusherNoData's expression at the same moments: nobody before dmz-b has
    // been dark for 10 minutes, then dmz-b alone.
    let no_data = no_data_expr();
    for (backend, url) in &backends {
        for &now in &looked_at {
            let t = Timing {
                start_ms: now,
                end_ms: now,
                step_ms: 15_000,
                interval_ms: 15_000,
                rate_interval_ms: 60_000,
                range_ms: 0,
            };
            let firing: Vec<String> = grafana_time::query(url, &no_data, &t, true)
                .await
                .iter()
                .map(|s| format!("{}/{}", s["metric"]["job"], s["metric"]["instance"]))
                .collect();
            let expected: Vec<String> = if now - last_cycle > 10 * MINUTE {
                vec!["\"jellyfin\"/\"dmz-b\"".into()]
            } else {
                vec![]
            };
            assert_eq!(
                firing,
                expected,
                "{backend}: JellyfinPusherNoData {} min before the end",
                (end - now) / MINUTE
            );
        }
    }
}
