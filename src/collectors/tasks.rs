//! `tasks`: Jellyfin's scheduled tasks, keyed by their stable `Key` (the `Name` is localised).
//! One GET /ScheduledTasks. Failures are counted once per result, recognised by its end time,
//! and the results already seen are kept in `state_dir/tasks.json`, so a restart neither
//! recounts old failures nor misses new ones; a first start counts from now.
//!
//! Only `Failed` is a failure. Jellyfin writes `Aborted` when it shuts down while the task
//! runs (`ScheduledTaskWorker.Dispose`, 10.9 to 12.0): the task did not fail, the server
//! stopped, so a restart during a library scan must not raise the scan alert. Aborted stays
//! visible as its own value of `jellyfin_scheduled_task_last_status`.

use std::collections::BTreeMap;

use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use super::{CollectError, Collector};
use crate::jellyfin::Client;
use crate::jellyfin::date::parse_time;
use crate::jellyfin::dto::ScheduledTask;
use crate::sample::{Family, label_value};
use crate::state_file::StateFile;

const STATUSES: [&str; 4] = ["completed", "failed", "cancelled", "aborted"];
const LIBRARY_SCAN: &str = "RefreshLibrary";

/// What survives a restart: per task, the end time of the last result seen and the failures
/// counted so far.
#[derive(Debug, Default, Clone, PartialEq, Serialize, Deserialize)]
pub struct Seen {
    last_end: BTreeMap<String, String>,
    failures: BTreeMap<String, u64>,
}

pub struct Tasks {
    client: Client,
    file: StateFile,
    seen: Option<Seen>,
}

impl Tasks {
    pub fn new(client: Client, file: StateFile) -> Self {
        let seen = file.load();
        Tasks { client, file, seen }
    }
}

fn unix_seconds(at: SystemTime) -> Option<f64> {
    Some(at.duration_since(UNIX_EPOCH).ok()?.as_secs_f64())
}

/// Takes this poll's tasks: counts results not seen before that failed. Without earlier
/// state (first start) everything is only recorded.
pub fn observe(seen: Option<Seen>, tasks: &[ScheduledTask]) -> Seen {
    let first = seen.is_none();
    let mut seen = seen.unwrap_or_default();
    for task in tasks {
        let (Some(key), Some(result)) = (task.key.as_deref(), task.last_execution_result.as_ref())
        else {
            continue;
        };
        let Some(end) = result.end_time_utc.clone() else {
            continue;
        };
        if seen.last_end.get(key) == Some(&end) {
            continue;
        }
        let failed = result.status.as_deref() == Some("Failed");
        let failures = seen.failures.entry(key.to_string()).or_default();
        if failed && !first {
            *failures += 1;
        }
        seen.last_end.insert(key.to_string(), end);
    }
    seen
}

pub fn families(tasks: &[ScheduledTask], seen: &Seen) -> Vec<Family> {
    let mut running = Family::gauge(
        "jellyfin_scheduled_task_running",
        "1 while the task runs (State Running or Cancelling).",
    );
    let mut progress = Family::gauge(
        "jellyfin_scheduled_task_progress_ratio",
        "Progress of a running task, 0 to 1.",
    );
    let mut duration = Family::gauge(
        "jellyfin_scheduled_task_last_duration_seconds",
        "Duration of the task's last run.",
    );
    let mut ended = Family::gauge(
        "jellyfin_scheduled_task_last_end_timestamp_seconds",
        "When the task's last run ended (unix seconds).",
    );
    let mut status = Family::gauge(
        "jellyfin_scheduled_task_last_status",
        "Outcome of the task's last run: 1 for its status, 0 for the others.",
    );
    let mut failures = Family::counter(
        "jellyfin_scheduled_task_failures_total",
        "Runs that ended Failed, each counted once (Aborted, the server stopping during the run, is not a failure; counting starts with the agent's first start).",
    );
    let mut scan = Family::gauge(
        "jellyfin_library_scan_duration_seconds",
        "Duration of the last library scan (task RefreshLibrary).",
    );
    let mut scan_failures = Family::counter(
        "jellyfin_library_scan_failures_total",
        "Library scans (task RefreshLibrary) that failed (Aborted, the server stopping during the scan, is not counted).",
    );
    for task in tasks {
        let Some(key) = task.key.as_deref() else {
            continue;
        };
        let label = || vec![("task", label_value(key))];
        let is_running = matches!(task.state.as_deref(), Some("Running" | "Cancelling"));
        running.push(label(), if is_running { 1.0 } else { 0.0 });
        if let (true, Some(percent)) = (is_running, task.current_progress_percentage) {
            progress.push(label(), percent / 100.0);
        }
        if let Some(result) = &task.last_execution_result {
            let start = result.start_time_utc.as_deref().and_then(parse_time);
            let end = result.end_time_utc.as_deref().and_then(parse_time);
            // Subtracting the times, not their float seconds, keeps the duration exact.
            if let Some(took) = start.zip(end).and_then(|(s, e)| e.duration_since(s).ok()) {
                duration.push(label(), took.as_secs_f64());
                if key == LIBRARY_SCAN {
                    scan.push(vec![], took.as_secs_f64());
                }
            }
            if let Some(end) = end.and_then(unix_seconds) {
                ended.push(label(), end);
            }
            if let Some(last) = result.status.as_deref().map(str::to_ascii_lowercase) {
                for s in STATUSES {
                    status.push(
                        vec![("task", label_value(key)), ("status", s.into())],
                        if s == last { 1.0 } else { 0.0 },
                    );
                }
            }
        }
        let failed = seen.failures.get(key).copied().unwrap_or(0) as f64;
        failures.push(label(), failed);
        if key == LIBRARY_SCAN {
            scan_failures.push(vec![], failed);
        }
    }
    vec![
        running,
        progress,
        duration,
        ended,
        status,
        failures,
        scan,
        scan_failures,
    ]
}

#[async_trait::async_trait]
impl Collector for Tasks {
    fn name(&self) -> &'static str {
        "tasks"
    }

    async fn collect(&mut self, out: &mut Vec<Family>) -> Result<(), CollectError> {
        let tasks: Vec<ScheduledTask> = self.client.get_json("/ScheduledTasks", None).await?;
        let seen = observe(self.seen.take(), &tasks);
        if let Err(e) = self.file.save(&seen) {
            // The counts stay right in memory; a restart would only count from then.
            tracing::warn!(error = %e, "cannot save the task results seen");
        }
        out.extend(families(&tasks, &seen));
        self.seen = Some(seen);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn capture() -> Vec<ScheduledTask> {
        serde_json::from_str(include_str!(
            "../../tests/fixtures/jellyfin/scheduled-tasks.10.11.11.json"
        ))
        .unwrap()
    }

    fn value(families: &[Family], name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        let family = families.iter().find(|f| f.name == name)?;
        let want: Vec<(&str, String)> = labels.iter().map(|(k, v)| (*k, v.to_string())).collect();
        family
            .samples
            .iter()
            .find(|s| s.labels == want)
            .map(|s| s.value)
    }

    #[test]
    fn the_dutch_capture_is_keyed_by_key_with_exact_values() {
        let tasks = capture();
        let f = families(&tasks, &observe(None, &tasks));
        let scan = [("task", "RefreshLibrary")];
        assert_eq!(
            value(&f, "jellyfin_scheduled_task_running", &scan),
            Some(0.0)
        );
        let duration = value(&f, "jellyfin_scheduled_task_last_duration_seconds", &scan).unwrap();
        assert_eq!(duration, 12.3873808);
        assert_eq!(
            value(&f, "jellyfin_library_scan_duration_seconds", &[]),
            Some(duration)
        );
        let end = value(
            &f,
            "jellyfin_scheduled_task_last_end_timestamp_seconds",
            &scan,
        )
        .unwrap();
        assert!((end - 1_785_920_831.017_747).abs() < 1e-3, "{end}");
        assert_eq!(
            value(
                &f,
                "jellyfin_scheduled_task_last_status",
                &[("task", "RefreshLibrary"), ("status", "completed")]
            ),
            Some(1.0)
        );
        assert_eq!(
            value(
                &f,
                "jellyfin_scheduled_task_last_status",
                &[("task", "RefreshLibrary"), ("status", "failed")]
            ),
            Some(0.0)
        );
        assert_eq!(
            value(&f, "jellyfin_scheduled_task_failures_total", &scan),
            Some(0.0)
        );
        // 31 tasks, all present by Key; never by the Dutch Name.
        let running = f
            .iter()
            .find(|f| f.name == "jellyfin_scheduled_task_running")
            .unwrap();
        assert_eq!(running.samples.len(), 31);
        assert!(running.samples.iter().all(|s| !s.labels[0].1.contains(' ')));
        // Tasks that never ran have no last-run series.
        assert_eq!(
            value(
                &f,
                "jellyfin_scheduled_task_last_duration_seconds",
                &[("task", "TraktSyncLibraryTask")]
            ),
            None
        );
    }

    fn with_result(key: &str, status: &str, end: &str) -> ScheduledTask {
        serde_json::from_str(&format!(
            r#"{{"Key":"{key}","State":"Idle","LastExecutionResult":{{"StartTimeUtc":"2026-01-01T00:00:00Z","EndTimeUtc":"{end}","Status":"{status}"}}}}"#
        ))
        .unwrap()
    }

    #[test]
    fn failures_count_once_per_result_and_survive_a_restart_but_not_history() {
        let dir = tempfile::tempdir().unwrap();
        let file = || StateFile::new(dir.path(), "tasks.json", true);
        // First start: a failure already in the server's history is not counted.
        let seen = observe(
            file().load(),
            &[with_result(LIBRARY_SCAN, "Failed", "2026-01-01T00:01:00Z")],
        );
        file().save(&seen).unwrap();
        assert_eq!(seen.failures[LIBRARY_SCAN], 0);
        // A new failure counts once, however often it is polled.
        let failed = with_result(LIBRARY_SCAN, "Failed", "2026-01-02T00:01:00Z");
        let seen = observe(Some(seen), std::slice::from_ref(&failed));
        let seen = observe(Some(seen), std::slice::from_ref(&failed));
        file().save(&seen).unwrap();
        assert_eq!(seen.failures[LIBRARY_SCAN], 1);
        // After a restart: the same result is not recounted. Then the server stops during a
        // scan (Aborted, not a failure), and the next scan fails (counted).
        let seen = observe(file().load(), &[failed]);
        assert_eq!(seen.failures[LIBRARY_SCAN], 1);
        let aborted = with_result(LIBRARY_SCAN, "Aborted", "2026-01-03T00:01:00Z");
        let seen = observe(Some(seen), std::slice::from_ref(&aborted));
        let f = families(std::slice::from_ref(&aborted), &seen);
        assert_eq!(
            value(&f, "jellyfin_library_scan_failures_total", &[]),
            Some(1.0),
            "Aborted is not a failure"
        );
        let status = |f: &[Family], s: &str| {
            value(
                f,
                "jellyfin_scheduled_task_last_status",
                &[("task", LIBRARY_SCAN), ("status", s)],
            )
        };
        assert_eq!(status(&f, "aborted"), Some(1.0), "Aborted stays visible");
        assert_eq!(status(&f, "failed"), Some(0.0));
        let failed_again = with_result(LIBRARY_SCAN, "Failed", "2026-01-04T00:01:00Z");
        let seen = observe(Some(seen), std::slice::from_ref(&failed_again));
        let f = families(&[failed_again], &seen);
        assert_eq!(status(&f, "failed"), Some(1.0));
        assert_eq!(
            value(&f, "jellyfin_library_scan_failures_total", &[]),
            Some(2.0)
        );
        assert_eq!(
            value(
                &f,
                "jellyfin_scheduled_task_failures_total",
                &[("task", LIBRARY_SCAN)]
            ),
            Some(2.0)
        );
    }

    #[test]
    fn a_running_task_reports_its_progress() {
        let task: ScheduledTask = serde_json::from_str(
            r#"{"Key":"RefreshLibrary","State":"Running","CurrentProgressPercentage":42.5}"#,
        )
        .unwrap();
        let f = families(
            std::slice::from_ref(&task),
            &observe(None, std::slice::from_ref(&task)),
        );
        assert_eq!(
            value(
                &f,
                "jellyfin_scheduled_task_running",
                &[("task", "RefreshLibrary")]
            ),
            Some(1.0)
        );
        assert_eq!(
            value(
                &f,
                "jellyfin_scheduled_task_progress_ratio",
                &[("task", "RefreshLibrary")]
            ),
            Some(0.425)
        );
    }
}
