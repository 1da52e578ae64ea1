//! The reader position and the ledger of blocks settled out of order beyond it
//! ([`super::ledger`]), in `meta.json`, replaced atomically: write a temporary file, fsync it,
//! rename it over the old one, fsync the folder. A crash leaves either the old or the new file.

use std::fs::File;
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::ledger::Span;

const FILE: &str = "meta.json";
/// The file holds one small JSON object; anything larger is damage (or planted). A span is
/// about 70 bytes: this leaves room for thousands, where a few are usual (see `ledger`).
const MAX_META: u64 = 1 << 20;

/// What `meta.json` holds. An agent from before the ledger reads `read_offset` and ignores
/// `acked` (it then resends those blocks: duplicates, never losses).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Meta {
    pub version: u32,
    pub read_offset: u64,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub acked: Vec<Span>,
}

/// The saved reader position and ledger: Ok(None) when there is no file yet. An unreadable
/// file is an error for the caller to log; it then starts from the oldest data, so nothing is
/// lost.
pub fn load(dir: &Path) -> Result<Option<Meta>, String> {
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
    Ok(Some(meta))
}

pub fn save(dir: &Path, read_offset: u64, acked: Vec<Span>) -> std::io::Result<()> {
    let bytes = serde_json::to_vec(&Meta {
        version: 1,
        read_offset,
        acked,
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
        save(dir.path(), 4242, vec![]).unwrap();
        assert_eq!(load(dir.path()).unwrap().map(|m| m.read_offset), Some(4242));
        let span = Span {
            start: 5000,
            end: 6000,
            blocks: 3,
            samples: 300,
        };
        save(dir.path(), 4242, vec![span]).unwrap();
        assert_eq!(load(dir.path()).unwrap().unwrap().acked, vec![span]);
        fs::write(dir.path().join(FILE), "{\"version\":1,\"read_").unwrap();
        assert!(load(dir.path()).unwrap_err().contains("damaged"));
        fs::write(dir.path().join(FILE), vec![b' '; (MAX_META + 1) as usize]).unwrap();
        let err = load(dir.path()).unwrap_err();
        assert!(
            err.contains(&format!("meta.json is larger than {MAX_META} bytes")),
            "{err}"
        );
    }
}
