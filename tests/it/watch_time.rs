//! Watch time from the Playback Reporting plugin, end to end: the fake Jellyfin answers the
//! plugin's custom query as PlaybackReportingActivityController does, its rows grow as the
//! plugin updates PlayDuration every 20 s of play, the agent restarts in between; what
//! arrives in VictoriaMetrics is each user's growth since the agent first started, exactly,
//! and the sessions collector's polled estimate is not sent alongside.

use crate::common;

use common::agent::AgentDir;
use common::fake_jellyfin::FakeJellyfin;
use common::servers::{Series, VictoriaMetrics};

const QUERY: &str = "/user_usage_stats/submit_custom_query";
const ONE: &str = "d50a238bb88045419ab14206d6b8b7d5";
const TWO: &str = "472c0639eaa641ebadd06d9d5107b730";

async fn cycles(jellyfin: &FakeJellyfin, more: usize) {
    let target = jellyfin.requests_to(QUERY).len() + more;
    jellyfin.wait_for_requests(QUERY, target).await;
}

/// What the counter added over the run, its first value included (it is not born at 0), a
/// drop counted as a restart from 0.
fn total(series: &Series) -> f64 {
    let mut sum = series.values[0];
    for w in series.values.windows(2) {
        sum += if w[1] >= w[0] { w[1] - w[0] } else { w[1] };
    }
    sum
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_plugins_pause_free_time_is_credited_once_per_user_across_a_restart() {
    let jellyfin = FakeJellyfin::start("").await;
    jellyfin.route("/Users", common::fixture("users.10.11.11.json"));
    // History: a play of user 1 that the first start must not count.
    jellyfin.plugin_rows(&[(1, ONE, 300)]);
    let vm = VictoriaMetrics::start().await;
    let dir = AgentDir::pushing(
        &jellyfin,
        &vm,
        "[privacy]\nuser_label = \"name\"\n[collectors.playback_reporting]\nenabled = true\ninterval = \"1s\"\n",
    );
    let mut agent = dir.start();
    cycles(&jellyfin, 2).await;
    // Row 1 plays on 20 s more; user 2 starts a play (the plugin adds its row after 20 s).
    jellyfin.plugin_rows(&[(1, ONE, 320), (2, TWO, 20)]);
    cycles(&jellyfin, 2).await;
    jellyfin.plugin_rows(&[(1, ONE, 320), (2, TWO, 40), (3, ONE, 25)]);
    cycles(&jellyfin, 2).await;
    assert!(agent.stop().success());
    // While the agent is down, user 2 watches 20 s more; then the agent is back.
    jellyfin.plugin_rows(&[(1, ONE, 320), (2, TWO, 60), (3, ONE, 25)]);
    let mut agent = dir.start();
    cycles(&jellyfin, 3).await;
    assert!(agent.stop().success());
    vm.settle().await;

    let requests = jellyfin.requests_to(QUERY);
    assert!(
        requests.iter().all(|r| r.query.is_none()),
        "the query goes in the body"
    );
    let series = vm
        .export("{__name__=\"jellyfin_user_watch_time_seconds_total\"}")
        .await;
    let mut got: Vec<(String, f64)> = series
        .iter()
        .map(|s| (s.label("user").unwrap_or("").to_string(), total(s)))
        .collect();
    got.sort_by(|a, b| a.0.cmp(&b.0));
    // User 1: 20 s of the old play and 25 s of a new one; user 2: 60 s; the sessions
    // collector's users (the 10.9 capture's USER8) do not appear: one producer.
    assert_eq!(
        got,
        [("User 1".to_string(), 45.0), ("User 2".to_string(), 60.0)],
        "{series:?}"
    );
}
