//! The requests Grafana 11 sends to a Prometheus data source when a dashboard opens: first the
//! `job` and `instance` variables (refreshed on every time range, `label_values(…)` as
//! `/api/v1/label/<name>/values`), then every panel target, with the built-in variables and the
//! step Grafana computes. Modelled on Grafana's source:
//! - `$__interval`: the range over the panel's max data points (its `maxDataPoints`, else its
//!   width in pixels), rounded by `gtime.RoundInterval`, at least the panel's min interval
//!   (`interval`) or the data source's scrape interval (15 s by default);
//! - the step: that interval, at least range / 11,000 (`safeResolution`), and range queries
//!   aligned down to it (pkg/promlib/models/query.go, `AlignTimeRange`);
//! - `$__rate_interval`: max(`$__interval` + scrape interval, 4 × scrape interval), the scrape
//!   interval being the target's own min step (`interval` on the target) or the data
//!   source's, never the panel's min interval (`calculateRateInterval`);
//! - `$__range`: the range in whole seconds; instant queries are evaluated at its end.
//!
//! The width of a panel is taken for a 1,920 px wide browser window (a 24-column grid).

use serde_json::Value;

use super::dashboards::{Dashboard, Values, substitute};

/// The Prometheus data source's default scrape interval (`timeInterval`), in ms.
pub const SCRAPE_MS: i64 = 15_000;
/// Grafana's cap on the points of one range query (`safeResolution`).
const SAFE_RESOLUTION: i64 = 11_000;
/// The browser window the panels' widths are taken for.
const SCREEN_PX: i64 = 1_920;

/// One request to the data source's HTTP API.
#[derive(Debug, Clone)]
pub struct Request {
    /// What it is for, e.g. `Transcode speed/A (range)` or `variable instance`.
    pub what: String,
    /// e.g. `/api/v1/query_range`.
    pub path: String,
    pub params: Vec<(String, String)>,
}

/// The dashboard's default time range (`time.from`, e.g. `now-6h`) in ms.
pub fn default_range_ms(dashboard: &Dashboard) -> i64 {
    let from = dashboard.json["time"]["from"].as_str().unwrap_or("now-6h");
    from.strip_prefix("now-")
        .and_then(duration_ms)
        .unwrap_or_else(|| panic!("{}: time.from {from} is not now-<duration>", dashboard.file))
}

/// `15s`, `1m`, `6h`, `30d` in ms.
pub fn duration_ms(text: &str) -> Option<i64> {
    let split = text.find(|c: char| !c.is_ascii_digit())?;
    let (n, unit) = text.split_at(split);
    let n: i64 = n.parse().ok()?;
    let unit_ms = match unit {
        "ms" => 1,
        "s" => 1_000,
        "m" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        "w" => 604_800_000,
        _ => return None,
    };
    Some(n * unit_ms)
}

/// Grafana's `gtime.RoundInterval`: a raw interval snapped to a round one (ms).
pub fn round_interval(ms: i64) -> i64 {
    const STEPS: [(i64, i64); 30] = [
        (10, 1),
        (15, 10),
        (35, 20),
        (75, 50),
        (150, 100),
        (350, 200),
        (750, 500),
        (1_500, 1_000),
        (3_500, 2_000),
        (7_500, 5_000),
        (12_500, 10_000),
        (17_500, 15_000),
        (25_000, 20_000),
        (45_000, 30_000),
        (90_000, 60_000),
        (210_000, 120_000),
        (450_000, 300_000),
        (750_000, 600_000),
        (1_050_000, 900_000),
        (1_500_000, 1_200_000),
        (2_700_000, 1_800_000),
        (5_400_000, 3_600_000),
        (9_000_000, 7_200_000),
        (16_200_000, 10_800_000),
        (32_400_000, 21_600_000),
        (86_400_000, 43_200_000),
        (172_800_000, 86_400_000),
        (604_800_000, 86_400_000),
        (1_814_400_000, 604_800_000),
        (3_628_800_000 - 1, 2_592_000_000),
    ];
    STEPS
        .iter()
        .find(|(up_to, _)| ms <= *up_to)
        .map_or(31_536_000_000, |(_, round)| *round)
}

/// Grafana's way of writing an interval into a query (`1m`, `75s`, `2h`).
pub fn format_ms(ms: i64) -> String {
    for (unit, unit_ms) in [
        ("d", 86_400_000),
        ("h", 3_600_000),
        ("m", 60_000),
        ("s", 1_000),
    ] {
        if ms >= unit_ms && ms % unit_ms == 0 {
            return format!("{}{unit}", ms / unit_ms);
        }
    }
    format!("{ms}ms")
}

/// The data source requests of one dashboard load over `[end_ms - range_ms, end_ms]`, for the
/// variables at `job`/`instance` (a regex, as Grafana substitutes "All" with `.+`): the
/// variable refreshes first (in order: `instance` depends on `job`), then the panel targets.
pub fn dashboard_load(
    dashboard: &Dashboard,
    range_ms: i64,
    end_ms: i64,
    job: &str,
    instance: &str,
) -> (Vec<Request>, Vec<Request>) {
    let start_ms = end_ms - range_ms;
    let variables = ["job", "instance"]
        .iter()
        .filter_map(|name| dashboard.variable(name).map(|v| (*name, v)))
        .map(|(name, v)| {
            let query = v["query"]["query"]
                .as_str()
                .or_else(|| v["query"].as_str())
                .unwrap_or("");
            variable_request(name, query, job, start_ms, end_ms)
        })
        .collect();
    let mut panels = Vec::new();
    for target in dashboard.targets() {
        let panel = target.panel;
        let width = panel["gridPos"]["w"].as_i64().unwrap_or(24);
        let max_points = panel["maxDataPoints"]
            .as_i64()
            .unwrap_or(SCREEN_PX * width / 24);
        let min_interval = panel["interval"]
            .as_str()
            .and_then(duration_ms)
            .unwrap_or(SCRAPE_MS);
        let interval = round_interval(range_ms / max_points).max(min_interval);
        let step = interval.max(round_interval(range_ms / SAFE_RESOLUTION));
        let raw = panel["targets"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|t| t["refId"] == target.ref_id.as_str());
        let scrape = raw
            .and_then(|t| t["interval"].as_str())
            .and_then(duration_ms)
            .unwrap_or(SCRAPE_MS);
        let rate_interval = (interval + scrape).max(4 * scrape);
        let (rate, range, interval_text) = (
            format_ms(rate_interval),
            format!("{}s", range_ms / 1000),
            format_ms(step),
        );
        let expr = substitute(
            &target.expr,
            &Values {
                job,
                instance,
                rate_interval: &rate,
                range: &range,
                interval: &interval_text,
            },
        );
        let ranged = raw.is_some_and(|t| t["range"] == true) || !target.instant;
        let what = format!("{}/{}", target.panel_title(), target.ref_id);
        if target.instant {
            panels.push(Request {
                what: format!("{what} (instant)"),
                path: "/api/v1/query".into(),
                params: vec![
                    ("query".into(), expr.clone()),
                    ("time".into(), seconds(end_ms)),
                ],
            });
        }
        if ranged {
            panels.push(Request {
                what: format!("{what} (range, step {interval_text})"),
                path: "/api/v1/query_range".into(),
                params: vec![
                    ("query".into(), expr),
                    ("start".into(), seconds(start_ms / step * step)),
                    ("end".into(), seconds(end_ms / step * step)),
                    ("step".into(), (step as f64 / 1000.0).to_string()),
                ],
            });
        }
    }
    (variables, panels)
}

/// `label_values(<selector>, <label>)` as the data source sends it.
fn variable_request(name: &str, query: &str, job: &str, start_ms: i64, end_ms: i64) -> Request {
    let inner = query
        .strip_prefix("label_values(")
        .and_then(|q| q.strip_suffix(')'))
        .unwrap_or_else(|| panic!("variable {name}: {query} is not label_values(…)"));
    let (selector, label) = inner
        .rsplit_once(',')
        .unwrap_or_else(|| panic!("variable {name}: {query} names no label"));
    let selector = selector.trim().replace("$job", job);
    Request {
        what: format!("variable {name}"),
        path: format!("/api/v1/label/{}/values", label.trim()),
        params: vec![
            ("match[]".into(), selector),
            ("start".into(), seconds(start_ms)),
            ("end".into(), seconds(end_ms)),
        ],
    }
}

fn seconds(ms: i64) -> String {
    format!("{}.{:03}", ms / 1000, ms % 1000)
}

/// Whether an answer of the Prometheus HTTP API holds any data.
pub fn has_data(answer: &Value) -> bool {
    answer["data"]["result"].as_array().map_or_else(
        || answer["data"].as_array().is_some_and(|a| !a.is_empty()),
        |r| !r.is_empty(),
    )
}
