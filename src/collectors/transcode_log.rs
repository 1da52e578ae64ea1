//! `transcode_log`: ffmpeg runs that Jellyfin logged as failed, read from its server log.
//!
//! Jellyfin's TranscodeManager logs `FFmpeg exited with code {N}` at error level when a
//! transcode's ffmpeg exits non-zero (and at information level for 0). Its server log rolls
//! daily (`log_YYYYMMDD.log`). The collector reads only what was appended since its last
//! look: per file, the offset after the last complete line, kept in
//! `state_dir/transcode-log.json`, so restarts neither recount nor miss lines. A new file
//! (rotation) is read from its start; a file shorter than its offset was replaced and is
//! read from its start too. A first start only records the current ends: history is not
//! counted.

use std::collections::BTreeMap;
use std::io::{Read, Seek, SeekFrom};
use std::path::PathBuf;

use super::{CollectError, Collector};
use crate::sample::Family;
use crate::state_file::StateFile;

const MARKER: &str = "FFmpeg exited with code ";
/// At most this much is read per file per cycle, so a huge backlog is spread over cycles.
const MAX_READ: u64 = 16 << 20;

pub struct TranscodeLog {
    dir: PathBuf,
    file: StateFile,
    offsets: Option<BTreeMap<String, u64>>,
    failures: u64,
}

impl TranscodeLog {
    pub fn new(dir: PathBuf, file: StateFile) -> Self {
        let offsets = file.load();
        TranscodeLog {
            dir,
            file,
            offsets,
            failures: 0,
        }
    }

    /// The server logs in the folder, oldest first (the date in the name sorts).
    fn logs(&self) -> std::io::Result<Vec<(String, u64)>> {
        let mut logs = Vec::new();
        for entry in std::fs::read_dir(&self.dir)? {
            let entry = entry?;
            let name = entry.file_name().to_string_lossy().to_string();
            if name.starts_with("log_") && name.ends_with(".log") {
                logs.push((name, entry.metadata()?.len()));
            }
        }
        logs.sort();
        Ok(logs)
    }
}

/// Failures in `text` (complete lines only) and how many bytes those lines take.
pub fn scan(text: &[u8]) -> (u64, usize) {
    let complete = text.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1);
    let failures = String::from_utf8_lossy(&text[..complete])
        .lines()
        .filter_map(|line| line.split(MARKER).nth(1))
        .filter(|rest| rest.trim().parse::<i64>().is_ok_and(|code| code != 0))
        .count() as u64;
    (failures, complete)
}

#[async_trait::async_trait]
impl Collector for TranscodeLog {
    fn name(&self) -> &'static str {
        "transcode_log"
    }

    async fn collect(&mut self, out: &mut Vec<Family>) -> Result<(), CollectError> {
        let logs = self
            .logs()
            .map_err(|e| format!("transcode log folder {}: {e}", self.dir.display()))?;
        let first_start = self.offsets.is_none();
        let known = self.offsets.take().unwrap_or_default();
        let mut offsets = BTreeMap::new();
        for (name, len) in logs {
            let start = match known.get(&name) {
                _ if first_start => len,
                Some(offset) if *offset <= len => *offset,
                _ => 0, // new since the last look (rotation), or replaced
            };
            let mut offset = start;
            if len > start {
                let mut file = std::fs::File::open(self.dir.join(&name))?;
                file.seek(SeekFrom::Start(start))?;
                let mut text = Vec::new();
                file.take((len - start).min(MAX_READ))
                    .read_to_end(&mut text)?;
                let (failures, used) = scan(&text);
                self.failures += failures;
                offset += used as u64;
            }
            offsets.insert(name, offset);
        }
        if (offsets != known || first_start)
            && let Err(e) = self.file.save(&offsets)
        {
            tracing::warn!(error = %e, "cannot save the transcode-log offsets");
        }
        self.offsets = Some(offsets);
        out.push(
            Family::counter(
                "jellyfin_transcode_failures_total",
                "ffmpeg runs Jellyfin logged as exiting non-zero (FFmpeg exited with code N).",
            )
            .with(vec![], self.failures as f64),
        );
        Ok(())
    }
}

#[cfg(test)]
mod tests {
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

    async fn count(collector: &mut TranscodeLog) -> f64 {
        let mut out = Vec::new();
        collector.collect(&mut out).await.unwrap();
        out[0].samples[0].value
    }

    #[test]
    fn counts_non_zero_exits_on_complete_lines_only() {
        let text = format!("{FAILED}{OK}{OTHER}{FAILED}[2026-11-25] [ERR] FFmpeg exited with co");
        let (failures, used) = scan(text.as_bytes());
        assert_eq!(failures, 2);
        assert_eq!(used, FAILED.len() * 2 + OK.len() + OTHER.len());
    }

    #[tokio::test]
    async fn history_is_skipped_appends_rotation_and_restarts_are_counted_once() {
        let logs = tempfile::tempdir().unwrap();
        let state = tempfile::tempdir().unwrap();
        let new = || {
            TranscodeLog::new(
                logs.path().into(),
                StateFile::new(state.path(), "transcode-log.json", true),
            )
        };
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
}
