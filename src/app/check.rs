//! `--check-config`.

use super::files::check_files;
use crate::config::Config;

/// Every problem with the config's files, one line each; empty when all is well.
pub fn check(config: &Config) -> Vec<String> {
    let mut problems = check_files(config);
    if let Err(e) = super::jellyfin_client(config) {
        let text = e.to_string();
        if !problems.contains(&text) {
            problems.push(text);
        }
    }
    problems
}
