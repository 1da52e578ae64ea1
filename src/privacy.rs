//! What a `user` label may say (`privacy.user_label`): a salted hash by default, so dashboards
//! can tell users apart without naming them. The salt is random, made once and kept in
//! `state_dir/user-label-salt`; losing it only renames the series.

use std::io::Read;
use std::path::Path;

use serde::Deserialize;
use sha2::{Digest, Sha256};

use crate::sample::label_value;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum UserLabel {
    /// 8 hex characters of SHA-256(salt, user id).
    #[default]
    Hash,
    /// The Jellyfin user id.
    Id,
    /// The user name (opt-in: personal data).
    Name,
    /// No per-user series at all.
    None,
}

#[derive(Debug, Clone)]
pub struct Privacy {
    mode: UserLabel,
    salt: [u8; 16],
}

const SALT_FILE: &str = "user-label-salt";

impl Privacy {
    /// Loads the salt from `state_dir`, creating it (atomically) when `persist` and missing.
    /// Without `persist` (the `--once` dry run writes nothing) an existing salt is used and a
    /// missing one is made up for this run only.
    pub fn load(mode: UserLabel, state_dir: &Path, persist: bool) -> std::io::Result<Privacy> {
        let path = state_dir.join(SALT_FILE);
        if let Ok(bytes) = crate::state_file::read_capped(&path, 4096) {
            if let Ok(salt) = <[u8; 16]>::try_from(bytes.as_slice()) {
                return Ok(Privacy { mode, salt });
            }
            tracing::warn!(file = %path.display(), "user-label salt is damaged; making a new one (user hashes change)");
        }
        let mut salt = [0u8; 16];
        std::fs::File::open("/dev/urandom")?.read_exact(&mut salt)?;
        if persist {
            // A full or read-only disk must not stop the agent: the salt then lives for this
            // run only (user hashes change at the next start) and saving is tried again then.
            if let Err(e) = save_salt(state_dir, &salt) {
                tracing::warn!(file = %path.display(), error = %e,
                    "cannot save the user-label salt; using it for this run only");
            }
        }
        Ok(Privacy { mode, salt })
    }

    #[cfg(test)]
    pub fn with_salt(mode: UserLabel, salt: [u8; 16]) -> Privacy {
        Privacy { mode, salt }
    }

    pub fn per_user_series(&self) -> bool {
        self.mode != UserLabel::None
    }

    /// The `user` label value for a user, or None in mode `none` or without a user id.
    pub fn user(&self, id: Option<&str>, name: Option<&str>) -> Option<String> {
        let id = id.filter(|i| !i.is_empty())?;
        match self.mode {
            UserLabel::None => None,
            UserLabel::Id => Some(label_value(id)),
            UserLabel::Name => Some(label_value(name.unwrap_or(id))),
            UserLabel::Hash => {
                let digest = Sha256::new()
                    .chain_update(self.salt)
                    .chain_update(id.as_bytes())
                    .finalize();
                Some(digest[..4].iter().map(|b| format!("{b:02x}")).collect())
            }
        }
    }
}

/// Written atomically: a crash leaves the old salt or the new one, never half of one.
fn save_salt(state_dir: &Path, salt: &[u8; 16]) -> std::io::Result<()> {
    crate::state_file::write_atomically(&state_dir.join(SALT_FILE), salt)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_is_stable_per_salt_and_8_hex() {
        let a = Privacy::with_salt(UserLabel::Hash, [1; 16]);
        let b = Privacy::with_salt(UserLabel::Hash, [2; 16]);
        let h = a.user(Some("c370b2b8"), Some("USER8")).unwrap();
        assert_eq!(h.len(), 8);
        assert!(h.chars().all(|c| c.is_ascii_hexdigit()));
        assert_eq!(a.user(Some("c370b2b8"), None).unwrap(), h);
        assert_ne!(b.user(Some("c370b2b8"), None).unwrap(), h);
        assert_eq!(
            Privacy::with_salt(UserLabel::Name, [0; 16])
                .user(Some("x"), Some("USER8"))
                .as_deref(),
            Some("USER8")
        );
        assert_eq!(
            Privacy::with_salt(UserLabel::None, [0; 16]).user(Some("x"), Some("USER8")),
            None
        );
    }

    #[test]
    fn the_salt_is_kept_in_the_state_dir_and_the_dry_run_writes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let dry = Privacy::load(UserLabel::Hash, dir.path(), false).unwrap();
        assert!(!dir.path().join(SALT_FILE).exists());
        let first = Privacy::load(UserLabel::Hash, dir.path(), true).unwrap();
        let again = Privacy::load(UserLabel::Hash, dir.path(), false).unwrap();
        assert_eq!(first.user(Some("u"), None), again.user(Some("u"), None));
        assert_ne!(dry.salt, first.salt);
    }
}
