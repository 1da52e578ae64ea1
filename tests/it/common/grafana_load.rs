//! The requests Grafana 11 sends a Prometheus data source when a dashboard opens: first the
//! `job` and `instance` variables (refreshed on every time range: `label_values(…)` goes out
//! as `/api/v1/label/<name>/values` over the range, one after the other since `instance`
//! depends on `job`), then every panel target at once, each with the step, alignment and
//! built-in variables of [`super::grafana_time`].

use serde_json::Value;

use super::dashboards::Dashboard;
use super::grafana_time::{fill, timing};

/// One request to the data source's HTTP API.
#[derive(Debug, Clone)]
pub struct Request {
    /// What it is for, e.g. `Transcode speed/A (range, step 20s)` or `variable instance`.
    pub what: String,
    /// e.g. `/api/v1/query_range`.
    pub path: String,
    pub params: Vec<(String, String)>,
}

/// The variable refreshes and the panel requests of one load of `dashboard` showing the
/// `range_ms` before `now_ms`, with `job` and `instance` (regexes: "All", as the dashboards
/// open, is [`super::grafana_time::ALL`]).
pub fn dashboard_load(
    dashboard: &Dashboard,
    range_ms: i64,
    now_ms: i64,
    job: &str,
    instance: &str,
) -> (Vec<Request>, Vec<Request>) {
    let variables = ["job", "instance"]
        .iter()
        .filter_map(|name| dashboard.variable(name).map(|v| (*name, v)))
        .map(|(name, v)| variable_request(name, v, job, now_ms - range_ms, now_ms))
        .collect();
    let mut panels = Vec::new();
    for panel in dashboard.panels() {
        for target in panel["targets"].as_array().into_iter().flatten() {
            let t = timing(panel, target, range_ms, now_ms);
            let expr = fill(target["expr"].as_str().unwrap_or(""), job, instance, &t);
            let what = format!(
                "{}/{}",
                panel["title"].as_str().unwrap_or(""),
                target["refId"].as_str().unwrap_or("")
            );
            let instant = target["instant"] == true;
            if instant {
                panels.push(Request {
                    what: format!("{what} (instant)"),
                    path: "/api/v1/query".into(),
                    params: vec![
                        ("query".into(), expr.clone()),
                        ("time".into(), secs(t.end_ms)),
                    ],
                });
            }
            // Grafana runs a target that says neither instant nor range as a range query.
            if target["range"] == true || !instant {
                panels.push(Request {
                    what: format!("{what} (range, step {}s)", t.step_ms / 1000),
                    path: "/api/v1/query_range".into(),
                    params: vec![
                        ("query".into(), expr),
                        ("start".into(), secs(t.start_ms)),
                        ("end".into(), secs(t.end_ms)),
                        ("step".into(), secs(t.step_ms)),
                    ],
                });
            }
        }
    }
    (variables, panels)
}

/// `label_values(<selector>, <label>)` as the data source sends it, `$job` filled in.
fn variable_request(
    name: &str,
    variable: &Value,
    job: &str,
    start_ms: i64,
    end_ms: i64,
) -> Request {
    let query = variable["query"]["query"]
        .as_str()
        .or_else(|| variable["query"].as_str())
        .unwrap_or("");
    let (selector, label) = query
        .strip_prefix("label_values(")
        .and_then(|q| q.strip_suffix(')'))
        .and_then(|inner| inner.rsplit_once(','))
        .unwrap_or_else(|| panic!("variable {name}: {query} is not label_values(selector, label)"));
    Request {
        what: format!("variable {name}"),
        path: format!("/api/v1/label/{}/values", label.trim()),
        params: vec![
            ("match[]".into(), selector.trim().replace("$job", job)),
            ("start".into(), secs(start_ms)),
            ("end".into(), secs(end_ms)),
        ],
    }
}

fn secs(ms: i64) -> String {
    format!("{:.3}", ms as f64 / 1000.0)
}

/// Whether an answer of the Prometheus HTTP API holds any data (series, or label values).
pub fn has_data(answer: &Value) -> bool {
    let data = &answer["data"];
    data["result"]
        .as_array()
        .or_else(|| data.as_array())
        .is_some_and(|items| !items.is_empty())
}
