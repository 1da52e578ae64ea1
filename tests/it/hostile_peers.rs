//! Peers that misbehave on purpose, as an attacker on the link or behind a receiver would:
//! an error page of hundreds of MiB (the agent reads a few KiB of it and hangs up), and
//! redirects (never followed, on either client; the block stays buffered and is delivered
//! once the receiver behaves).
//!
//! The agent's peak memory is measured as the kernel reports it (VmHWM of the running agent)
//! and printed as `FIGURE` lines.

use crate::common;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::http::StatusCode;
use axum::response::Response;
use common::agent::AgentDir;
use common::fake_jellyfin::FakeJellyfin;
use common::servers::VictoriaMetrics;
use common::{
    assert_one_sample_per_request, peak_rss_kib, up_timestamps, wait_for, wait_for_every_cycle,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// The most a hostile peer sends on one connection: far more than the agent may keep, small
/// enough that an agent which did buffer it would not take the test machine down.
const HUGE: u64 = 256 * 1024 * 1024;
/// What the agent may reach, whatever the peer sends (it idles near 10 MiB).
const MEMORY_BOUND_KIB: u64 = 64 * 1024;

/// A raw HTTP/1.1 server that answers every request with `head` and then up to [`HUGE`] bytes
/// of `fill` (announcing 3 GB), until the client hangs up. It counts the bytes it got out.
struct Hostile {
    port: u16,
    connections: Arc<AtomicU64>,
    /// Bytes written on each connection before the client went away.
    written: Arc<Mutex<Vec<u64>>>,
    server: tokio::task::JoinHandle<()>,
}

impl Hostile {
    async fn start(status_line: &'static str, first_words: &'static str) -> Hostile {
        Hostile::serve(status_line, first_words, false).await
    }

    /// The same without a length: chunked transfer encoding, so only the reader's own cap
    /// can stop it.
    async fn start_chunked(status_line: &'static str, first_words: &'static str) -> Hostile {
        Hostile::serve(status_line, first_words, true).await
    }

    async fn serve(status_line: &'static str, first_words: &'static str, chunked: bool) -> Hostile {
        let listener = TcpListener::bind(("127.0.0.1", 0)).await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let connections = Arc::new(AtomicU64::new(0));
        let written = Arc::new(Mutex::new(Vec::new()));
        let (c, w) = (connections.clone(), written.clone());
        let server = tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                c.fetch_add(1, Ordering::SeqCst);
                let w = w.clone();
                tokio::spawn(async move {
                    read_request(&mut stream).await;
                    let framing = if chunked {
                        "Transfer-Encoding: chunked"
                    } else {
                        "Content-Length: 3221225472"
                    };
                    let head =
                        format!("{status_line}\r\nContent-Type: text/plain\r\n{framing}\r\n\r\n");
                    let start =
                        [head.into_bytes(), frame(chunked, first_words.as_bytes())].concat();
                    if stream.write_all(&start).await.is_err() {
                        return;
                    }
                    let chunk = frame(chunked, &[b'x'; 64 * 1024]);
                    let mut sent = 0u64;
                    while sent < HUGE && stream.write_all(&chunk).await.is_ok() {
                        sent += chunk.len() as u64;
                    }
                    w.lock().unwrap().push(sent);
                });
            }
        });
        Hostile {
            port,
            connections,
            written,
            server,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }
}

impl Drop for Hostile {
    fn drop(&mut self) {
        self.server.abort();
    }
}

/// `data` as it goes on the wire: as is, or as one chunk of a chunked body.
fn frame(chunked: bool, data: &[u8]) -> Vec<u8> {
    if chunked {
        [format!("{:x}\r\n", data.len()).as_bytes(), data, b"\r\n"].concat()
    } else {
        data.to_vec()
    }
}

/// Reads one request's head and its Content-Length body.
async fn read_request(stream: &mut tokio::net::TcpStream) {
    let mut data = Vec::new();
    let mut buf = [0u8; 4096];
    let head_end = loop {
        if let Some(i) = data.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        match stream.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => data.extend_from_slice(&buf[..n]),
        }
    };
    let head = String::from_utf8_lossy(&data[..head_end]).to_lowercase();
    let length: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0);
    while data.len() < head_end + length {
        match stream.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => data.extend_from_slice(&buf[..n]),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_receiver_s_endless_error_page_costs_the_agent_a_few_kib() {
    let jellyfin = FakeJellyfin::start("").await;
    let receiver =
        Hostile::start("HTTP/1.1 500 Internal Server Error", "receiver exploded: ").await;
    let dir = AgentDir::new(
        &jellyfin.url(),
        &[("hostile", &receiver.url("/api/v1/write"))],
        "1s",
        "",
    );
    let mut agent = dir.start();
    wait_for("3 attempts", Duration::from_secs(30), || {
        let n = receiver.written.lock().unwrap().len();
        async move { (n >= 3).then_some(()) }
    })
    .await;
    let peak = peak_rss_kib(agent.pid());
    assert!(agent.stop().success());
    let written = receiver.written.lock().unwrap().clone();
    println!(
        "FIGURE receiver error page of up to {} MiB per attempt: agent peak RSS {peak} KiB; bytes the receiver got out before the agent hung up: {written:?}",
        HUGE >> 20
    );
    assert!(
        peak < MEMORY_BOUND_KIB,
        "the agent reached {peak} KiB reading an error page"
    );
    assert!(
        written.iter().all(|w| *w < HUGE),
        "the agent read a whole error page: {written:?}"
    );
    let log = agent.log();
    assert!(
        log.contains("HTTP 500: receiver exploded: xxxxxxxx"),
        "the error is logged with the start of the page:\n{log}"
    );
    assert!(
        !log.contains(&"x".repeat(2048)),
        "at most a short excerpt is logged"
    );
    assert!(receiver.connections.load(Ordering::SeqCst) >= 3);
}

/// Runs the agent against `jellyfin` (with `jellyfin_settings` added to its [jellyfin] table
/// and a receiver that is never there) until Jellyfin has answered `requests` times; returns
/// its log and its peak RSS in KiB (VmHWM, read while it still runs: the kernel's figure for
/// a finished child would include the test process it was forked from).
async fn agent_against(
    jellyfin: &Hostile,
    jellyfin_settings: &str,
    requests: usize,
) -> (String, u64) {
    let nowhere = format!("http://127.0.0.1:{}/api/v1/write", common::free_port());
    let dir = AgentDir::new(&jellyfin.url("/"), &[("tiger", &nowhere)], "1s", "");
    let config = std::fs::read_to_string(dir.config()).unwrap().replace(
        "timeout = \"1s\"\n",
        &format!("timeout = \"5s\"\n{jellyfin_settings}"),
    );
    std::fs::write(dir.config(), config).unwrap();
    let mut agent = dir.start();
    wait_for("Jellyfin's answers", Duration::from_secs(60), || {
        let n = jellyfin.written.lock().unwrap().len();
        async move { (n >= requests).then_some(()) }
    })
    .await;
    let peak = peak_rss_kib(agent.pid());
    assert!(agent.stop().success());
    (agent.log(), peak)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_jellyfin_error_page_is_read_only_as_far_as_it_is_shown() {
    let jellyfin =
        Hostile::start("HTTP/1.1 500 Internal Server Error", "jellyfin exploded: ").await;
    // A generous max_response_size (big libraries need one) must not let an error page in.
    let (stderr, peak) = agent_against(&jellyfin, "max_response_size = \"1GiB\"\n", 6).await;
    let written = jellyfin.written.lock().unwrap().clone();
    println!(
        "FIGURE Jellyfin error pages of up to {} MiB: agent peak RSS {peak} KiB; bytes each got out: {written:?}",
        HUGE >> 20
    );
    assert!(
        stderr.contains("Jellyfin answered HTTP 500: jellyfin exploded: xxxx"),
        "{stderr}"
    );
    assert!(peak < MEMORY_BOUND_KIB, "the agent reached {peak} KiB");
    assert!(
        !written.is_empty() && written.iter().all(|w| *w < HUGE),
        "{written:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_successful_jellyfin_answer_is_cut_at_max_response_size_while_streaming() {
    // No Content-Length to refuse up front: only the streaming cap can stop this one.
    let jellyfin = Hostile::start_chunked("HTTP/1.1 200 OK", "{\"Version\": \"").await;
    let (stderr, peak) = agent_against(&jellyfin, "max_response_size = \"2MiB\"\n", 6).await;
    let written = jellyfin.written.lock().unwrap().clone();
    println!(
        "FIGURE endless 200 answers, max_response_size 2 MiB: agent peak RSS {peak} KiB; bytes each got out: {written:?}"
    );
    assert!(
        stderr.contains(
            "GET /System/Info: the answer is larger than jellyfin.max_response_size (2097152 bytes)"
        ),
        "{stderr}"
    );
    assert!(peak < MEMORY_BOUND_KIB, "the agent reached {peak} KiB");
    assert!(
        !written.is_empty() && written.iter().all(|w| *w < HUGE),
        "{written:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jellyfin_redirects_are_not_followed() {
    let elsewhere = Hostile::start("HTTP/1.1 200 OK", "{}").await;
    let location: &'static str = Box::leak(
        format!(
            "HTTP/1.1 302 Found\r\nLocation: {}",
            elsewhere.url("/System/Info?api_key=leaked")
        )
        .into_boxed_str(),
    );
    let jellyfin = Hostile::start(location, "").await;
    let dir = AgentDir::new(&jellyfin.url("/"), &[], "1s", "");
    let out = dir.run(&["--once"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!(
            "Jellyfin answered HTTP 302, a redirect to {}?<query removed>",
            elsewhere.url("/System/Info")
        )),
        "{stderr}"
    );
    assert!(!stderr.contains("leaked"), "{stderr}");
    assert_eq!(
        elsewhere.connections.load(Ordering::SeqCst),
        0,
        "nothing reached the redirect's target"
    );
}

/// Answers 307 to `elsewhere` while `redirecting`, then forwards to the real receiver.
async fn redirecting_receiver(
    upstream: String,
    elsewhere: String,
    redirecting: Arc<AtomicBool>,
    redirects: Arc<AtomicU64>,
) -> (u16, tokio::task::JoinHandle<()>) {
    let listener = TcpListener::bind(("127.0.0.1", 0)).await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let app = Router::new().fallback(move |body: Bytes| {
        let (upstream, elsewhere) = (upstream.clone(), elsewhere.clone());
        let (redirecting, redirects) = (redirecting.clone(), redirects.clone());
        async move {
            if redirecting.load(Ordering::SeqCst) {
                redirects.fetch_add(1, Ordering::SeqCst);
                return Response::builder()
                    .status(StatusCode::TEMPORARY_REDIRECT)
                    .header("Location", elsewhere)
                    .body(Body::empty())
                    .unwrap();
            }
            let answer = reqwest::Client::new()
                .post(&upstream)
                .header("Content-Encoding", "snappy")
                .header("Content-Type", "application/x-protobuf")
                .body(body)
                .send()
                .await
                .unwrap();
            Response::builder()
                .status(answer.status().as_u16())
                .body(Body::from(answer.bytes().await.unwrap_or_default()))
                .unwrap()
        }
    });
    let server = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (port, server)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_receiver_redirect_is_not_followed_and_the_blocks_wait_for_it_to_behave() {
    let jellyfin = FakeJellyfin::start("").await;
    let vm = VictoriaMetrics::start().await;
    // The redirect's target would accept anything: it must see nothing.
    let elsewhere = Hostile::start("HTTP/1.1 204 No Content", "").await;
    let redirecting = Arc::new(AtomicBool::new(true));
    let redirects = Arc::new(AtomicU64::new(0));
    let (port, server) = redirecting_receiver(
        vm.write_url(),
        elsewhere.url("/api/v1/write"),
        redirecting.clone(),
        redirects.clone(),
    )
    .await;
    let dir = AgentDir::new(
        &jellyfin.url(),
        &[("tiger", &format!("http://127.0.0.1:{port}/api/v1/write"))],
        "1s",
        "",
    );
    std::fs::write(dir.dir.path().join("rw-token"), "rw-secret-token\n").unwrap();
    let config = std::fs::read_to_string(dir.config()).unwrap()
        + &format!(
            "bearer_token_file = \"{}\"\n",
            dir.dir.path().join("rw-token").display()
        );
    std::fs::write(dir.config(), config).unwrap();
    let mut agent = dir.start();
    wait_for("3 redirects", Duration::from_secs(30), || {
        let n = redirects.load(Ordering::SeqCst);
        async move { (n >= 3).then_some(()) }
    })
    .await;
    vm.settle().await;
    assert!(up_timestamps(&vm).await.is_empty(), "nothing was delivered");
    redirecting.store(false, Ordering::SeqCst);
    wait_for_every_cycle(&vm, &jellyfin).await;
    assert!(agent.stop().success());
    server.abort();
    vm.settle().await;
    assert_one_sample_per_request(
        &up_timestamps(&vm).await,
        &jellyfin.requests_to("/System/Info"),
    );
    assert_eq!(
        elsewhere.connections.load(Ordering::SeqCst),
        0,
        "the redirect was never followed"
    );
    let log = agent.log();
    assert!(
        log.contains(&format!(
            "HTTP 307 redirect to {}",
            elsewhere.url("/api/v1/write")
        )),
        "{log}"
    );
    assert!(!log.contains("rw-secret-token"));
}
