//! `process`: Jellyfin's own process (not the agent's), from /proc/<pid>: CPU, memory, file
//! descriptors, threads, start time and I/O, named like every Prometheus client's
//! `process_*` metrics so the plan's `process_cpu_seconds_total{job="jellyfin"}` queries work.
//!
//! The process is found by `pid_file`, else by `unit` (the systemd unit in its cgroup), else
//! by `name` (its /proc/<pid>/comm). When it is not visible (another host, hidepid) the
//! collector fails with a message saying so (logged once per incident) and reports nothing,
//! rather than numbers about the wrong process. Entries that need ptrace rights (fd/, io)
//! are left out when they are not readable; the rest is world-readable.
//!
//! CPU, resident memory and I/O include the ffmpeg jobs Jellyfin starts (software
//! transcoding is Jellyfin's load too): from its systemd unit's cgroup where visible
//! ([`cgroup`]), else summed over its process tree ([`tree`]); the `source` label of those
//! series says which (`cgroup` or `process_tree`). Threads, file descriptors, virtual memory
//! and the start time are the main process's own.

mod cgroup;
mod procfs;
mod tree;
#[cfg(test)]
mod tree_pid_reuse;

use std::path::{Path, PathBuf};

use super::{CollectError, Collector};
use crate::config::ProcessConfig;
use crate::sample::Family;
use procfs::ProcFs;

pub struct Process {
    config: ProcessConfig,
    proc_root: PathBuf,
    cgroup_root: PathBuf,
    /// The process found last time, with its start time: looking again means reading every
    /// /proc/<pid>/cgroup and comm of the host (hundreds of files per cycle), so it is done
    /// only when that process is gone (a pid reused by another process starts later).
    found: Option<(u32, u64)>,
    /// Boot time from /proc/stat, which does not change while the host runs.
    boot_time: Option<f64>,
    /// The open /proc and its read buffer (opened at the first cycle that needs it).
    procfs: Option<ProcFs>,
    tree: tree::Scratch,
}

const CGROUP: &str = "cgroup";
const PROCESS_TREE: &str = "process_tree";

/// CPU seconds, resident bytes and I/O bytes of Jellyfin with its children, each with the
/// source it came from.
struct WithChildren {
    cpu: (f64, &'static str),
    memory: (f64, &'static str),
    io: Option<((f64, f64), &'static str)>,
}

impl Process {
    pub fn new(config: ProcessConfig, proc_root: PathBuf, cgroup_root: PathBuf) -> Self {
        Process {
            config,
            proc_root,
            cgroup_root,
            found: None,
            boot_time: None,
            procfs: None,
            tree: tree::Scratch::default(),
        }
    }

    fn procfs(&mut self) -> Result<&mut ProcFs, String> {
        if self.procfs.is_none() {
            let opened = ProcFs::open(&self.proc_root)
                .map_err(|e| format!("{}: {e}", self.proc_root.display()))?;
            self.procfs = Some(opened);
        }
        self.procfs
            .as_mut()
            .ok_or_else(|| format!("{}: not open", self.proc_root.display()))
    }

    /// From the unit's cgroup what it shows, the rest summed over the process tree.
    fn with_children(&mut self, pid: u32) -> Result<WithChildren, String> {
        let cgroup_root = self.cgroup_root.clone();
        let procfs = self.procfs()?;
        let dir = procfs
            .read(Some(pid), "cgroup")
            .ok()
            .and_then(|text| std::str::from_utf8(text).ok())
            .and_then(|text| cgroup::unit_dir(&cgroup_root, text));
        let read = |name: &str| {
            dir.as_ref()
                .and_then(|d| std::fs::read_to_string(d.join(name)).ok())
        };
        // One pass over every /proc/<pid>/stat of the host, so only when the cgroup does not
        // tell.
        let cpu_stat = read("cpu.stat");
        let memory = read("memory.current").zip(read("memory.stat"));
        let io_stat = read("io.stat");
        let procfs = self.procfs.as_mut().ok_or("/proc not open")?;
        let mut members = None;
        let mut tree = |procfs: &mut ProcFs| -> Vec<(u32, tree::Usage)> {
            members
                .get_or_insert_with(|| tree::members(procfs, pid, &mut self.tree))
                .clone()
        };
        let ticks = sysconf(libc::_SC_CLK_TCK);
        let page = sysconf(libc::_SC_PAGESIZE);
        let cpu = match cpu_stat.as_deref().and_then(cgroup::cpu_seconds) {
            Some(seconds) => (seconds, CGROUP),
            None => (
                tree(procfs).iter().map(|m| m.1.cpu_ticks).sum::<u64>() as f64 / ticks,
                PROCESS_TREE,
            ),
        };
        let memory =
            match memory.and_then(|(current, stat)| cgroup::working_set_bytes(&current, &stat)) {
                Some(bytes) => (bytes, CGROUP),
                None => (
                    tree(procfs).iter().map(|m| m.1.rss_pages).sum::<u64>() as f64 * page,
                    PROCESS_TREE,
                ),
            };
        let io = match io_stat {
            Some(text) => Some((cgroup::io_bytes(&text), CGROUP)),
            None => {
                // The main process's must be readable; children we may not read are skipped.
                let io = |procfs: &mut ProcFs, pid: u32| {
                    procfs
                        .read(Some(pid), "io")
                        .ok()
                        .and_then(|text| std::str::from_utf8(text).ok())
                        .and_then(parse_io)
                };
                match io(procfs, pid) {
                    Some(own) => {
                        let children = tree(procfs)
                            .iter()
                            .filter(|m| m.0 != pid)
                            .filter_map(|m| io(procfs, m.0))
                            .fold((0.0, 0.0), |a, b| (a.0 + b.0, a.1 + b.1));
                        Some(((own.0 + children.0, own.1 + children.1), PROCESS_TREE))
                    }
                    None => None,
                }
            }
        };
        Ok(WithChildren { cpu, memory, io })
    }

    /// Jellyfin's pid and its /proc/<pid>/stat: the process found last time while it runs,
    /// else a new search.
    fn locate(&mut self) -> Result<(u32, Stat), String> {
        if self.config.pid_file.is_none()
            && let Some((pid, started)) = self.found
            && let Some(stat) = self.stat(pid).ok().filter(|s| s.start_ticks == started)
        {
            return Ok((pid, stat));
        }
        self.found = None;
        let pid = self.find()?;
        let stat = self.stat(pid)?;
        self.found = Some((pid, stat.start_ticks));
        Ok((pid, stat))
    }

    fn stat(&mut self, pid: u32) -> Result<Stat, String> {
        let text = self
            .procfs()?
            .read_line(pid, "stat")
            .map_err(|e| format!("process {pid}: {e}"))?;
        parse_stat(text).ok_or_else(|| format!("process {pid}: unexpected /proc/{pid}/stat"))
    }

    fn find(&self) -> Result<u32, String> {
        if let Some(file) = &self.config.pid_file {
            let text = std::fs::read_to_string(file)
                .map_err(|e| format!("pid_file {}: {e}", file.display()))?;
            return text
                .trim()
                .parse()
                .map_err(|_| format!("pid_file {} holds no pid", file.display()));
        }
        let mut by_unit = Vec::new();
        let mut by_name = Vec::new();
        for entry in std::fs::read_dir(&self.proc_root)
            .map_err(|e| format!("{}: {e}", self.proc_root.display()))?
        {
            let Some(pid) = entry
                .ok()
                .and_then(|e| e.file_name().to_str()?.parse::<u32>().ok())
            else {
                continue;
            };
            let dir = self.proc_root.join(pid.to_string());
            if let Some(unit) = &self.config.unit {
                let cgroup = std::fs::read_to_string(dir.join("cgroup")).unwrap_or_default();
                if cgroup.lines().any(|l| l.ends_with(&format!("/{unit}"))) {
                    by_unit.push(pid);
                }
            }
            let comm = std::fs::read_to_string(dir.join("comm")).unwrap_or_default();
            if comm.trim_end() == self.config.name {
                by_name.push(pid);
            }
        }
        // Within a unit the main process started first: the lowest pid.
        by_unit.sort_unstable();
        by_name.sort_unstable();
        by_unit.first().or(by_name.first()).copied().ok_or_else(|| {
            format!(
                "Jellyfin's process is not visible here (no process of unit {:?} or named {:?} in {}); \
                 process metrics are off until it is (another host, or /proc mounted with hidepid?)",
                self.config.unit.as_deref().unwrap_or("-"),
                self.config.name,
                self.proc_root.display()
            )
        })
    }
}

/// The fields of /proc/<pid>/stat the metrics need.
#[derive(Debug, PartialEq)]
pub struct Stat {
    pub utime_ticks: u64,
    pub stime_ticks: u64,
    pub threads: u64,
    pub start_ticks: u64,
    pub vsize_bytes: u64,
    pub rss_pages: u64,
}

/// utime, stime (14, 15), threads (20), starttime (22), vsize (23), rss (24).
pub fn parse_stat(text: &[u8]) -> Option<Stat> {
    let [utime, stime, threads, start, vsize, rss] =
        procfs::stat_fields(text, [14, 15, 20, 22, 23, 24])?;
    Some(Stat {
        utime_ticks: utime,
        stime_ticks: stime,
        threads,
        start_ticks: start,
        vsize_bytes: vsize,
        rss_pages: rss,
    })
}

/// The soft "Max open files" of /proc/<pid>/limits.
pub fn parse_max_fds(limits: &str) -> Option<f64> {
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    let soft = line
        .trim_start_matches("Max open files")
        .split_whitespace()
        .next()?;
    if soft == "unlimited" {
        Some(f64::INFINITY)
    } else {
        soft.parse().ok()
    }
}

/// `read_bytes` and `write_bytes` of /proc/<pid>/io (what reached the storage layer).
pub fn parse_io(io: &str) -> Option<(f64, f64)> {
    let get = |key: &str| {
        io.lines()
            .find_map(|l| l.strip_prefix(key)?.trim().parse::<f64>().ok())
    };
    Some((get("read_bytes:")?, get("write_bytes:")?))
}

/// Boot time (unix seconds) from /proc/stat.
pub fn parse_btime(stat: &str) -> Option<f64> {
    stat.lines()
        .find_map(|l| l.strip_prefix("btime ")?.trim().parse().ok())
}

fn sysconf(name: libc::c_int) -> f64 {
    // SAFETY: sysconf reads a constant of the running system.
    let value = unsafe { libc::sysconf(name) };
    if value > 0 { value as f64 } else { 1.0 }
}

#[async_trait::async_trait]
impl Collector for Process {
    fn name(&self) -> &'static str {
        "process"
    }

    async fn collect(&mut self, out: &mut Vec<Family>) -> Result<(), CollectError> {
        let (pid, stat) = self.locate()?;
        if self.boot_time.is_none() {
            self.boot_time = read_root(&self.proc_root, "stat")
                .as_deref()
                .and_then(parse_btime);
        }
        let ticks = sysconf(libc::_SC_CLK_TCK);
        let gauge = |name, help, value| Family::gauge(name, help).with(vec![], value);
        let all = self.with_children(pid)?;
        let procfs = self.procfs()?;
        let max_fds = procfs
            .read(Some(pid), "limits")
            .ok()
            .and_then(|text| std::str::from_utf8(text).ok())
            .and_then(parse_max_fds);
        let open_fds = procfs.count(pid, "fd");
        let source = |s: &'static str| vec![("source", s.to_string())];
        out.push(
            Family::counter(
                "process_cpu_seconds_total",
                "CPU time (user + system) of Jellyfin with its ffmpeg children; source: the unit's cgroup or the process tree.",
            )
            .with(source(all.cpu.1), all.cpu.0),
        );
        out.push(
            Family::gauge(
                "process_resident_memory_bytes",
                "Memory of Jellyfin with its ffmpeg children: the cgroup's working set, or the tree's summed RSS.",
            )
            .with(source(all.memory.1), all.memory.0),
        );
        out.push(gauge(
            "process_virtual_memory_bytes",
            "Jellyfin's virtual memory.",
            stat.vsize_bytes as f64,
        ));
        out.push(gauge(
            "process_threads",
            "Jellyfin's threads.",
            stat.threads as f64,
        ));
        if let Some(boot) = self.boot_time {
            out.push(gauge(
                "process_start_time_seconds",
                "When Jellyfin's process started (unix seconds).",
                boot + stat.start_ticks as f64 / ticks,
            ));
        }
        if let Some(max) = max_fds {
            out.push(gauge(
                "process_max_fds",
                "Jellyfin's limit on open file descriptors.",
                max,
            ));
        }
        if let Ok(fds) = open_fds {
            out.push(gauge(
                "process_open_fds",
                "Jellyfin's open file descriptors.",
                fds as f64,
            ));
        }
        if let Some(((read_bytes, write_bytes), from)) = all.io {
            out.push(
                Family::counter(
                    "process_io_read_bytes_total",
                    "Bytes Jellyfin and its ffmpeg children read from storage.",
                )
                .with(source(from), read_bytes),
            );
            out.push(
                Family::counter(
                    "process_io_write_bytes_total",
                    "Bytes Jellyfin and its ffmpeg children wrote to storage.",
                )
                .with(source(from), write_bytes),
            );
        }
        Ok(())
    }
}

fn read_root(root: &Path, name: &str) -> Option<String> {
    std::fs::read_to_string(root.join(name)).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_fields_are_counted_from_the_last_parenthesis() {
        let stat = "1234 (jelly fin) (x)) S 1 1234 1234 0 -1 4194560 9 0 0 0 250 75 0 0 20 0 42 0 5000 1073741824 2048 \
                    18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 17 1 0 0 0 0 0";
        assert_eq!(
            parse_stat(stat.as_bytes()),
            Some(Stat {
                utime_ticks: 250,
                stime_ticks: 75,
                threads: 42,
                start_ticks: 5000,
                vsize_bytes: 1_073_741_824,
                rss_pages: 2048
            })
        );
    }

    #[test]
    fn limits_io_and_btime() {
        let limits = "Limit                     Soft Limit           Hard Limit           Units\n\
                      Max open files            1024                 524288               files\n";
        assert_eq!(parse_max_fds(limits), Some(1024.0));
        let io = "rchar: 10\nwchar: 20\nsyscr: 1\nsyscw: 1\nread_bytes: 4096\nwrite_bytes: 8192\ncancelled_write_bytes: 0\n";
        assert_eq!(parse_io(io), Some((4096.0, 8192.0)));
        assert_eq!(
            parse_btime("cpu  1 2 3\nbtime 1764000000\nprocesses 5\n"),
            Some(1_764_000_000.0)
        );
    }

    fn fake_process(proc: &Path, pid: u32, start_ticks: u64, threads: u64) {
        let dir = proc.join(pid.to_string());
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("comm"), "jellyfin\n").unwrap();
        std::fs::write(
            dir.join("stat"),
            format!("{pid} (jellyfin) S 1 {pid} {pid} 0 -1 0 0 0 0 0 500 100 0 0 20 0 {threads} 0 {start_ticks} 9000000 5000 0"),
        )
        .unwrap();
    }

    #[tokio::test]
    async fn the_process_found_is_kept_while_it_runs_and_looked_for_again_when_it_is_gone() {
        let proc = tempfile::tempdir().unwrap();
        fake_process(proc.path(), 100, 700, 40);
        let config = ProcessConfig {
            pid_file: None,
            unit: None,
            name: "jellyfin".into(),
            ..ProcessConfig::default()
        };
        let mut collector = Process::new(config, proc.path().into(), "/nonexistent".into());
        async fn threads(collector: &mut Process) -> f64 {
            let mut out = Vec::new();
            collector.collect(&mut out).await.unwrap();
            let f = out.iter().find(|f| f.name == "process_threads").unwrap();
            f.samples[0].value
        }
        assert_eq!(threads(&mut collector).await, 40.0);
        // A second process of that name with a lower pid would win a new search: while 100
        // runs, none is made.
        fake_process(proc.path(), 50, 800, 7);
        assert_eq!(threads(&mut collector).await, 40.0);
        // Jellyfin restarted and another process got pid 100: it started later.
        fake_process(proc.path(), 100, 900, 3);
        assert_eq!(threads(&mut collector).await, 7.0);
        std::fs::remove_dir_all(proc.path().join("50")).unwrap();
        assert_eq!(threads(&mut collector).await, 3.0);
    }

    #[tokio::test]
    async fn the_units_cgroup_wins_where_visible() {
        let proc = tempfile::tempdir().unwrap();
        let cgroups = tempfile::tempdir().unwrap();
        let jellyfin = proc.path().join("100");
        std::fs::create_dir_all(&jellyfin).unwrap();
        std::fs::write(
            jellyfin.join("stat"),
            "100 (jellyfin) S 1 100 100 0 -1 0 0 0 0 0 500 100 0 0 20 0 40 0 700 9000000 5000 0",
        )
        .unwrap();
        std::fs::write(
            jellyfin.join("cgroup"),
            "0::/system.slice/jellyfin.service\n",
        )
        .unwrap();
        let unit = cgroups.path().join("system.slice/jellyfin.service");
        std::fs::create_dir_all(&unit).unwrap();
        for (name, text) in [
            ("cgroup.procs", "100\n4242\n"),
            ("cpu.stat", "usage_usec 987654321\nuser_usec 900000000\n"),
            ("memory.current", "2000000000\n"),
            ("memory.stat", "anon 1200000000\ninactive_file 500000000\n"),
        ] {
            std::fs::write(unit.join(name), text).unwrap();
        }
        let config = ProcessConfig {
            pid_file: None,
            unit: Some("jellyfin.service".into()),
            name: "no-such-name".into(),
            ..ProcessConfig::default()
        };
        let mut collector = Process::new(config, proc.path().into(), cgroups.path().into());
        let mut out = Vec::new();
        collector.collect(&mut out).await.unwrap();
        let get = |name: &str| {
            let f = out.iter().find(|f| f.name == name).unwrap();
            (f.samples[0].labels.clone(), f.samples[0].value)
        };
        let cgroup = vec![("source", "cgroup".to_string())];
        assert_eq!(
            get("process_cpu_seconds_total"),
            (cgroup.clone(), 987.654321)
        );
        assert_eq!(get("process_resident_memory_bytes"), (cgroup, 1.5e9));
        // No io.stat (I/O accounting off) and no /proc/100/io: no I/O series.
        assert!(!out.iter().any(|f| f.name == "process_io_read_bytes_total"));
        // Threads stay the main process's own.
        assert_eq!(get("process_threads").1, 40.0);
    }
}
