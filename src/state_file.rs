//! Small JSON state files under `state_dir` (cursors, last results seen), replaced atomically:
//! write a temporary file, fsync it, rename it over the old one, fsync the folder. A crash
//! leaves the old state or the new one, never a mix. The `status.json` snapshot skips the
//! fsyncs ([`StateFile::save_snapshot`]): it is whole after a crash of the agent, and after a
//! power cut `status` copes with an empty or older one until the agent rewrites it.
//!
//! Outside the systemd unit (which sets `UMask=0077` and `StateDirectoryMode=0700`) nothing
//! else protects them, so the agent does it itself: folders it creates are 0700, files 0600,
//! and every state file is opened with `O_NOFOLLOW` (a planted symlink is refused, not
//! followed) and read only up to a size cap (a damaged or planted file cannot make the agent
//! read gigabytes).

use std::fs::{DirBuilder, File, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use serde::Serialize;
use serde::de::DeserializeOwned;

pub struct StateFile {
    path: PathBuf,
    /// `--once` reads state but never writes it.
    writable: bool,
}

impl StateFile {
    pub fn new(state_dir: &Path, name: &str, writable: bool) -> StateFile {
        StateFile {
            path: state_dir.join(name),
            writable,
        }
    }

    /// The saved state; None when there is none yet or it is unreadable (logged: the caller
    /// starts afresh, which only means counting from now).
    pub fn load<T: DeserializeOwned>(&self) -> Option<T> {
        let text = match read_capped(&self.path, MAX_STATE_FILE) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return None,
            Err(e) => {
                tracing::warn!(file = %self.path.display(), error = %e, "cannot read saved state; starting afresh");
                return None;
            }
        };
        match serde_json::from_slice(&text) {
            Ok(state) => Some(state),
            Err(e) => {
                tracing::warn!(file = %self.path.display(), error = %e, "saved state is damaged; starting afresh");
                None
            }
        }
    }

    pub fn save<T: Serialize>(&self, state: &T) -> std::io::Result<()> {
        self.save_with(state, Durability::PowerCut)
    }

    /// For a snapshot that is rewritten often and that nothing needs after a power cut
    /// (`status.json`): replaced without the fsyncs, so a crash of the agent leaves the old
    /// file or the new one, and a power cut may leave an empty or older one (its reader must
    /// cope). Saves two fsyncs every write.
    pub fn save_snapshot<T: Serialize>(&self, state: &T) -> std::io::Result<()> {
        self.save_with(state, Durability::ProcessCrash)
    }

    fn save_with<T: Serialize>(&self, state: &T, durability: Durability) -> std::io::Result<()> {
        if !self.writable {
            return Ok(());
        }
        let bytes = serde_json::to_vec(state).map_err(std::io::Error::other)?;
        replace(&self.path, &bytes, durability)
    }
}

/// What a replaced file survives whole (the old one or the new one).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Durability {
    /// A crash of the process, or a power cut: fsyncs the file and the folder.
    PowerCut,
    /// A crash of the process only: no fsync.
    ProcessCrash,
}

/// The largest state file the agent reads; its own files stay far below it.
pub const MAX_STATE_FILE: u64 = 4 * 1024 * 1024;

/// Creates `dir` and its missing parents, private to the agent's user (0700).
pub fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    DirBuilder::new().recursive(true).mode(0o700).create(dir)
}

/// Creates (or truncates) a private (0600) file for writing, refusing a symlink in its place.
pub fn create_private_file(path: &Path) -> std::io::Result<File> {
    OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)
}

/// Reads a state file of at most `cap` bytes, refusing a symlink. A larger file is an error
/// that names it.
pub fn read_capped(path: &Path, cap: u64) -> std::io::Result<Vec<u8>> {
    let file = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)?;
    let too_large = || {
        std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("{} is larger than {cap} bytes", path.display()),
        )
    };
    if file.metadata()?.len() > cap {
        return Err(too_large());
    }
    let mut bytes = Vec::new();
    file.take(cap + 1).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > cap {
        return Err(too_large());
    }
    Ok(bytes)
}

/// Replaces `path` with `bytes` so that a crash leaves the old file or the new one: write a
/// temporary file, fsync it, rename it over the old one, fsync the folder. Every state file
/// of the agent (queue reader positions, the user-label salt, cursors) goes through here,
/// except the `status.json` snapshot ([`StateFile::save_snapshot`]).
pub fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    replace(path, bytes, Durability::PowerCut)
}

/// Makes a folder's entries (a file created, renamed or removed in it) survive a power cut.
pub fn sync_dir(dir: &Path) -> std::io::Result<()> {
    File::open(dir)?.sync_all()
}

fn replace(path: &Path, bytes: &[u8], durability: Durability) -> std::io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    // The folder is made when it is missing, not tried on every save (a `mkdir` answered
    // EEXIST each time, status.json's among them).
    let mut file = match create_private_file(&tmp) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            create_private_dir(dir)?;
            create_private_file(&tmp)?
        }
        opened => opened?,
    };
    file.write_all(bytes)?;
    if durability == Durability::PowerCut {
        file.sync_all()?;
    }
    drop(file);
    // rename() replaces a symlink at `path` itself; it never writes through it.
    std::fs::rename(&tmp, path)?;
    match durability {
        Durability::PowerCut => sync_dir(dir),
        Durability::ProcessCrash => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    #[test]
    fn round_trips_and_damage_means_afresh() {
        let dir = tempfile::tempdir().unwrap();
        let file = StateFile::new(dir.path(), "x.json", true);
        assert_eq!(file.load::<BTreeMap<String, u64>>(), None);
        file.save(&BTreeMap::from([("a".to_string(), 1u64)]))
            .unwrap();
        assert_eq!(
            file.load::<BTreeMap<String, u64>>(),
            Some(BTreeMap::from([("a".to_string(), 1)]))
        );
        std::fs::write(dir.path().join("x.json"), "{\"a\":").unwrap();
        assert_eq!(file.load::<BTreeMap<String, u64>>(), None);
        // A file past the cap is not read; the caller starts afresh.
        std::fs::write(
            dir.path().join("x.json"),
            vec![b' '; MAX_STATE_FILE as usize + 1],
        )
        .unwrap();
        assert_eq!(file.load::<BTreeMap<String, u64>>(), None);
        let dry = StateFile::new(dir.path(), "y.json", false);
        dry.save(&1u8).unwrap();
        dry.save_snapshot(&1u8).unwrap();
        assert!(!dir.path().join("y.json").exists());
        // A snapshot is replaced whole too (no temporary left), private like the rest.
        let snap = StateFile::new(&dir.path().join("s"), "s.json", true);
        snap.save_snapshot(&[1u8, 2]).unwrap();
        snap.save_snapshot(&[3u8]).unwrap();
        assert_eq!(snap.load::<Vec<u8>>(), Some(vec![3]));
        let names: Vec<_> = std::fs::read_dir(dir.path().join("s"))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["s.json"]);
    }

    #[test]
    fn files_are_private_symlinks_refused_and_sizes_capped() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("state");
        write_atomically(&state.join("x.json"), b"{}").unwrap();
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&state), 0o700);
        assert_eq!(mode(&state.join("x.json")), 0o600);

        // A symlink planted where a state file is read, or where its temporary is written.
        let target = dir.path().join("elsewhere");
        std::fs::write(&target, b"{}").unwrap();
        std::os::unix::fs::symlink(&target, state.join("link.json")).unwrap();
        assert!(read_capped(&state.join("link.json"), 100).is_err());
        std::os::unix::fs::symlink(&target, state.join("y.json.tmp")).unwrap();
        assert!(write_atomically(&state.join("y.json"), b"[1]").is_err());
        assert_eq!(
            std::fs::read(&target).unwrap(),
            b"{}",
            "never written through"
        );

        std::fs::write(state.join("big"), vec![b'x'; 101]).unwrap();
        let err = read_capped(&state.join("big"), 100)
            .unwrap_err()
            .to_string();
        assert!(err.contains("big is larger than 100 bytes"), "{err}");
        assert_eq!(read_capped(&state.join("big"), 101).unwrap().len(), 101);
    }
}
