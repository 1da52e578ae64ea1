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
    let started = std::time::Instant::now();
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
    let took = started.elapsed();
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
        let q = r.query.as_deref().unwrap();
        q.contains("EnableImages=false&EnableUserData=false")
            && q.contains("&IsMissing=false&SortBy=DateCreated,SortName&SortOrder=Ascending&")
    }));
    let bytes: usize = pages.iter().map(|r| r.bytes).sum();
    let rss = stderr
        .lines()
        .find_map(|l| l.strip_prefix("peak-rss-kib="))
        .unwrap_or("?");
    eprintln!(
        "FIGURE inventory walk of {ITEMS} items: {} requests, {:.1} MiB fetched, {:.1} s (--once, debug build, fake server), peak RSS {rss} KiB",
        pages.len(),
        bytes as f64 / 1048576.0,
        took.as_secs_f64()
    );
}

const SERIES: &str = "a656b907eb3a73532e40e44b968d0225";
const MUZIEK: &str = "7e64e319657a9516ec78490da03edccb";

/// The StartIndex and Limit of a GET /Items request.
fn page_of(r: &common::fake_jellyfin::Request) -> (usize, usize) {
    let q = r.query.as_deref().unwrap_or("");
    let get = |name: &str| {
        q.split('&')
            .find_map(|kv| kv.strip_prefix(&format!("{name}=")))
            .and_then(|v| v.parse().ok())
            .unwrap()
    };
    (get("StartIndex"), get("Limit"))
}

fn pages_of(jellyfin: &FakeJellyfin, library: &str) -> Vec<(usize, usize)> {
    jellyfin
        .requests_to("/Items")
        .iter()
        .filter(|r| r.query.as_deref().unwrap_or("").contains(library))
        .map(page_of)
        .collect()
}

/// The newest value of each series of `selector`, by the value of `label`.
async fn latest(
    vm: &common::servers::VictoriaMetrics,
    selector: &str,
    label: &str,
) -> std::collections::BTreeMap<String, f64> {
    vm.export(selector)
        .await
        .iter()
        .map(|s| {
            let newest = (0..s.timestamps.len())
                .max_by_key(|i| s.timestamps[*i])
                .unwrap();
            (s.metric[label].clone(), s.values[newest])
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_page_a_failing_library_and_jellyfins_meanings() {
    let jellyfin = FakeJellyfin::start("").await;
    let vm = common::servers::VictoriaMetrics::start().await;
    // Films: 1,000 items at 4 ms each: a 500-item page takes 2 s (over the 1.8 s page
    // timeout), a 250-item page 1 s.
    jellyfin.generate_items(FILMS, 1000);
    jellyfin.slow_items(FILMS, std::time::Duration::from_millis(4));
    // Series: the hand-made library (virtual episode, merged versions, episodes known by
    // their series), as the server's source says it answers.
    let fixture: serde_json::Value =
        serde_json::from_str(&common::fixture("items.inventory.synthetic.json")).unwrap();
    jellyfin.serve_items(SERIES, fixture["Items"].as_array().unwrap().clone());
    // Muziek: 1,200 items whose third page fails in the first cycle.
    jellyfin.generate_items(MUZIEK, 1200);
    jellyfin.fail_items(MUZIEK, Some(1000));
    let extra = "[collectors.inventory]\ninterval = \"1s\"\npage_size = 500\npage_timeout = \"1800ms\"\n\
                 [collectors.library]\nenabled = false\n";
    let dir = AgentDir::pushing(&jellyfin, &vm, extra);
    let mut agent = dir.start();
    let muziek_pages = |n: usize| {
        let jellyfin = &jellyfin;
        common::wait_for(
            "Muziek pages",
            std::time::Duration::from_secs(90),
            move || {
                let seen = pages_of(jellyfin, MUZIEK).len();
                async move { (seen >= n).then_some(()) }
            },
        )
    };
    muziek_pages(3).await; // 0, 500 and the failing 1000
    jellyfin.fail_items(MUZIEK, None);
    muziek_pages(4).await; // the walk resumes at 1000
    // From now on Muziek fails altogether: its last complete walk stands.
    jellyfin.fail_items(MUZIEK, Some(0));
    muziek_pages(6).await; // two more failing cycles
    let n = jellyfin.requests_to("/Library/VirtualFolders").len();
    jellyfin
        .wait_for_requests("/Library/VirtualFolders", n + 1)
        .await;
    assert!(agent.stop().success());
    vm.settle().await;

    // The slow page was asked again at half size; later cycles keep that size.
    let films = pages_of(&jellyfin, FILMS);
    assert_eq!(
        films[..5],
        [(0, 500), (0, 250), (250, 250), (500, 250), (750, 250)]
    );
    assert!(
        films[5..].iter().all(|(_, limit)| *limit == 250),
        "{films:?}"
    );
    // Muziek resumed at the page that failed, not from the start.
    assert_eq!(
        pages_of(&jellyfin, MUZIEK)[..4],
        [(0, 500), (500, 500), (1000, 500), (1000, 500)]
    );

    let items = |library: &str| {
        format!("{{__name__=\"jellyfin_library_inventory_items\",library=\"{library}\"}}")
    };
    let want = |pairs: &[(&str, f64)]| {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), *v))
            .collect::<std::collections::BTreeMap<_, _>>()
    };
    assert_eq!(
        latest(&vm, &items("Films"), "type").await,
        want(&[("episode", 750.0), ("movie", 250.0)])
    );
    assert_eq!(
        latest(&vm, &items("Muziek"), "type").await,
        want(&[("episode", 900.0), ("movie", 300.0)]),
        "the last complete walk is still reported while the library fails"
    );
    // The Series fixture: the virtual episode is not asked for, the two versions of Big
    // Buck Bunny are one movie whose files count once, episodes known through their
    // series do not miss metadata; the series without ids, its episode and the movie
    // without ids do.
    assert_eq!(
        latest(&vm, &items("Series"), "type").await,
        want(&[("episode", 3.0), ("movie", 2.0), ("series", 2.0)])
    );
    let one = |name: &str| format!("{{__name__=\"{name}\",library=\"Series\"}}");
    assert_eq!(
        latest(&vm, &one("jellyfin_library_size_bytes"), "library").await["Series"],
        3.0 * 5e8 + 4e9 + 2e9 + 1e9
    );
    assert_eq!(
        latest(
            &vm,
            &one("jellyfin_library_missing_metadata_items"),
            "library"
        )
        .await["Series"],
        3.0
    );
    // Muziek's last series are as new as the others': reported every cycle.
    let newest = |library: &str| {
        let vm = &vm;
        let selector =
            format!("{{__name__=\"jellyfin_library_size_bytes\",library=\"{library}\"}}");
        async move {
            *vm.export(&selector).await[0]
                .timestamps
                .iter()
                .max()
                .unwrap()
        }
    };
    assert_eq!(newest("Muziek").await, newest("Films").await);
}
