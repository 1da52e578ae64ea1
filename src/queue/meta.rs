//! The reader position, in `meta.json`, replaced atomically: write a temporary file, fsync it,
//! rename it over the old one, fsync the folder. A crash leaves either the old or the new file.

use std::fs::File;
use std::path::Path;

use serde::{Deserialize, Serialize};

const FILE: &str = "meta.json";
/// The file holds one small JSON object; anything larger is damage (or planted).
const MAX_META: u64 = 4096;

#[derive(Debug, Serialize, Deserialize, PartialEq, Eq)]
struct Meta {
    version: u32,
    read_offset: u64,
}

/// The saved reader position: Ok(None) when there is no file yet. An unreadable file is an
/// error for the caller to log; it then starts from the oldest data, so nothing is lost.
pub fn load(dir: &Path) -> Result<Option<u64>, String> {
    let path = dir.join(FILE);
    let text = match crate::state_file::read_capped(&path, MAX_META) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(format!("cannot read {}: {e}", path.display())),
    };
    let meta: Meta =
        serde_json::from_slice(&text).map_err(|e| format!("{} is damaged: {e}", path.display()))?;
    if meta.version != 1 {
        return Err(format!(
            "{} has unknown version {}",
            path.display(),
            meta.version
        ));
    }
    Ok(Some(meta.read_offset))
}

pub fn save(dir: &Path, read_offset: u64) -> std::io::Result<()> {
    let bytes = serde_json::to_vec(&Meta {
        version: 1,
        read_offset,
    })
    .map_err(std::io::Error::other)?;
    crate::state_file::write_atomically(&dir.join(FILE), &bytes)
}

pub fn sync_dir(dir: &Path) -> std::io::Result<()> {
    File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use std::fs;

    use super::*;

    #[test]
    fn saves_loads_and_reports_damage() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(load(dir.path()), Ok(None));
        save(dir.path(), 4242).unwrap();
        assert_eq!(load(dir.path()), Ok(Some(4242)));
        fs::write(dir.path().join(FILE), "{\"version\":1,\"read_").unwrap();
        assert!(load(dir.path()).unwrap_err().contains("damaged"));
        fs::write(dir.path().join(FILE), vec![b' '; 5000]).unwrap();
        let err = load(dir.path()).unwrap_err();
        assert!(err.contains("meta.json is larger than 4096 bytes"), "{err}");
    }
}
