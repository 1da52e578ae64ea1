//! `--once` and `--check-config` against the fake Jellyfin: exact output, promtool's verdict,
//! and a clear message for each way Jellyfin can fail.

use crate::common;

use common::agent::AgentDir;
use common::fake_jellyfin::{FakeJellyfin, Mode, TOKEN};
use common::servers::{promtool_accepts, promtool_check_metrics};

fn once(dir: &AgentDir) -> (i32, String, String) {
    let out = tokio::task::block_in_place(|| dir.run(&["--once"]));
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(
        !stdout.contains(TOKEN) && !stderr.contains(TOKEN),
        "the token leaked:\n{stdout}\n{stderr}"
    );
    (out.status.code().unwrap_or(-1), stdout, stderr)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn once_prints_the_system_metrics_of_the_real_capture_and_promtool_accepts_them() {
    // A base path, as behind a reverse proxy, to check that API paths join below it.
    let jellyfin = FakeJellyfin::start("/jellyfin").await;
    let dir = AgentDir::new(&jellyfin.url(), &[], "15s", "");
    let (code, stdout, stderr) = once(&dir);
    assert_eq!(code, 0, "stderr: {stderr}");
    let l = "instance=\"test-dmz\",job=\"jellyfin\"";
    for line in [
        format!("jellyfin_up{{{l}}} 1"),
        format!(
            "jellyfin_info{{{l},product_name=\"Jellyfin Server\",server_id=\"03b5e7fd4c8a4de8b4164d4d21b72608\",server_name=\"homelab\",version=\"10.11.11\"}} 1"
        ),
        format!("jellyfin_pending_restart{{{l}}} 0"),
        format!("jellyfin_api_requests_total{{code=\"200\",endpoint=\"/System/Info\",{l}}} 1"),
        format!(
            "jellyfin_pusher_build_info{{{l},version=\"{}\"}} 1",
            env!("CARGO_PKG_VERSION")
        ),
        format!("jellyfin_pusher_collector_success{{collector=\"system\",{l}}} 1"),
        format!("jellyfin_pusher_collector_success{{collector=\"pusher\",{l}}} 1"),
        format!("jellyfin_users{{{l},role=\"admin\",state=\"enabled\"}} 1"),
        format!("jellyfin_users{{{l},role=\"user\",state=\"enabled\"}} 3"),
        format!("jellyfin_users{{{l},role=\"admin\",state=\"disabled\"}} 0"),
        format!("jellyfin_library_items{{{l},type=\"movie\"}} 325"),
        format!("jellyfin_library_items{{{l},type=\"episode\"}} 3517"),
        format!("jellyfin_library_items{{{l},type=\"boxset\"}} 56"),
        format!("jellyfin_pusher_collector_success{{collector=\"users\",{l}}} 1"),
        format!("jellyfin_pusher_collector_success{{collector=\"library\",{l}}} 1"),
        format!("jellyfin_sessions{{client=\"Jellyfin Web\",{l}}} 4"),
        format!("jellyfin_active_users{{{l}}} 5"),
        format!(
            "jellyfin_streams{{{l},media_type=\"video\",play_method=\"transcode\",state=\"paused\"}} 1"
        ),
        format!("jellyfin_transcode_active{{hw_accel=\"none\",{l},video_codec=\"h264\"}} 2"),
        format!("jellyfin_transcode_conversions{{from_codec=\"hevc\",{l},to_codec=\"h264\"}} 1"),
        format!("jellyfin_playback_total{{{l},media_type=\"video\",type=\"transcode\"}} 0"),
        format!("jellyfin_scheduled_task_running{{{l},task=\"RefreshLibrary\"}} 0"),
        format!(
            "jellyfin_scheduled_task_last_status{{{l},status=\"completed\",task=\"CleanActivityLog\"}} 1"
        ),
        format!("jellyfin_library_scan_duration_seconds{{{l}}} 12.3873808"),
        format!("jellyfin_library_scan_failures_total{{{l}}} 0"),
        format!("jellyfin_pusher_collector_success{{collector=\"tasks\",{l}}} 1"),
        "# TYPE jellyfin_scheduled_task_failures_total counter".to_string(),
        format!("jellyfin_library_info{{collection_type=\"tvshows\",{l},library=\"Series\"}} 1"),
        format!(
            "jellyfin_storage_free_bytes{{{l},kind=\"library\",location=\"Series\"}} 1800000000000"
        ),
        format!(
            "jellyfin_storage_used_bytes{{{l},kind=\"transcode\",location=\"transcode\"}} 1000000000"
        ),
        "# TYPE jellyfin_api_requests_total counter".to_string(),
        "# TYPE jellyfin_up gauge".to_string(),
    ] {
        assert!(
            stdout.lines().any(|x| x == line),
            "missing line {line:?} in:\n{stdout}"
        );
    }
    assert!(
        stdout.contains("jellyfin_api_response_seconds{endpoint=\"/System/Info\""),
        "{stdout}"
    );
    // The user label is a salted hash by default: 8 hex characters, never the name.
    let user_streams = stdout
        .lines()
        .find(|l| l.starts_with("jellyfin_user_streams{"))
        .unwrap();
    let user = user_streams
        .split("user=\"")
        .nth(1)
        .unwrap()
        .split('"')
        .next()
        .unwrap();
    assert!(
        user.len() == 8 && user.chars().all(|c| c.is_ascii_hexdigit()),
        "{user_streams}"
    );
    assert!(!stdout.contains("USER8"));
    let sessions = jellyfin.requests_to("/Sessions");
    assert_eq!(
        sessions[0].query.as_deref(),
        Some("activeWithinSeconds=960")
    );
    let (ok, report) = promtool_accepts(&stdout);
    assert!(ok, "promtool check metrics: {report}\n{stdout}");
    // The exception is exactly the two node_exporter names, and only when host runs.
    let host_off = stdout
        .lines()
        .filter(|l| !l.contains("node_memory_Mem"))
        .collect::<Vec<_>>()
        .join("\n")
        + "\n";
    let (_, report) = promtool_check_metrics(&host_off);
    assert!(report.trim().is_empty(), "{report}");
    assert_eq!(
        jellyfin.requests_to("/System/Info").len(),
        1,
        "one request per cycle"
    );
    assert_eq!(
        jellyfin.violations(),
        Vec::<String>::new(),
        "auth header only, no legacy headers"
    );
    assert!(
        !dir.state().exists(),
        "--once stores nothing: {:?}",
        std::fs::read_dir(dir.state()).map(|d| d.count())
    );
}

/// Each failure: exit 1, `jellyfin_up 0` on stdout, and the reason on stderr.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn once_reports_each_jellyfin_failure_with_up_0_and_a_clear_reason() {
    let mut jellyfin = FakeJellyfin::start("").await;
    let dir = AgentDir::new(&jellyfin.url(), &[], "15s", "");
    let cases = [
        (
            Mode::Html,
            "expected JSON but got text/html; charset=utf-8 (is jellyfin.url the server's base URL?); the answer starts with: <!DOCTYPE html><html><body><h1>Welcome to nginx!</h1>Authorization: MediaBrowser Token=\"<redacted>\"",
        ),
        (
            Mode::Unauthorized,
            "GET /System/Info: Jellyfin answered 401 Unauthorized: the API key in jellyfin.token_file is wrong or was revoked",
        ),
        (Mode::Hang, "GET /System/Info: no answer within 1s"),
    ];
    for (mode, expected) in cases {
        jellyfin.set_mode(mode);
        let (code, stdout, stderr) = once(&dir);
        assert_eq!(code, 1, "{mode:?}: {stderr}");
        assert!(
            stdout.contains("jellyfin_up{instance=\"test-dmz\",job=\"jellyfin\"} 0\n"),
            "{mode:?}: {stdout}"
        );
        assert!(stdout.contains("jellyfin_pusher_collector_success{collector=\"system\",instance=\"test-dmz\",job=\"jellyfin\"} 0\n"), "{stdout}");
        assert!(
            stderr.contains(expected),
            "{mode:?}: expected {expected:?} in stderr:\n{stderr}"
        );
        assert!(promtool_accepts(&stdout).0, "{stdout}");
        assert!(
            !stdout.contains("jellyfin_streams"),
            "no stream counts are invented when /Sessions failed"
        );
    }
    jellyfin.set_mode(Mode::Normal);
    jellyfin.down();
    let (code, stdout, stderr) = once(&dir);
    assert_eq!(code, 1);
    assert!(
        stdout.contains("jellyfin_up{instance=\"test-dmz\",job=\"jellyfin\"} 0\n"),
        "{stdout}"
    );
    assert!(
        stderr.contains("GET /System/Info: cannot reach Jellyfin at http://127.0.0.1:"),
        "{stderr}"
    );
    assert!(
        stderr.contains("Connection refused"),
        "the cause is named: {stderr}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_json_answer_of_the_wrong_shape_names_the_field() {
    let jellyfin = FakeJellyfin::start("").await;
    jellyfin.route(
        "/System/Info",
        r#"{"Version": "10.11.11", "HasPendingRestart": "yes"}"#.into(),
    );
    let dir = AgentDir::new(&jellyfin.url(), &[], "15s", "");
    let (code, _, stderr) = once(&dir);
    assert_eq!(code, 1);
    assert!(
        stderr.contains(
            "GET /System/Info: the JSON does not match the expected shape at `HasPendingRestart`"
        ),
        "{stderr}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_config_lists_every_problem_and_passes_a_good_config() {
    let dir = AgentDir::new(
        "http://127.0.0.1:9/",
        &[("tiger", "http://127.0.0.1:9/api/v1/write")],
        "15s",
        "",
    );
    let out = dir.run(&["--check-config"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("is valid"));

    std::fs::remove_file(dir.dir.path().join("token")).unwrap();
    let text = std::fs::read_to_string(dir.config()).unwrap()
        + "bearer_token_file = \"/nonexistent/vm-token\"\nca_file = \"/etc/hostname\"\n";
    std::fs::write(dir.config(), text).unwrap();
    let out = dir.run(&["--check-config"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr.contains("cannot read jellyfin.token_file from"),
        "{stderr}"
    );
    assert!(
        stderr.contains(
            "remote_write \"tiger\": cannot read bearer_token_file from /nonexistent/vm-token"
        ),
        "{stderr}"
    );
    assert!(
        stderr.contains("remote_write \"tiger\": ca_file /etc/hostname"),
        "{stderr}"
    );

    std::fs::write(
        dir.config(),
        "[jellyfin]\nurl = \"http://x\"\ntokn_file = \"/t\"\n",
    )
    .unwrap();
    let out = dir.run(&["--check-config"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr.contains("config.toml") && stderr.contains("unknown field `tokn_file`"),
        "{stderr}"
    );

    // Every validation problem at once, one line each.
    std::fs::write(
        dir.config(),
        "state_dir = \"/tmp/x\"\n[jellyfin]\nurl = \"http://x\"\ntoken_file = \"/t\"\n\
         timeout = \"0s\"\n[collect]\ninterval = \"10ms\"\n",
    )
    .unwrap();
    let out = dir.run(&["--check-config"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2));
    for problem in [
        "jellyfin.timeout must be more than 0s",
        "collect.interval must be at least 1s",
    ] {
        let line = format!(
            "jellyfin-pusher: config {}: {problem}",
            dir.config().display()
        );
        assert!(stderr.lines().any(|l| l == line), "{line:?} in:\n{stderr}");
    }
}

#[test]
fn help_explains_every_flag() {
    let out = std::process::Command::new(common::agent::BIN)
        .arg("--help")
        .output()
        .unwrap();
    let help = String::from_utf8_lossy(&out.stdout);
    for flag in [
        "--config",
        "--once",
        "--check-config",
        "--log-format",
        "--version",
        "status",
        "check",
    ] {
        assert!(help.contains(flag), "{flag} missing from --help:\n{help}");
    }
    // The subcommands' own help names their flags.
    let out = std::process::Command::new(common::agent::BIN)
        .args(["status", "--help"])
        .output()
        .unwrap();
    let help = String::from_utf8_lossy(&out.stdout);
    assert!(
        help.contains("--format") && help.contains("--config"),
        "{help}"
    );
}

#[test]
fn log_format_json_writes_one_json_object_per_line() {
    let dir = AgentDir::new("http://127.0.0.1:9/", &[], "15s", "");
    let out = dir.run(&["--once", "--log-format", "json"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let json_lines: Vec<serde_json::Value> = stderr
        .lines()
        .filter(|l| l.starts_with('{'))
        .map(|l| serde_json::from_str(l).expect("a JSON log line"))
        .collect();
    let failure = json_lines
        .iter()
        .find(|l| {
            l["fields"]["message"] == "collector failed" && l["fields"]["collector"] == "system"
        })
        .expect("the failure is logged");
    assert_eq!(failure["level"], "ERROR");
    assert_eq!(failure["fields"]["collector"], "system");
    assert!(
        failure["fields"]["error"]
            .as_str()
            .unwrap()
            .contains("cannot reach Jellyfin")
    );
}

/// Free bytes of the file system holding `path`, as statvfs(2) says now.
fn free_bytes(path: &std::path::Path) -> f64 {
    let c_path = std::ffi::CString::new(path.to_str().unwrap()).unwrap();
    let mut stat: libc::statvfs = unsafe { std::mem::zeroed() };
    assert_eq!(unsafe { libc::statvfs(c_path.as_ptr(), &mut stat) }, 0);
    stat.f_bavail as f64 * stat.f_frsize as f64
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn before_10_11_storage_is_measured_here_for_the_folders_on_this_host() {
    let jellyfin = FakeJellyfin::start("").await;
    jellyfin.unroute("/System/Info/Storage"); // 10.9 and 10.10 answer 404
    let media = tempfile::tempdir().unwrap();
    let mut folders: Vec<serde_json::Value> =
        serde_json::from_str(&common::fixture("virtual-folders.synthetic.json")).unwrap();
    folders[0]["Locations"] = serde_json::json!([media.path()]); // Films is on this host
    jellyfin.route(
        "/Library/VirtualFolders",
        serde_json::to_string(&folders).unwrap(),
    );
    let mut info: serde_json::Value =
        serde_json::from_str(&common::fixture("system-info.10.11.11.json")).unwrap();
    info["TranscodingTempPath"] = serde_json::json!(media.path());
    jellyfin.route("/System/Info", info.to_string());
    let dir = AgentDir::new(&jellyfin.url(), &[], "15s", "");
    let (code, stdout, stderr) = once(&dir);
    assert_eq!(code, 0, "{stderr}");
    let value = |series: &str| -> f64 {
        let line = stdout
            .lines()
            .find(|l| l.starts_with(series))
            .unwrap_or_else(|| panic!("{series} missing:\n{stdout}"));
        line.rsplit(' ').next().unwrap().parse().unwrap()
    };
    let measured = value(
        "jellyfin_storage_free_bytes{instance=\"test-dmz\",job=\"jellyfin\",kind=\"library\",location=\"Films\"}",
    );
    assert!(
        (measured - free_bytes(media.path())).abs() < 256.0 * 1048576.0,
        "{measured}"
    );
    value(
        "jellyfin_storage_free_bytes{instance=\"test-dmz\",job=\"jellyfin\",kind=\"transcode\",location=\"transcode\"}",
    );
    // Folders that are not on this host (the fixture's /media/tv, /config/…) are left out.
    assert!(
        !stdout.contains("location=\"Series\"") && !stdout.contains("location=\"log\""),
        "{stdout}"
    );
    assert!(
        stdout.contains("jellyfin_library_info{collection_type=\"movies\""),
        "{stdout}"
    );
    assert!(stdout.contains("jellyfin_pusher_collector_success{collector=\"library\",instance=\"test-dmz\",job=\"jellyfin\"} 1"));
    assert!(
        !stdout.contains(media.path().to_str().unwrap()),
        "no path is ever a label"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_a_geoip_database_sessions_are_counted_per_country_and_no_address_is_printed() {
    let jellyfin = FakeJellyfin::start("").await;
    // The 10.9 capture's addresses were redacted to 192.168.1.1; give two sessions public test
    // addresses of MaxMind's test database.
    let mut sessions: Vec<serde_json::Value> =
        serde_json::from_str(&common::fixture("sessions.transcoding.10.9.6.json")).unwrap();
    sessions[0]["RemoteEndPoint"] = "81.2.69.142".into();
    sessions[1]["RemoteEndPoint"] = "2001:218::1".into();
    jellyfin.route("/Sessions", serde_json::to_string(&sessions).unwrap());
    let db = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/geoip/GeoLite2-Country-Test.mmdb"
    );
    let extra = format!("[collectors.sessions]\ngeoip_database = \"{db}\"\n");
    let dir = AgentDir::new(&jellyfin.url(), &[], "15s", &extra);
    let (code, stdout, stderr) = once(&dir);
    assert_eq!(code, 0, "{stderr}");
    let l = "instance=\"test-dmz\",job=\"jellyfin\"";
    for line in [
        format!("jellyfin_sessions_by_country{{country=\"GB\",{l}}} 1"),
        format!("jellyfin_sessions_by_country{{country=\"JP\",{l}}} 1"),
        format!("jellyfin_sessions_by_country{{country=\"unknown\",{l}}} 4"),
    ] {
        assert!(
            stdout.lines().any(|x| x == line),
            "missing {line:?} in:\n{stdout}"
        );
    }
    assert!(
        !stdout.contains("81.2.69.142") && !stdout.contains("192.168.1.1"),
        "no address leaves the host"
    );
}
