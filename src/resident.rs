//! Keeps the agent's resident set to the code it runs between cycles.
//!
//! The kernel counts in a process's RSS every page mapped into it: anonymous memory (heap,
//! stacks, relocated data; `RssAnon`) and pages of files mapped into it (the agent's code,
//! libc's; `RssFile`), whether or not another process maps the same page and whether or not
//! the page has been used since. A code page stays mapped once touched, and a touch maps the
//! pages around it as well (fault-around, 64 KiB by default), so the code of start-up (config,
//! TLS set-up, clap) and of the hourly inventory walk stayed in the agent's RSS for good:
//! about 5 MiB of its 8 MiB were its own code (README "Figures").
//!
//! [`drop_unused_code`] unmaps every read-only file-backed page of the process (code, constant
//! data) after such a rare job; the pages a cycle needs come back at its next run from the page
//! cache, as minor faults (no disk read: the file's pages stay cached), and stay mapped from
//! then on. What it cannot undo: the pages remain in the page cache (shared, clean, the first
//! memory the kernel reclaims), which a cgroup's `memory.current` still counts.

/// One mapping of /proc/self/smaps: its address range and file, whether it is a private
/// read-only mapping of a file, and how much of it was copied on write (then it no longer
/// matches its file and must stay).
#[derive(Debug, PartialEq, Eq)]
struct Mapping {
    start: usize,
    end: usize,
    path: String,
    read_only_file: bool,
    anonymous_kib: u64,
}

impl Mapping {
    /// Unmapping its pages loses nothing: every page comes back from the file, unchanged.
    fn droppable(&self) -> bool {
        self.read_only_file && self.anonymous_kib == 0
    }
}

/// The mappings of an smaps text, in order; lines it does not understand are skipped.
fn mappings(smaps: &str) -> Vec<Mapping> {
    let mut all: Vec<Mapping> = Vec::new();
    for line in smaps.lines() {
        if let Some(mapping) = header(line) {
            all.push(mapping);
        } else if let (Some(last), Some(kib)) = (all.last_mut(), field_kib(line, "Anonymous:")) {
            last.anonymous_kib = kib;
        }
    }
    all
}

/// A mapping's first line: `start-end perms offset dev inode [path]`.
fn header(line: &str) -> Option<Mapping> {
    let mut parts = line.splitn(6, ' ');
    let (start, end) = parts.next()?.split_once('-')?;
    let start = usize::from_str_radix(start, 16).ok()?;
    let end = usize::from_str_radix(end, 16).ok()?;
    let perms = parts.next()?.as_bytes();
    if perms.len() != 4 {
        return None;
    }
    let _offset = parts.next()?;
    let _device = parts.next()?;
    let inode: u64 = parts.next()?.parse().ok()?;
    let path = parts.next().unwrap_or("").trim_start().to_owned();
    let read_only_file = perms[0] == b'r'
        && perms[1] == b'-'
        && perms[3] == b'p'
        && inode != 0
        && path.starts_with('/');
    Some(Mapping {
        start,
        end,
        path,
        read_only_file,
        anonymous_kib: 0,
    })
}

/// `key  123 kB` → 123.
fn field_kib(line: &str, key: &str) -> Option<u64> {
    line.strip_prefix(key)?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// What [`drop_unused_code`] did.
#[derive(Debug, Default)]
pub struct Dropped {
    /// Address space unmapped, in bytes (mapped or not before).
    pub unmapped: usize,
    /// Whether the agent's own file was evicted from the page cache.
    pub evicted: bool,
}

/// Unmaps the pages of every private read-only file mapping that holds no copied page (the
/// agent's code and constant data, libc's, the loader's), for after start-up and after a
/// rare, large job such as the inventory walk; the agent's own file also leaves the page
/// cache (its pages not mapped at that moment and written back). Where /proc/self/smaps
/// cannot be read nothing changes.
///
/// Unmapping alone is not enough: the next fault maps again every cached page within 64 KiB
/// (fault-around, which MADV_RANDOM does not turn off), so a cycle that runs a few scattered
/// functions brought back 3.4 of the binary's 4.2 MiB of code. With the file's pages out of
/// the cache and MADV_RANDOM (no read-ahead) on its mappings, a fault maps the one page it
/// reads, and the agent's code in RSS is the code its cycles run. The price: the first cycle
/// after a drop reads each page it runs from disk once (major faults, README "Figures").
/// Shared libraries stay cached: other processes use their pages.
pub fn drop_unused_code() -> Dropped {
    let Ok(smaps) = std::fs::read_to_string("/proc/self/smaps") else {
        return Dropped::default();
    };
    let exe = std::fs::read_link("/proc/self/exe").ok();
    // Dirty pages (a binary built a moment ago) stay cached until the kernel writes them
    // back, within 30 s; not forced here (fdatasync would hold the runtime's one thread).
    let file = std::fs::File::open("/proc/self/exe").ok();
    let mut ranges = Vec::new();
    for mapping in mappings(&smaps).iter().filter(|m| m.droppable()) {
        let (start, len) = (
            mapping.start as *mut libc::c_void,
            mapping.end - mapping.start,
        );
        if exe.as_deref() == Some(std::path::Path::new(&mapping.path)) {
            // SAFETY: a hint on a whole mapping of this process.
            unsafe { libc::madvise(start, len, libc::MADV_RANDOM) };
        }
        ranges.push((start, len));
    }
    // From the first unmapping to the eviction as little code as possible runs: each page it
    // runs is mapped again with the cached pages around it, and a mapped page stays cached.
    let mut dropped = Dropped::default();
    for &(start, len) in &ranges {
        // SAFETY: the range is a whole mapping of this process, private, read-only and
        // unchanged from its file (no anonymous page), so MADV_DONTNEED only unmaps pages
        // that the next access maps again from the same file, with the same contents.
        if unsafe { libc::madvise(start, len, libc::MADV_DONTNEED) } == 0 {
            dropped.unmapped += len;
        }
    }
    if let Some(file) = &file {
        use std::os::fd::AsRawFd;
        // SAFETY: a hint on an open descriptor; pages still mapped (here or in another
        // process running the same file) stay cached.
        let done =
            unsafe { libc::posix_fadvise(file.as_raw_fd(), 0, 0, libc::POSIX_FADV_DONTNEED) };
        dropped.evicted = done == 0;
    }
    tracing::debug!(
        unmapped = dropped.unmapped,
        evicted = dropped.evicted,
        "code and constants not used since unmapped"
    );
    dropped
}

/// Drops the start-up's code once start-up is over: two fast cycles in, when every collector
/// has run once (the inventory walk drops again when it ends, however long it takes).
pub async fn drop_after_start_up(interval: std::time::Duration) {
    tokio::time::sleep(interval * 2).await;
    drop_unused_code();
}

#[cfg(test)]
mod tests {
    use super::*;

    const SMAPS: &str = "\
55d0c0a00000-55d0c0bda000 r--p 00000000 fe:00 1234 /usr/bin/jellyfin-pusher
Size:               1896 kB
Rss:                 640 kB
Anonymous:             0 kB
VmFlags: rd mr mw me sd
55d0c0bdb000-55d0c0ff2000 r-xp 001da000 fe:00 1234 /usr/bin/jellyfin-pusher
Size:               4188 kB
Anonymous:             0 kB
VmFlags: rd ex mr mw me sd
55d0c0ff3000-55d0c1038000 r--p 005f1000 fe:00 1234 /usr/bin/jellyfin-pusher
Size:                276 kB
Anonymous:           276 kB
VmFlags: rd mr mw me ac sd
55d0c1038000-55d0c103c000 rw-p 00636000 fe:00 1234 /usr/bin/jellyfin-pusher
Anonymous:            12 kB
55d0c2000000-55d0c2100000 rw-p 00000000 00:00 0 [heap]
Anonymous:           300 kB
7f0000000000-7f0000001000 r--s 00000000 00:05 99 /dev/shm/x
Anonymous:             0 kB
7ffd00000000-7ffd00002000 r-xp 00000000 00:00 0 [vdso]
Anonymous:             0 kB
";

    #[test]
    fn only_unchanged_private_read_only_file_mappings_are_dropped() {
        let all = mappings(SMAPS);
        assert_eq!(all.len(), 7);
        let dropped: Vec<(usize, usize)> = all
            .iter()
            .filter(|m| m.droppable())
            .map(|m| (m.start, m.end))
            .collect();
        // The code and the constants, not the relocated (copied) read-only data, the
        // writable data, the heap, a shared mapping or the vdso.
        assert_eq!(
            dropped,
            vec![
                (0x55d0c0a00000, 0x55d0c0bda000),
                (0x55d0c0bdb000, 0x55d0c0ff2000)
            ]
        );
        assert_eq!(all[2].anonymous_kib, 276);
        assert_eq!(all[1].path, "/usr/bin/jellyfin-pusher");
        assert_eq!(all[4].path, "[heap]");
    }

    /// RssFile of this process, in KiB.
    fn rss_file_kib() -> u64 {
        let status = std::fs::read_to_string("/proc/self/status").unwrap();
        status
            .lines()
            .find_map(|l| field_kib(l, "RssFile:"))
            .unwrap()
    }

    #[test]
    fn dropping_unmaps_code_and_the_process_runs_on() {
        let before = rss_file_kib();
        let dropped = drop_unused_code();
        let after = rss_file_kib();
        assert!(
            dropped.unmapped > 0,
            "this test binary maps code from its file"
        );
        assert!(dropped.evicted);
        // Other tests run meanwhile and map pages again, but not the whole binary.
        assert!(
            after < before,
            "RssFile {before} KiB before, {after} KiB after"
        );
        // Code and constants come back on use.
        assert_eq!(format!("{}", 6 * 7), "42");
    }
}
