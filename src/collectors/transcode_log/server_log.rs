//! Jellyfin's server log (`log_YYYYMMDD.log`), line by line: which ffmpeg exits were failures.
//!
//! Serilog writes each event as `[{Timestamp:yyyy-MM-dd HH:mm:ss.fff zzz}] [{Level:u3}]
//! [{ThreadId}] {SourceContext}: {Message}{NewLine}{Exception}`
//! (`Jellyfin.Server/Resources/Configuration/logging.json`, v10.9.11 to v12.0-rc5), so an
//! exception's trace follows on lines that do not start with `[`.
//!
//! - Every ffmpeg job ends with one event of `TranscodeManager.OnFfMpegProcessExited`:
//!   `FFmpeg exited with code N` (INF for 0, ERR otherwise). A job that dies during start-up
//!   also throws `FfmpegException("FFmpeg exited with code N")`, which `ExceptionMiddleware`
//!   logs with its stack trace: the same text again, on a trace line. Only the event counts.
//! - When the server stops a job itself (the viewer stopped, seeked or changed quality; the
//!   kill timer), `TranscodingJob.Stop` logs `Stopping ffmpeg process with q command for
//!   {Path}`, writes `q` to ffmpeg, waits 5 s and then kills it: the exit that follows (0 after
//!   `q`, 255 when ffmpeg was interrupted, 137 after the kill, 143 after a SIGTERM) was caused
//!   by the server, not a failure. The exit line does not name its job, so a stop is matched
//!   with the next such exit within [`STOP_WINDOW_MS`]. A 137 without a stop before it (the
//!   kernel's OOM killer) stays a failure.

use serde::{Deserialize, Serialize};

const EXITED: &str = "FFmpeg exited with code ";
const STOPPING: &str = "Stopping ffmpeg process with q command for ";
/// Exit codes of a job the server stopped: `q` (0), interrupted (255), killed (137 =
/// 128 + SIGKILL), terminated (143 = 128 + SIGTERM).
const STOP_CODES: [i64; 4] = [0, 255, 137, 143];
/// How long after its stop an exit is still the stopped job's: Stop waits 5 s before the kill.
pub const STOP_WINDOW_MS: i64 = 30_000;

/// One log event's header and message.
#[derive(Debug, PartialEq)]
pub struct Event<'a> {
    /// Unix ms, when the timestamp parses.
    pub at_ms: Option<i64>,
    pub level: &'a str,
    pub context: &'a str,
    pub message: &'a str,
}

/// The event a line starts, or None for a trace or continuation line.
pub fn parse_event(line: &str) -> Option<Event<'_>> {
    let rest = line.strip_prefix('[')?;
    let (timestamp, rest) = rest.split_once("] [")?;
    let (level, rest) = rest.split_once("] [")?;
    let (thread, rest) = rest.split_once("] ")?;
    if level.len() != 3 || !thread.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let (context, message) = rest.split_once(": ")?;
    Some(Event {
        at_ms: parse_timestamp(timestamp),
        level,
        context,
        message: message.trim_end_matches('\r'),
    })
}

/// `2026-11-25 09:14:03.123 +01:00` as unix ms.
pub fn parse_timestamp(text: &str) -> Option<i64> {
    let (local, offset) = text.rsplit_once(' ')?;
    let at = humantime::parse_rfc3339_weak(local).ok()?;
    let ms = at.duration_since(std::time::UNIX_EPOCH).ok()?.as_millis() as i64;
    let sign = match offset.as_bytes().first()? {
        b'+' => 1,
        b'-' => -1,
        _ => return None,
    };
    let (hours, minutes) = offset[1..].split_once(':')?;
    let offset_ms = (hours.parse::<i64>().ok()? * 60 + minutes.parse::<i64>().ok()?) * 60_000;
    Some(ms - sign * offset_ms)
}

/// The ffmpeg exits seen so far; what must survive a restart (the stops not yet matched).
#[derive(Debug, Default, Clone, PartialEq, Serialize, Deserialize)]
pub struct Exits {
    /// When the server stopped jobs whose exit has not been read yet (unix ms; 0 if unknown).
    #[serde(default)]
    pub pending_stops: Vec<i64>,
}

impl Exits {
    /// Takes one complete line; true when it records a failed ffmpeg job.
    pub fn line(&mut self, line: &str) -> bool {
        let Some(event) = parse_event(line) else {
            return false; // a trace line: the exception's echo is not a second failure
        };
        // 10.9+: MediaBrowser.MediaEncoding.Transcoding.TranscodeManager and
        // MediaBrowser.Controller.MediaEncoding.TranscodingJob; 10.8: Jellyfin.Api.Helpers.TranscodingJobHelper.
        let from = |class: &str| event.context.rsplit('.').next() == Some(class);
        if from("TranscodingJob") && event.message.starts_with(STOPPING) {
            self.pending_stops.push(event.at_ms.unwrap_or(0));
            return false;
        }
        if !(from("TranscodeManager") || from("TranscodingJobHelper")) {
            return false;
        }
        let Some(code) = event
            .message
            .strip_prefix(EXITED)
            .and_then(|c| c.trim().parse::<i64>().ok())
        else {
            return false;
        };
        if let Some(at) = event.at_ms {
            self.pending_stops
                .retain(|stop| *stop == 0 || at - stop <= STOP_WINDOW_MS);
        }
        if STOP_CODES.contains(&code) && !self.pending_stops.is_empty() {
            self.pending_stops.remove(0);
            return false;
        }
        code != 0
    }
}

/// Failed jobs among the complete lines of `text`, and how many bytes those lines take: an
/// unfinished last line is left for the next read.
pub fn scan(text: &[u8], exits: &mut Exits) -> (u64, usize) {
    let complete = text.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1);
    let failures = String::from_utf8_lossy(&text[..complete])
        .lines()
        .filter(|line| exits.line(line))
        .count() as u64;
    (failures, complete)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Real shapes: the exit event, the stop of TranscodingJob.Stop, and ExceptionMiddleware's
    /// error with the FfmpegException trace below it.
    pub const FAILED: &str = "[2026-11-25 09:14:03.123 +00:00] [ERR] [42] MediaBrowser.MediaEncoding.Transcoding.TranscodeManager: FFmpeg exited with code 1\n";
    const ECHO: &str = "[2026-11-25 09:14:03.125 +00:00] [ERR] [37] Jellyfin.Api.Middleware.ExceptionMiddleware: Error processing request. URL GET /videos/5f3b6c1d2e4a4b7c8d9e0f1a2b3c4d5e/master.m3u8.\n\
MediaBrowser.Common.FfmpegException: FFmpeg exited with code 1\n   at MediaBrowser.MediaEncoding.Transcoding.TranscodeManager.StartFfMpeg(StreamState state, String outputPath, String commandLineArguments, Guid userId, TranscodingJobType transcodingJobType, CancellationTokenSource cancellationTokenSource, String workingDirectory)\n";

    fn count(exits: &mut Exits, text: &str) -> usize {
        text.lines().filter(|l| exits.line(l)).count()
    }

    #[test]
    fn a_start_up_failure_counts_once_not_again_in_its_trace() {
        let mut exits = Exits::default();
        assert_eq!(count(&mut exits, &format!("{FAILED}{ECHO}")), 1);
    }

    #[test]
    fn exits_the_server_caused_are_not_failures() {
        let stop = "[2026-11-25 09:20:00.000 +00:00] [INF] [12] MediaBrowser.Controller.MediaEncoding.TranscodingJob: Stopping ffmpeg process with q command for \"/var/cache/jellyfin/transcodes/0a1b.m3u8\"\n";
        let kill = "[2026-11-25 09:20:05.001 +00:00] [INF] [12] MediaBrowser.Controller.MediaEncoding.TranscodingJob: Killing FFmpeg process for \"/var/cache/jellyfin/transcodes/0a1b.m3u8\"\n";
        let exit = |code: i64, at: &str| {
            format!(
                "[2026-11-25 {at} +00:00] [ERR] [9] MediaBrowser.MediaEncoding.Transcoding.TranscodeManager: FFmpeg exited with code {code}\n"
            )
        };
        let mut exits = Exits::default();
        // Stopped and killed: 137 is the server's own doing.
        let text = format!("{stop}{kill}{}", exit(137, "09:20:05.050"));
        assert_eq!(count(&mut exits, &text), 0);
        // The stop is used up: a 137 later (the OOM killer) is a failure.
        assert_eq!(count(&mut exits, &exit(137, "09:20:07.000")), 1);
        // A stop long ago does not excuse an exit now.
        let text = format!("{stop}{}", exit(255, "09:25:00.000"));
        assert_eq!(count(&mut exits, &text), 1);
        // A stop is not an excuse for another kind of exit code.
        let text = format!("{stop}{}", exit(1, "09:20:01.000"));
        assert_eq!(count(&mut exits, &text), 1);
        assert!(exits.pending_stops.len() == 1);
        assert_eq!(count(&mut exits, &exit(0, "09:20:02.000")), 0);
        assert!(exits.pending_stops.is_empty(), "the q exit used the stop");
    }

    #[test]
    fn timestamps_with_offsets() {
        assert_eq!(
            parse_timestamp("2026-11-25 10:14:03.123 +01:00"),
            parse_timestamp("2026-11-25 09:14:03.123 +00:00")
        );
        assert_eq!(
            parse_timestamp("1970-01-01 00:00:01.500 +00:00"),
            Some(1500)
        );
        assert_eq!(parse_event("   at X.Y()"), None);
    }
}
