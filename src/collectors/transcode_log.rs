//! `transcode_log`: ffmpeg jobs started and failed, read from Jellyfin's log folder.
//!
//! Two sources, both written by `TranscodeManager`, so the failure rate divides like by like:
//! - starts: one per-job file per ffmpeg start, named by kind ([`job_files`]); each video
//!   transcode counts once in `jellyfin_transcode_total{hw_accel}`;
//! - failures: the server log's exit events ([`server_log`]), each failed job once, not the
//!   exits the server caused by stopping ffmpeg itself.
//!
//! The server log rolls daily (`log_YYYYMMDD.log`). Only what was appended since the last look
//! is read: per file, the offset after the last complete line. A new file (rotation) is read
//! from its start; a file shorter than its offset was replaced and is read from its start
//! too. A line longer than the read window (16 MiB) is skipped to its end, logged, and
//! counting goes on after it. Offsets, the job files already counted and the stops not yet
//! matched are kept in `state_dir/transcode-log.json`, so restarts neither recount nor miss.
//! A first start only records what is there: history is not counted.

mod job_files;
mod server_log;

use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Seek, SeekFrom};
use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};

use super::{CollectError, Collector};
use crate::sample::Family;
use crate::state_file::StateFile;
use job_files::{HEAD_BYTES, Kind};
pub(crate) use server_log::{Exits, scan};

/// At most this much is read per server-log file per cycle, so a huge backlog is spread over
/// cycles; a line longer than this is skipped.
const WINDOW: u64 = 16 << 20;
/// A job file whose command line is still unreadable after this long is counted as `unknown`.
const COMMAND_LINE_GRACE: Duration = Duration::from_secs(60);

/// What survives a restart.
#[derive(Debug, Default, Clone, PartialEq, Serialize, Deserialize)]
pub struct Saved {
    /// Per server-log file: the offset read up to.
    offsets: BTreeMap<String, u64>,
    /// Server-log files whose offset sits inside an overlong line being skipped.
    #[serde(default)]
    skipping: BTreeSet<String>,
    #[serde(default)]
    exits: Exits,
    /// Job files already counted (or present at the first start); None: not known yet (an
    /// older state file), so the files present are recorded, not counted.
    #[serde(default)]
    jobs: Option<BTreeSet<String>>,
}

/// The state file as this version writes it, or as the one before (offsets only).
#[derive(Deserialize)]
#[serde(untagged)]
enum Stored {
    Now(Saved),
    Offsets(BTreeMap<String, u64>),
}

pub struct TranscodeLog {
    dir: PathBuf,
    file: StateFile,
    saved: Option<Saved>,
    window: u64,
    failures: u64,
    starts: BTreeMap<String, u64>,
}

/// The folder's entries: server logs (oldest first, the date in the name sorts) and job files.
struct Listing {
    server_logs: Vec<(String, u64)>,
    /// (name, kind, last modified)
    jobs: Vec<(String, Kind, Option<SystemTime>)>,
}

impl TranscodeLog {
    pub fn new(dir: PathBuf, file: StateFile) -> Self {
        let saved = file.load::<Stored>().map(|stored| match stored {
            Stored::Now(saved) => saved,
            Stored::Offsets(offsets) => Saved {
                offsets,
                ..Saved::default()
            },
        });
        TranscodeLog {
            dir,
            file,
            saved,
            window: WINDOW,
            failures: 0,
            starts: job_files::hw_accels()
                .map(|hw| (hw.to_string(), 0))
                .collect(),
        }
    }

    fn list(&self) -> std::io::Result<Listing> {
        let mut listing = Listing {
            server_logs: Vec::new(),
            jobs: Vec::new(),
        };
        for entry in std::fs::read_dir(&self.dir)? {
            let entry = entry?;
            let name = entry.file_name().to_string_lossy().to_string();
            if name.starts_with("log_") && name.ends_with(".log") {
                listing.server_logs.push((name, entry.metadata()?.len()));
            } else if let Some(kind) = job_files::kind(&name) {
                let modified = entry.metadata().ok().and_then(|m| m.modified().ok());
                listing.jobs.push((name, kind, modified));
            }
        }
        listing.server_logs.sort();
        listing.jobs.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(listing)
    }

    /// Reads one window of a server log from `start`; returns the new offset.
    fn read_server_log(
        &mut self,
        name: &str,
        start: u64,
        len: u64,
        skipping: &mut bool,
        exits: &mut Exits,
    ) -> std::io::Result<u64> {
        let mut file = std::fs::File::open(self.dir.join(name))?;
        file.seek(SeekFrom::Start(start))?;
        let mut text = Vec::new();
        file.take((len - start).min(self.window))
            .read_to_end(&mut text)?;
        let mut from = 0;
        if *skipping {
            match text.iter().position(|b| *b == b'\n') {
                Some(end) => {
                    from = end + 1;
                    *skipping = false;
                }
                None => return Ok(start + text.len() as u64),
            }
        }
        let (failures, complete) = scan(&text[from..], exits);
        self.failures += failures;
        let mut used = from + complete;
        if complete == 0 && from == 0 && text.len() as u64 == self.window {
            // One line fills the whole window: skip it to its end, whatever it holds.
            tracing::warn!(
                file = %self.dir.join(name).display(),
                offset = start,
                bytes = self.window,
                "a server-log line longer than the read window is skipped"
            );
            *skipping = true;
            used = text.len();
        }
        Ok(start + used as u64)
    }

    /// Counts the video transcodes among job files not seen before; returns the names to keep.
    fn count_jobs(
        &mut self,
        jobs: &[(String, Kind, Option<SystemTime>)],
        known: Option<&BTreeSet<String>>,
    ) -> BTreeSet<String> {
        let mut seen = BTreeSet::new();
        for (name, kind, modified) in jobs {
            let Some(known) = known else {
                seen.insert(name.clone()); // first sight: recorded, not counted
                continue;
            };
            if known.contains(name) || *kind != Kind::Transcode {
                seen.insert(name.clone());
                continue;
            }
            let head = self.read_head(name);
            let hw = match head.as_deref().and_then(job_files::command_line) {
                Some(command) => job_files::video_hw_accel(&command),
                None => {
                    let old = modified
                        .and_then(|m| m.elapsed().ok())
                        .is_some_and(|age| age > COMMAND_LINE_GRACE);
                    let full = head.as_ref().is_some_and(|h| h.len() as u64 >= HEAD_BYTES);
                    if !(old || full) {
                        continue; // still being written: next cycle
                    }
                    Some("unknown")
                }
            };
            if let Some(hw) = hw {
                *self.starts.entry(hw.to_string()).or_default() += 1;
            }
            seen.insert(name.clone());
        }
        seen
    }

    fn read_head(&self, name: &str) -> Option<Vec<u8>> {
        let file = std::fs::File::open(self.dir.join(name)).ok()?;
        let mut head = Vec::new();
        file.take(HEAD_BYTES).read_to_end(&mut head).ok()?;
        Some(head)
    }
}

#[async_trait::async_trait]
impl Collector for TranscodeLog {
    fn name(&self) -> &'static str {
        "transcode_log"
    }

    async fn collect(&mut self, out: &mut Vec<Family>) -> Result<(), CollectError> {
        let listing = self
            .list()
            .map_err(|e| format!("transcode log folder {}: {e}", self.dir.display()))?;
        let first_start = self.saved.is_none();
        let known = self.saved.take().unwrap_or_default();
        let mut now = Saved::default();
        let mut exits = known.exits.clone();
        for (name, len) in &listing.server_logs {
            let start = match known.offsets.get(name) {
                _ if first_start => *len,
                Some(offset) if offset <= len => *offset,
                _ => 0, // new since the last look (rotation), or replaced
            };
            let mut skipping = !first_start && start > 0 && known.skipping.contains(name);
            let mut offset = start;
            if *len > start {
                offset = self
                    .read_server_log(name, start, *len, &mut skipping, &mut exits)
                    .map_err(|e| format!("{}: {e}", self.dir.join(name).display()))?;
            }
            now.offsets.insert(name.clone(), offset);
            if skipping {
                now.skipping.insert(name.clone());
            }
        }
        now.exits = exits;
        let known_jobs = if first_start {
            None
        } else {
            known.jobs.as_ref()
        };
        now.jobs = Some(self.count_jobs(&listing.jobs, known_jobs));
        if (now != known || first_start)
            && let Err(e) = self.file.save(&now)
        {
            tracing::warn!(error = %e, "cannot save the transcode-log state");
        }
        self.saved = Some(now);
        out.push(
            Family::counter(
                "jellyfin_transcode_failures_total",
                "ffmpeg jobs that failed (FFmpeg exited with code N, N != 0, in Jellyfin's server log), each once; exits after the server stopped the job are not failures.",
            )
            .with(vec![], self.failures as f64),
        );
        let mut starts = Family::counter(
            "jellyfin_transcode_total",
            "Video transcodes started, from Jellyfin's per-job FFmpeg.Transcode-*.log files, by the acceleration the ffmpeg command line uses.",
        );
        for (hw, n) in &self.starts {
            starts.push(vec![("hw_accel", hw.clone())], *n as f64);
        }
        out.push(starts);
        Ok(())
    }
}

#[cfg(test)]
mod tests;
