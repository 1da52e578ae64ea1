//! The Grafana dashboards (dashboards/*.json) read the way Grafana reads them: their panels
//! (rows skipped, collapsed rows opened) and each panel's PromQL targets, with the template
//! variables replaced by values.

use serde_json::Value;

pub const DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/dashboards");

pub struct Dashboard {
    /// File name, e.g. `jellyfin-transcoding.json`.
    pub file: String,
    pub json: Value,
}

/// One query of one panel.
pub struct Target<'a> {
    pub panel: &'a Value,
    /// The target's own JSON (its min step `interval`, ...).
    pub json: &'a Value,
    pub ref_id: String,
    pub expr: String,
    /// An instant query (tables, pie charts, ...) rather than a range query.
    pub instant: bool,
}

impl Target<'_> {
    pub fn panel_title(&self) -> &str {
        self.panel["title"].as_str().unwrap_or("")
    }
}

/// Every dashboard file, sorted by name.
pub fn load_all() -> Vec<Dashboard> {
    let mut files: Vec<_> = std::fs::read_dir(DIR)
        .unwrap_or_else(|e| panic!("{DIR}: {e}"))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    files.sort();
    files
        .iter()
        .map(|path| {
            let text = std::fs::read_to_string(path).unwrap();
            let json =
                serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            Dashboard {
                file: path.file_name().unwrap().to_string_lossy().into_owned(),
                json,
            }
        })
        .collect()
}

impl Dashboard {
    pub fn title(&self) -> &str {
        self.json["title"].as_str().unwrap_or("")
    }

    /// Panels that show data: rows are skipped, the panels of collapsed rows included.
    pub fn panels(&self) -> Vec<&Value> {
        let mut out = Vec::new();
        for panel in self.json["panels"].as_array().into_iter().flatten() {
            if panel["type"] == "row" {
                out.extend(panel["panels"].as_array().into_iter().flatten());
            } else {
                out.push(panel);
            }
        }
        out
    }

    pub fn targets(&self) -> Vec<Target<'_>> {
        let mut out = Vec::new();
        for panel in self.panels() {
            for target in panel["targets"].as_array().into_iter().flatten() {
                out.push(Target {
                    panel,
                    json: target,
                    ref_id: target["refId"].as_str().unwrap_or("").to_string(),
                    expr: target["expr"].as_str().unwrap_or("").to_string(),
                    instant: target["instant"] == true,
                });
            }
        }
        out
    }

    /// The template variable called `name`.
    pub fn variable(&self, name: &str) -> Option<&Value> {
        self.json["templating"]["list"]
            .as_array()?
            .iter()
            .find(|v| v["name"] == name)
    }
}

/// What Grafana would put in place of the variables a target may use.
pub struct Values<'a> {
    pub job: &'a str,
    pub instance: &'a str,
    pub rate_interval: &'a str,
    pub range: &'a str,
    pub interval: &'a str,
}

/// `expr` with every variable replaced, in both the `$name` and `${name}` forms. Longer
/// names go first so that `$__range` never eats the start of another.
pub fn substitute(expr: &str, values: &Values) -> String {
    let mut out = expr.to_string();
    for (name, value) in [
        ("__rate_interval", values.rate_interval),
        ("__interval", values.interval),
        ("__range", values.range),
        ("instance", values.instance),
        ("job", values.job),
    ] {
        out = out
            .replace(&format!("${{{name}}}"), value)
            .replace(&format!("${name}"), value);
    }
    assert!(!out.contains('$'), "a variable is left in {out}");
    out
}
