//! Text that a peer chose: error pages and receiver messages (redacted, then shortened), and
//! the `Retry-After` header.

use std::time::{Duration, SystemTime};

use proptest::prelude::*;

use crate::peer_text::{Prefix, excerpt};
use crate::remote_write::sender::parse_retry_after;
use crate::secret::redact;

/// Text made of the pieces that matter to the redaction: schemes, quotes, separators,
/// multi-byte letters and the secret itself, in any order.
fn peer_text(secret: String) -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        Just("Bearer ".to_string()),
        Just("Basic ".to_string()),
        Just("Token=\"".to_string()),
        Just("Token=".to_string()),
        Just("\"".to_string()),
        Just("'".to_string()),
        Just(",".to_string()),
        Just(" ".to_string()),
        Just("\n".to_string()),
        Just("Ошибка".to_string()),
        Just("é".to_string()),
        Just("😀".to_string()),
        Just("<redacted>".to_string()),
        Just(secret),
        any::<String>(),
    ];
    prop::collection::vec(piece, 0..24).prop_map(|pieces| pieces.concat())
}

/// A secret as Jellyfin and tokens have them: header-safe, no spaces, long enough not to be a
/// piece of `<redacted>` itself.
fn secret() -> impl Strategy<Value = String> {
    "[0-9a-f]{16,40}"
}

proptest! {
    #![proptest_config(super::cases(512))]

    #[test]
    fn redaction_never_panics_and_never_lets_a_secret_through(
        (secret, text) in secret().prop_flat_map(|s| (Just(s.clone()), peer_text(s)))
    ) {
        let secret = super::secret(&secret);
        let out = redact(&text, &[&secret]);
        prop_assert!(!out.contains(secret.expose()), "{text:?} -> {out:?}");
        // Whatever follows a scheme is gone (up to the next separator).
        prop_assert_eq!(redact(&out, &[&secret]), out.clone(), "redaction is idempotent");
    }

    #[test]
    fn redaction_of_arbitrary_text_never_panics(text in any::<String>()) {
        let _ = redact(&text, &[]);
    }

    #[test]
    fn snippets_are_one_short_line_without_the_secret(
        (secret, text) in secret().prop_flat_map(|s| (Just(s.clone()), peer_text(s))),
        noise in prop::collection::vec(any::<u8>(), 0..64),
    ) {
        let secret = super::secret(&secret);
        let mut body = noise;
        body.extend_from_slice(text.as_bytes());
        let out = excerpt(&Prefix::of(&body, 400), &[&secret], 120);
        prop_assert!(!out.contains('\n') && !out.is_empty());
        prop_assert!(out.chars().count() <= 121, "{out:?}");
        // Redacted before it is shortened, and a secret cut by the 400-byte read is dropped.
        prop_assert!(!out.contains(secret.expose()), "{out:?}");
    }

    #[test]
    fn snippets_of_arbitrary_bytes_never_panic(body in prop::collection::vec(any::<u8>(), 0..1200)) {
        let _ = excerpt(&Prefix::of(&body, 400), &[], 120);
    }

    #[test]
    fn retry_after_never_panics_and_is_a_plain_duration(value in any::<String>(), now in 0u64..=4_102_444_800) {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(now);
        let _ = parse_retry_after(&value, now);
    }
}

/// Retry-After values at the edges: the largest integer, and dates far out.
#[test]
fn retry_after_edges() {
    let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
    assert_eq!(
        parse_retry_after("18446744073709551615", now),
        Some(Duration::from_secs(u64::MAX))
    );
    assert_eq!(parse_retry_after("18446744073709551616", now), None);
    assert_eq!(
        parse_retry_after("Fri, 31 Dec 9999 23:59:59 GMT", now).map(|d| d > Duration::ZERO),
        Some(true)
    );
    assert_eq!(parse_retry_after("-1", now), None);
}
