//! What a process's RSS is made of, from /proc/<pid>/smaps_rollup and smaps: anonymous memory
//! against pages of mapped files, and the mappings that hold the most; and its minor page
//! faults, the CPU price of pages mapped again after they were dropped (src/resident.rs).

use std::collections::BTreeMap;

pub struct Breakdown {
    /// RssAnon, RssFile, RssShmem of smaps_rollup's totals, in KiB (smaps_rollup gives Rss,
    /// Anonymous and Shared/Private; status gives the three kinds).
    pub anon_kib: u64,
    pub file_kib: u64,
    pub shmem_kib: u64,
    /// Rss per mapped object (file name and permissions, or [heap], [stack], anon), largest first.
    pub by_mapping: Vec<(String, u64)>,
}

fn kib(text: &str, key: &str) -> u64 {
    text.lines()
        .find_map(|l| l.strip_prefix(key))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

pub fn breakdown(pid: i32) -> Breakdown {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let rollup = std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup")).unwrap_or_default();
    let smaps = std::fs::read_to_string(format!("/proc/{pid}/smaps")).unwrap_or_default();
    // Per mapping: its name, Rss and Anonymous (pages copied on write: a file's relocated
    // data counts as anonymous memory, not as the file's).
    let mut mappings: Vec<(String, u64, u64)> = Vec::new();
    for line in smaps.lines() {
        let mut parts = line.split_whitespace();
        let first = parts.next().unwrap_or("");
        let value = || -> u64 {
            line.split_whitespace()
                .nth(1)
                .and_then(|v| v.parse().ok())
                .unwrap_or(0)
        };
        if first.contains('-') && !first.ends_with(':') {
            let perms = parts.next().unwrap_or("");
            let path = parts.nth(3).unwrap_or("anon");
            let name = path.rsplit('/').next().unwrap_or(path);
            mappings.push((format!("{name} {perms}"), 0, 0));
        } else if let Some(last) = mappings.last_mut() {
            match first {
                "Rss:" => last.1 = value(),
                "Anonymous:" => last.2 = value(),
                _ => {}
            }
        }
    }
    let mut by: BTreeMap<String, u64> = BTreeMap::new();
    for (name, rss, anonymous) in mappings {
        let copied = anonymous > 0 && !name.starts_with('[') && !name.starts_with("anon");
        let name = if copied {
            format!("{name} copied")
        } else {
            name
        };
        *by.entry(name).or_default() += rss;
    }
    let mut by_mapping: Vec<(String, u64)> = by.into_iter().filter(|(_, v)| *v > 0).collect();
    by_mapping.sort_by_key(|m| std::cmp::Reverse(m.1));
    // smaps_rollup's Rss is the same total as status' VmRSS; checked here so the breakdown
    // adds up to the figure it explains.
    let total = kib(&rollup, "Rss:");
    let breakdown = Breakdown {
        anon_kib: kib(&status, "RssAnon:"),
        file_kib: kib(&status, "RssFile:"),
        shmem_kib: kib(&status, "RssShmem:"),
        by_mapping,
    };
    let parts = breakdown.anon_kib + breakdown.file_kib + breakdown.shmem_kib;
    if total.abs_diff(parts) > 64 {
        eprintln!("RSS breakdown: smaps_rollup says {total} KiB, status {parts} KiB");
    }
    breakdown
}

impl std::fmt::Display for Breakdown {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mib = |k: u64| k as f64 / 1024.0;
        write!(
            f,
            "RSS {:.1} MiB = anonymous {:.1} + file-backed {:.1} + shared memory {:.1}; by mapping (KiB):",
            mib(self.anon_kib + self.file_kib + self.shmem_kib),
            mib(self.anon_kib),
            mib(self.file_kib),
            mib(self.shmem_kib)
        )?;
        let mut rest = 0;
        for (i, (name, kib)) in self.by_mapping.iter().enumerate() {
            if i < 10 {
                write!(f, " {name} {kib};")?;
            } else {
                rest += kib;
            }
        }
        write!(f, " the rest {rest}")
    }
}

/// Writes the agent's binary to disk if it was just built: the agent drops its own file's
/// pages from the page cache after start-up (src/resident.rs), which dirty pages cannot
/// leave; an installed binary was written long before it runs.
pub fn written_back(binary: &str) {
    if let Ok(file) = std::fs::File::open(binary) {
        let _ = file.sync_all();
    }
}

/// Page faults so far: minor (the page was in memory: /proc/<pid>/stat field 10, minflt) and
/// major (read from disk: field 12, majflt).
pub struct Faults {
    pub minor: u64,
    pub major: u64,
}

pub fn faults(pid: i32) -> Faults {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let fields: Vec<u64> = stat
        .rfind(')')
        .map(|end| {
            stat[end + 2..]
                .split_whitespace()
                .map(|v| v.parse().unwrap_or(0))
                .collect()
        })
        .unwrap_or_default();
    let field = |n: usize| fields.get(n - 3).copied().unwrap_or(0);
    Faults {
        minor: field(10),
        major: field(12),
    }
}
