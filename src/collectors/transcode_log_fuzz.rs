//! Fuzzing of the transcode-log line parser ([`super::transcode_log::scan`]) over arbitrary
//! bytes and over log text built from real line shapes (no server stop among them, so every
//! non-zero exit event is a failure).

use proptest::prelude::*;

use super::transcode_log::{Exits, scan};

/// Lines as Jellyfin writes them, and damaged ones.
fn line() -> impl Strategy<Value = (String, bool)> {
    prop_oneof![
        any::<i64>().prop_map(|code| (
            format!("[2026-11-25 19:00:00.000 +00:00] [ERR] [12] MediaBrowser.MediaEncoding.Transcoding.TranscodeManager: FFmpeg exited with code {code}"),
            code != 0
        )),
        Just(("[INF] FFmpeg exited with code 0".to_string(), false)),
        Just(("FFmpeg exited with code ".to_string(), false)),
        Just(("FFmpeg exited with code 99999999999999999999999".to_string(), false)),
        Just(("FFmpeg exited with code -1 trailing".to_string(), false)),
        any::<String>().prop_filter("not a marker line", |s| !s.contains("FFmpeg exited") && !s.contains('\n') && !s.contains('\r'))
            .prop_map(|s| (s, false)),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_never_panic_and_only_complete_lines_are_taken(
        text in prop::collection::vec(any::<u8>(), 0..512),
    ) {
        let (failures, complete) = scan(&text, &mut Exits::default());
        prop_assert!(complete <= text.len());
        prop_assert!(complete == 0 || text[complete - 1] == b'\n');
        prop_assert!(!text[complete..].contains(&b'\n'), "every complete line is taken");
        prop_assert!(failures <= text.iter().filter(|b| **b == b'\n').count() as u64);
    }

    #[test]
    fn failures_are_the_nonzero_exit_lines(
        lines in prop::collection::vec(line(), 0..40),
        torn in "[^\n]{0,40}",
    ) {
        let mut text = String::new();
        for (line, _) in &lines {
            text.push_str(line);
            text.push('\n');
        }
        let complete_len = text.len();
        text.push_str(&torn); // an unfinished last line is left for the next cycle
        let expected = lines.iter().filter(|(_, failed)| *failed).count() as u64;
        prop_assert_eq!(scan(text.as_bytes(), &mut Exits::default()), (expected, complete_len));
    }
}
