//! Jellyfin's systemd unit as a whole, from its cgroup (v2): everything the unit runs,
//! its ffmpeg children included, with the CPU of children that have already exited.

use std::path::{Path, PathBuf};

/// The unit's cgroup folder for the process whose /proc/<pid>/cgroup is `text`: only a
/// service's own cgroup (a `.service` as the last part), never a login session's scope or the
/// root, which hold other processes too. Hybrid hierarchies mount v2 at `unified/`.
pub fn unit_dir(cgroup_root: &Path, text: &str) -> Option<PathBuf> {
    let path = text.lines().find_map(|l| l.strip_prefix("0::"))?.trim();
    let unit = path.rsplit('/').next()?;
    if !unit.ends_with(".service") {
        return None;
    }
    let relative = path.trim_start_matches('/');
    [cgroup_root.to_path_buf(), cgroup_root.join("unified")]
        .into_iter()
        .map(|root| root.join(relative))
        .find(|dir| dir.join("cgroup.procs").is_file())
}

/// `usage_usec` of cpu.stat, in seconds.
pub fn cpu_seconds(cpu_stat: &str) -> Option<f64> {
    let usec: f64 = cpu_stat
        .lines()
        .find_map(|l| l.strip_prefix("usage_usec "))?
        .trim()
        .parse()
        .ok()?;
    Some(usec / 1e6)
}

/// The working set: memory.current less the page cache the kernel may drop at once
/// (`inactive_file` of memory.stat), as cAdvisor and kubelet count it. memory.current alone
/// counts every media file Jellyfin read as long as it stays cached.
pub fn working_set_bytes(current: &str, memory_stat: &str) -> Option<f64> {
    let current: f64 = current.trim().parse().ok()?;
    let inactive: f64 = memory_stat
        .lines()
        .find_map(|l| l.strip_prefix("inactive_file "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0.0);
    Some((current - inactive).max(0.0))
}

/// Bytes read and written, summed over the devices of io.stat.
pub fn io_bytes(io_stat: &str) -> (f64, f64) {
    let mut sum = (0.0, 0.0);
    for field in io_stat.split_whitespace() {
        if let Some(v) = field
            .strip_prefix("rbytes=")
            .and_then(|v| v.parse::<f64>().ok())
        {
            sum.0 += v;
        } else if let Some(v) = field
            .strip_prefix("wbytes=")
            .and_then(|v| v.parse::<f64>().ok())
        {
            sum.1 += v;
        }
    }
    sum
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_service_cgroup_is_the_unit() {
        let root = tempfile::tempdir().unwrap();
        let unit = root.path().join("system.slice/jellyfin.service");
        std::fs::create_dir_all(&unit).unwrap();
        std::fs::write(unit.join("cgroup.procs"), "1\n").unwrap();
        assert_eq!(
            unit_dir(root.path(), "0::/system.slice/jellyfin.service\n"),
            Some(unit)
        );
        assert_eq!(
            unit_dir(
                root.path(),
                "0::/user.slice/user-1000.slice/session-3.scope\n"
            ),
            None
        );
        assert_eq!(unit_dir(root.path(), "0::/\n"), None);
        assert_eq!(
            unit_dir(root.path(), "0::/system.slice/other.service\n"),
            None,
            "not visible"
        );
        // Hybrid: v2 under unified/.
        let hybrid = root.path().join("unified/system.slice/media.service");
        std::fs::create_dir_all(&hybrid).unwrap();
        std::fs::write(hybrid.join("cgroup.procs"), "1\n").unwrap();
        assert_eq!(
            unit_dir(
                root.path(),
                "4:memory:/system.slice/media.service\n0::/system.slice/media.service\n"
            ),
            Some(hybrid)
        );
    }

    #[test]
    fn the_files_of_the_unit() {
        assert_eq!(
            cpu_seconds("usage_usec 12500000\nuser_usec 10000000\nsystem_usec 2500000\n"),
            Some(12.5)
        );
        assert_eq!(
            working_set_bytes(
                "1073741824\n",
                "anon 500000000\nfile 573741824\ninactive_file 473741824\n"
            ),
            Some(600_000_000.0)
        );
        assert_eq!(
            io_bytes(
                "8:0 rbytes=1000 wbytes=200 rios=3 wios=4 dbytes=0 dios=0\n259:0 rbytes=24 wbytes=56 rios=1 wios=1 dbytes=0 dios=0\n"
            ),
            (1024.0, 256.0)
        );
    }
}
