//! The process tree's kept parents ([`super::tree`]) against the real kernel: a pid that goes
//! to a new process, a dead parent whose pid goes to a new member of the tree, and an orphan
//! taken in by a member that is the init of a pid namespace. They need pids chosen in
//! advance, which only a pid namespace of our own allows (/proc/sys/kernel/ns_last_pid): the
//! test runs itself again as pid 1 of a new pid namespace with its own /proc (`unshare --pid
//! --fork --mount-proc`, root only), and says SKIP where that cannot be made.

use std::io::Write;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::procfs::ProcFs;
use super::tree::{Scratch, is_ns_init, members};

const INSIDE: &str = "JELLYFIN_PUSHER_TEST_INSIDE_PID_NAMESPACE";
const NAME: &str =
    "collectors::process::tree_pid_reuse::a_reused_pid_an_orphan_and_a_namespace_init_in_the_tree";

#[test]
fn a_reused_pid_an_orphan_and_a_namespace_init_in_the_tree() {
    if std::env::var_os(INSIDE).is_some() {
        inside();
        return;
    }
    let exe = std::env::current_exe().unwrap();
    let run = Command::new("unshare")
        .args(["--pid", "--fork", "--mount-proc", "--"])
        .arg(exe)
        .args([NAME, "--exact", "--nocapture", "--test-threads=1"])
        .env(INSIDE, "1")
        .output();
    let output = match run {
        Ok(output) => output,
        Err(e) => {
            eprintln!("SKIP: no unshare here ({e}); the pid reuse test needs util-linux and root");
            return;
        }
    };
    let stderr = String::from_utf8_lossy(&output.stderr);
    let stdout = String::from_utf8_lossy(&output.stdout);
    // Only when the test never started inside: a nested unshare failing within it also
    // writes "unshare:" first, and that is a failure, not a machine without namespaces.
    if !output.status.success()
        && stderr.starts_with("unshare:")
        && !stdout.contains("running 1 test")
    {
        eprintln!(
            "SKIP: cannot make a pid namespace here ({stderr}); the pid reuse test needs root"
        );
        return;
    }
    assert!(
        output.status.success() && stdout.contains("1 passed"),
        "inside the pid namespace:\n{stdout}\n{stderr}"
    );
}

/// The next process started gets `pid`.
fn next_pid_is(pid: u32) {
    std::fs::write("/proc/sys/kernel/ns_last_pid", format!("{}", pid - 1)).unwrap();
}

fn ppid(pid: u32) -> Option<u32> {
    let stat = std::fs::read(format!("/proc/{pid}/stat")).ok()?;
    let [ppid] = super::procfs::stat_fields(&stat, [4])?;
    u32::try_from(ppid).ok()
}

fn wait_for(what: &str, done: impl Fn() -> bool) {
    let until = Instant::now() + Duration::from_secs(10);
    while !done() {
        assert!(Instant::now() < until, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn ino(pid: u32) -> u64 {
    std::os::unix::fs::MetadataExt::ino(&std::fs::metadata(format!("/proc/{pid}")).unwrap())
}

/// A child killed and reaped when dropped (what it started ends with the namespace).
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn sh(script: &str) -> Killed {
    Killed(
        Command::new("sh")
            .args(["-c", script])
            .stdin(Stdio::piped())
            .spawn()
            .unwrap(),
    )
}

/// Pid 1 of the new namespace: Jellyfin is a shell (R) that starts what it is told to; P, a
/// process outside its tree, has a child X; then P dies (X goes to pid 1) and R starts Y,
/// which the kernel gives P's pid.
fn inside() {
    assert_eq!(std::process::id(), 1, "not pid 1 of a new namespace");
    let mut jellyfin = sh("while read -r line; do eval \"$line\"; done");
    let r = jellyfin.0.id();
    next_pid_is(42);
    let p = sh("sleep 1000 & read -r z");
    assert_eq!(p.0.id(), 42);
    wait_for("P's child X", || ppid(43) == Some(42));
    let mut procfs = ProcFs::open(std::path::Path::new("/proc")).unwrap();
    assert!(procfs.is_procfs());
    let mut scratch = Scratch::default();
    let pids = |got: Vec<(u32, super::tree::Usage)>| got.iter().map(|m| m.0).collect::<Vec<_>>();
    assert_eq!(pids(members(&mut procfs, r, &mut scratch)), [r]);
    // Steady: only the tree's one stat is read; P and X are known by their identity.
    assert_eq!(pids(members(&mut procfs, r, &mut scratch)), [r]);
    assert_eq!(scratch.stats_read, 1);
    let p_ino = ino(42);
    drop(p);
    wait_for("X orphaned to pid 1", || ppid(43) == Some(1));
    let stdin = jellyfin.0.stdin.as_mut().unwrap();
    writeln!(
        stdin,
        "echo 41 > /proc/sys/kernel/ns_last_pid; sleep 1000 &"
    )
    .unwrap();
    stdin.flush().unwrap();
    wait_for("Y under P's pid", || ppid(42) == Some(r));
    assert_ne!(
        ino(42),
        p_ino,
        "the kernel gave the new process a new inode"
    );
    // Y is new under an old pid: read. Keyed by pid alone, Y would be P, outside. X's kept
    // parent (P's pid, now Y's) puts it in the tree: read before it counts, it is not Y's.
    assert_eq!(pids(members(&mut procfs, r, &mut scratch)), [r, 42]);
    assert_eq!(scratch.stats_read, 3, "R, Y and X");
    assert_eq!(pids(members(&mut procfs, r, &mut scratch)), [r, 42]);
    assert_eq!(scratch.stats_read, 2, "the tree's two");
    // A member of the tree that is the init of a pid namespace (M, under U, which R starts)
    // takes the orphans of that namespace: S, started into it from outside the tree (nsenter:
    // its shell's parent is outside), comes into the tree when its shell dies, with no new
    // identity and no parent in the tree before. So such a tree is read in full.
    writeln!(
        stdin,
        "echo 49 > /proc/sys/kernel/ns_last_pid; unshare --pid --fork sleep 1000 &"
    )
    .unwrap();
    stdin.flush().unwrap();
    wait_for("M, init of a namespace in the tree", || {
        ppid(51) == Some(50)
    });
    assert_eq!(is_ns_init(&mut procfs, 51), Some(true));
    assert_eq!(is_ns_init(&mut procfs, r), Some(false));
    next_pid_is(60);
    let nsenter = Command::new("nsenter")
        .args([
            "--pid=/proc/51/ns/pid",
            "--",
            "sh",
            "-c",
            "sleep 1000 & read -r z",
        ])
        .stdin(Stdio::piped())
        .spawn()
        .unwrap();
    let mut nsenter = Killed(nsenter);
    assert_eq!(nsenter.0.id(), 60);
    wait_for("S, in M's namespace", || ppid(62) == Some(61));
    assert_eq!(pids(members(&mut procfs, r, &mut scratch)), [r, 42, 50, 51]);
    assert_eq!(pids(members(&mut procfs, r, &mut scratch)), [r, 42, 50, 51]);
    // SAFETY: kill sends a signal to a process of this test's own namespace.
    assert_eq!(unsafe { libc::kill(61, libc::SIGKILL) }, 0);
    nsenter.0.wait().unwrap();
    wait_for("S orphaned to M", || ppid(62) == Some(51));
    assert_eq!(
        pids(members(&mut procfs, r, &mut scratch)),
        [r, 42, 50, 51, 62]
    );
}
