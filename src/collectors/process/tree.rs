//! Jellyfin with its descendants (the ffmpeg jobs it starts), from /proc, for when its unit's
//! cgroup is not visible. One pass over /proc/*/stat finds the tree by parent pid.
//!
//! CPU is summed as utime + stime + cutime + cstime of every live process of the tree: a
//! child that exited and was reaped has its time in its parent's cutime/cstime (the kernel
//! adds it at wait()), so the sum neither loses finished ffmpeg jobs nor counts one twice.
//! Likewise /proc/<pid>/io of a parent includes its reaped children's I/O.

use std::collections::HashMap;
use std::path::Path;

/// What one process of the tree contributes.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Usage {
    pub cpu_ticks: u64,
    pub rss_pages: u64,
}

/// ppid and usage from the text of /proc/<pid>/stat (fields counted from the last `)`).
pub fn parse(stat: &str) -> Option<(u32, Usage)> {
    let rest = &stat[stat.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let field = |n: usize| f.get(n - 3)?.parse::<u64>().ok();
    let ppid = f.get(4 - 3)?.parse::<u32>().ok()?;
    Some((
        ppid,
        Usage {
            cpu_ticks: field(14)? + field(15)? + field(16)? + field(17)?,
            rss_pages: field(24)?,
        },
    ))
}

/// The pids of `root` and all its descendants.
pub fn members(proc_root: &Path, root: u32) -> Vec<(u32, Usage)> {
    let mut all: HashMap<u32, (u32, Usage)> = HashMap::new();
    if let Ok(entries) = std::fs::read_dir(proc_root) {
        for entry in entries.flatten() {
            let Some(pid) = entry
                .file_name()
                .to_str()
                .and_then(|n| n.parse::<u32>().ok())
            else {
                continue;
            };
            if let Some(parsed) = std::fs::read_to_string(entry.path().join("stat"))
                .ok()
                .as_deref()
                .and_then(parse)
            {
                all.insert(pid, parsed);
            }
        }
    }
    let mut children: HashMap<u32, Vec<u32>> = HashMap::new();
    for (pid, (ppid, _)) in &all {
        children.entry(*ppid).or_default().push(*pid);
    }
    let mut out = Vec::new();
    let mut todo = vec![root];
    while let Some(pid) = todo.pop() {
        if let Some((_, usage)) = all.get(&pid) {
            out.push((pid, *usage));
        }
        if out.len() > all.len() {
            break; // a pid loop cannot happen in /proc; never spin if it did
        }
        todo.extend(children.get(&pid).into_iter().flatten().copied());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_includes_the_reaped_children() {
        let stat = "4242 (ffmpeg) R 1234 4242 4242 0 -1 4194560 9 0 0 0 250 75 30 12 20 0 1 0 5000 1073741824 2048 \
                    18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 17 1 0 0 0 0 0";
        assert_eq!(
            parse(stat),
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
        let mut got = members(proc.path(), 100);
        got.sort_by_key(|m| m.0);
        assert_eq!(got.iter().map(|m| m.0).collect::<Vec<_>>(), [100, 200, 300]);
        assert_eq!(got.iter().map(|m| m.1.cpu_ticks).sum::<u64>(), 23);
    }
}
