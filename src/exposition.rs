//! Renders batches in the Prometheus text exposition format (version 0.0.4), the output of
//! `--once`. Families with the same name from different collectors (for example
//! `jellyfin_pusher_collector_success`) are merged so that each name has one HELP/TYPE block.
//!
//! Staleness markers ([`crate::sample::STALE_NAN`]) are left out, and a family with nothing
//! else is left out whole: the text format has no marker (a scraper writes one itself when a
//! series vanishes from the page), and a `NaN` line would read as a measured value. `--once`
//! collects one cycle, so nothing has ended in it anyway.

use std::collections::BTreeMap;
use std::fmt::Write;

use crate::sample::{Batch, Family, is_stale};

/// Renders every family of `batches`, adding the static `labels` to each series. Families are
/// sorted by name; samples keep their order within a family.
pub fn render(batches: &[Batch], static_labels: &[(String, String)]) -> String {
    let mut merged: BTreeMap<&str, (&Family, Vec<&crate::sample::Sample>)> = BTreeMap::new();
    for family in batches.iter().flat_map(|b| &b.families) {
        let entry = merged
            .entry(family.name)
            .or_insert_with(|| (family, Vec::new()));
        entry
            .1
            .extend(family.samples.iter().filter(|s| !is_stale(s.value)));
    }
    merged.retain(|_, (_, samples)| !samples.is_empty());
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
    fn staleness_markers_are_not_printed() {
        let stale = crate::sample::STALE_NAN;
        let batch = Batch {
            timestamp_ms: 1,
            families: vec![
                Family::gauge("x_speed", "Speed.")
                    .with(vec![("stat", "min".into())], stale)
                    .with(vec![("stat", "avg".into())], 1.5),
                Family::gauge("x_lead", "Lead.").with(vec![("stat", "min".into())], stale),
            ],
        };
        assert_eq!(
            render(&[batch], &[]),
            "# HELP x_speed Speed.\n# TYPE x_speed gauge\nx_speed{stat=\"avg\"} 1.5\n"
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
