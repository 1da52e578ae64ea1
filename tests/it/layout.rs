//! The stages depend on each other in one direction (src/lib.rs, "Layout"): every `crate::`
//! path in a module's source must name a module that it may use. A new dependency that
//! breaks the direction (the queue reaching into remote_write, the config layer into the
//! collectors) fails here, with the file that made it.

use std::collections::BTreeSet;
use std::path::Path;

/// Each top-level module of src/ and the modules it may use.
const MAY_USE: [(&str, &[&str]); 24] = [
    ("resident", &[]),
    ("allocator", &["resident"]),
    ("fault", &[]),
    ("sample", &[]),
    ("error_chain", &[]),
    ("stats", &[]),
    ("secret", &[]),
    ("state_file", &[]),
    ("peer_text", &["secret"]),
    ("labels", &["sample"]),
    ("logging", &[]),
    ("shutdown", &[]),
    ("privacy", &["sample", "state_file"]),
    ("exposition", &["sample"]),
    (
        "jellyfin",
        &["peer_text", "secret", "sample", "error_chain"],
    ),
    ("config", &["privacy", "secret"]),
    ("queue", &["stats", "state_file"]),
    (
        "remote_write",
        &[
            "queue",
            "config",
            "fault",
            "peer_text",
            "sample",
            "secret",
            "stats",
            "error_chain",
        ],
    ),
    (
        "status",
        &["config", "queue", "sample", "state_file", "stats"],
    ),
    (
        "collectors",
        &[
            "allocator",
            "config",
            "fault",
            "jellyfin",
            "labels",
            "privacy",
            "sample",
            "secret",
            "state_file",
            "stats",
        ],
    ),
    (
        "app",
        &[
            "collectors",
            "config",
            "exposition",
            "fault",
            "jellyfin",
            "privacy",
            "queue",
            "remote_write",
            "sample",
            "secret",
            "stats",
            "state_file",
            "status",
        ],
    ),
    ("cli", &["logging"]),
    // Tests only: fuzzes the readers of outside input wherever they are.
    (
        "fuzz",
        &[
            "config",
            "jellyfin",
            "peer_text",
            "queue",
            "remote_write",
            "secret",
            "stats",
        ],
    ),
    ("lib", &[]),
];

const SRC: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/src");

fn rust_files(path: &Path, out: &mut Vec<std::path::PathBuf>) {
    if path.is_dir() {
        for entry in std::fs::read_dir(path).unwrap() {
            rust_files(&entry.unwrap().path(), out);
        }
    } else if path.extension().is_some_and(|e| e == "rs") {
        out.push(path.to_path_buf());
    }
}

/// The modules named by `crate::<module>` in `text`, `crate::VERSION` and the like left out.
fn used_modules(text: &str) -> BTreeSet<String> {
    text.match_indices("crate::")
        .map(|(at, _)| {
            text[at + "crate::".len()..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect::<String>()
        })
        .filter(|name| name.starts_with(|c: char| c.is_ascii_lowercase()))
        .collect()
}

#[test]
fn every_module_uses_only_the_stages_below_it() {
    let mut files = Vec::new();
    rust_files(Path::new(SRC), &mut files);
    let mut seen = BTreeSet::new();
    let mut wrong = Vec::new();
    for file in files {
        let relative = file.strip_prefix(SRC).unwrap();
        let top = relative
            .components()
            .next()
            .unwrap()
            .as_os_str()
            .to_string_lossy()
            .trim_end_matches(".rs")
            .to_string();
        if top == "main" {
            continue; // the binary, outside the library
        }
        let allowed = MAY_USE
            .iter()
            .find(|(module, _)| *module == top)
            .unwrap_or_else(|| panic!("src/{top}: a new module; add it to MAY_USE"))
            .1;
        seen.insert(top.clone());
        let text = std::fs::read_to_string(&file).unwrap();
        for used in used_modules(&text) {
            if used != top && !allowed.contains(&used.as_str()) {
                wrong.push(format!("src/{}: {top} uses {used}", relative.display()));
            }
        }
    }
    assert!(seen.len() >= 15, "src/ was not read: {seen:?}");
    assert!(
        wrong.is_empty(),
        "against the layering:\n{}",
        wrong.join("\n")
    );
}

#[test]
fn the_check_sees_a_forbidden_path() {
    let used = used_modules("use crate::remote_write::Block;\nlet v = crate::VERSION;");
    assert_eq!(used, BTreeSet::from(["remote_write".to_string()]));
}
