//! What the Jellyfin host offers the optional collectors, set up for a test: a log folder
//! (transcode log), a running process standing in for Jellyfin (process collector), the
//! GeoIP test database (sessions by country), and activity entries newer than the agent.

use std::process::{Child, Command, Stdio};

use super::fake_jellyfin::{FakeJellyfin, activity_entry, jellyfin_date};

pub struct JellyfinHost {
    dir: tempfile::TempDir,
    stand_in: Child,
}

impl JellyfinHost {
    pub fn new() -> JellyfinHost {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("log_20261125.log"), "").expect("log file");
        let stand_in = Command::new("sleep")
            .arg("300")
            .stdin(Stdio::null())
            .spawn()
            .expect("sleep");
        std::fs::write(dir.path().join("jellyfin.pid"), stand_in.id().to_string())
            .expect("pid file");
        JellyfinHost { dir, stand_in }
    }

    /// Jellyfin starts a video transcode (its per-job ffmpeg log, as in
    /// fixtures/jellyfin/ffmpeg-job.transcode.synthetic.log) that fails at start-up (the
    /// server log's exit event with its exception trace, from
    /// server-log.transcode-exits.synthetic.log).
    pub fn failing_transcode(&self) {
        use std::io::Write;
        std::fs::write(
            self.dir.path().join(
                "FFmpeg.Transcode-2026-11-25_20-01-12_5f3b6c1d2e4a4b7c8d9e0f1a2b3c4d5e_0a1b2c3d.log",
            ),
            super::fixture("ffmpeg-job.transcode.synthetic.log"),
        )
        .expect("job log");
        let exits = super::fixture("server-log.transcode-exits.synthetic.log");
        let start_up_failure: String = exits.lines().take(7).map(|l| format!("{l}\n")).collect();
        std::fs::OpenOptions::new()
            .append(true)
            .open(self.dir.path().join("log_20261125.log"))
            .and_then(|mut f| f.write_all(start_up_failure.as_bytes()))
            .expect("server log");
    }

    /// Config turning every optional collector on against this host, activity every second.
    pub fn collectors_toml(&self) -> String {
        format!(
            "[collectors.sessions]\ngeoip_database = \"{}/tests/fixtures/geoip/GeoLite2-Country-Test.mmdb\"\n\
             [collectors.activity]\ninterval = \"1s\"\n\
             [collectors.transcode_log]\ndir = \"{}\"\n\
             [collectors.process]\npid_file = \"{}\"\n",
            env!("CARGO_MANIFEST_DIR"),
            self.dir.path().display(),
            self.dir.path().join("jellyfin.pid").display()
        )
    }
}

impl Drop for JellyfinHost {
    fn drop(&mut self) {
        let _ = self.stand_in.kill();
        let _ = self.stand_in.wait();
    }
}

/// The captured activity log with `newer` entries (id, Type, Severity) on top. A first start
/// counts from now, so only entries that appear after it are counted.
pub fn activity_with(newer: &[(u64, &str, &str)]) -> String {
    let mut entries: serde_json::Value =
        serde_json::from_str(&super::fixture("activity-log.synthetic.json")).expect("fixture");
    for (id, kind, severity) in newer {
        let entry = serde_json::json!({ "Id": id, "Name": "…", "Type": kind,
            "Date": "2026-11-25T10:00:00.0000000Z", "UserId": "00000000000000000000000000000000",
            "Severity": severity });
        entries["Items"]
            .as_array_mut()
            .expect("Items")
            .insert(0, entry);
    }
    entries.to_string()
}

/// Two plays start on `jellyfin` (a transcode and a direct play, from the 10.11 capture), and
/// the server logs them (PlaybackStartLogger) after a lock-out and a failed login: entries
/// newer than the agent's start, which it counts.
pub fn two_plays_start(jellyfin: &FakeJellyfin) {
    jellyfin.route(
        "/Sessions",
        super::fixture("sessions.transcoding.synthetic.10.11.json"),
    );
    // Entries newer than the agent's start (older ones are history, never counted).
    jellyfin.route(
        "/System/ActivityLog/Entries",
        activity_with(&[
            (200, "UserLockedOut", "Warning"),
            (201, "AuthenticationFailed", "Error"),
        ]),
    );
    // And the server's record of the two plays that just started (PlaybackStartLogger).
    for (id, kind, user, item) in [
        (
            202,
            "VideoPlayback",
            "1b3c5d7e9f0a4b2c8d6e0f1a2b3c4d5e",
            "0aa1bb2cc3dd4ee5ff6a7b8c9d0e1f2a",
        ),
        (
            203,
            "AudioPlayback",
            "2c4e6a8b0d1f4a3b9c7d5e3f1a2b4c6d",
            "1bb2cc3dd4ee5ff6a7b8c9d0e1f2a3b4",
        ),
    ] {
        jellyfin.log_activity(activity_entry(
            id,
            kind,
            &jellyfin_date(super::now_ms()),
            Some(user),
            Some(item),
        ));
    }
}
