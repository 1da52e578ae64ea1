//! The inventory walk of a generated 100,000-item library: exact aggregates, the requests it
//! costs the server, and the figures (requests, bytes, peak RSS) printed for the README.

use crate::common;

use common::agent::AgentDir;
use common::fake_jellyfin::FakeJellyfin;
use common::sample_value as value;

const FILMS: &str = "f137a2dd21bbc1b99aa5c0f6bf02a805";
const ITEMS: usize = 100_000;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_100k_item_library_is_walked_page_by_page_with_exact_aggregates() {
    let jellyfin = FakeJellyfin::start("").await;
    jellyfin.generate_items(FILMS, ITEMS);
    let dir = AgentDir::new(
        &jellyfin.url(),
        &[],
        "15s",
        "[collectors.inventory]\npage_size = 500\n",
    );
    let out = tokio::task::block_in_place(|| {
        std::process::Command::new("/usr/bin/time")
            .args(["-f", "peak-rss-kib=%M"])
            .arg(common::agent::BIN)
            .arg("--config")
            .arg(dir.config())
            .arg("--once")
            .output()
            .unwrap()
    });
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let films =
        |rest: &str| format!("{{instance=\"test-dmz\",job=\"jellyfin\",library=\"Films\"{rest}}}");
    let expect = |name: &str, rest: &str, want: f64| {
        let series = format!("{name}{}", films(rest));
        assert_eq!(value(&stdout, &series), Some(want), "{series}");
    };
    expect(
        "jellyfin_library_inventory_items",
        ",type=\"movie\"",
        25_000.0,
    );
    expect(
        "jellyfin_library_inventory_items",
        ",type=\"episode\"",
        75_000.0,
    );
    // Sizes 1..10 MB in turn; run times 3.6e10 + i ticks; every 7th item lacks provider ids.
    expect("jellyfin_library_size_bytes", "", 5.5e11);
    expect("jellyfin_library_duration_seconds", "", 360_000_499.995);
    expect("jellyfin_library_missing_metadata_items", "", 14_286.0);
    let codec = |c: &str| {
        format!(
            "jellyfin_library_video_codec_items{{codec=\"{c}\",instance=\"test-dmz\",job=\"jellyfin\",library=\"Films\"}}"
        )
    };
    assert_eq!(value(&stdout, &codec("h264")), Some(33_334.0));
    assert_eq!(value(&stdout, &codec("av1")), Some(33_333.0));
    expect(
        "jellyfin_library_resolution_items",
        ",resolution=\"2160p\"",
        25_000.0,
    );
    expect(
        "jellyfin_library_resolution_items",
        ",resolution=\"480p\"",
        25_000.0,
    );
    // The ten newest, newest first in value.
    let recent: Vec<&str> = stdout
        .lines()
        .filter(|l| l.starts_with("jellyfin_library_recently_added{"))
        .collect();
    assert_eq!(recent.len(), 10, "{recent:?}");
    assert!(
        recent.iter().any(|l| l.contains("item=\"Item 99999\""))
            && !recent.iter().any(|l| l.contains("item=\"Item 99989\""))
    );
    // Empty libraries still report, at 0.
    assert_eq!(
        value(
            &stdout,
            "jellyfin_library_size_bytes{instance=\"test-dmz\",job=\"jellyfin\",library=\"Series\"}"
        ),
        Some(0.0)
    );

    // What it cost the server: one page at a time, and nothing asked twice.
    let pages = jellyfin.requests_to("/Items");
    assert_eq!(
        pages.len(),
        ITEMS / 500 + 2,
        "200 pages of Films plus one empty page each for Series and Muziek"
    );
    let starts: Vec<usize> = pages
        .iter()
        .filter(|r| r.query.as_deref().unwrap_or("").contains(FILMS))
        .map(|r| {
            r.query
                .as_deref()
                .unwrap()
                .split("StartIndex=")
                .nth(1)
                .unwrap()
                .split('&')
                .next()
                .unwrap()
                .parse()
                .unwrap()
        })
        .collect();
    assert_eq!(starts, (0..ITEMS).step_by(500).collect::<Vec<_>>());
    assert!(pages.iter().all(|r| {
        r.query
            .as_deref()
            .unwrap()
            .contains("EnableImages=false&EnableUserData=false")
    }));
    let bytes: usize = pages.iter().map(|r| r.bytes).sum();
    let rss = stderr
        .lines()
        .find_map(|l| l.strip_prefix("peak-rss-kib="))
        .unwrap_or("?");
    eprintln!(
        "FIGURE inventory walk of {ITEMS} items: {} requests, {:.1} MiB fetched, --once peak RSS {rss} KiB",
        pages.len(),
        bytes as f64 / 1048576.0
    );
}
