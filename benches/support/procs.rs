//! The real servers the drain bench starts (VictoriaMetrics, vmagent), and what it reads from
//! them and from /proc: their metrics, a query's answer, CPU time and peak memory.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// A child process, stopped with SIGTERM (and waited for) when dropped.
pub struct Proc(pub Child);

impl Drop for Proc {
    fn drop(&mut self) {
        unsafe { libc::kill(self.0.id() as i32, libc::SIGTERM) };
        let _ = self.0.wait();
    }
}

impl Proc {
    /// CPU time of every thread alive now ([`super::cpu::cpu_ns`]).
    pub fn cpu(&self) -> Duration {
        Duration::from_nanos(super::cpu::cpu_ns(self.0.id() as i32))
    }

    /// The peak resident memory (VmHWM), in KiB.
    pub fn vm_hwm_kib(&self) -> u64 {
        std::fs::read_to_string(format!("/proc/{}/status", self.0.id()))
            .unwrap()
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap()
    }
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A local VictoriaMetrics on `port` with its data in `dir`, answering.
pub fn victoria_metrics(port: u16, dir: &Path, extra: &[&str]) -> Proc {
    let vm = Proc(
        Command::new("victoria-metrics")
            .arg(format!("-httpListenAddr=127.0.0.1:{port}"))
            .arg(format!("-storageDataPath={}", dir.display()))
            .arg("-retentionPeriod=100y")
            .arg("-loggerLevel=ERROR")
            .args(extra)
            .stderr(Stdio::null())
            .spawn()
            .expect("victoria-metrics on PATH"),
    );
    wait_http(&format!("http://127.0.0.1:{port}/health"));
    vm
}

/// vmagent on `port` sending to `remote` with its persistent queue in `queue`.
pub fn vmagent(remote: &str, port: u16, queue: &Path, extra: &[&str]) -> Proc {
    Proc(
        vmagent_command(remote, port, queue, extra)
            .stderr(Stdio::null())
            .spawn()
            .expect("vmagent on PATH"),
    )
}

pub fn vmagent_command(remote: &str, port: u16, queue: &Path, extra: &[&str]) -> Command {
    let mut command = Command::new("vmagent");
    command
        .arg(format!("-httpListenAddr=127.0.0.1:{port}"))
        .arg(format!("-remoteWrite.url={remote}"))
        .arg(format!("-remoteWrite.tmpDataPath={}", queue.display()))
        .arg("-loggerLevel=ERROR")
        .args(extra);
    command
}

pub fn wait_http(url: &str) {
    for _ in 0..300 {
        if get(url).is_ok_and(|r| r.0 < 300) {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("{url} did not answer");
}

/// A tiny blocking GET over a dedicated runtime (the bench avoids a runtime of its own).
pub fn get(url: &str) -> Result<(u16, String), reqwest::Error> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let r = reqwest::get(url).await?;
        let status = r.status().as_u16();
        Ok((status, r.text().await?))
    })
}

/// The sum of a metric's series on a /metrics page (VictoriaMetrics and vmagent 1.79 refresh
/// that page at most once a second).
pub fn metric(port: u16, name: &str) -> u64 {
    let (_, text) = get(&format!("http://127.0.0.1:{port}/metrics")).unwrap();
    text.lines()
        .filter(|l| l.starts_with(name))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum::<f64>() as u64
}

/// The single value of an instant query.
pub fn query_value(port: u16, promql: &str) -> f64 {
    match query_values(port, promql)[..] {
        [one] => one,
        ref other => panic!("{promql}: {} values, not one", other.len()),
    }
}

/// The values of an instant query, after making every row searchable
/// (`/internal/force_flush`: rows become searchable within a second otherwise), evaluated
/// 10 minutes ahead: without a time VictoriaMetrics leaves out the last 30 s
/// (`-search.latencyOffset`), where the agent's own samples are.
pub fn query_values(port: u16, promql: &str) -> Vec<f64> {
    get(&format!("http://127.0.0.1:{port}/internal/force_flush")).unwrap();
    let at = jellyfin_pusher::sample::now_ms() / 1000 + 600;
    let (status, body) = get(&format!(
        "http://127.0.0.1:{port}/api/v1/query?query={}&time={at}",
        encode_query(promql)
    ))
    .unwrap();
    assert_eq!(status, 200, "{promql}: {body}");
    let answer: serde_json::Value = serde_json::from_str(&body).unwrap();
    answer["data"]["result"]
        .as_array()
        .unwrap_or_else(|| panic!("{promql}: no result in {body}"))
        .iter()
        .map(|r| {
            r["value"][1]
                .as_str()
                .and_then(|v| v.parse().ok())
                .unwrap_or_else(|| panic!("{promql}: not a number in {body}"))
        })
        .collect()
}

fn encode_query(q: &str) -> String {
    q.bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'_' | b'.' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}
