//! Renders batches in the Prometheus text exposition format (version 0.0.4), the output of
//! `--once`. Families with the same name from different collectors (for example
//! `jellyfin_pusher_collector_success`) are merged so that each name has one HELP/TYPE block.

use std::collections::BTreeMap;
use std::fmt::Write;

use crate::sample::{Batch, Family};

/// Renders every family of `batches`, adding the static `labels` to each series. Families are
/// sorted by name; samples keep their order within a family.
pub fn render(batches: &[Batch], static_labels: &[(String, String)]) -> String {
    let mut merged: BTreeMap<&str, (&Family, Vec<&crate::sample::Sample>)> = BTreeMap::new();
    for family in batches.iter().flat_map(|b| &b.families) {
        let entry = merged
            .entry(family.name)
            .or_insert_with(|| (family, Vec::new()));
        entry.1.extend(&family.samples);
    }
    let mut out = String::new();
    for (name, (family, samples)) in merged {
        let _ = writeln!(out, "# HELP {name} {}", escape_help(family.help));
        let _ = writeln!(out, "# TYPE {name} {}", family.kind.as_str());
        for sample in samples {
            out.push_str(name);
            let mut pairs: Vec<(&str, &str)> = static_labels
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str()))
                .collect();
            pairs.extend(sample.labels.iter().map(|(k, v)| (*k, v.as_str())));
            pairs.sort_by(|a, b| a.0.cmp(b.0));
            if !pairs.is_empty() {
                out.push('{');
                for (i, (k, v)) in pairs.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    let _ = write!(out, "{k}=\"{}\"", escape_label_value(v));
                }
                out.push('}');
            }
            let _ = writeln!(out, " {}", format_value(sample.value));
        }
    }
    out
}

fn escape_help(help: &str) -> String {
    help.replace('\\', "\\\\").replace('\n', "\\n")
}

fn escape_label_value(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// Formats a value the way Prometheus parses it back (`+Inf`, `-Inf`, `NaN`).
pub fn format_value(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v == f64::INFINITY {
        "+Inf".into()
    } else if v == f64::NEG_INFINITY {
        "-Inf".into()
    } else {
        format!("{v}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sample::Family;

    #[test]
    fn merges_families_sorts_labels_and_escapes() {
        let a = Batch {
            timestamp_ms: 1,
            families: vec![Family::gauge("x_up", "Up.").with(vec![("zone", "a\"b".into())], 1.0)],
        };
        let b = Batch {
            timestamp_ms: 2,
            families: vec![
                Family::gauge("x_up", "Up.").with(vec![("zone", "c\\d\ne".into())], 0.5),
            ],
        };
        let text = render(&[a, b], &[("job".into(), "jellyfin".into())]);
        assert_eq!(
            text,
            "# HELP x_up Up.\n# TYPE x_up gauge\n\
             x_up{job=\"jellyfin\",zone=\"a\\\"b\"} 1\n\
             x_up{job=\"jellyfin\",zone=\"c\\\\d\\ne\"} 0.5\n"
        );
    }

    #[test]
    fn special_values_use_prometheus_spelling() {
        assert_eq!(format_value(f64::NAN), "NaN");
        assert_eq!(format_value(f64::INFINITY), "+Inf");
        assert_eq!(format_value(f64::NEG_INFINITY), "-Inf");
        assert_eq!(format_value(1.5e-3), "0.0015");
    }
}
