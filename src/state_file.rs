//! Small JSON state files under `state_dir` (cursors, last results seen), replaced atomically:
//! write a temporary file, fsync it, rename it over the old one, fsync the folder. A crash
//! leaves the old state or the new one, never a mix.

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
        let text = match std::fs::read(&self.path) {
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
        if !self.writable {
            return Ok(());
        }
        write_atomically(
            &self.path,
            &serde_json::to_vec(state).map_err(std::io::Error::other)?,
        )
    }
}

/// Replaces `path` with `bytes` so that a crash leaves the old file or the new one: write a
/// temporary file, fsync it, rename it over the old one, fsync the folder. Every state file
/// of the agent (queue reader positions, the user-label salt, cursors) goes through here.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    std::fs::write(&tmp, bytes)?;
    std::fs::File::open(&tmp)?.sync_all()?;
    std::fs::rename(&tmp, path)?;
    std::fs::File::open(dir)?.sync_all()
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
        let dry = StateFile::new(dir.path(), "y.json", false);
        dry.save(&1u8).unwrap();
        assert!(!dir.path().join("y.json").exists());
    }
}
