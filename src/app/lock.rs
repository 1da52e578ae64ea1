//! One agent per state_dir: two writers on one buffer would corrupt it.

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Seek, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

/// Held for the agent's lifetime; the OS releases the lock when the process ends, even on
/// SIGKILL, so a stale lock file never blocks a restart.
#[derive(Debug)]
pub struct StateLock {
    _file: File,
}

/// Why the state_dir could not be locked.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error("state_dir {}: cannot create: {source}", dir.display())]
    Create { dir: PathBuf, source: io::Error },
    #[error("state_dir {}: cannot open {}: {source}", dir.display(), file.display())]
    Open {
        dir: PathBuf,
        file: PathBuf,
        source: io::Error,
    },
    #[error(
        "state_dir {} is in use by another jellyfin-pusher{}; each agent needs its own state_dir",
        dir.display(),
        holder.as_ref().map(|pid| format!(" (pid {pid})")).unwrap_or_default()
    )]
    InUse {
        dir: PathBuf,
        holder: Option<String>,
    },
    #[error("state_dir {}: cannot lock {}: {source}", dir.display(), file.display())]
    Lock {
        dir: PathBuf,
        file: PathBuf,
        source: io::Error,
    },
}

impl StateLock {
    pub fn acquire(state_dir: &Path) -> Result<StateLock, LockError> {
        let dir = || state_dir.to_path_buf();
        crate::state_file::create_private_dir(state_dir)
            .map_err(|source| LockError::Create { dir: dir(), source })?;
        let path = state_dir.join("lock");
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW)
            .open(&path)
            .map_err(|source| LockError::Open {
                dir: dir(),
                file: path.clone(),
                source,
            })?;
        match file.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                let mut holder = String::new();
                let _ = file.read_to_string(&mut holder);
                let holder = Some(holder.trim().to_string()).filter(|h| !h.is_empty());
                return Err(LockError::InUse { dir: dir(), holder });
            }
            Err(std::fs::TryLockError::Error(source)) => {
                return Err(LockError::Lock {
                    dir: dir(),
                    file: path,
                    source,
                });
            }
        }
        // The pid is only for the error message above; failing to write it is harmless.
        let _ = file
            .set_len(0)
            .and_then(|()| file.rewind())
            .and_then(|()| write!(file, "{}", std::process::id()));
        Ok(StateLock { _file: file })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_lock_on_the_same_dir_is_refused_with_the_holder() {
        let dir = tempfile::tempdir().unwrap();
        let first = StateLock::acquire(dir.path()).unwrap();
        let err = StateLock::acquire(dir.path()).unwrap_err();
        assert!(
            matches!(&err, LockError::InUse { holder: Some(pid), .. } if *pid == std::process::id().to_string()),
            "{err:?}"
        );
        let err = err.to_string();
        assert!(
            err.contains("in use by another jellyfin-pusher")
                && err.contains(&std::process::id().to_string()),
            "{err}"
        );
        drop(first);
        StateLock::acquire(dir.path()).unwrap();
    }
}
