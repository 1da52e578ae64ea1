//! Secrets (the Jellyfin API key, remote-write passwords and bearer tokens) are only ever read
//! from files, such as systemd credentials. [`Secret`] keeps the value out of `Debug` and
//! `Display`, so a secret cannot reach a log line, an error message or `--once` output by
//! accident; [`Secret::expose`] is the one, greppable, way to use it.

use std::collections::BTreeSet;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    #[error("cannot read {what} from {path}: {source}")]
    Unreadable {
        what: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{what} file {path} is empty")]
    Empty { what: &'static str, path: PathBuf },
    #[error("{what} file {path} holds more than one line; it must hold only the secret")]
    MultiLine { what: &'static str, path: PathBuf },
    #[error("{what} file {path} holds characters that cannot be sent in an HTTP header")]
    NotHeaderSafe { what: &'static str, path: PathBuf },
}

/// Reads a secret from `path`. Surrounding whitespace (the trailing newline editors add) is
/// dropped; `what` names the secret in errors, which never contain the value.
pub fn read_secret_file(path: &Path, what: &'static str) -> Result<Secret, SecretError> {
    let raw = std::fs::read_to_string(path).map_err(|source| SecretError::Unreadable {
        what,
        path: path.to_path_buf(),
        source,
    })?;
    warn_if_others_can_read(path, what);
    let value = raw.trim();
    if value.is_empty() {
        return Err(SecretError::Empty {
            what,
            path: path.to_path_buf(),
        });
    }
    if value.contains('\n') {
        return Err(SecretError::MultiLine {
            what,
            path: path.to_path_buf(),
        });
    }
    if !value.bytes().all(|b| (0x20..0x7f).contains(&b)) {
        return Err(SecretError::NotHeaderSafe {
            what,
            path: path.to_path_buf(),
        });
    }
    Ok(Secret(value.to_string()))
}

/// A secret file that its group or other users can read is worth a warning (once per file):
/// anyone else on the host can then take the credential. systemd credentials under
/// `$CREDENTIALS_DIRECTORY` are exempt: systemd makes them private to the service itself.
fn warn_if_others_can_read(path: &Path, what: &'static str) {
    static WARNED: Mutex<BTreeSet<PathBuf>> = Mutex::new(BTreeSet::new());
    if std::env::var_os("CREDENTIALS_DIRECTORY").is_some_and(|dir| path.starts_with(dir)) {
        return;
    }
    let Some(mode) = exposed_mode(path) else {
        return;
    };
    let mut warned = WARNED.lock().unwrap_or_else(|p| p.into_inner());
    if warned.insert(path.to_path_buf()) {
        tracing::warn!(
            file = %path.display(),
            mode = format!("{:04o}", mode & 0o7777),
            "{what} file {} can be read by its group or other users; make it 0600 (or 0400), \
             or pass it as a systemd credential",
            path.display()
        );
    }
}

/// The file's mode when group or others may read it.
fn exposed_mode(path: &Path) -> Option<u32> {
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(path).ok()?.permissions().mode();
    (mode & 0o044 != 0).then_some(mode)
}

/// Cuts credentials out of text that came from a peer (an error page, a receiver's message)
/// before it is logged: every given secret, and whatever follows an authorization scheme
/// (`Bearer`, `Basic`, `Token=`), since a peer may echo the header in its encoded form (basic
/// auth as base64) that the raw secret does not match.
pub fn redact(text: &str, secrets: &[&Secret]) -> String {
    let mut out = text.to_string();
    for secret in secrets.iter().filter(|s| !s.0.is_empty()) {
        out = out.replace(secret.expose(), "<redacted>");
    }
    for scheme in ["Bearer ", "Basic ", "Token=\"", "Token="] {
        let mut from = 0;
        while let Some(found) = out[from..].find(scheme) {
            let start = from + found + scheme.len();
            let end = out[start..]
                .find(|c: char| c.is_whitespace() || c == '"' || c == '\'' || c == ',')
                .map_or(out.len(), |i| start + i);
            // `start` follows an ASCII scheme, so it is a char boundary; stepping over the
            // replacement (or not at all) keeps `from` on one too, whatever the peer sent.
            if end > start && out[start..end] != *"<redacted>" {
                out.replace_range(start..end, "<redacted>");
                from = start + "<redacted>".len();
            } else {
                from = end.max(start);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_the_value_and_errors_never_contain_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("token");
        std::fs::write(&path, "s3cr3t-value\n").unwrap();
        let secret = read_secret_file(&path, "jellyfin token").unwrap();
        assert_eq!(secret.expose(), "s3cr3t-value");
        assert!(!format!("{secret:?}").contains("s3cr3t"));

        std::fs::write(&path, "s3cr3t\nsecond line").unwrap();
        let err = read_secret_file(&path, "jellyfin token")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("more than one line") && !err.contains("s3cr3t"),
            "{err}"
        );

        std::fs::write(&path, "  \n").unwrap();
        let err = read_secret_file(&path, "jellyfin token")
            .unwrap_err()
            .to_string();
        assert!(err.contains("is empty"), "{err}");
    }

    #[test]
    fn only_group_or_world_readable_files_count_as_exposed() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("token");
        std::fs::write(&path, "t").unwrap();
        for (mode, exposed) in [(0o600, false), (0o400, false), (0o640, true), (0o604, true)] {
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
            assert_eq!(exposed_mode(&path).is_some(), exposed, "{mode:o}");
        }
    }

    #[test]
    fn redaction_covers_raw_secrets_and_echoed_headers() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("p");
        std::fs::write(&path, "hunter2").unwrap();
        let secret = read_secret_file(&path, "password").unwrap();
        let text = "denied hunter2; header Basic dXNlcjpodW50ZXIy, \"Bearer abc.def\" MediaBrowser Token=\"0123\"";
        assert_eq!(
            redact(text, &[&secret]),
            "denied <redacted>; header Basic <redacted>, \"Bearer <redacted>\" MediaBrowser Token=\"<redacted>\""
        );
        assert_eq!(redact("no credentials here", &[]), "no credentials here");
    }

    /// A receiver answered `upstream refused: Bearer "Ошибка авторизации"`; stepping a fixed
    /// 10 bytes past the scheme landed inside a Cyrillic letter and panicked the sender task.
    #[test]
    fn redaction_survives_multibyte_text_after_a_scheme() {
        let text = "upstream refused: Bearer \"Ошибка авторизации\"";
        assert_eq!(redact(text, &[]), text);
        assert_eq!(
            redact("Bearer ключ, Basic é", &[]),
            "Bearer <redacted>, Basic <redacted>"
        );
        assert_eq!(redact("Token=\"\"Ü", &[]), "Token=\"\"Ü");
        for cut in 0..text.len() {
            if text.is_char_boundary(cut) {
                let _ = redact(&text[..cut], &[]);
            }
        }
    }
}
