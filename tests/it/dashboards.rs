//! The dashboards follow Grafana's conventions (the rules of grafana/dashboard-linter, checked
//! here so that no Go toolchain is needed) and every target is PromQL that names only metrics
//! of the catalogue. That the queries return data is shown against a real VictoriaMetrics in
//! tests/it/panels_and_alerts.rs.

use crate::common;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use promql_parser::label::MatchOp;
use promql_parser::parser::{self, Expr, VectorSelector};
use serde_json::Value;

use common::catalogue::{NEVER_EXPORTED, catalogue};
use common::dashboards::{self, Dashboard, Values};

/// The dashboards the plan and the issue ask for, by uid (and file name).
const EXPECTED: [&str; 5] = [
    "jellyfin-media-library",
    "jellyfin-pusher-health",
    "jellyfin-service-health",
    "jellyfin-transcoding",
    "jellyfin-user-activity",
];

/// Grafana 11.0's dashboard schema; older ones are migrated on load and re-saved different.
const MIN_SCHEMA_VERSION: u64 = 39;

/// Units Grafana knows (packages/grafana-data/src/valueFormats/categories.ts), those a
/// dashboard about a media server can sensibly use.
const UNITS: [&str; 22] = [
    "none",
    "short",
    "percent",
    "percentunit",
    "bytes",
    "decbytes",
    "bits",
    "Bps",
    "binBps",
    "bps",
    "s",
    "ms",
    "dtdurations",
    "dateTimeAsIso",
    "dateTimeFromNow",
    "reqps",
    "ops",
    "cps",
    "iops",
    "bool",
    "bool_yes_no",
    "bool_on_off",
];

/// Stand-ins for the time variables: durations no author would type, so that a range in the
/// parsed expression tells which variable it came from.
const RATE_INTERVAL: Duration = Duration::from_secs(7919);
const RANGE: Duration = Duration::from_secs(7907);
const JOB: &str = "JOB_VARIABLE";
const INSTANCE: &str = "INSTANCE_VARIABLE";

fn placeholders() -> Values<'static> {
    Values {
        job: JOB,
        instance: INSTANCE,
        rate_interval: "7919s",
        range: "7907s",
        interval: "7901s",
    }
}

/// Everything wrong with one dashboard, as readable lines.
struct Findings {
    file: String,
    lines: Vec<String>,
}

impl Findings {
    fn check(&mut self, ok: bool, what: impl FnOnce() -> String) {
        if !ok {
            self.lines.push(format!("{}: {}", self.file, what()));
        }
    }
}

fn is_templated_datasource(ds: &Value) -> bool {
    let uid = ds["uid"].as_str().or(ds.as_str()).unwrap_or("");
    (uid == "$datasource" || uid == "${datasource}")
        && (ds.is_string() || ds["type"] == "prometheus")
}

fn check_dashboard(d: &Dashboard, f: &mut Findings) {
    let j = &d.json;
    let uid = j["uid"].as_str().unwrap_or("");
    f.check(format!("{uid}.json") == d.file, || {
        format!("uid {uid:?} is not the file name")
    });
    f.check(uid.len() <= 40, || {
        format!("uid {uid:?} is over 40 characters")
    });
    f.check(!d.title().is_empty(), || "no title".into());
    f.check(
        j["description"].as_str().is_some_and(|s| !s.is_empty()),
        || "no description".into(),
    );
    f.check(j["id"].is_null(), || {
        "an id is set: it belongs to one Grafana database".into()
    });
    f.check(
        j["schemaVersion"].as_u64().unwrap_or(0) >= MIN_SCHEMA_VERSION,
        || format!("schemaVersion {} is old", j["schemaVersion"]),
    );
    f.check(j["editable"] == false, || {
        "editable: the files are the source, edits in the UI would be lost".into()
    });
    f.check(
        j["tags"]
            .as_array()
            .is_some_and(|t| t.iter().any(|t| t == "jellyfin")),
        || "not tagged jellyfin (the links between the dashboards use the tag)".into(),
    );
    let links = j["links"].as_array().cloned().unwrap_or_default();
    f.check(
        links.iter().any(|l| {
            l["type"] == "dashboards"
                && l["tags"]
                    .as_array()
                    .is_some_and(|t| t.iter().any(|t| t == "jellyfin"))
                && l["includeVars"] == true
                && l["keepTime"] == true
        }),
        || "no link to the other jellyfin dashboards keeping time and variables".into(),
    );

    // Provisioned from files nothing substitutes `${DS_…}` inputs: the data source variable
    // starts on Grafana's default data source, in the UI import and in file provisioning alike.
    f.check(j["__inputs"].is_null(), || {
        "__inputs: file provisioning never substitutes them; use the data source variable".into()
    });
    f.check(!j.to_string().contains("${DS_"), || {
        "a ${DS_…} input is referenced: provisioned from files it stays unresolved".into()
    });
    let required: BTreeSet<&str> = j["__requires"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|r| r["type"] == "panel")
        .filter_map(|r| r["id"].as_str())
        .collect();
    for panel in d.panels() {
        let kind = panel["type"].as_str().unwrap_or("");
        f.check(required.contains(kind), || {
            format!("panel type {kind} missing from __requires")
        });
    }

    // Template variables: one Prometheus data source, then job and instance.
    let vars = j["templating"]["list"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let datasources: Vec<&Value> = vars.iter().filter(|v| v["type"] == "datasource").collect();
    f.check(datasources.len() == 1, || {
        "there must be exactly one data source variable".into()
    });
    if let Some(ds) = datasources.first() {
        f.check(
            ds["name"] == "datasource" && ds["label"] == "Data source" && ds["query"] == "prometheus",
            || "the data source variable must be `datasource`, labelled `Data source`, of type prometheus".into(),
        );
        f.check(ds["current"]["value"] == "default", || {
            "the data source variable must start on the default data source".into()
        });
    }
    for (name, label) in [("job", "Job"), ("instance", "Instance")] {
        let Some(v) = d.variable(name) else {
            f.check(false, || format!("no {name} variable"));
            continue;
        };
        f.check(v["type"] == "query", || {
            format!("{name}: not a query variable")
        });
        f.check(v["label"] == label, || {
            format!("{name}: label must be {label}")
        });
        f.check(is_templated_datasource(&v["datasource"]), || {
            format!("{name}: does not use $datasource")
        });
        f.check(v["multi"] == true && v["includeAll"] == true, || {
            format!("{name}: must be multi-select with All")
        });
        f.check(v["allValue"] == ".+", || {
            format!("{name}: allValue must be .+")
        });
        f.check(v["refresh"] == 2, || {
            format!("{name}: must reload on time range change (refresh 2)")
        });
        let query = v["query"]["query"]
            .as_str()
            .or(v["query"].as_str())
            .unwrap_or("");
        let inner = query
            .strip_prefix("label_values(")
            .and_then(|q| q.strip_suffix(&format!(", {name})")));
        match inner {
            Some(selector) => {
                let parsed = parser::parse(&dashboards::substitute(selector, &placeholders()));
                f.check(parsed.is_ok(), || {
                    format!("{name}: {selector:?} is not PromQL: {parsed:?}")
                });
                if name == "instance" {
                    f.check(selector.contains("job=~\"$job\""), || {
                        "instance: the choices must follow the chosen job".into()
                    });
                }
            }
            None => f.check(false, || {
                format!("{name}: query {query:?} is not label_values(<selector>, {name})")
            }),
        }
    }

    // Panels.
    let mut ids = BTreeSet::new();
    let mut cells: BTreeMap<(u64, u64), String> = BTreeMap::new();
    for panel in j["panels"].as_array().into_iter().flatten() {
        let title = panel["title"].as_str().unwrap_or("").to_string();
        f.check(ids.insert(panel["id"].as_u64().unwrap_or(0)), || {
            format!("panel {title:?}: its id is not unique")
        });
        let g = &panel["gridPos"];
        let (x, y, w, h) = (
            g["x"].as_u64().unwrap_or(99),
            g["y"].as_u64().unwrap_or(0),
            g["w"].as_u64().unwrap_or(0),
            g["h"].as_u64().unwrap_or(0),
        );
        f.check(w > 0 && h > 0 && x + w <= 24, || {
            format!("panel {title:?}: gridPos {g} is outside the 24 columns")
        });
        for cx in x..x + w {
            for cy in y..y + h {
                if let Some(other) = cells.insert((cx, cy), title.clone()) {
                    f.check(false, || format!("panels {other:?} and {title:?} overlap"));
                }
            }
        }
    }
    for panel in d.panels() {
        let title = panel["title"].as_str().unwrap_or("");
        f.check(!title.is_empty(), || {
            format!("a panel has no title: {panel}")
        });
        f.check(
            panel["description"].as_str().is_some_and(|s| !s.is_empty()),
            || format!("panel {title:?}: no description"),
        );
        f.check(is_templated_datasource(&panel["datasource"]), || {
            format!("panel {title:?}: does not use the $datasource variable")
        });
        let unit = panel["fieldConfig"]["defaults"]["unit"]
            .as_str()
            .unwrap_or("");
        f.check(UNITS.contains(&unit), || {
            format!("panel {title:?}: unit {unit:?} is missing or not a Grafana unit")
        });
        for o in panel["fieldConfig"]["overrides"]
            .as_array()
            .into_iter()
            .flatten()
        {
            for p in o["properties"].as_array().into_iter().flatten() {
                if p["id"] == "unit" {
                    let unit = p["value"].as_str().unwrap_or("");
                    f.check(UNITS.contains(&unit), || {
                        format!("panel {title:?}: override unit {unit:?} is not a Grafana unit")
                    });
                }
            }
        }
        // Without thresholds Grafana paints a stat, gauge or bar gauge red from 80 up.
        if matches!(panel["type"].as_str(), Some("stat" | "gauge" | "bargauge")) {
            f.check(
                panel["fieldConfig"]["defaults"]["thresholds"]["steps"]
                    .as_array()
                    .is_some_and(|s| !s.is_empty()),
                || format!("panel {title:?}: a {} without thresholds", panel["type"]),
            );
        }
        let targets = panel["targets"].as_array().cloned().unwrap_or_default();
        f.check(!targets.is_empty(), || {
            format!("panel {title:?}: no targets")
        });
        let mut refs = BTreeSet::new();
        for t in &targets {
            f.check(is_templated_datasource(&t["datasource"]), || {
                format!("panel {title:?}: a target does not use $datasource")
            });
            f.check(refs.insert(t["refId"].as_str().unwrap_or("")), || {
                format!("panel {title:?}: refIds repeat")
            });
        }
    }
}

#[test]
fn the_five_dashboards_follow_grafanas_conventions() {
    let all = dashboards::load_all();
    let uids: Vec<&str> = all.iter().filter_map(|d| d.json["uid"].as_str()).collect();
    assert_eq!(uids, EXPECTED, "the dashboards and their uids");
    let titles: BTreeSet<&str> = all.iter().map(Dashboard::title).collect();
    assert_eq!(titles.len(), all.len(), "titles must be unique: {titles:?}");
    let mut problems = Vec::new();
    for d in &all {
        let mut f = Findings {
            file: d.file.clone(),
            lines: Vec::new(),
        };
        check_dashboard(d, &mut f);
        problems.extend(f.lines);
    }
    assert!(problems.is_empty(), "\n{}", problems.join("\n"));
}

/// What one target's expression breaks, by the linter's target rules.
#[derive(Default)]
struct TargetFindings {
    names: Vec<String>,
    problems: Vec<String>,
}

/// Walks the parsed expression with the chain of its parents.
fn walk<'a>(expr: &'a Expr, parents: &mut Vec<&'a Expr>, instant: bool, out: &mut TargetFindings) {
    match expr {
        Expr::VectorSelector(vs) => check_selector(vs, parents, out),
        Expr::MatrixSelector(ms) => {
            let call = parents.last().and_then(|p| match p {
                Expr::Call(c) => Some(c.func.name),
                _ => None,
            });
            let range = ms.range;
            let by_rate = matches!(call, Some("rate" | "irate" | "increase"));
            if by_rate && range != RATE_INTERVAL && !(instant && range == RANGE) {
                out.problems.push(format!(
                    "{}() must use $__rate_interval (or $__range in an instant query)",
                    call.unwrap_or("")
                ));
            }
            parents.push(expr);
            check_selector(&ms.vs, parents, out);
            parents.pop();
        }
        _ => {
            parents.push(expr);
            for child in children(expr) {
                walk(child, parents, instant, out);
            }
            parents.pop();
        }
    }
}

fn children(expr: &Expr) -> Vec<&Expr> {
    match expr {
        Expr::Aggregate(a) => std::iter::once(a.expr.as_ref())
            .chain(a.param.as_deref())
            .collect(),
        Expr::Unary(u) => vec![&u.expr],
        Expr::Binary(b) => vec![&b.lhs, &b.rhs],
        Expr::Paren(p) => vec![&p.expr],
        Expr::Subquery(s) => vec![&s.expr],
        Expr::Call(c) => c.args.args.iter().map(|a| a.as_ref()).collect(),
        _ => Vec::new(),
    }
}

fn check_selector(vs: &VectorSelector, parents: &[&Expr], out: &mut TargetFindings) {
    let name = vs.name.clone().unwrap_or_default();
    out.names.push(name.clone());
    for (label, value) in [("job", JOB), ("instance", INSTANCE)] {
        let ok = vs
            .matchers
            .matchers
            .iter()
            .any(|m| m.name == label && m.value == value && matches!(m.op, MatchOp::Re(_)));
        if !ok {
            out.problems
                .push(format!("{name}: no {label}=~\"${label}\" matcher"));
        }
    }
    // A counter is only meaningful through rate(), irate() or increase().
    if name.ends_with("_total") {
        let through_rate = matches!(parents.last(), Some(Expr::MatrixSelector(_)))
            && matches!(
                parents.iter().rev().nth(1),
                Some(Expr::Call(c)) if matches!(c.func.name, "rate" | "irate" | "increase")
            );
        if !through_rate {
            out.problems
                .push(format!("counter {name} is used without rate()/increase()"));
        }
    }
}

#[test]
fn every_target_is_promql_on_catalogue_metrics_with_job_instance_and_rate_interval() {
    let known = catalogue();
    let mut problems = Vec::new();
    let mut count = 0;
    for d in dashboards::load_all() {
        for t in d.targets() {
            count += 1;
            let place = format!("{} / {:?} / {}", d.file, t.panel_title(), t.ref_id);
            let expr = dashboards::substitute(&t.expr, &placeholders());
            let parsed = match parser::parse(&expr) {
                Ok(parsed) => parsed,
                Err(e) => {
                    problems.push(format!("{place}: not PromQL: {e}\n    {}", t.expr));
                    continue;
                }
            };
            let mut findings = TargetFindings::default();
            walk(&parsed, &mut Vec::new(), t.instant, &mut findings);
            if findings.names.is_empty() {
                findings.problems.push("selects no metric".into());
            }
            for name in &findings.names {
                if !known.contains(name) || name == NEVER_EXPORTED {
                    findings
                        .problems
                        .push(format!("{name} is not a metric of the catalogue"));
                }
            }
            for p in findings.problems {
                problems.push(format!("{place}: {p}\n    {}", t.expr));
            }
            if t.panel["targets"]
                .as_array()
                .is_some_and(|ts| ts.iter().any(|x| x["legendFormat"].is_null()))
            {
                problems.push(format!("{place}: a target has no legendFormat"));
            }
        }
    }
    assert!(count > 60, "only {count} targets were read");
    assert!(problems.is_empty(), "\n{}", problems.join("\n"));
}

/// The checks above must be able to fail: a handful of broken targets, each caught.
#[test]
fn the_target_rules_catch_what_they_are_for() {
    let cases = [
        (
            "rate(jellyfin_api_requests_total{job=~\"$job\", instance=~\"$instance\"}[5m])",
            "$__rate_interval",
        ),
        (
            "jellyfin_api_requests_total{job=~\"$job\", instance=~\"$instance\"}",
            "without rate",
        ),
        ("jellyfin_up{instance=~\"$instance\"}", "no job"),
        ("jellyfin_up{job=~\"$job\"}", "no instance"),
        (
            "jellyfin_up{job=\"$job\", instance=~\"$instance\"}",
            "no job",
        ),
        (
            "increase(jellyfin_playback_total{job=~\"$job\", instance=~\"$instance\"}[$__range])",
            "$__rate_interval",
        ),
    ];
    for (expr, expected) in cases {
        let parsed = parser::parse(&dashboards::substitute(expr, &placeholders())).unwrap();
        let mut findings = TargetFindings::default();
        walk(&parsed, &mut Vec::new(), false, &mut findings);
        assert!(
            findings.problems.iter().any(|p| p.contains(expected)),
            "{expr}: expected a finding with {expected:?}, got {:?}",
            findings.problems
        );
    }
    let fine = "sum by (type) (increase(jellyfin_playback_total{job=~\"$job\", instance=~\"$instance\"}[$__range]))";
    let parsed = parser::parse(&dashboards::substitute(fine, &placeholders())).unwrap();
    let mut findings = TargetFindings::default();
    walk(&parsed, &mut Vec::new(), true, &mut findings);
    assert!(findings.problems.is_empty(), "{:?}", findings.problems);
}

/// A way to break a dashboard, and the word its finding must contain.
type Break = (&'static str, fn(&mut Value));

/// The dashboard checks must be able to fail too: each break of a good dashboard is caught.
#[test]
fn the_dashboard_rules_catch_what_they_are_for() {
    let good = dashboards::load_all().remove(0);
    let breaks: [Break; 11] = [
        ("without thresholds", |j| {
            j["panels"][4]["fieldConfig"]["defaults"]["thresholds"] = Value::Null
        }),
        ("default data source", |j| {
            j["templating"]["list"][0]["current"] = serde_json::json!({"value": "${DS_PROMETHEUS}"})
        }),
        ("__inputs", |j| {
            j["__inputs"] = serde_json::json!([{"name": "DS_PROMETHEUS"}])
        }),
        ("no description", |j| {
            j["panels"][1]["description"] = Value::Null
        }),
        ("unit", |j| {
            j["panels"][1]["fieldConfig"]["defaults"]["unit"] = "".into()
        }),
        ("$datasource", |j| {
            j["panels"][1]["datasource"]["uid"] = "P1809F7CD0C75ACF3".into()
        }),
        ("allValue", |j| {
            j["templating"]["list"][1]["allValue"] = Value::Null
        }),
        ("refresh 2", |j| {
            j["templating"]["list"][2]["refresh"] = 1.into()
        }),
        ("schemaVersion", |j| j["schemaVersion"] = 27.into()),
        ("no link", |j| j["links"] = Value::Array(vec![])),
        ("overlap", |j| {
            j["panels"][2]["gridPos"] = j["panels"][1]["gridPos"].clone()
        }),
    ];
    let mut f = Findings {
        file: good.file.clone(),
        lines: Vec::new(),
    };
    check_dashboard(&good, &mut f);
    assert!(f.lines.is_empty(), "{:?}", f.lines);
    for (expected, break_it) in breaks {
        let mut broken = Dashboard {
            file: good.file.clone(),
            json: good.json.clone(),
        };
        break_it(&mut broken.json);
        let mut f = Findings {
            file: good.file.clone(),
            lines: Vec::new(),
        };
        check_dashboard(&broken, &mut f);
        assert!(
            f.lines.iter().any(|l| l.contains(expected)),
            "breaking {expected:?} went unnoticed: {:?}",
            f.lines
        );
    }
}

/// The settings a panel description names (`collectors.inventory.recent`, ...) exist: each is
/// in the example config, set or commented out, under its section.
#[test]
fn every_setting_a_panel_names_is_in_the_example_config() {
    let example = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/config/jellyfin-pusher.example.toml"
    ))
    .unwrap();
    let has_setting = |path: &str| {
        let Some((section, key)) = path.rsplit_once('.') else {
            return false;
        };
        let mut lines = example
            .lines()
            .skip_while(|l| l.trim() != format!("[{section}]"));
        lines.next().is_some()
            && lines.take_while(|l| !l.starts_with('[')).any(|l| {
                let l = l.trim_start_matches(['#', ' ']);
                l.strip_prefix(key)
                    .is_some_and(|rest| rest.trim_start().starts_with('='))
            })
    };
    let mut named = 0;
    let mut unknown = Vec::new();
    for d in dashboards::load_all() {
        for panel in d.panels() {
            let description = panel["description"].as_str().unwrap_or("");
            for quoted in description.split('`').skip(1).step_by(2) {
                let is_setting = [
                    "jellyfin.",
                    "collect.",
                    "collectors.",
                    "privacy.",
                    "buffer.",
                ]
                .iter()
                .any(|p| quoted.starts_with(p));
                if is_setting {
                    named += 1;
                    if !has_setting(quoted) {
                        unknown.push(format!("{} / {:?}: {quoted}", d.file, panel["title"]));
                    }
                }
            }
        }
    }
    assert!(named >= 3, "only {named} settings named");
    assert!(
        unknown.is_empty(),
        "settings that do not exist: {unknown:?}"
    );
}

/// Families whose transcode split follows the client's PlayMethod or the dashboard's
/// classification (a remux is its own value there, an audio-only transcode is `transcode`):
/// not what a panel about transcodes may count.
const NOT_TRANSCODES: [&str; 2] = ["jellyfin_streams", "jellyfin_playback_total"];

/// A panel whose title speaks of transcodes counts real video transcodes only: it reads the
/// transcode families (video re-encoded; remuxes and audio-only jobs excluded by the agent),
/// never a play-method split that would also count remuxes or audio.
#[test]
fn panels_about_transcodes_count_video_transcodes_only() {
    let mut wrong = Vec::new();
    let mut checked = 0;
    for d in dashboards::load_all() {
        for t in d.targets() {
            if !t.panel_title().to_ascii_lowercase().contains("transcod") {
                continue;
            }
            checked += 1;
            if NOT_TRANSCODES.iter().any(|family| t.expr.contains(family)) {
                wrong.push(format!("{} / {:?}: {}", d.file, t.panel_title(), t.expr));
            }
        }
    }
    assert!(checked >= 8, "only {checked} transcode targets found");
    assert!(
        wrong.is_empty(),
        "transcode panels over a play-method split:\n{}",
        wrong.join("\n")
    );
}

/// How often each collector slower than the cycle sends its gauges (src/collectors/mod.rs), and
/// the window an instant query reads them over: the cadence plus slack for a late run.
const SLOW_GAUGES: [(&str, Duration); 12] = [
    ("jellyfin_library_inventory_items", INVENTORY),
    ("jellyfin_library_missing_metadata_items", INVENTORY),
    ("jellyfin_library_size_bytes", INVENTORY),
    ("jellyfin_library_duration_seconds", INVENTORY),
    ("jellyfin_library_video_codec_items", INVENTORY),
    ("jellyfin_library_resolution_items", INVENTORY),
    ("jellyfin_library_recently_added", INVENTORY),
    ("jellyfin_library_items", FIVE_MINUTES),
    ("jellyfin_library_info", FIVE_MINUTES),
    ("jellyfin_storage_used_bytes", FIVE_MINUTES),
    ("jellyfin_storage_free_bytes", FIVE_MINUTES),
    ("jellyfin_users", FIVE_MINUTES),
];
const INVENTORY: Duration = Duration::from_secs(3600);
const FIVE_MINUTES: Duration = Duration::from_secs(300);

/// Counters sent once a minute (tasks, activity): a rate over them needs the target's min
/// step (its `interval`) at 1m. Grafana's `$__rate_interval` is max(interval + scrape
/// interval, 4 x scrape interval), where the scrape interval is the target's min step, else
/// the data source's (15 s): 4 minutes, 4 samples, with the min step; a panel's min interval
/// only raises the interval, to 75 s, which on Prometheus holds one sample most of the time
/// (pkg/promlib/models/query.go; tests/it/production_cadence.rs shows both).
const MINUTE_COUNTERS: [&str; 4] = [
    "jellyfin_activity_events_total",
    "jellyfin_playback_total",
    "jellyfin_scheduled_task_failures_total",
    "jellyfin_library_scan_failures_total",
];

/// Every selector of `expr` with the range of the `last_over_time` around it, if any.
fn selectors_with_window(
    expr: &Expr,
    window: Option<Duration>,
    out: &mut Vec<(String, Option<Duration>)>,
) {
    match expr {
        Expr::VectorSelector(vs) => out.push((vs.name.clone().unwrap_or_default(), window)),
        Expr::MatrixSelector(ms) => out.push((ms.vs.name.clone().unwrap_or_default(), window)),
        Expr::Call(c) if c.func.name == "last_over_time" => {
            if let Some(Expr::MatrixSelector(ms)) = c.args.args.first().map(|a| a.as_ref()) {
                out.push((ms.vs.name.clone().unwrap_or_default(), Some(ms.range)));
            }
        }
        _ => {
            for child in children(expr) {
                selectors_with_window(child, window, out);
            }
        }
    }
}

/// What one target breaks of the cadence rules.
fn cadence_problems(t: &dashboards::Target) -> Vec<String> {
    let mut problems = Vec::new();
    let Ok(parsed) = parser::parse(&dashboards::substitute(&t.expr, &placeholders())) else {
        return vec!["not PromQL".into()];
    };
    let mut found = Vec::new();
    selectors_with_window(&parsed, None, &mut found);
    for (name, window) in found {
        if let Some((_, cadence)) = SLOW_GAUGES.iter().find(|(n, _)| *n == name)
            && t.instant
            && window.is_none_or(|w| w <= *cadence)
        {
            problems.push(format!(
                "{name} comes every {cadence:?}: an instant query must read it with last_over_time over more than that"
            ));
        }
        let rated = t.expr.contains("$__rate_interval");
        if MINUTE_COUNTERS.contains(&name.as_str()) && rated {
            let min = t.json["interval"].as_str().unwrap_or("");
            if !matches!(min, "1m" | "2m" | "5m") {
                problems.push(format!(
                    "{name} comes every minute: the target needs a min step (interval) of 1m, not {min:?}"
                ));
            }
        }
    }
    problems
}

#[test]
fn every_target_reads_each_metric_over_its_collectors_cadence() {
    let mut problems = Vec::new();
    for d in dashboards::load_all() {
        for t in d.targets() {
            for p in cadence_problems(&t) {
                problems.push(format!(
                    "{} / {:?}: {p}\n    {}",
                    d.file,
                    t.panel_title(),
                    t.expr
                ));
            }
        }
    }
    assert!(problems.is_empty(), "\n{}", problems.join("\n"));
    // The rules can fail: an hourly gauge read bare, a minute counter at the default interval.
    let caught = |index: usize, break_it: fn(&mut Value)| {
        let good = dashboards::load_all().remove(index);
        let mut json = good.json.clone();
        for p in json["panels"].as_array_mut().into_iter().flatten() {
            break_it(p);
        }
        let broken = Dashboard {
            file: good.file.clone(),
            json,
        };
        broken
            .targets()
            .iter()
            .any(|t| !cadence_problems(t).is_empty())
    };
    assert!(caught(0, |p| if p["title"] == "Items per library" {
        p["targets"][0]["expr"] =
            "sum(jellyfin_library_inventory_items{job=~\"$job\", instance=~\"$instance\"})".into();
    }));
    assert!(caught(4, |p| {
        for t in p["targets"].as_array_mut().into_iter().flatten() {
            t["interval"] = Value::Null;
        }
    }));
}
