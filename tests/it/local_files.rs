//! What the agent trusts on its own host, checked on the binary: credentials over cleartext
//! links and secret files others can read are named by `--check-config`, the files the agent
//! writes are private, and a damaged 2 GB buffer file is recovered in bounded memory.

use crate::common;

use std::os::unix::fs::{FileExt, PermissionsExt};
use std::path::Path;
use std::time::Duration;

use common::agent::AgentDir;
use common::fake_jellyfin::FakeJellyfin;
use common::{free_port, peak_rss_kib, wait_for};
use jellyfin_pusher::queue::Block;
use jellyfin_pusher::queue::record;

fn append(dir: &AgentDir, toml: &str) {
    let text = std::fs::read_to_string(dir.config()).unwrap() + toml;
    std::fs::write(dir.config(), text).unwrap();
}

#[test]
fn check_config_names_cleartext_credentials_and_secret_files_others_can_read() {
    let dir = AgentDir::new("http://jellyfin.invalid:8096/", &[], "15s", "");
    let out = dir.run(&["--check-config"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains(
            "jellyfin.url: http:// to jellyfin.invalid would send the API key in clear text"
        ) && stderr.contains("set jellyfin.insecure_http = true"),
        "{stderr}"
    );

    // A remote with a token over http:// elsewhere is named by its key too.
    let dir = AgentDir::new(
        "http://127.0.0.1:9/",
        &[("tiger", "http://tiger.invalid:8428/api/v1/write")],
        "15s",
        "",
    );
    std::fs::write(dir.dir.path().join("rw"), "rw-token\n").unwrap();
    append(
        &dir,
        &format!(
            "bearer_token_file = \"{}\"\n",
            dir.dir.path().join("rw").display()
        ),
    );
    let out = dir.run(&["--check-config"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("remote_write[0] (name \"tiger\").url: http:// to tiger.invalid would send the bearer token in clear text"),
        "{stderr}"
    );

    // Opted in: valid, but a token file its group can read is warned about, naming it.
    append(&dir, "insecure_http = true\n");
    let token = dir.dir.path().join("token");
    std::fs::set_permissions(&token, std::fs::Permissions::from_mode(0o640)).unwrap();
    std::fs::set_permissions(
        dir.dir.path().join("rw"),
        std::fs::Permissions::from_mode(0o600),
    )
    .unwrap();
    let out = dir.run(&["--check-config"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let warning = format!(
        "jellyfin.token_file file {} can be read by its group or other users",
        token.display()
    );
    assert!(stderr.contains(&warning), "{stderr}");
    assert!(
        stderr.contains(
            "remote_write \"tiger\": insecure_http is set, so its credentials cross the network in clear text"
        ),
        "the opt-in is repeated at every start: {stderr}"
    );
    assert!(
        !stderr.contains("bearer_token_file file"),
        "a 0600 file is not warned about: {stderr}"
    );

    // systemd credentials are private to the service whatever their mode says.
    let out = std::process::Command::new(common::agent::BIN)
        .arg("--config")
        .arg(dir.config())
        .arg("--check-config")
        .env("CREDENTIALS_DIRECTORY", dir.dir.path())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(!stderr.contains("can be read by"), "{stderr}");
}

/// An agent whose receiver never answers: everything it collects stays buffered.
fn pushing_nowhere(jellyfin: &FakeJellyfin, extra: &str) -> AgentDir {
    let nowhere = format!("http://127.0.0.1:{}/api/v1/write", free_port());
    AgentDir::new(&jellyfin.url(), &[("tiger", &nowhere)], "1s", extra)
}

/// Every folder and file under `dir`, with its mode.
fn modes(dir: &Path, out: &mut Vec<(String, u32, bool)>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let entry = entry.unwrap();
        let meta = entry.metadata().unwrap();
        out.push((
            entry.path().display().to_string(),
            meta.permissions().mode() & 0o777,
            meta.is_dir(),
        ));
        if meta.is_dir() {
            modes(&entry.path(), out);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn everything_the_agent_writes_is_private_to_it() {
    // The test runs with the usual umask (022): the agent must not rely on systemd's 0077.
    let jellyfin = FakeJellyfin::start("").await;
    let dir = pushing_nowhere(&jellyfin, "[privacy]\nuser_label = \"hash\"\n");
    let mut agent = dir.start();
    jellyfin.wait_for_requests("/System/Info", 3).await;
    wait_for(
        "the salt and the tasks state",
        Duration::from_secs(30),
        || {
            let state = dir.state();
            async move {
                (state.join("user-label-salt").exists() && state.join("queue/tiger").exists())
                    .then_some(())
            }
        },
    )
    .await;
    assert!(agent.stop().success());
    let mut found = vec![(
        dir.state().display().to_string(),
        std::fs::metadata(dir.state()).unwrap().permissions().mode() & 0o777,
        true,
    )];
    modes(&dir.state(), &mut found);
    assert!(
        found.iter().any(|(p, _, _)| p.ends_with(".seg")),
        "{found:?}"
    );
    assert!(found.iter().any(|(p, _, _)| p.ends_with("/position")));
    for (path, mode, is_dir) in &found {
        let expected = if *is_dir { 0o700 } else { 0o600 };
        assert_eq!(*mode, expected, "{path} is {mode:o}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_damaged_2_gb_buffer_file_is_recovered_in_bounded_memory() {
    let jellyfin = FakeJellyfin::start("").await;
    let dir = pushing_nowhere(
        &jellyfin,
        "[buffer]\nmax_size = \"4GiB\"\nsegment_size = \"4GiB\"\n",
    );
    // One intact record, 2 GB of damage (a sparse hole reads as zeros), one intact record.
    let queue = dir.state().join("queue/tiger");
    std::fs::create_dir_all(&queue).unwrap();
    let record = record::frame(&Block {
        data: bytes::Bytes::from_static(b"not sent: the receiver is down"),
        samples: 1,
        min_timestamp_ms: common::now_ms(),
        max_timestamp_ms: common::now_ms(),
    });
    let segment = std::fs::File::create(queue.join("00000000000000000000.seg")).unwrap();
    let size: u64 = 2 << 30;
    segment.write_all_at(&record, 0).unwrap();
    segment
        .write_all_at(&record, size - record.len() as u64)
        .unwrap();
    assert_eq!(segment.metadata().unwrap().len(), size);
    drop(segment);

    let mut agent = dir.start();
    wait_for("the buffer to open", Duration::from_secs(300), || {
        let log = agent.log();
        async move { log.contains("buffer opened").then_some(log) }
    })
    .await;
    jellyfin.wait_for_requests("/System/Info", 2).await;
    let peak = peak_rss_kib(agent.pid());
    assert!(agent.stop().success());
    let log = agent.log();
    println!("FIGURE a 2 GiB damaged segment: agent peak RSS {peak} KiB after recovery");
    assert!(
        log.contains("blocks=3"),
        "two records and one damaged stretch:\n{log}"
    );
    assert!(peak < 64 * 1024, "recovery reached {peak} KiB");
}
