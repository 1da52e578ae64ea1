//! The golden `--once` output (node_exporter's e2e-output.txt pattern): every collector that
//! reads Jellyfin or files we control runs once against the fixtures, and the output must
//! equal tests/fixtures/once-output.txt line for line, so that a change to any metric shows as
//! a diff in review. After an intended change, rewrite the file and review the diff:
//!
//! ```sh
//! UPDATE_GOLDEN=1 cargo test --test it golden::
//! ```
//!
//! Left out or normalised, because they depend on the machine or the moment, not on the
//! fixtures: the `process` and `host` collectors (they read this machine's /proc; shown in
//! tests/it/process.rs), the values of the families in [`VOLATILE`] and the samples of those
//! in [`ORDER_DEPENDENT`]. Samples of one family are sorted, because `--once` merges the
//! families of collectors that finish in any order.

use crate::common;

use std::path::Path;

use common::agent::AgentDir;
use common::fake_jellyfin::FakeJellyfin;

const GOLDEN: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/fixtures/once-output.txt"
);

/// Families whose values are timings or the agent's own resource use: the series stay, the
/// value becomes `<volatile>`.
const VOLATILE: [&str; 3] = [
    "jellyfin_pusher_collector_duration_seconds",
    "jellyfin_pusher_cpu_seconds_total",
    "jellyfin_pusher_resident_memory_bytes",
];

/// The library the fake Jellyfin fills with generated items for the inventory walk.
const FILMS: &str = "f137a2dd21bbc1b99aa5c0f6bf02a805";

/// Families that report the Jellyfin client's requests so far: which endpoints they list
/// depends on which collectors' requests finished first. Their HELP and TYPE lines stay (so the
/// family must exist); their samples are left out (tests/it/once.rs checks the /System/Info
/// ones).
const ORDER_DEPENDENT: [&str; 2] = [
    "jellyfin_api_requests_total",
    "jellyfin_api_response_seconds",
];

/// A fixed user-label salt, so that the hashed `user` labels are the same on every run.
const SALT: [u8; 16] = *b"golden-once-salt";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn once_over_the_fixtures_matches_the_golden_output() {
    let jellyfin = FakeJellyfin::start("").await;
    jellyfin.generate_items(FILMS, 40);
    let logs = tempfile::tempdir().unwrap();
    std::fs::write(logs.path().join("log_20261125.log"), "").unwrap();
    let extra = format!(
        "[collectors.sessions]\ngeoip_database = \"{root}/tests/fixtures/geoip/GeoLite2-Country-Test.mmdb\"\n\
         [collectors.transcode_log]\ndir = \"{logs}\"\n\
         [collectors.process]\nenabled = false\n\
         [collectors.host]\nenabled = false\n",
        root = env!("CARGO_MANIFEST_DIR"),
        logs = logs.path().display(),
    );
    let dir = AgentDir::new(&jellyfin.url(), &[], "15s", &extra);
    std::fs::create_dir_all(dir.state()).unwrap();
    std::fs::write(dir.state().join("user-label-salt"), SALT).unwrap();

    let out = tokio::task::block_in_place(|| dir.run(&["--once"]));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let actual = normalise(&stdout);
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(GOLDEN, &actual).unwrap();
        eprintln!("rewrote {GOLDEN}");
        return;
    }
    let expected = std::fs::read_to_string(GOLDEN)
        .unwrap_or_else(|e| panic!("{GOLDEN}: {e} (UPDATE_GOLDEN=1 writes it)"));
    if actual != expected {
        panic!(
            "--once output differs from {} (UPDATE_GOLDEN=1 rewrites it; review the diff):\n{}",
            Path::new(GOLDEN).display(),
            diff(&expected, &actual)
        );
    }
}

/// Sorts the samples within each family, hides the values of [`VOLATILE`] families and
/// leaves out the samples of [`ORDER_DEPENDENT`] ones.
fn normalise(exposition: &str) -> String {
    let mut out = String::new();
    let mut samples: Vec<String> = Vec::new();
    let flush = |samples: &mut Vec<String>, out: &mut String| {
        samples.sort();
        for line in samples.drain(..) {
            out.push_str(&line);
            out.push('\n');
        }
    };
    for line in exposition.lines() {
        if line.starts_with('#') {
            flush(&mut samples, &mut out);
            out.push_str(line);
            out.push('\n');
            continue;
        }
        let name = line.split(['{', ' ']).next().unwrap_or_default();
        if ORDER_DEPENDENT.contains(&name) {
            continue;
        }
        match (VOLATILE.contains(&name), line.rsplit_once(' ')) {
            (true, Some((series, _))) => samples.push(format!("{series} <volatile>")),
            _ => samples.push(line.to_string()),
        }
    }
    flush(&mut samples, &mut out);
    out
}

/// The lines only in `expected` (`-`) and only in `actual` (`+`), in file order.
fn diff(expected: &str, actual: &str) -> String {
    let expected_lines: Vec<&str> = expected.lines().collect();
    let actual_lines: Vec<&str> = actual.lines().collect();
    let mut text = String::new();
    for line in &expected_lines {
        if !actual_lines.contains(line) {
            text.push_str(&format!("-{line}\n"));
        }
    }
    for line in &actual_lines {
        if !expected_lines.contains(line) {
            text.push_str(&format!("+{line}\n"));
        }
    }
    if text.is_empty() {
        text.push_str("(the same lines in another order)\n");
    }
    text
}
