//! Keeps the agent's resident set to the code it runs between cycles.
//!
//! The kernel counts in a process's RSS every page mapped into it: anonymous memory (heap,
//! stacks, relocated data; `RssAnon`) and pages of files mapped into it (the agent's code,
//! libc's; `RssFile`), whether or not another process maps the same page and whether or not
//! the page has been used since. A code page stays mapped once touched, and a fault maps the
//! file's cached pages around it as well (fault-around, 64 KiB by default), so the code of
//! start-up (config, TLS set-up, clap) and of the hourly inventory walk stayed in the agent's
//! RSS for good: 3.9 MiB of code, 1.0 MiB of constants, 1.6 MiB of libc and libm of a steady
//! 8.5 MiB (README "What the agent's RSS is made of").
//!
//! [`drop_unused_code`] unmaps them after such a rare job; what the next cycles run comes back
//! and stays. The agent's own file also leaves the page cache, so that a fault does not map
//! the cached pages around it again.

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
    /// Only the binary's and shared libraries' mappings, which stay for the life of the
    /// process: a passing one (ld.so.cache, mapped while a library loads) could be unmapped
    /// between the reading of smaps and the madvise, and its addresses reused by memory whose
    /// contents MADV_DONTNEED would lose.
    fn droppable(&self, exe: Option<&std::path::Path>) -> bool {
        let lasting = exe == Some(std::path::Path::new(&self.path)) || shared_library(&self.path);
        self.read_only_file && self.anonymous_kib == 0 && lasting
    }
}

/// `…/libc.so.6`, `…/libfoo.so`, `…/libbar.so.1.2`; not `/etc/ld.so.cache`.
fn shared_library(path: &str) -> bool {
    let name = path.rsplit('/').next().unwrap_or(path);
    name.rsplit_once(".so").is_some_and(|(_, version)| {
        version.is_empty()
            || version.strip_prefix('.').is_some_and(|v| {
                v.split('.')
                    .all(|part| !part.is_empty() && part.bytes().all(|b| b.is_ascii_digit()))
            })
    })
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

/// Unmaps the pages of every private read-only mapping of the binary or a shared library
/// that holds no copied page (the agent's code and constants, libc's, the loader's), for
/// after start-up and after a rare, large job such as the inventory walk; the agent's own
/// file also leaves the page cache (its pages not mapped at that moment and written back).
/// Where /proc/self/smaps cannot be read nothing changes.
///
/// Unmapping alone brought the code back to 3.4-3.6 MiB and the constants to 0.6 MiB: the
/// next fault maps every cached page within 64 KiB again (fault-around, which MADV_RANDOM
/// does not turn off). With the file's pages out of the cache and MADV_RANDOM (no
/// read-ahead) on its mappings, a fault on the constants reads and maps one page (0.18 MiB
/// stay); on the code, kernels since about 6.16 ignore MADV_RANDOM and read 128 KiB from
/// the faulting page on (3.5 MiB stay). The price: the first cycle after a drop reads what
/// it runs from disk (about 50 major faults, README "Figures"). Shared libraries stay
/// cached: other processes use their pages.
pub fn drop_unused_code() -> Dropped {
    let Ok(smaps) = std::fs::read_to_string("/proc/self/smaps") else {
        return Dropped::default();
    };
    let exe = std::fs::read_link("/proc/self/exe").ok();
    // Dirty pages (a binary built a moment ago) stay cached until the kernel writes them
    // back, within 30 s; not forced here (fdatasync would hold the runtime's one thread).
    let file = std::fs::File::open("/proc/self/exe").ok();
    let mut ranges = Vec::new();
    for mapping in mappings(&smaps)
        .iter()
        .filter(|m| m.droppable(exe.as_deref()))
    {
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
7f1000000000-7f1000020000 r--p 00000000 fe:00 77 /etc/ld.so.cache
Anonymous:             0 kB
7f2000000000-7f2000160000 r-xp 00028000 fe:00 78 /usr/lib/x86_64-linux-gnu/libc.so.6
Anonymous:             0 kB
";

    #[test]
    fn only_unchanged_private_read_only_file_mappings_are_dropped() {
        let all = mappings(SMAPS);
        assert_eq!(all.len(), 9);
        let exe = std::path::Path::new("/usr/bin/jellyfin-pusher");
        let dropped: Vec<(usize, usize)> = all
            .iter()
            .filter(|m| m.droppable(Some(exe)))
            .map(|m| (m.start, m.end))
            .collect();
        // The code and the constants of the binary and libc, not the relocated (copied)
        // read-only data, the writable data, the heap, a shared mapping, the vdso, or a
        // file mapped only while a library loads.
        assert_eq!(
            dropped,
            vec![
                (0x55d0c0a00000, 0x55d0c0bda000),
                (0x55d0c0bdb000, 0x55d0c0ff2000),
                (0x7f2000000000, 0x7f2000160000)
            ]
        );
        assert_eq!(all[2].anonymous_kib, 276);
        assert_eq!(all[1].path, "/usr/bin/jellyfin-pusher");
        assert_eq!(all[4].path, "[heap]");
    }

    /// Maps `file` privately and read-only, every page touched; `copied`: one page written
    /// first (then made read-only), as the loader does to relocated data.
    fn mapped(file: &std::fs::File, len: usize, copied: bool) -> *mut u8 {
        use std::os::fd::AsRawFd;
        // SAFETY: a new private mapping of a file this test owns, only read and written here.
        unsafe {
            let at = libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE,
                file.as_raw_fd(),
                0,
            );
            assert_ne!(at, libc::MAP_FAILED);
            let at = at.cast::<u8>();
            if copied {
                *at = 42;
            }
            for page in (0..len).step_by(4096) {
                std::ptr::read_volatile(at.add(page));
            }
            assert_eq!(libc::mprotect(at.cast(), len, libc::PROT_READ), 0);
            at
        }
    }

    /// Rss of the mapping at `at`, in KiB.
    fn rss_kib(at: *mut u8) -> u64 {
        let smaps = std::fs::read_to_string("/proc/self/smaps").unwrap();
        let mut here = false;
        for line in smaps.lines() {
            if let Some(mapping) = header(line) {
                here = mapping.start == at as usize;
            } else if here && let Some(kib) = field_kib(line, "Rss:") {
                return kib;
            }
        }
        panic!("no mapping at {at:?}");
    }

    #[test]
    fn dropping_unmaps_unchanged_library_pages_and_keeps_copied_ones() {
        const LEN: usize = 64 * 4096;
        let dir = tempfile::tempdir().unwrap();
        let open = |name: &str| {
            let path = dir.path().join(name);
            std::fs::write(&path, vec![7u8; LEN]).unwrap();
            std::fs::File::open(&path).unwrap()
        };
        let (clean, relocated) = (open("libclean.so.1"), open("librelocated.so.1"));
        let clean_at = mapped(&clean, LEN, false);
        let relocated_at = mapped(&relocated, LEN, true);
        assert_eq!(rss_kib(clean_at), 256);

        let dropped = drop_unused_code();
        assert!(dropped.unmapped >= LEN);
        assert!(dropped.evicted);
        assert_eq!(rss_kib(clean_at), 0, "nothing touched it since");
        // SAFETY: both mappings are still there, read-only, LEN bytes long.
        unsafe {
            // The copied page keeps what was written: the mapping was left alone.
            assert_eq!(*relocated_at, 42);
            assert_eq!(rss_kib(relocated_at), 256);
            // Unmapped pages come back from the file.
            assert_eq!(*clean_at.add(LEN - 1), 7);
            libc::munmap(clean_at.cast(), LEN);
            libc::munmap(relocated_at.cast(), LEN);
        }
    }
}
