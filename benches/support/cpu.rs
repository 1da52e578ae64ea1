//! CPU time of a process, for the benches' figures.

/// CPU time of every live thread of `pid`, in ns: the first field of each
/// /proc/<pid>/task/<tid>/schedstat (time run on a CPU). /proc/<pid>/stat counts in clock
/// ticks (10 ms), as coarse as the figures themselves. A thread that exited takes its time
/// with it; the agent's threads (the runtime's, the blocking pool kept alive 10 s) outlive a
/// 2 s cycle. 0 when the process is gone.
pub fn cpu_ns(pid: i32) -> u64 {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return 0;
    };
    tasks
        .flatten()
        .filter_map(|t| std::fs::read_to_string(t.path().join("schedstat")).ok())
        .filter_map(|s| s.split_whitespace().next()?.parse::<u64>().ok())
        .sum()
}
