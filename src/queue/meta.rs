//! `meta.json`, where agents before the `position` file ([`super::position`]) kept the reader
//! position and the ledger ([`super::ledger`]). Read once after an upgrade, deleted by the
//! first save into `position`; never written any more.

use std::path::Path;

use serde::Deserialize;

use super::ledger::Span;

pub const FILE: &str = "meta.json";
/// The file holds one small JSON object; anything larger is damage (or planted). A span is
/// about 70 bytes: this leaves room for thousands, where a few are usual (see `ledger`).
const MAX_META: u64 = 1 << 20;

/// What `meta.json` holds. An agent from before the ledger reads `read_offset` and ignores
/// `acked` (it then resends those blocks: duplicates, never losses).
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
pub struct Meta {
    pub version: u32,
    pub read_offset: u64,
    #[serde(default)]
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

#[cfg(test)]
mod tests {
    use std::fs;

    use super::*;

    #[test]
    fn saves_loads_and_reports_damage() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(load(dir.path()), Ok(None));
        // As the agents before `position` wrote it.
        fs::write(
            dir.path().join(FILE),
            "{\"version\":1,\"read_offset\":4242}",
        )
        .unwrap();
        assert_eq!(load(dir.path()).unwrap().map(|m| m.read_offset), Some(4242));
        let span = Span {
            start: 5000,
            end: 6000,
            blocks: 3,
            samples: 300,
        };
        fs::write(
            dir.path().join(FILE),
            "{\"version\":1,\"read_offset\":4242,\"acked\":[{\"start\":5000,\"end\":6000,\"blocks\":3,\"samples\":300}]}",
        )
        .unwrap();
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
