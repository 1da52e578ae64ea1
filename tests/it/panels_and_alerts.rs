//! The dashboards and alerts against real data: the agent, fed by the fake Jellyfin with
//! playback, transcoding, a running task and activity, pushes into a real VictoriaMetrics
//! and a real Prometheus (the data source may be either); every target of every panel, with
//! the template variables filled in as Grafana would, returns data from both (and none for
//! another instance). Then vmalert evaluates the rule file against the VictoriaMetrics:
//! JellyfinUserLockedOut on the new activity, JellyfinPusherBacklog for the remote that never
//! answers, JellyfinDown when the fake Jellyfin stops, and JellyfinPusherNoData when the agent
//! stops.

use crate::common;

use std::path::Path;
use std::time::Duration;

use common::agent::AgentDir;
use common::dashboards::{self, Values};
use common::fake_jellyfin::FakeJellyfin;
use common::host::{JellyfinHost, two_plays_start};
use common::servers::{Prometheus, VictoriaMetrics, VmAlert, query};
use common::{fixture, free_port, wait_for};

/// Panels the plan asks for that the dashboards leave out, and why (dashboards/README.md says
/// the same). No panel may pretend to show them.
const LEFT_OUT: [(&str, &str); 2] = [
    (
        "queue",
        "Jellyfin's API has no transcode queue: every accepted transcode starts at once",
    ),
    (
        "GPU",
        "neither the API nor /proc tells GPU load; that is a job for a GPU exporter on the host",
    ),
];

/// Panel targets that cannot show data in this run, and why. Everything the fixtures can
/// produce is produced (a second remote that is offline gives the buffer and error panels
/// their data, a running task the progress panel), so the list is empty; a panel added
/// later that needs conditions the fixtures cannot make goes here with its reason.
const NO_DATA_IN_THIS_RUN: [(&str, &str, &str, &str); 0] = [];

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

/// A result holds data when some series has a finite value (instant or range form).
fn has_data(result: &[serde_json::Value]) -> bool {
    let finite = |v: &serde_json::Value| {
        v[1].as_str()
            .and_then(|s| s.parse::<f64>().ok())
            .is_some_and(f64::is_finite)
    };
    result.iter().any(|series| {
        series.get("value").is_some_and(finite)
            || series["values"]
                .as_array()
                .is_some_and(|vs| vs.iter().any(finite))
    })
}

/// The rule file with the durations this test cannot wait for shortened: JellyfinDown's
/// `for: 5m`, the no-data window of 10 minutes, and the backlog alert's 15 minutes of age held
/// for 10. Their full-length behaviour is shown by the promtool unit tests (tests/it/alerts.rs);
/// here the expressions meet real data.
fn quick_rules(dir: &Path) -> std::path::PathBuf {
    let mut rules = std::fs::read_to_string(format!("{ROOT}/alerts/jellyfin.yml")).unwrap();
    for (shipped, quick) in [
        (
            "- alert: JellyfinDown\n        expr: jellyfin_up == 0\n        for: 5m\n",
            "- alert: JellyfinDown\n        expr: jellyfin_up == 0\n        for: 2s\n",
        ),
        (
            "(present_over_time(jellyfin_pusher_build_info[10m]))",
            "(present_over_time(jellyfin_pusher_build_info[3s]))",
        ),
        (
            "jellyfin_pusher_buffer_oldest_sample_timestamp_seconds > 900\n        for: 10m\n",
            "jellyfin_pusher_buffer_oldest_sample_timestamp_seconds > 5\n        for: 2s\n",
        ),
    ] {
        assert_eq!(
            rules.matches(shipped).count(),
            1,
            "the rule with {shipped:?} changed: update this test"
        );
        rules = rules.replace(shipped, quick);
    }
    let path = dir.join("jellyfin-quick.yml");
    std::fs::write(&path, rules).unwrap();
    path
}

async fn wait_for_state(vmalert: &VmAlert, alert: &str, state: &str) -> serde_json::Value {
    wait_for(
        &format!("{alert} {state}"),
        Duration::from_secs(30),
        || async move {
            vmalert
                .active()
                .await
                .into_iter()
                .find(|(name, s, _)| name == alert && s == state)
                .map(|(_, _, labels)| labels)
        },
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_panel_shows_data_from_victoriametrics_and_prometheus_and_the_alerts_fire() {
    // A Jellyfin with everything a panel can show: sessions (idle first, so that the plays
    // that follow are counted as starts), a running scheduled task, new activity entries.
    let mut jellyfin = FakeJellyfin::start("").await;
    jellyfin.route("/Sessions", fixture("sessions.idle.10.11.11.json"));
    jellyfin.generate_items("f137a2dd21bbc1b99aa5c0f6bf02a805", 200);
    let mut tasks: serde_json::Value =
        serde_json::from_str(&fixture("scheduled-tasks.10.11.11.json")).unwrap();
    tasks[0]["State"] = "Running".into();
    tasks[0]["CurrentProgressPercentage"] = 42.5.into();
    jellyfin.route("/ScheduledTasks", tasks.to_string());
    let vm = VictoriaMetrics::start().await;

    // Every optional collector on (log folder, process, GeoIP), tasks every second. A second
    // remote that never answers keeps a buffer, errors and retries.
    let host = JellyfinHost::new();
    let extra = format!(
        "{}[collectors.tasks]\ninterval = \"1s\"\n",
        host.collectors_toml()
    );
    let prometheus = Prometheus::start().await;
    let offline = format!("http://127.0.0.1:{}/api/v1/write", free_port());
    let dir = AgentDir::new(
        &jellyfin.url(),
        &[
            ("tiger", &vm.write_url()),
            ("prometheus", &prometheus.write_url()),
            ("offline", &offline),
        ],
        "1s",
        &extra,
    );
    let mut agent = dir.start();
    jellyfin.wait_for_requests("/System/Info", 2).await;
    two_plays_start(&jellyfin);
    host.failing_transcode();
    // Enough cycles after the change for every rate window to hold several samples.
    let n = jellyfin.requests_to("/System/Info").len();
    jellyfin.wait_for_requests("/System/Info", n + 10).await;
    vm.settle().await;

    // Every target, as Grafana sends it: range panels over the last minute, instant ones now.
    let selected = Values {
        job: "jellyfin",
        instance: "test-dmz",
        rate_interval: "1m",
        range: "10m",
        interval: "5s",
    };
    let elsewhere = Values {
        instance: "another-host",
        ..selected
    };
    let all = dashboards::load_all();
    let mut empty = Vec::new();
    let mut leaks = Vec::new();
    let mut checked = 0;
    let backends = [
        ("VictoriaMetrics", vm.base_url()),
        ("Prometheus", prometheus.base_url()),
    ];
    for d in &all {
        for t in d.targets() {
            let title = t.panel_title();
            for (word, _) in LEFT_OUT {
                assert!(
                    !title.contains(word),
                    "{}: panel {title:?} is left out on purpose",
                    d.file
                );
            }
            let range = (!t.instant).then_some(60);
            for (backend, base_url) in &backends {
                let excused = NO_DATA_IN_THIS_RUN
                    .iter()
                    .any(|(b, file, panel, _)| b == backend && *file == d.file && *panel == title);
                let result =
                    query(base_url, &dashboards::substitute(&t.expr, &selected), range).await;
                if !has_data(&result) && !excused {
                    empty.push(format!(
                        "{backend}: {} / {title:?} / {}:\n    {}",
                        d.file, t.ref_id, t.expr
                    ));
                }
                let other = query(
                    base_url,
                    &dashboards::substitute(&t.expr, &elsewhere),
                    range,
                )
                .await;
                if has_data(&other) {
                    leaks.push(format!(
                        "{backend}: {} / {title:?} / {}: {other:?}",
                        d.file, t.ref_id
                    ));
                }
            }
            checked += 1;
        }
    }
    assert!(checked > 60, "only {checked} targets");
    assert!(
        empty.is_empty(),
        "targets without data:\n{}",
        empty.join("\n")
    );
    assert!(
        leaks.is_empty(),
        "targets showing data for an instance that does not exist:\n{}",
        leaks.join("\n")
    );
    eprintln!("{checked} panel targets returned data for the selected instance, none for another");

    // The alert rules, evaluated by vmalert against the same data: the file as shipped, and
    // a copy whose two long durations are shortened.
    let rules_dir = tempfile::tempdir().unwrap();
    let shipped = VmAlert::start(&vm, Path::new(&format!("{ROOT}/alerts/jellyfin.yml"))).await;
    let quick = VmAlert::start(&vm, &quick_rules(rules_dir.path())).await;
    tokio::time::sleep(Duration::from_secs(4)).await;
    for (vmalert, alert) in [
        (&shipped, "JellyfinDown"),
        (&quick, "JellyfinDown"),
        (&quick, "JellyfinPusherNoData"),
    ] {
        assert_eq!(
            vmalert.state(alert).await,
            None,
            "{alert} is active while all is well; vmalert log:\n{}",
            vmalert.log()
        );
    }

    // The rules that need no waiting fire from the shipped file: the lock-out among the new
    // activity entries, and (shortened) the backlog of the remote that never answers, and of
    // no other remote.
    let labels = wait_for_state(&shipped, "JellyfinUserLockedOut", "firing").await;
    assert_eq!(
        (&labels["severity"], &labels["instance"]),
        (&"warning".into(), &"test-dmz".into()),
        "{labels}"
    );
    let labels = wait_for_state(&quick, "JellyfinPusherBacklog", "firing").await;
    assert_eq!(labels["remote"], "offline", "{labels}");
    let backlogged: Vec<_> = quick
        .active()
        .await
        .into_iter()
        .filter(|(name, _, _)| name == "JellyfinPusherBacklog")
        .map(|(_, _, labels)| labels["remote"].clone())
        .collect();
    assert_eq!(backlogged, ["offline"]);

    jellyfin.down();
    let labels = wait_for_state(&quick, "JellyfinDown", "firing").await;
    assert_eq!(labels["severity"], "critical", "{labels}");
    assert_eq!(labels["instance"], "test-dmz", "{labels}");
    assert_eq!(labels["job"], "jellyfin", "{labels}");
    // The shipped rule matches the same data and waits out its 5 minutes.
    wait_for_state(&shipped, "JellyfinDown", "pending").await;

    assert!(agent.stop().success(), "{}", agent.log());
    let labels = wait_for_state(&quick, "JellyfinPusherNoData", "firing").await;
    assert_eq!(labels["severity"], "critical", "{labels}");
    assert_eq!(labels["job"], "jellyfin", "{labels}");
    assert_eq!(labels["instance"], "test-dmz", "{labels}");
    assert_eq!(shipped.state("JellyfinPusherNoData").await, None);
}
