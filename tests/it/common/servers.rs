//! Real servers, started by the tests on 127.0.0.1 with their data in a temporary folder:
//! VictoriaMetrics (the receiver the agent is built for) and Prometheus (strict about the
//! remote-write protocol).

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde::Deserialize;

use super::{free_port, require_binary, wait_for};

/// One series from VictoriaMetrics' /api/v1/export. A staleness marker is stored as such
/// (VictoriaMetrics keeps no other NaN: lib/storage/storage.go skips them on insert) and
/// exported as `null`; it reads here as `NaN` ([`Series::is_marker`]).
#[derive(Debug, Clone, Deserialize)]
pub struct Series {
    pub metric: std::collections::BTreeMap<String, String>,
    #[serde(deserialize_with = "null_is_marker")]
    pub values: Vec<f64>,
    pub timestamps: Vec<i64>,
}

fn null_is_marker<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<f64>, D::Error> {
    let values: Vec<Option<f64>> = Deserialize::deserialize(d)?;
    Ok(values.into_iter().map(|v| v.unwrap_or(f64::NAN)).collect())
}

impl Series {
    pub fn name(&self) -> &str {
        self.metric
            .get("__name__")
            .map(String::as_str)
            .unwrap_or("")
    }
    pub fn label(&self, name: &str) -> Option<&str> {
        self.metric.get(name).map(String::as_str)
    }
    /// Whether the `i`th sample is a staleness marker.
    pub fn is_marker(&self, i: usize) -> bool {
        self.values.get(i).is_some_and(|v| v.is_nan())
    }
    /// The values that are not staleness markers.
    pub fn measured(&self) -> Vec<f64> {
        self.values
            .iter()
            .copied()
            .filter(|v| !v.is_nan())
            .collect()
    }
}

pub struct VictoriaMetrics {
    pub port: u16,
    data: PathBuf,
    log: PathBuf,
    child: Option<Child>,
    _dir: tempfile::TempDir,
}

impl VictoriaMetrics {
    pub async fn start() -> VictoriaMetrics {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut vm = VictoriaMetrics {
            port: 0,
            data: dir.path().join("data"),
            log: dir.path().join("vm.log"),
            child: None,
            _dir: dir,
        };
        let (port, child) =
            start_on_free_port("VictoriaMetrics", "/health", |port| vm.spawn(port)).await;
        vm.port = port;
        vm.child = Some(child);
        vm
    }

    pub fn write_url(&self) -> String {
        format!("http://127.0.0.1:{}/api/v1/write", self.port)
    }

    pub fn base_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Starts again on the same port and data folder.
    pub async fn up(&mut self) {
        self.child = Some(self.spawn(self.port));
        wait_until_ok(
            "VictoriaMetrics /health",
            &format!("{}/health", self.base_url()),
        )
        .await;
    }

    fn spawn(&self, port: u16) -> Child {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .expect("vm log");
        Command::new(require_binary("victoria-metrics"))
            .arg(format!("-httpListenAddr=127.0.0.1:{port}"))
            .arg(format!("-storageDataPath={}", self.data.display()))
            .arg("-retentionPeriod=100y")
            .arg("-search.latencyOffset=0s")
            .arg("-search.disableCache")
            .arg("-loggerLevel=WARN")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start victoria-metrics")
    }

    /// Stops the server (SIGTERM, so its data is flushed) and waits for it to exit.
    pub fn down(&mut self) {
        if let Some(mut child) = self.child.take() {
            unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
            let _ = child.wait();
        }
    }

    /// Makes everything written so far searchable: flushes, then waits out the ~1 s that
    /// VictoriaMetrics 1.79 still needs to index new data after a flush. Call it once the
    /// writers have stopped, before [`VictoriaMetrics::export`].
    pub async fn settle(&self) {
        reqwest::get(format!("{}/internal/force_flush", self.base_url()))
            .await
            .expect("force_flush");
        tokio::time::sleep(Duration::from_millis(2000)).await;
    }

    /// Loads a body in the import format (`POST /api/v1/import`, JSON lines).
    pub async fn import(&self, body: Vec<u8>) {
        let answer = reqwest::Client::new()
            .post(format!("{}/api/v1/import", self.base_url()))
            .body(body)
            .send()
            .await
            .expect("import");
        let status = answer.status();
        assert!(
            status.is_success(),
            "import: {status} {:?}",
            answer.text().await
        );
    }

    /// Every sample of the series matching `selector`.
    pub async fn export(&self, selector: &str) -> Vec<Series> {
        let client = reqwest::Client::new();
        let body = client
            .get(format!("{}/api/v1/export", self.base_url()))
            .query(&[("match[]", selector)])
            .send()
            .await
            .expect("export")
            .text()
            .await
            .expect("export body");
        let mut series: Vec<Series> = body
            .lines()
            .filter(|l| !l.trim().is_empty())
            // 1.79 writes `null` for a marker, except as a line's first value (`NaN`,
            // app/vmselect/prometheus/export.qtpl), which JSON cannot hold.
            .map(|l| l.replacen("\"values\":[NaN", "\"values\":[null", 1))
            .map(|l| serde_json::from_str(&l).expect("export line"))
            .collect();
        series.sort_by(|a, b| a.metric.cmp(&b.metric));
        series
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

/// The `data.result` of a query through the Prometheus query API of VictoriaMetrics or
/// Prometheus at `base_url`: an instant query at now, or with `range_s` a range query over
/// the last `range_s` seconds in 5 s steps (as Grafana sends them). Panics on anything but
/// a success answer, with the server's error text.
pub async fn query(base_url: &str, expr: &str, range_s: Option<u64>) -> Vec<serde_json::Value> {
    let now = u64::try_from(super::now_ms() / 1000).expect("clock after 1970");
    let request = reqwest::Client::new();
    let request = match range_s {
        None => request
            .get(format!("{base_url}/api/v1/query"))
            .query(&[("query", expr)]),
        Some(range) => request
            .get(format!("{base_url}/api/v1/query_range"))
            .query(&[
                ("query", expr.to_string()),
                ("start", (now - range).to_string()),
                ("end", now.to_string()),
                ("step", "5".to_string()),
            ]),
    };
    query_result(request, expr).await
}

/// The `data.result` of an instant query evaluated at `at_ms` (epoch ms), to the millisecond.
pub async fn query_at(base_url: &str, expr: &str, at_ms: i64) -> Vec<serde_json::Value> {
    let request = reqwest::Client::new()
        .get(format!("{base_url}/api/v1/query"))
        .query(&[
            ("query", expr.to_string()),
            ("time", format!("{}.{:03}", at_ms / 1000, at_ms % 1000)),
        ]);
    query_result(request, expr).await
}

/// Sends a query API `request` (for `expr`) and returns its `data.result`; panics on anything
/// but a success answer, with the server's error text.
pub async fn query_result(request: reqwest::RequestBuilder, expr: &str) -> Vec<serde_json::Value> {
    let answer: serde_json::Value = request
        .send()
        .await
        .expect("query")
        .json()
        .await
        .expect("query json");
    assert_eq!(answer["status"], "success", "{expr}: {answer}");
    answer["data"]["result"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

/// vmalert evaluating a rule file every second against a VictoriaMetrics. Notifications go
/// to a port on 127.0.0.1 where nothing listens: the tests read alert states from vmalert's
/// own API.
pub struct VmAlert {
    pub port: u16,
    child: Child,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

impl VmAlert {
    pub async fn start(vm: &VictoriaMetrics, rules: &std::path::Path) -> VmAlert {
        let dir = tempfile::tempdir().expect("tempdir");
        let log = dir.path().join("vmalert.log");
        let spawn = |port: u16| {
            Command::new(require_binary("vmalert"))
                .arg(format!("-rule={}", rules.display()))
                .arg(format!("-datasource.url={}", vm.base_url()))
                .arg(format!("-notifier.url=http://127.0.0.1:{}", free_port()))
                .arg(format!("-httpListenAddr=127.0.0.1:{port}"))
                .arg("-evaluationInterval=1s")
                // How far back a query looks for a series' last sample (vmalert's default: 5m).
                // The agent pushes every second here; with 5m, a gauge seen once (the buffer
                // of a healthy remote, non-empty for one cycle) stays visible for minutes with
                // its old value, and the shortened backlog rule (older than 5 s) fires for it.
                .arg("-datasource.queryStep=3s")
                .arg("-loggerLevel=WARN")
                .stdout(Stdio::null())
                .stderr(std::fs::File::create(&log).expect("vmalert log"))
                .spawn()
                .expect("start vmalert")
        };
        let (port, child) = start_on_free_port("vmalert", "/health", spawn).await;
        VmAlert {
            port,
            child,
            log,
            _dir: dir,
        }
    }

    /// The active (pending or firing) alerts: (alert name, state, labels).
    pub async fn active(&self) -> Vec<(String, String, serde_json::Value)> {
        let answer: serde_json::Value =
            reqwest::get(format!("http://127.0.0.1:{}/api/v1/alerts", self.port))
                .await
                .expect("vmalert alerts")
                .json()
                .await
                .expect("vmalert alerts json");
        answer["data"]["alerts"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|a| {
                (
                    a["name"].as_str().unwrap_or("").to_string(),
                    a["state"].as_str().unwrap_or("").to_string(),
                    a["labels"].clone(),
                )
            })
            .collect()
    }

    /// The state of `alert` ("pending", "firing"), or None while it is inactive.
    pub async fn state(&self, alert: &str) -> Option<String> {
        self.active()
            .await
            .into_iter()
            .find(|(name, _, _)| name == alert)
            .map(|(_, state, _)| state)
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for VmAlert {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for VictoriaMetrics {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

pub struct Prometheus {
    pub port: u16,
    child: Option<Child>,
    dir: tempfile::TempDir,
}

impl Prometheus {
    pub async fn start() -> Prometheus {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(
            dir.path().join("prometheus.yml"),
            "global: {}\nscrape_configs: []\n",
        )
        .expect("write prometheus.yml");
        let (port, child) = start_on_free_port("Prometheus", "/-/ready", |port| {
            spawn_prometheus(&dir, port)
        })
        .await;
        Prometheus {
            port,
            child: Some(child),
            dir,
        }
    }

    /// Stops the server (SIGTERM: it closes its head block and WAL) and waits for it to exit.
    pub fn down(&mut self) {
        if let Some(mut child) = self.child.take() {
            unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
            let _ = child.wait();
        }
    }

    /// Starts again on the same port and data folder.
    pub async fn up(&mut self) {
        self.child = Some(spawn_prometheus(&self.dir, self.port));
        wait_until_ok(
            "Prometheus /-/ready",
            &format!("{}/-/ready", self.base_url()),
        )
        .await;
    }

    pub fn write_url(&self) -> String {
        format!("http://127.0.0.1:{}/api/v1/write", self.port)
    }

    pub fn base_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Loads the rule file `rules`, evaluated every second from now on (the config rewritten,
    /// then SIGHUP), and waits until its groups are listed. Load it after writing history: a
    /// Prometheus evaluating rules refused history hours old as "out of bounds".
    pub async fn load_rules(&self, rules: &std::path::Path) {
        let config = self.dir.path().join("prometheus.yml");
        let text = format!(
            "global: {{evaluation_interval: 1s}}\nrule_files: [\"{}\"]\nscrape_configs: []\n",
            rules.display()
        );
        std::fs::write(&config, text).expect("write prometheus.yml");
        let child = self.child.as_ref().expect("Prometheus is running");
        unsafe { libc::kill(child.id() as i32, libc::SIGHUP) };
        let url = format!("{}/api/v1/rules", self.base_url());
        wait_for(
            "Prometheus to load the rules",
            Duration::from_secs(30),
            || {
                let url = url.clone();
                async move {
                    let answer: serde_json::Value =
                        reqwest::get(url).await.ok()?.json().await.ok()?;
                    let groups = answer["data"]["groups"].as_array()?;
                    (!groups.is_empty()).then_some(())
                }
            },
        )
        .await;
    }

    /// Alerts now (/api/v1/alerts): name, state and labels of each.
    pub async fn alerts(&self) -> Vec<(String, String, serde_json::Value)> {
        let answer: serde_json::Value = reqwest::get(format!("{}/api/v1/alerts", self.base_url()))
            .await
            .expect("alerts")
            .json()
            .await
            .expect("alerts json");
        answer["data"]["alerts"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|a| {
                let labels = a["labels"].clone();
                let name = labels["alertname"].as_str().unwrap_or("").to_string();
                (name, a["state"].as_str().unwrap_or("").to_string(), labels)
            })
            .collect()
    }

    /// Raw samples of `selector` over the last `range` (a range-vector instant query returns
    /// every stored sample with its exact timestamp).
    pub async fn raw_samples(&self, selector: &str, range: &str) -> serde_json::Value {
        reqwest::Client::new()
            .get(format!("http://127.0.0.1:{}/api/v1/query", self.port))
            .query(&[("query", format!("{selector}[{range}]"))])
            .send()
            .await
            .expect("query")
            .json()
            .await
            .expect("query json")
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn spawn_prometheus(dir: &tempfile::TempDir, port: u16) -> Child {
    Command::new(require_binary("prometheus"))
        .arg(format!(
            "--config.file={}",
            dir.path().join("prometheus.yml").display()
        ))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.path().join("data").display()
        ))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .arg("--web.enable-remote-write-receiver")
        .arg("--log.level=warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start prometheus")
}

/// Starts a server that `spawn` makes listen on the port it is given. The port is picked and
/// released before the server binds it, so something else (often an outgoing connection of a
/// test running alongside) can take it in between; the server then exits, and another port
/// is tried.
pub async fn start_on_free_port(
    what: &str,
    health: &str,
    mut spawn: impl FnMut(u16) -> Child,
) -> (u16, Child) {
    for _ in 0..5 {
        let port = free_port();
        let mut child = spawn(port);
        if serving(&mut child, &format!("http://127.0.0.1:{port}{health}")).await {
            return (port, child);
        }
        let _ = child.kill();
        let _ = child.wait();
    }
    panic!("{what} did not start on any of 5 free ports")
}

/// Waits up to 30 s for `url` to answer 2xx while `child` runs; false once it has exited.
async fn serving(child: &mut Child, url: &str) -> bool {
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while std::time::Instant::now() < deadline {
        if !matches!(child.try_wait(), Ok(None)) {
            return false;
        }
        if reqwest::get(url)
            .await
            .is_ok_and(|r| r.status().is_success())
        {
            return matches!(child.try_wait(), Ok(None));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("timed out after 30 s waiting for {url}")
}

/// Waits up to 30 s for `url` to answer 2xx.
pub async fn wait_until_ok(what: &str, url: &str) {
    wait_for(what, Duration::from_secs(30), || async move {
        reqwest::get(url)
            .await
            .ok()
            .filter(|r| r.status().is_success())
            .map(|_| ())
    })
    .await;
}

/// The lint findings promtool may report on the agent's output: the two names the metric
/// catalogue takes verbatim from node_exporter (so the plan's memory alert works unchanged),
/// which promtool's linter flags as camelCase. Nothing else is accepted.
pub const NODE_EXPORTER_NAMES: [&str; 2] = [
    "node_memory_MemAvailable_bytes metric names should be written in 'snake_case' not 'camelCase'",
    "node_memory_MemTotal_bytes metric names should be written in 'snake_case' not 'camelCase'",
];

/// promtool's verdict on exposition text, apart from [`NODE_EXPORTER_NAMES`]: (clean, report).
pub fn promtool_accepts(text: &str) -> (bool, String) {
    let (_, report) = promtool_check_metrics(text);
    let rest: Vec<&str> = report
        .lines()
        .filter(|l| !l.trim().is_empty() && !NODE_EXPORTER_NAMES.contains(&l.trim()))
        .collect();
    (rest.is_empty(), rest.join("\n"))
}

pub fn promtool_check_metrics(text: &str) -> (bool, String) {
    use std::io::Write;
    let mut child = Command::new(require_binary("promtool"))
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), report)
}
