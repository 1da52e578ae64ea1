//! The config loader over arbitrary text and over the example config mutated line by line.
//! It never panics, and every error names the file.

use std::path::Path;

use proptest::prelude::*;

use crate::config::Config;

const EXAMPLE: &str = include_str!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/config/jellyfin-pusher.example.toml"
));

const FILE: &str = "/etc/jellyfin-pusher/fuzz.toml";

fn load(text: &str) -> Result<(), TestCaseError> {
    let env = |key: &str| match key {
        "STATE_DIRECTORY" => Some("/var/lib/a:/var/lib/b".to_string()),
        "CREDENTIALS_DIRECTORY" => Some("/run/credentials/x".to_string()),
        _ => None,
    };
    if let Err(e) = Config::from_toml(text, Path::new(FILE), &env) {
        let text = e.to_string();
        prop_assert!(text.contains(FILE), "the error names the file: {text}");
    }
    Ok(())
}

/// Values that a hand-edited config gets wrong.
const ODD_VALUES: [&str; 14] = [
    "\"\"",
    "\"0s\"",
    "\"18446744073709551615s\"",
    "\"999999999999999999999h\"",
    "\"-1s\"",
    "\"1EiB\"",
    "\"18446744073709551615B\"",
    "0",
    "-1",
    "9223372036854775807",
    "1e400",
    "[]",
    "{}",
    "\"http://user:pw@example.invalid/\"",
];

proptest! {
    #![proptest_config(super::cases(256))]

    #[test]
    fn arbitrary_text_never_panics(text in any::<String>()) {
        load(&text)?;
    }

    #[test]
    fn the_example_with_odd_values_never_panics(
        edits in prop::collection::vec((any::<prop::sample::Index>(), 0..ODD_VALUES.len()), 1..4),
        uncomment in any::<bool>(),
    ) {
        // The example's keys are mostly commented out with their defaults: uncomment them to
        // reach every key.
        let mut lines: Vec<String> = EXAMPLE
            .lines()
            .map(|l| match (uncomment, l.strip_prefix("# ")) {
                (true, Some(rest)) if rest.contains(" = ") => rest.to_string(),
                _ => l.to_string(),
            })
            .collect();
        let assignments: Vec<usize> = (0..lines.len()).filter(|&i| lines[i].contains(" = ")).collect();
        prop_assume!(!assignments.is_empty());
        for (index, value) in edits {
            let i = *index.get(&assignments);
            let key = lines[i].split(" = ").next().unwrap_or_default().to_string();
            lines[i] = format!("{key} = {}", ODD_VALUES[value]);
        }
        load(&lines.join("\n"))?;
    }
}
