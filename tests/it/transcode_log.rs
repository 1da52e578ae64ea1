//! The transcode-log collector end to end, on log lines shaped as Jellyfin writes them
//! (fixtures/jellyfin/server-log.transcode-exits.synthetic.log, ffmpeg-job.transcode.synthetic.log):
//! a start-up failure with its exception-trace echo counts once, a job the server stopped
//! and killed (137) is no failure, video transcode starts come from the per-job files by
//! acceleration (remux, direct-stream and audio-only jobs are not transcodes), across
//! rotation; the history present at the first start is not counted. Checked exactly in
//! VictoriaMetrics, with the failure rate as the alert computes it.

use crate::common;

use std::io::Write;

use common::agent::AgentDir;
use common::fake_jellyfin::FakeJellyfin;
use common::servers::VictoriaMetrics;

/// What the server-log fixture holds: two failed jobs (the start-up failure, echoed in its
/// trace, and a crash with 234); the 137 after "Stopping ffmpeg" and the exits 0 are not.
const FAILURES_PER_FIXTURE: f64 = 2.0;

fn append(dir: &std::path::Path, name: &str, text: &str) {
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join(name))
        .unwrap();
    f.write_all(text.as_bytes()).unwrap();
}

/// A per-job file of `kind` whose command line is the fixture's, with `replace` applied.
fn job(dir: &std::path::Path, kind: &str, n: u32, replace: &[(&str, &str)]) {
    let mut text = common::fixture("ffmpeg-job.transcode.synthetic.log");
    for (from, to) in replace {
        assert!(text.contains(from), "{from}");
        text = text.replace(from, to);
    }
    let name = format!(
        "FFmpeg.{kind}-2026-11-25_20-0{n}-00_5f3b6c1d2e4a4b7c8d9e0f1a2b3c4d5e_0a1b2c{n:02}.log"
    );
    append(dir, &name, &text);
}

const HW_DECODE: &str = "-init_hw_device cuda=cu:0 -filter_hw_device cu -hwaccel cuda -hwaccel_output_format cuda -noautorotate -hwaccel_flags +unsafe_output -threads 1 ";

async fn cycles(jellyfin: &FakeJellyfin, n: usize) {
    let seen = jellyfin.requests_to("/System/Info").len();
    jellyfin.wait_for_requests("/System/Info", seen + n).await;
}

fn last(series: &common::servers::Series) -> f64 {
    let i = (0..series.timestamps.len())
        .max_by_key(|i| series.timestamps[*i])
        .unwrap();
    series.values[i]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failures_once_without_server_stops_and_starts_from_job_files() {
    let jellyfin = FakeJellyfin::start("").await;
    let vm = VictoriaMetrics::start().await;
    let logs = tempfile::tempdir().unwrap();
    let server_log = common::fixture("server-log.transcode-exits.synthetic.log");
    append(logs.path(), "log_20261124.log", &server_log.repeat(3)); // history
    job(logs.path(), "Transcode", 1, &[]); // history
    let extra = format!(
        "[collectors.transcode_log]\ndir = \"{}\"\ninterval = \"1s\"\n",
        logs.path().display()
    );
    let dir = AgentDir::pushing(&jellyfin, &vm, &extra);
    let mut agent = dir.start();
    cycles(&jellyfin, 2).await;
    append(logs.path(), "log_20261124.log", &server_log);
    job(logs.path(), "Transcode", 2, &[]); // nvenc
    job(
        logs.path(),
        "Transcode",
        3,
        &[
            (HW_DECODE, ""),
            ("h264_nvenc -preset p1", "libx264 -preset veryfast"),
        ],
    ); // software
    job(
        logs.path(),
        "Remux",
        4,
        &[
            ("-codec:v:0 h264_nvenc", "-codec:v:0 copy"),
            ("-codec:a:0 libfdk_aac", "-codec:a:0 copy"),
        ],
    );
    job(
        logs.path(),
        "DirectStream",
        5,
        &[("-codec:v:0 h264_nvenc", "-codec:v:0 copy")],
    );
    // Audio-only: TranscodeManager names it Transcode too, but no video is encoded.
    job(
        logs.path(),
        "Transcode",
        6,
        &[(
            "-map 0:0 -map 0:1 -map -0:s -codec:v:0 h264_nvenc -preset p1",
            "-map 0:1 -vn",
        )],
    );
    cycles(&jellyfin, 2).await;
    // Rotation: the next day's file.
    append(logs.path(), "log_20261125.log", &server_log);
    job(
        logs.path(),
        "Transcode",
        7,
        &[
            (
                "-hwaccel cuda -hwaccel_output_format cuda",
                "-hwaccel vaapi -hwaccel_output_format vaapi",
            ),
            ("h264_nvenc", "h264_vaapi"),
        ],
    );
    cycles(&jellyfin, 3).await;
    assert!(agent.stop().success());
    vm.settle().await;

    let failures = vm
        .export("{__name__=\"jellyfin_transcode_failures_total\"}")
        .await;
    assert_eq!(last(&failures[0]), 2.0 * FAILURES_PER_FIXTURE);
    let mut first: Vec<(i64, f64)> = failures[0]
        .timestamps
        .iter()
        .copied()
        .zip(failures[0].values.iter().copied())
        .collect();
    first.sort_by_key(|p| p.0);
    assert_eq!(first[0].1, 0.0, "history is not counted");
    assert!(
        first.windows(2).all(|w| w[0].1 <= w[1].1),
        "a counter: {first:?}"
    );

    // One producer: the sessions collector (on, with transcoding sessions) leaves the family
    // to the log folder's count, so no series ever steps back.
    let starts = vm.export("{__name__=\"jellyfin_transcode_total\"}").await;
    for s in &starts {
        let mut points: Vec<(i64, f64)> = s
            .timestamps
            .iter()
            .copied()
            .zip(s.values.iter().copied())
            .collect();
        points.sort_by_key(|p| p.0);
        assert!(
            points
                .windows(2)
                .all(|w| w[0].1 <= w[1].1 && w[0].0 < w[1].0),
            "{:?}: {points:?}",
            s.metric
        );
    }
    let by_hw: std::collections::BTreeMap<String, f64> = starts
        .iter()
        .map(|s| (s.metric["hw_accel"].clone(), last(s)))
        .collect();
    let want: std::collections::BTreeMap<String, f64> = [
        ("amf", 0.0),
        ("none", 1.0),
        ("nvenc", 1.0),
        ("qsv", 0.0),
        ("rkmpp", 0.0),
        ("unknown", 0.0),
        ("v4l2m2m", 0.0),
        ("vaapi", 1.0),
        ("videotoolbox", 0.0),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    assert_eq!(by_hw, want);

    // The alert's ratio, from one source: 4 failed jobs over 3 video transcodes started.
    let ratio = common::servers::query(
        &vm.base_url(),
        "sum(max_over_time(jellyfin_transcode_failures_total[10m])) / (sum(max_over_time(jellyfin_transcode_total[10m])) > 0)",
        None,
    )
    .await;
    assert_eq!(ratio.len(), 1, "{ratio:?}");
    assert_eq!(ratio[0]["value"][1], "1.3333333333333333");
    assert!(dir.state().join("transcode-log.json").is_file());
}
