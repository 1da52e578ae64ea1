use std::io::Write;

use super::*;

const FAILED: &str = "[2026-11-25 09:14:03.123 +00:00] [ERR] [42] MediaBrowser.MediaEncoding.Transcoding.TranscodeManager: FFmpeg exited with code 1\n";
const OK: &str = "[2026-11-25 09:15:00.000 +00:00] [INF] [43] MediaBrowser.MediaEncoding.Transcoding.TranscodeManager: FFmpeg exited with code 0\n";
const OTHER: &str = "[2026-11-25 09:15:01.000 +00:00] [INF] [7] Emby.Server.Implementations.Session.SessionManager: Playback stopped\n";

fn append(dir: &std::path::Path, name: &str, text: &str) {
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join(name))
        .unwrap();
    f.write_all(text.as_bytes()).unwrap();
}

fn collector(logs: &std::path::Path, state: &std::path::Path) -> TranscodeLog {
    TranscodeLog::new(
        logs.into(),
        StateFile::new(state, "transcode-log.json", true),
    )
}

/// (failures, starts by hw_accel with a non-zero count)
async fn counts(collector: &mut TranscodeLog) -> (f64, Vec<(String, f64)>) {
    let mut out = Vec::new();
    collector.collect(&mut out).await.unwrap();
    let starts = out[1]
        .samples
        .iter()
        .filter(|s| s.value > 0.0)
        .map(|s| (s.labels[0].1.clone(), s.value))
        .collect();
    (out[0].samples[0].value, starts)
}

async fn count(collector: &mut TranscodeLog) -> f64 {
    counts(collector).await.0
}

fn job(kind: &str, n: usize) -> String {
    format!(
        "FFmpeg.{kind}-2026-11-25_09-14-{n:02}_5f3b6c1d2e4a4b7c8d9e0f1a2b3c4d5e_1a2b3c{n:02}.log"
    )
}

fn job_text(codec: &str) -> String {
    format!(
        "{{\"Protocol\":\"File\",\"Id\":\"5f3b6c1d2e4a4b7c8d9e0f1a2b3c4d5e\"}}\n\n/usr/lib/jellyfin-ffmpeg/ffmpeg -i file:\"/media/a.mkv\" -codec:v:0 {codec} -codec:a:0 aac -f hls\n\nffmpeg version 7.0.2-Jellyfin\n"
    )
}

#[tokio::test]
async fn history_is_skipped_appends_rotation_and_restarts_are_counted_once() {
    let logs = tempfile::tempdir().unwrap();
    let state = tempfile::tempdir().unwrap();
    let new = || collector(logs.path(), state.path());
    append(logs.path(), "log_20261124.log", &FAILED.repeat(5));
    let mut c = new();
    assert_eq!(count(&mut c).await, 0.0, "history is not counted");
    append(logs.path(), "log_20261124.log", &format!("{FAILED}{OK}"));
    // A line being written is not counted until it is complete.
    append(logs.path(), "log_20261124.log", &FAILED[..40]);
    assert_eq!(count(&mut c).await, 1.0);
    append(logs.path(), "log_20261124.log", &FAILED[40..]);
    append(logs.path(), "log_20261125.log", &format!("{OTHER}{FAILED}")); // rotation
    assert_eq!(count(&mut c).await, 3.0);
    // Restart: nothing is counted again; the counter starts over from what is new.
    let mut c = new();
    assert_eq!(count(&mut c).await, 0.0);
    append(logs.path(), "log_20261125.log", FAILED);
    assert_eq!(count(&mut c).await, 1.0);
    // A replaced (shorter) file is read from its start.
    std::fs::write(logs.path().join("log_20261125.log"), FAILED).unwrap();
    assert_eq!(count(&mut c).await, 2.0);
}

#[tokio::test]
async fn an_overlong_line_is_skipped_and_counting_goes_on() {
    let logs = tempfile::tempdir().unwrap();
    let state = tempfile::tempdir().unwrap();
    let new = || {
        let mut c = collector(logs.path(), state.path());
        c.window = 1024;
        c
    };
    append(logs.path(), "log_20261125.log", OK);
    let mut c = new();
    assert_eq!(count(&mut c).await, 0.0);
    // 3.5 windows without a newline, which even looks like a failure inside, then failures.
    let overlong = format!("[x] {}", FAILED.trim_end().repeat(30))[..3584].to_string();
    append(logs.path(), "log_20261125.log", &overlong);
    assert_eq!(count(&mut c).await, 0.0);
    // A restart in the middle of the skip goes on skipping.
    let mut c = new();
    assert_eq!(count(&mut c).await, 0.0);
    // The overlong line ends; two failures follow.
    append(
        logs.path(),
        "log_20261125.log",
        &format!("\n{FAILED}{FAILED}"),
    );
    let mut last = 0.0;
    for _ in 0..4 {
        last = count(&mut c).await;
    }
    assert_eq!(
        last, 2.0,
        "the overlong line's tail is not a line; both failures after it count"
    );
    append(logs.path(), "log_20261125.log", FAILED);
    assert_eq!(count(&mut c).await, 3.0);
}

#[tokio::test]
async fn video_transcode_starts_come_from_the_job_files_once_each() {
    let logs = tempfile::tempdir().unwrap();
    let state = tempfile::tempdir().unwrap();
    let new = || collector(logs.path(), state.path());
    append(logs.path(), &job("Transcode", 1), &job_text("libx264")); // history
    let mut c = new();
    assert_eq!(counts(&mut c).await.1, []);
    append(logs.path(), &job("Transcode", 2), &job_text("h264_nvenc"));
    append(logs.path(), &job("Transcode", 3), &job_text("libx264"));
    append(logs.path(), &job("Remux", 4), &job_text("copy"));
    append(logs.path(), &job("DirectStream", 5), &job_text("copy"));
    // An audio-only transcode has the Transcode prefix but encodes no video.
    append(
        logs.path(),
        &job("Transcode", 6),
        "{\"Protocol\":\"File\"}\n\n/usr/lib/jellyfin-ffmpeg/ffmpeg -i file:\"/music/a.flac\" -map 0:0 -codec:a:0 libmp3lame -vn\n\n",
    );
    // A job file whose command line is not flushed yet waits for the next cycle.
    append(
        logs.path(),
        &job("Transcode", 7),
        "{\"Protocol\":\"File\"}\n\n/usr/lib/jellyfin-ffmpeg/ffmpeg -i x -codec:v:0 hevc_va",
    );
    let want = |v: &[(&str, f64)]| {
        v.iter()
            .map(|(k, n)| (k.to_string(), *n))
            .collect::<Vec<_>>()
    };
    assert_eq!(
        counts(&mut c).await.1,
        want(&[("none", 1.0), ("nvenc", 1.0)])
    );
    append(logs.path(), &job("Transcode", 7), "api\n\nffmpeg version\n");
    assert_eq!(
        counts(&mut c).await.1,
        want(&[("none", 1.0), ("nvenc", 1.0), ("vaapi", 1.0)])
    );
    // Restart: nothing counted again; a new job is.
    let mut c = new();
    assert_eq!(counts(&mut c).await.1, []);
    append(logs.path(), &job("Transcode", 8), &job_text("hevc_qsv"));
    assert_eq!(counts(&mut c).await.1, want(&[("qsv", 1.0)]));
}

#[tokio::test]
async fn the_state_of_the_previous_version_is_taken_over_without_recounting() {
    let logs = tempfile::tempdir().unwrap();
    let state = tempfile::tempdir().unwrap();
    append(logs.path(), "log_20261125.log", FAILED);
    append(logs.path(), &job("Transcode", 1), &job_text("libx264"));
    std::fs::write(
        state.path().join("transcode-log.json"),
        format!("{{\"log_20261125.log\":{}}}", FAILED.len()),
    )
    .unwrap();
    let mut c = collector(logs.path(), state.path());
    append(logs.path(), "log_20261125.log", FAILED);
    let (failures, starts) = counts(&mut c).await;
    assert_eq!(failures, 1.0, "the offset was kept");
    assert_eq!(
        starts,
        [],
        "job files already there are recorded, not counted"
    );
}
