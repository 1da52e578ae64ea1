//! The write-only ingress of config/vmauth.example.yml, with real vmauth and VictoriaMetrics:
//! the agent pushes through it, the same token can neither read nor delete, a wrong token is
//! refused and the agent keeps the data buffered until the token is fixed, and a stolen token
//! can neither reach other write or admin paths nor pass its series off as another job.

use crate::common;

use std::time::Duration;

use common::agent::AgentDir;
use common::fake_jellyfin::FakeJellyfin;
use common::servers::VictoriaMetrics;
use common::{assert_one_sample_per_request, up_timestamps, wait_for, wait_for_every_cycle};
use jellyfin_pusher::remote_write::encode;
use jellyfin_pusher::sample::{Batch, Family};

use common::vmauth::{TOKEN, Vmauth};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dmz_token_can_write_through_vmauth_and_nothing_else() {
    let jellyfin = FakeJellyfin::start("").await;
    let vm = VictoriaMetrics::start().await;
    let vmauth = Vmauth::start(&vm).await;
    let dir = AgentDir::new(
        &jellyfin.url(),
        &[("tiger", &vmauth.url("/api/v1/write"))],
        "1s",
        "",
    );
    let token_file = dir.dir.path().join("remote-write-token");
    std::fs::write(&token_file, "a-wrong-token\n").unwrap();
    let text = std::fs::read_to_string(dir.config()).unwrap()
        + &format!("bearer_token_file = \"{}\"\n", token_file.display());
    std::fs::write(dir.config(), text).unwrap();

    // A wrong token: refused, and the agent keeps every cycle buffered.
    let mut agent = dir.start();
    wait_for("3 cycles", Duration::from_secs(20), || {
        let n = jellyfin.requests_to("/System/Info").len();
        async move { (n >= 3).then_some(()) }
    })
    .await;
    // vmauth 1.79 answers an unknown token with 400 (later versions: 401) and quotes it back.
    let log = agent.log();
    assert!(
        log.contains("cannot find the provided auth token \"Bearer <redacted>\""),
        "{log}"
    );
    assert!(
        !log.contains("a-wrong-token"),
        "the token was redacted from the receiver's message"
    );
    assert!(
        !log.contains("rejected"),
        "an authentication failure is retried, not dropped:\n{log}"
    );
    vm.settle().await;
    assert!(
        up_timestamps(&vm).await.is_empty(),
        "nothing got past vmauth"
    );

    // The token is fixed in its file: no restart needed, and the backlog arrives.
    std::fs::write(&token_file, format!("{TOKEN}\n")).unwrap();
    wait_for_every_cycle(&vm, &jellyfin).await;
    assert!(agent.stop().success());
    vm.settle().await;
    let stored = up_timestamps(&vm).await;
    assert_one_sample_per_request(&stored, &jellyfin.requests_to("/System/Info"));
    assert!(!agent.log().contains(TOKEN), "the token is never logged");

    // The same token cannot read, export or delete.
    let client = reqwest::Client::new();
    let denied = [
        client
            .get(vmauth.url("/api/v1/query"))
            .query(&[("query", "jellyfin_up")]),
        client
            .get(vmauth.url("/api/v1/query_range"))
            .query(&[("query", "jellyfin_up")]),
        client
            .get(vmauth.url("/api/v1/export"))
            .query(&[("match[]", "{__name__=~\".+\"}")]),
        client
            .get(vmauth.url("/api/v1/series"))
            .query(&[("match[]", "jellyfin_up")]),
        client
            .post(vmauth.url("/api/v1/admin/tsdb/delete_series"))
            .query(&[("match[]", "{__name__=~\".+\"}")]),
        client.get(vmauth.url("/metrics")),
        client.get(vmauth.url("/flags")),
        client.get(vmauth.url("/debug/pprof/cmdline")),
        client
            .post(vmauth.url("/api/v1/import/prometheus"))
            .body("jellyfin_up 0"),
    ];
    for request in denied {
        let response = request.bearer_auth(TOKEN).send().await.unwrap();
        let status = response.status();
        let body = response.text().await.unwrap_or_default();
        assert!(!status.is_success(), "{status}: {body}");
        assert!(!body.contains("jellyfin_up{"), "data leaked: {body}");
    }
    // A wrong token cannot write either.
    let refused = client
        .post(vmauth.url("/api/v1/write"))
        .bearer_auth("a-wrong-token")
        .body(Vec::<u8>::new())
        .send()
        .await
        .unwrap();
    assert!(
        matches!(refused.status().as_u16(), 400 | 401),
        "{}",
        refused.status()
    );
    vm.settle().await;
    assert_eq!(
        up_timestamps(&vm).await,
        stored,
        "nothing was deleted or added"
    );
}

/// A remote-write body with one `forged` series labelled `job`=`job`, at `ts_ms`.
fn forged_body(job: &str, ts_ms: i64) -> Vec<u8> {
    let batch = Batch {
        timestamp_ms: ts_ms,
        families: vec![Family::gauge("forged", "a stolen token at work").with(vec![], 1.0)],
    };
    encode(&batch, &[("job".into(), job.into())]).data.to_vec()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stolen_token_reaches_no_other_path_and_cannot_pass_for_another_job() {
    let vm = VictoriaMetrics::start().await;
    let vmauth = Vmauth::start(&vm).await;
    let client = reqwest::Client::new();
    let now = common::now_ms();
    let remote_write = |path: &str, body: Vec<u8>| {
        client
            .post(vmauth.url(path))
            .bearer_auth(TOKEN)
            .header("Content-Encoding", "snappy")
            .header("Content-Type", "application/x-protobuf")
            .body(body)
    };
    // Paths a token that may only write must not reach, each with something to write.
    let attempts = [
        (
            "/api/v1/import",
            client
                .post(vmauth.url("/api/v1/import"))
                .bearer_auth(TOKEN)
                .body(format!(
                    "{{\"metric\":{{\"__name__\":\"forged\",\"job\":\"import\"}},\"values\":[1],\"timestamps\":[{now}]}}"
                )),
        ),
        (
            "/internal/resetRollupResultCache",
            client
                .get(vmauth.url("/internal/resetRollupResultCache"))
                .bearer_auth(TOKEN),
        ),
        ("//api/v1/write", remote_write("//api/v1/write", forged_body("doubleslash", now))),
        (
            "/api/v1/write?extra_label=job=override",
            remote_write(
                "/api/v1/write?extra_label=job=override",
                forged_body("body", now + 1),
            ),
        ),
        (
            "/api/v1/write (body job=other)",
            remote_write("/api/v1/write", forged_body("other", now + 2)),
        ),
    ];
    let mut answers = Vec::new();
    for (what, request) in attempts {
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        let body = response.text().await.unwrap_or_default();
        println!("{what}: {status} {}", body.trim());
        answers.push((what, status));
    }
    for (what, status) in &answers[..2] {
        assert!(!(200..300).contains(status), "{what} answered {status}");
    }
    vm.settle().await;
    // Whatever got through is stored under the pinned job, and only under it.
    let stored = vm.export("{__name__=\"forged\"}").await;
    let jobs: Vec<(Option<&str>, usize)> = stored
        .iter()
        .map(|s| (s.label("job"), s.timestamps.len()))
        .collect();
    println!("stored: {jobs:?}");
    assert!(
        stored.iter().all(|s| s.label("job") == Some("jellyfin")),
        "a forged job landed: {jobs:?}"
    );
    // The plain write route works, and the client's extra_label changed nothing.
    let timestamps: Vec<i64> = stored.iter().flat_map(|s| s.timestamps.clone()).collect();
    assert!(
        timestamps.contains(&(now + 1)) && timestamps.contains(&(now + 2)),
        "{timestamps:?}"
    );
    // Nothing else reached VictoriaMetrics' data under any other name either.
    let all = vm.export("{__name__=~\".+\",job!=\"jellyfin\"}").await;
    assert!(
        all.is_empty(),
        "{:?}",
        all.iter().map(|s| &s.metric).collect::<Vec<_>>()
    );
}
