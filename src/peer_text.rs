//! Text that came from a peer (a receiver's error message, a Jellyfin error page, a redirect's
//! `Location`) on its way into a log line or an error message.
//!
//! Two rules, both against a hostile or broken peer:
//! - **Bounded reads.** An error body is read chunk by chunk up to [`ERROR_BODY_LIMIT`] bytes
//!   and the rest is never read: the response is dropped, which closes the connection. A 3 GB
//!   error page costs the agent a few KiB, not 3 GB.
//! - **Redact first, shorten after.** [`excerpt`] cuts every credential out of the whole text
//!   it has before it shortens it, so a secret that sits across the cut cannot survive in part.
//!   When the read itself stopped inside a secret, the start of it that arrived is left out.

use crate::secret::{Secret, redact};

/// Bytes of an error body that are read at all; the logged excerpt is cut from these.
pub const ERROR_BODY_LIMIT: usize = 8 * 1024;

/// The first bytes of a body, and whether the peer had more to say.
#[derive(Debug, Default)]
pub struct Prefix {
    pub bytes: Vec<u8>,
    pub truncated: bool,
    limit: usize,
}

impl Prefix {
    pub fn new(limit: usize) -> Prefix {
        Prefix {
            bytes: Vec::new(),
            truncated: false,
            limit,
        }
    }

    /// The first `limit` bytes of a body already read whole.
    pub fn of(body: &[u8], limit: usize) -> Prefix {
        let mut prefix = Prefix::new(limit);
        prefix.push(body);
        prefix
    }

    /// Keeps what fits of `chunk`; returns false once the peer has sent more than the limit
    /// (stop reading).
    pub fn push(&mut self, chunk: &[u8]) -> bool {
        let room = self.limit - self.bytes.len();
        if chunk.len() > room {
            self.bytes.extend_from_slice(&chunk[..room]);
            self.truncated = true;
            return false;
        }
        self.bytes.extend_from_slice(chunk);
        true
    }
}

/// Reads at most `limit` bytes of `response`'s body, then drops the response (and with it the
/// connection, when the body was not read to its end). A read that fails part-way returns what
/// came before it; the error is the caller's to mention.
pub async fn read_prefix(
    mut response: reqwest::Response,
    limit: usize,
) -> (Prefix, Option<reqwest::Error>) {
    let mut prefix = Prefix::new(limit);
    loop {
        match response.chunk().await {
            Ok(Some(chunk)) => {
                if !prefix.push(&chunk) {
                    return (prefix, None);
                }
            }
            Ok(None) => return (prefix, None),
            Err(e) => return (prefix, Some(e)),
        }
    }
}

/// A single-line excerpt of peer text for a log line: every secret (and anything after an
/// authorization scheme, see [`redact`]) is cut out of the whole text first, then whitespace
/// runs are collapsed and the result is shortened to `max_chars` (with `…` when cut).
pub fn excerpt(prefix: &Prefix, secrets: &[&Secret], max_chars: usize) -> String {
    let mut text = redact(&String::from_utf8_lossy(&prefix.bytes), secrets);
    if prefix.truncated {
        // A secret cut by the read left only its start, which redaction cannot recognise:
        // whatever the text ends with that begins a secret goes too.
        let ends_with_start = |s: &str, k: usize| text.ends_with(&s[..k]);
        let cut = secrets
            .iter()
            .map(|s| s.expose())
            .flat_map(|s| (1..s.len()).filter(move |&k| ends_with_start(s, k)))
            .max()
            .unwrap_or(0);
        text.truncate(text.len() - cut);
    }
    shorten(&text, max_chars, prefix.truncated)
}

/// [`excerpt`] of a whole string (a header value, a decoder's message quoting the peer).
pub fn excerpt_str(text: &str, secrets: &[&Secret], max_chars: usize) -> String {
    excerpt(&Prefix::of(text.as_bytes(), text.len()), secrets, max_chars)
}

/// Whitespace collapsed, at most `max_chars` characters; `(empty body)` for nothing.
fn shorten(text: &str, max_chars: usize, more: bool) -> String {
    let collapsed = text.split_whitespace().collect::<Vec<_>>().join(" ");
    let mut out: String = collapsed.chars().take(max_chars).collect();
    if more || collapsed.chars().count() > max_chars {
        out.push('…');
    }
    if out.is_empty() {
        "(empty body)".into()
    } else {
        out
    }
}

/// A redirect target for a log line: no user info, no query (either may carry a token), then
/// redacted and shortened like any peer text. `base` resolves a relative `Location`.
pub fn location(
    value: Option<&reqwest::header::HeaderValue>,
    base: &url::Url,
    secrets: &[&Secret],
) -> String {
    let Some(raw) = value.map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned()) else {
        return "(no Location header)".into();
    };
    let shown = match base.join(raw.trim()) {
        Ok(url) => {
            let mut shown = format!("{}://{}", url.scheme(), url.host_str().unwrap_or(""));
            if let Some(port) = url.port() {
                shown.push_str(&format!(":{port}"));
            }
            shown.push_str(url.path());
            if url.query().is_some() {
                shown.push_str("?<query removed>");
            }
            shown
        }
        Err(_) => raw,
    };
    excerpt_str(&shown, secrets, 200)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secret(value: &str) -> Secret {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s");
        std::fs::write(&path, value).unwrap();
        crate::secret::read_secret_file(&path, "test secret").unwrap()
    }

    /// What a bounded read of `body` keeps, fed in chunks of `chunk` bytes.
    fn read(body: &[u8], limit: usize, chunk: usize) -> Prefix {
        let mut prefix = Prefix::new(limit);
        for piece in body.chunks(chunk) {
            if !prefix.push(piece) {
                break;
            }
        }
        prefix
    }

    fn assert_no_fragment(text: &str, secret: &str, context: &str) {
        for len in 4..=secret.len() {
            for start in 0..=secret.len() - len {
                let fragment = &secret[start..start + len];
                assert!(
                    !text.contains(fragment),
                    "{context}: fragment {fragment:?} of the secret survived in {text:?}"
                );
            }
        }
    }

    /// The credential is planted at every offset around both cuts (the read limit, and the
    /// excerpt's length), in plain text and after a whitespace run that collapsing shortens.
    #[test]
    fn no_fragment_of_a_secret_survives_any_cut() {
        const SECRET: &str = "Q7ZK9WPX2MVH4TLJ";
        let s = secret(SECRET);
        // Runs of spaces collapse, so the read's cut can fall inside what is shown.
        for (limit, max_chars) in [(256, 100), (64, 100), (512, 40)] {
            for filler in [".", ". ", ".      "] {
                for offset in 0..(limit.max(max_chars) + 40) {
                    let lead: String = filler.repeat(offset).chars().take(offset).collect();
                    let body = format!("{lead}{SECRET}{}", "-".repeat(600));
                    // Read in chunks, or read whole and cut (Jellyfin's non-JSON 2xx page).
                    for chunk in [1, 7, 64, 4096, usize::MAX] {
                        let prefix = match chunk {
                            usize::MAX => Prefix::of(body.as_bytes(), limit),
                            _ => read(body.as_bytes(), limit, chunk),
                        };
                        assert!(prefix.bytes.len() <= limit && prefix.truncated);
                        let shown = excerpt(&prefix, &[&s], max_chars);
                        let context = format!("limit {limit}, offset {offset}, chunk {chunk}");
                        assert_no_fragment(&shown, SECRET, &context);
                        assert!(shown.chars().count() <= max_chars + 1, "{shown}");
                    }
                }
            }
        }
        // An echoed header is cut too, wherever the read stops inside it.
        for cut in 0..40 {
            let body = format!("{}Authorization: Bearer {SECRET} trailing", "x".repeat(cut));
            let prefix = read(body.as_bytes(), 30, 5);
            assert_no_fragment(
                &excerpt(&prefix, &[], 200),
                SECRET,
                &format!("header cut {cut}"),
            );
        }
    }

    #[test]
    fn a_short_body_is_shown_whole_and_a_long_one_marked() {
        let prefix = read(b"  cannot parse\n  WriteRequest ", 100, 3);
        assert!(!prefix.truncated);
        assert_eq!(excerpt(&prefix, &[], 100), "cannot parse WriteRequest");
        let prefix = read(&[b'a'; 300], 100, 3);
        assert!(prefix.truncated);
        assert_eq!(excerpt(&prefix, &[], 10), format!("{}…", "a".repeat(10)));
        assert_eq!(excerpt(&read(b"", 100, 1), &[], 10), "(empty body)");
    }

    #[test]
    fn a_location_loses_user_info_and_query() {
        let base = url::Url::parse("http://127.0.0.1:1/api/v1/write").unwrap();
        let s = secret("tok-42-secret");
        let value = reqwest::header::HeaderValue::from_static(
            "http://user:pw@elsewhere.invalid:8080/w?token=tok-42-secret",
        );
        let shown = location(Some(&value), &base, &[&s]);
        assert_eq!(shown, "http://elsewhere.invalid:8080/w?<query removed>");
        let relative = reqwest::header::HeaderValue::from_static("/other/tok-42-secret");
        assert_eq!(
            location(Some(&relative), &base, &[&s]),
            "http://127.0.0.1:1/other/<redacted>"
        );
        assert_eq!(location(None, &base, &[]), "(no Location header)");
    }
}
