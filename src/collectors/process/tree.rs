//! Jellyfin with its descendants (the ffmpeg jobs it starts), from /proc, for when its unit's
//! cgroup is not visible. One pass over /proc/*/stat finds the tree by parent pid.
//!
//! CPU is summed as utime + stime + cutime + cstime of every live process of the tree: a
//! child that exited and was reaped has its time in its parent's cutime/cstime (the kernel
//! adds it at wait()), so the sum neither loses finished ffmpeg jobs nor counts one twice.
//! Likewise /proc/<pid>/io of a parent includes its reaped children's I/O.

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

/// The lists one pass fills, kept from cycle to cycle (a hundred processes or so).
#[derive(Default)]
pub struct Scratch {
    pids: Vec<u32>,
    /// pid, ppid, usage of every process whose stat was read.
    all: Vec<(u32, u32, Usage)>,
    tree: Vec<u32>,
}

/// The pids of `root` and all its descendants, with their usage.
pub fn members(procfs: &mut ProcFs, root: u32, scratch: &mut Scratch) -> Vec<(u32, Usage)> {
    let Scratch { pids, all, tree } = scratch;
    all.clear();
    if procfs.pids(pids).is_ok() {
        for &pid in pids.iter() {
            if let Some((ppid, usage)) = procfs.read_line(pid, "stat").ok().and_then(parse) {
                all.push((pid, ppid, usage));
            }
        }
    }
    // The tree grows by the processes whose parent is in it, a generation per pass: a few
    // passes (Jellyfin, ffmpeg, what ffmpeg starts), each over a hundred processes.
    tree.clear();
    tree.push(root);
    let mut counted = 0;
    while counted < tree.len() {
        let generation = counted..tree.len();
        counted = tree.len();
        for &(pid, ppid, _) in all.iter() {
            if tree[generation.clone()].contains(&ppid) && !tree.contains(&pid) {
                tree.push(pid);
            }
        }
    }
    all.iter()
        .filter(|(pid, _, _)| tree.contains(pid))
        .map(|&(pid, _, usage)| (pid, usage))
        .collect()
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
