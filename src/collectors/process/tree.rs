//! Jellyfin with its descendants (the ffmpeg jobs it starts), from /proc, for when its unit's
//! cgroup is not visible. One pass over /proc finds the tree by parent pid.
//!
//! CPU is summed as utime + stime + cutime + cstime of every live process of the tree: a
//! child that exited and was reaped has its time in its parent's cutime/cstime (the kernel
//! adds it at wait()), so the sum neither loses finished ffmpeg jobs nor counts one twice.
//! Likewise /proc/<pid>/io of a parent includes its reaped children's I/O.
//!
//! Reading the /proc/<pid>/stat of every process of the host each cycle (a hundred opens,
//! reads and closes) was most of the collector's cost, so a pass reads only the stat of the
//! processes it must: the tree's (their usage is the answer), and those whose parent it does
//! not know. It keeps each other process's parent from cycle to cycle under the process's
//! identity, its pid and the inode number of its /proc/<pid> directory (from the listing
//! itself, `d_ino`), and reads its stat again when that identity changes or when the kept
//! parents would put it into the tree.
//! What that rests on, in the kernel (fs/proc/base.c, kernel/exit.c, fs/inode.c):
//! - A new process under a reused pid has a new inode number: procfs makes a new inode for
//!   each /proc/<pid> dentry (`proc_pid_make_inode`, `i_ino = get_next_ino()`), and a
//!   process's dentries are invalidated when it is reaped (`release_task` calls
//!   `proc_flush_pid`), so the listing (`proc_pid_readdir`, `proc_fill_cache`) makes a new
//!   one for the new process. `proc_fill_cache` says 1 when it cannot: never trusted.
//! - A process's parent changes only when its parent exits: it then goes to another thread
//!   of the parent, to the nearest ancestor that is a subreaper, or to the init of the
//!   parent's pid namespace (`find_new_reaper`, kernel/exit.c). An ancestor of a process
//!   outside the tree is outside it too, so a process outside the tree can only come into
//!   it as a new process (read: its identity is new) or, when a member of the tree is the
//!   init of a pid namespace (Jellyfin as pid 1 of a container), by being orphaned into it:
//!   a tree with such a member is read in full every cycle.
//! - A process the kept parents put into the tree is read before it counts, and the tree made
//!   again with its parent as it is now: an orphan whose dead parent's pid went to a new
//!   member of the tree is not counted as that member's child.
//!
//! The kernel calls its flush of a reaped process's dentries an optimisation that "does not
//! guarantee" none is left (a listing racing with the reaping can keep one, which only a path
//! lookup replaces), inode numbers wrap at 2^32, and other kernels may differ: every
//! [`FULL_EVERY`]th pass reads every stat again, which also replaces such a dentry. A fake
//! /proc (tests, anything but a procfs) is always read in full.

use super::procfs::{ProcFs, stat_fields};

/// What one process of the tree contributes.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Usage {
    pub cpu_ticks: u64,
    pub rss_pages: u64,
}

/// ppid and usage from /proc/<pid>/stat: ppid (4), utime, stime, cutime, cstime (14-17),
/// rss (24).
pub fn parse(stat: &[u8]) -> Option<(u32, Usage)> {
    let [ppid, utime, stime, cutime, cstime, rss] = stat_fields(stat, [4, 14, 15, 16, 17, 24])?;
    Some((
        u32::try_from(ppid).ok()?,
        Usage {
            cpu_ticks: utime + stime + cutime + cstime,
            rss_pages: rss,
        },
    ))
}

/// Every this many passes each stat is read again (at 15 s: every 15 minutes).
pub const FULL_EVERY: u32 = 60;

/// The inode number `proc_fill_cache` gives an entry it could not look up.
const NO_INODE: u64 = 1;

/// One process listed in /proc, as a pass knows it.
#[derive(Debug, Clone, Copy)]
struct Process {
    pid: u32,
    /// The inode number of /proc/<pid> in the listing: with the pid, the process's identity.
    ino: u64,
    /// Its parent when its stat was read; None while unknown (not read, or unreadable).
    parent: Option<u32>,
    /// Its usage when its stat was read in this pass.
    usage: Option<Usage>,
    member: bool,
    /// Whether it is the init of a pid namespace (read once, when it first is a member).
    ns_init: Option<bool>,
}

/// What passes keep from cycle to cycle (a hundred processes or so).
#[derive(Default)]
pub struct Scratch {
    listing: Vec<(u32, u64)>,
    /// Every listed process, by pid; the last pass's while a pass runs.
    known: Vec<Process>,
    last: Vec<Process>,
    tree: Vec<u32>,
    passes: u32,
    /// The last pass's tree held the init of a pid namespace.
    ns_init: bool,
    /// Stat files the last pass read (for tests and the bench).
    pub stats_read: usize,
}

/// The pids of `root` and all its descendants, with their usage.
pub fn members(procfs: &mut ProcFs, root: u32, scratch: &mut Scratch) -> Vec<(u32, Usage)> {
    scratch.passes = scratch.passes.wrapping_add(1);
    scratch.stats_read = 0;
    let full = !procfs.is_procfs() || scratch.passes.is_multiple_of(FULL_EVERY) || scratch.ns_init;
    pass(procfs, root, scratch, full);
    scratch.ns_init = procfs.is_procfs() && holds_ns_init(procfs, scratch);
    if scratch.ns_init && !full {
        // A process may have been orphaned into the tree since the last pass.
        pass(procfs, root, scratch, true);
    }
    scratch
        .known
        .iter()
        .filter(|p| p.member)
        .filter_map(|p| Some((p.pid, p.usage?)))
        .collect()
}

/// Lists /proc, reads the stats it must (every one when `full`), and marks the tree.
fn pass(procfs: &mut ProcFs, root: u32, scratch: &mut Scratch, full: bool) {
    let Scratch {
        listing,
        known,
        last,
        tree,
        stats_read,
        ..
    } = scratch;
    std::mem::swap(known, last);
    known.clear();
    if procfs.pids(listing).is_err() {
        listing.clear();
    }
    listing.sort_unstable();
    // What the last pass knew of each process still listed under the same identity.
    let mut before = last.iter().peekable();
    for &(pid, ino) in listing.iter() {
        while before.next_if(|p| p.pid < pid).is_some() {}
        let same = before
            .peek()
            .filter(|p| p.pid == pid && p.ino == ino && ino != NO_INODE);
        known.push(Process {
            pid,
            ino,
            parent: same.and_then(|p| p.parent).filter(|_| !full),
            usage: None,
            member: same.is_some_and(|p| p.member),
            ns_init: same.and_then(|p| p.ns_init),
        });
    }
    for p in known.iter_mut() {
        if p.parent.is_none() || p.member {
            read(procfs, p, stats_read);
        }
    }
    // The tree grows by the processes whose parent is in it, a generation per round: a few
    // rounds (Jellyfin, ffmpeg, what ffmpeg starts), each over a hundred processes. A member
    // not read yet (a process that came into the tree) is read, and the tree made again with
    // its parent as it is now.
    loop {
        tree.clear();
        tree.push(root);
        let mut counted = 0;
        while counted < tree.len() {
            let generation = counted..tree.len();
            counted = tree.len();
            for p in known.iter() {
                if let Some(ppid) = p.parent
                    && tree[generation.clone()].contains(&ppid)
                    && !tree.contains(&p.pid)
                {
                    tree.push(p.pid);
                }
            }
        }
        let mut unread = false;
        for p in known.iter_mut() {
            p.member = tree.contains(&p.pid);
            if p.member && p.usage.is_none() && p.parent.is_some() {
                read(procfs, p, stats_read);
                unread = true;
            }
        }
        if !unread {
            break;
        }
    }
}

/// Reads one process's stat: its parent and usage; a process that is gone or unreadable is
/// left unknown.
fn read(procfs: &mut ProcFs, p: &mut Process, stats_read: &mut usize) {
    *stats_read += 1;
    let stat = procfs.read_line(p.pid, "stat").ok().and_then(parse);
    p.parent = stat.map(|s| s.0);
    p.usage = stat.map(|s| s.1);
}

/// Whether a member of the tree is (or may be: unreadable, or a kernel without `NSpid`) the
/// init of a pid namespace, which orphans of that namespace go to.
fn holds_ns_init(procfs: &mut ProcFs, scratch: &mut Scratch) -> bool {
    let mut any = false;
    for p in scratch.known.iter_mut().filter(|p| p.member) {
        let init = *p
            .ns_init
            .get_or_insert_with(|| is_ns_init(procfs, p.pid) != Some(false));
        any |= init;
    }
    any
}

/// Whether `pid` is pid 1 in its own pid namespace (the last number of `NSpid` in its status).
pub fn is_ns_init(procfs: &mut ProcFs, pid: u32) -> Option<bool> {
    let status = procfs.read(Some(pid), "status").ok()?;
    let line = status
        .split(|b| *b == b'\n')
        .find_map(|l| l.strip_prefix(b"NSpid:"))?;
    let last = line
        .split(|b| b.is_ascii_whitespace())
        .rfind(|f| !f.is_empty())?;
    Some(last == b"1")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_includes_the_reaped_children() {
        let stat = "4242 (ffmpeg) R 1234 4242 4242 0 -1 4194560 9 0 0 0 250 75 30 12 20 0 1 0 5000 1073741824 2048 \
                    18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 17 1 0 0 0 0 0";
        assert_eq!(
            parse(stat.as_bytes()),
            Some((
                1234,
                Usage {
                    cpu_ticks: 250 + 75 + 30 + 12,
                    rss_pages: 2048
                }
            ))
        );
    }

    #[test]
    fn the_tree_of_a_fake_proc() {
        let proc = tempfile::tempdir().unwrap();
        let write = |pid: u32, ppid: u32, utime: u64| {
            let dir = proc.path().join(pid.to_string());
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(
                dir.join("stat"),
                format!("{pid} (x) S {ppid} 1 1 0 -1 0 0 0 0 0 {utime} 0 0 0 20 0 1 0 1 1 10 0"),
            )
            .unwrap();
        };
        write(100, 1, 5); // Jellyfin
        write(200, 100, 7); // ffmpeg
        write(300, 200, 11); // ffmpeg's child
        write(400, 1, 1000); // someone else
        let mut procfs = ProcFs::open(proc.path()).unwrap();
        let mut got = members(&mut procfs, 100, &mut Scratch::default());
        got.sort_by_key(|m| m.0);
        assert_eq!(got.iter().map(|m| m.0).collect::<Vec<_>>(), [100, 200, 300]);
        assert_eq!(got.iter().map(|m| m.1.cpu_ticks).sum::<u64>(), 23);
    }
}
