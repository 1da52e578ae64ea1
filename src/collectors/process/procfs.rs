//! Reading /proc cheaply, for a collector that reads a file per process of the host every
//! cycle (the process tree): files are opened relative to one open /proc directory, read into
//! one buffer kept from cycle to cycle, and handed out as bytes, with no path, `String` or
//! size query (std's `read_to_string` asks the size first: one more system call per file, for
//! files that all say 0).

use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, IntoRawFd, OwnedFd};
use std::path::Path;

pub struct ProcFs {
    dir: File,
    /// Zeroed once; grown (doubled) for a larger file and kept.
    buf: Vec<u8>,
    /// Whether the root is a procfs, not a test's fake /proc in a temporary folder: only there
    /// does an entry's inode number tell a process from an earlier one under the same pid.
    procfs: bool,
}

/// The largest /proc/<pid>/stat is under 1 KiB; limits and io under 2 KiB.
const START: usize = 4096;

impl ProcFs {
    pub fn open(root: &Path) -> io::Result<ProcFs> {
        let dir = File::open(root)?;
        // SAFETY: fstatfs fills the zeroed struct it is given, for a descriptor open here.
        let procfs = unsafe {
            let mut fs: libc::statfs = std::mem::zeroed();
            libc::fstatfs(dir.as_raw_fd(), &mut fs) == 0 && fs.f_type == libc::PROC_SUPER_MAGIC
        };
        Ok(ProcFs {
            dir,
            buf: vec![0; START],
            procfs,
        })
    }

    /// Whether the root is a real procfs (see [`ProcFs::pids`]).
    pub fn is_procfs(&self) -> bool {
        self.procfs
    }

    /// Opens `<pid>/<name>` (or `<name>` without a pid) under the root.
    fn open_at(&self, pid: Option<u32>, name: &str, flags: libc::c_int) -> io::Result<OwnedFd> {
        let mut path = [0u8; 64];
        let mut cursor = &mut path[..];
        match pid {
            Some(pid) => write!(cursor, "{pid}/{name}\0"),
            None => write!(cursor, "{name}\0"),
        }
        .map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
        // SAFETY: `path` is NUL-terminated (written above, within its 64 bytes) and the
        // directory's descriptor is open for as long as `self`.
        let fd = unsafe {
            libc::openat(
                self.dir.as_raw_fd(),
                path.as_ptr().cast(),
                flags | libc::O_RDONLY | libc::O_CLOEXEC | libc::O_NOCTTY,
            )
        };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `fd` was just opened and is owned by nothing else.
        Ok(unsafe { OwnedFd::from_raw_fd(fd) })
    }

    /// The contents of `<pid>/<name>` (or of `<name>` without a pid) under the root.
    pub fn read(&mut self, pid: Option<u32>, name: &str) -> io::Result<&[u8]> {
        self.read_until(pid, name, false)
    }

    /// The one line of `<pid>/<name>` (such as `stat`): the kernel writes it whole, ending in
    /// a newline, so a read that ends in one has it all, and the read that would say end of
    /// file is not made (a system call per process of the host, each cycle).
    pub fn read_line(&mut self, pid: u32, name: &str) -> io::Result<&[u8]> {
        self.read_until(Some(pid), name, true)
    }

    fn read_until(&mut self, pid: Option<u32>, name: &str, line: bool) -> io::Result<&[u8]> {
        let mut file = File::from(self.open_at(pid, name, 0)?);
        let mut len = 0;
        loop {
            if len == self.buf.len() {
                self.buf.resize(2 * self.buf.len(), 0);
            }
            match file.read(&mut self.buf[len..]) {
                Ok(0) => return Ok(&self.buf[..len]),
                Ok(n) => {
                    len += n;
                    if line && self.buf[len - 1] == b'\n' {
                        return Ok(&self.buf[..len]);
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
    }

    /// The pids listed under the root, each with the inode number of its directory, into
    /// `out` (cleared first). On a procfs that pair names one process: the kernel gives a new
    /// process a new inode, also under a reused pid (tree.rs says what that rests on).
    pub fn pids(&self, out: &mut Vec<(u32, u64)>) -> io::Result<()> {
        out.clear();
        self.entries(None, ".", |name, ino| {
            out.extend(pid_of(name).map(|pid| (pid, ino)));
        })
    }

    /// How many entries `<pid>/<name>` (a directory such as `fd`) holds, `.` and `..` aside.
    pub fn count(&self, pid: u32, name: &str) -> io::Result<usize> {
        let mut n = 0;
        self.entries(Some(pid), name, |entry, _| {
            if entry != b"." && entry != b".." {
                n += 1;
            }
        })?;
        Ok(n)
    }

    /// Every entry name of a directory under the root, with its inode number, building no path
    /// or `String`.
    fn entries(
        &self,
        pid: Option<u32>,
        name: &str,
        mut each: impl FnMut(&[u8], u64),
    ) -> io::Result<()> {
        let fd = self.open_at(pid, name, libc::O_DIRECTORY)?;
        // SAFETY: fdopendir takes the descriptor over (closedir closes it); each entry is
        // read before the next readdir call.
        unsafe {
            let dir = libc::fdopendir(fd.as_raw_fd());
            if dir.is_null() {
                return Err(io::Error::last_os_error());
            }
            let _ = fd.into_raw_fd();
            loop {
                let entry = libc::readdir(dir);
                if entry.is_null() {
                    break;
                }
                let name = std::ffi::CStr::from_ptr((*entry).d_name.as_ptr());
                each(name.to_bytes(), (*entry).d_ino);
            }
            libc::closedir(dir);
        }
        Ok(())
    }
}

/// A directory name that is a pid: digits only.
fn pid_of(name: &[u8]) -> Option<u32> {
    if name.is_empty() || !name.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(name).ok()?.parse().ok()
}

/// Fields `wanted` (numbered from 1 as proc(5) does, ascending) of /proc/<pid>/stat, as
/// numbers, in one pass. The command name (field 2) may hold spaces and parentheses (and, cut
/// at 15 bytes, half a UTF-8 character), so fields are counted from the last `)`: field 3 is
/// the first after it.
pub fn stat_fields<const N: usize>(stat: &[u8], wanted: [usize; N]) -> Option<[u64; N]> {
    let close = stat.iter().rposition(|b| *b == b')')?;
    let mut out = [0; N];
    let mut next = 0;
    let fields = stat[close + 1..]
        .split(|b| b.is_ascii_whitespace())
        .filter(|f| !f.is_empty());
    for (n, field) in (3..).zip(fields) {
        let Some(&want) = wanted.get(next) else {
            break;
        };
        if n == want {
            out[next] = std::str::from_utf8(field).ok()?.parse().ok()?;
            next += 1;
        }
    }
    (next == N).then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_files_and_pids_under_the_root() {
        let root = tempfile::tempdir().unwrap();
        for pid in ["1", "42", "self", "4x"] {
            std::fs::create_dir(root.path().join(pid)).unwrap();
        }
        let big = "x".repeat(10_000);
        std::fs::write(root.path().join("42/stat"), &big).unwrap();
        std::fs::write(root.path().join("stat"), "btime 5\n").unwrap();
        let mut procfs = ProcFs::open(root.path()).unwrap();
        assert_eq!(procfs.read(Some(42), "stat").unwrap(), big.as_bytes());
        assert_eq!(procfs.read(None, "stat").unwrap(), b"btime 5\n");
        assert_eq!(
            procfs.read(Some(1), "stat").unwrap_err().kind(),
            io::ErrorKind::NotFound
        );
        std::fs::create_dir(root.path().join("42/fd")).unwrap();
        for fd in ["0", "1", "7"] {
            std::fs::write(root.path().join("42/fd").join(fd), "").unwrap();
        }
        assert_eq!(procfs.count(42, "fd").unwrap(), 3);
        assert!(procfs.count(1, "fd").is_err());
        let mut pids = Vec::new();
        procfs.pids(&mut pids).unwrap();
        pids.sort_unstable();
        assert_eq!(pids.iter().map(|p| p.0).collect::<Vec<_>>(), [1, 42]);
        let ino =
            |p: &str| std::os::unix::fs::MetadataExt::ino(&root.path().join(p).metadata().unwrap());
        assert_eq!(
            pids.iter().map(|p| p.1).collect::<Vec<_>>(),
            [ino("1"), ino("42")]
        );
        assert!(!procfs.is_procfs(), "a folder is not a procfs");
        // This process's own /proc: the real thing.
        let mut real = ProcFs::open(Path::new("/proc")).unwrap();
        assert!(real.is_procfs());
        let me = std::process::id();
        let stat = real.read_line(me, "stat").unwrap().to_vec();
        assert_eq!(stat.last(), Some(&b'\n'));
        // A file without its newline yet is read to its end.
        std::fs::write(root.path().join("42/stat"), "1 (x) S 7\n2 (y)").unwrap();
        assert_eq!(procfs.read_line(42, "stat").unwrap(), b"1 (x) S 7\n2 (y)");
        assert_eq!(
            stat_fields(&stat, [4]),
            Some([u64::from(std::os::unix::process::parent_id())])
        );
    }

    #[test]
    fn stat_fields_are_counted_from_the_last_parenthesis() {
        let stat =
            b"1234 (jelly fin) (x)) S 77 1234 1234 0 -1 4194560 9 0 0 0 250 75 0 0 20 0 42\n";
        assert_eq!(stat_fields(stat, [4, 14, 20]), Some([77, 250, 42]));
        assert_eq!(stat_fields(stat, [4, 21]), None, "too few fields");
        assert_eq!(stat_fields(stat, [3]), None, "the state is a letter");
        assert_eq!(stat_fields(b"no parenthesis 1 2 3", [4]), None);
        // A name that is not UTF-8 (cut inside a character at 15 bytes) is still counted.
        assert_eq!(stat_fields(b"9 (caf\xc3) S 1 9", [4]), Some([1]));
    }
}
