//! What Grafana sends a Prometheus data source for one panel target at one moment: the time
//! range aligned to the step, the step, `$__interval`, `$__rate_interval` and `$__range`.
//! Re-implemented from Grafana's source so that no Grafana has to run:
//! - the browser (public/app/core/utils/kbn, `rangeUtil.calculateInterval`) computes the
//!   query's interval as the range divided by the panel's max data points (its width in
//!   pixels unless `maxDataPoints` is set), rounded by `roundInterval`, at least the panel's
//!   min interval (`interval`) or else the data source's scrape interval (15 s by default);
//! - the server (pkg/promlib/models/query.go, `calculatePrometheusInterval`,
//!   `InterpolateVariables`, `AlignTimeRange`) takes that as the minimum step, keeps the
//!   step at or above range / 11,000, sets `$__rate_interval` to
//!   max(interval + scrape interval, 4 × scrape interval), and rounds start and end down to a
//!   multiple of the step (an instant query is evaluated at that end).

use serde_json::Value;

/// The data source's scrape interval (Grafana's default `timeInterval`): the agent's cycle.
pub const SCRAPE_MS: i64 = 15_000;

/// Pixels per grid column of a panel on a 1920-pixel-wide browser (24 columns).
const PX_PER_COLUMN: i64 = 80;

/// Grafana's limit on points per series (`safeResolution`).
const SAFE_RESOLUTION: i64 = 11_000;

/// One target's query as Grafana sends it.
#[derive(Debug, Clone, Copy)]
pub struct Timing {
    /// Aligned start and end of a range query; `end_ms` is also an instant query's time.
    pub start_ms: i64,
    pub end_ms: i64,
    pub step_ms: i64,
    /// `$__interval`.
    pub interval_ms: i64,
    /// `$__rate_interval`.
    pub rate_interval_ms: i64,
    /// `$__range`, the unaligned dashboard range.
    pub range_ms: i64,
}

/// The timing of `target` of `panel` when the dashboard shows the `range_ms` before `now_ms`.
pub fn timing(panel: &Value, target: &Value, range_ms: i64, now_ms: i64) -> Timing {
    let max_points = panel["maxDataPoints"]
        .as_i64()
        .unwrap_or_else(|| panel["gridPos"]["w"].as_i64().unwrap_or(24) * PX_PER_COLUMN);
    let duration = |v: &Value| {
        v.as_str()
            .map(|i| parse_duration_ms(i).unwrap_or_else(|| panic!("interval {i:?}")))
    };
    // The browser: the query's interval (intervalMs), at least the panel's min interval.
    let interval = round_interval(range_ms / max_points)
        .max(duration(&panel["interval"]).unwrap_or(SCRAPE_MS));
    // The server: a target's own min step ("interval") replaces the browser's interval as the
    // lower bound of the step, and the scrape interval in `$__rate_interval`.
    let min_step = duration(&target["interval"]);
    let min_interval = min_step.unwrap_or(interval);
    let calculated = if range_ms / max_points < min_interval {
        min_interval
    } else {
        round_interval(range_ms / max_points)
    };
    let step = calculated.max(round_interval(range_ms / SAFE_RESOLUTION));
    let scrape = min_step.unwrap_or(SCRAPE_MS);
    let align = |t: i64| t.div_euclid(step) * step;
    Timing {
        start_ms: align(now_ms - range_ms),
        end_ms: align(now_ms),
        step_ms: step,
        interval_ms: step,
        rate_interval_ms: (interval + scrape).max(4 * scrape),
        range_ms,
    }
}

/// What the dashboards open with: job and instance "All", whose `allValue` is `.+`.
pub const ALL: &str = ".+";

/// `expr` with the variables filled in for `job`, `instance` and timing `t` (durations in
/// whole seconds: Grafana writes Go durations such as `1m15s`, the same).
pub fn fill(expr: &str, job: &str, instance: &str, t: &Timing) -> String {
    let secs = |ms: i64| format!("{}s", ms / 1000);
    let values = super::dashboards::Values {
        job,
        instance,
        rate_interval: &secs(t.rate_interval_ms),
        range: &secs(t.range_ms),
        interval: &secs(t.interval_ms),
    };
    super::dashboards::substitute(expr, &values)
}

/// A Grafana duration (`1m`, `30s`, `6h`, `7d`) in milliseconds.
pub fn parse_duration_ms(text: &str) -> Option<i64> {
    let split = text.find(|c: char| !c.is_ascii_digit())?;
    let (n, unit) = text.split_at(split);
    let n: i64 = n.parse().ok()?;
    let unit_ms = match unit {
        "ms" => 1,
        "s" => 1000,
        "m" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        "w" => 7 * 86_400_000,
        _ => return None,
    };
    Some(n * unit_ms)
}

/// A dashboard's default range (`time.from` = `now-6h`, `time.to` = `now`), in milliseconds.
pub fn default_range_ms(dashboard: &Value) -> i64 {
    assert_eq!(dashboard["time"]["to"], "now", "a dashboard that ends now");
    let from = dashboard["time"]["from"].as_str().unwrap_or("");
    from.strip_prefix("now-")
        .and_then(parse_duration_ms)
        .unwrap_or_else(|| panic!("time.from {from:?}"))
}

/// Grafana's `roundInterval` (the same table in the browser and the server), up to a day.
fn round_interval(ms: i64) -> i64 {
    const TABLE: [(i64, i64); 29] = [
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
        (604_800_000, 86_400_000),
        (1_814_400_000, 604_800_000),
        (3_628_800_000, 2_592_000_000),
        (i64::MAX, 31_536_000_000),
    ];
    TABLE
        .iter()
        .find(|(below, _)| ms < *below)
        .map_or(31_536_000_000, |(_, rounded)| *rounded)
}

/// The `data.result` of `expr` as Grafana asks for it: a range query from start to end in
/// steps, or an instant query at the end. Panics on anything but success, with the answer.
pub async fn query(base_url: &str, expr: &str, t: &Timing, instant: bool) -> Vec<Value> {
    let client = reqwest::Client::new();
    let secs = |ms: i64| format!("{:.3}", ms as f64 / 1000.0);
    let request = if instant {
        client
            .get(format!("{base_url}/api/v1/query"))
            .query(&[("query", expr.to_string()), ("time", secs(t.end_ms))])
    } else {
        client
            .get(format!("{base_url}/api/v1/query_range"))
            .query(&[
                ("query", expr.to_string()),
                ("start", secs(t.start_ms)),
                ("end", secs(t.end_ms)),
                ("step", secs(t.step_ms)),
            ])
    };
    super::servers::query_result(request, expr).await
}

/// The values a query variable (`label_values(selector, label)`, refreshed with the time
/// range) offers when the dashboard shows the `range_ms` before `now_ms`: Grafana asks
/// /api/v1/series for the selector over that range and collects the label.
pub async fn label_values(base_url: &str, query: &str, range_ms: i64, now_ms: i64) -> Vec<String> {
    let inner = query
        .strip_prefix("label_values(")
        .and_then(|q| q.strip_suffix(')'))
        .unwrap_or_else(|| panic!("not a label_values query: {query}"));
    let (selector, label) = inner
        .rsplit_once(',')
        .expect("label_values(selector, label)");
    let secs = |ms: i64| format!("{:.3}", ms as f64 / 1000.0);
    let answer: Value = reqwest::Client::new()
        .get(format!("{base_url}/api/v1/series"))
        .query(&[
            ("match[]", selector.trim().to_string()),
            ("start", secs(now_ms - range_ms)),
            ("end", secs(now_ms)),
        ])
        .send()
        .await
        .expect("series")
        .json()
        .await
        .expect("series json");
    assert_eq!(answer["status"], "success", "{query}: {answer}");
    let mut values: Vec<String> = answer["data"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|series| series[label.trim()].as_str().map(str::to_string))
        .collect();
    values.sort();
    values.dedup();
    values
}
