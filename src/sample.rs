//! The sample model every stage shares: a collector produces [`Family`]s, the runner wraps
//! them into a [`Batch`] stamped with the collection time, and the encoder and the text
//! exposition both read batches.
//!
//! Metric and label names are `&'static str` on purpose: every name is written out in full
//! where it is produced, so `grep jellyfin_streams src/` finds its collector.

/// The Prometheus metric type of a family.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Counter,
    Gauge,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
        }
    }
}

/// Label pairs of one sample, without the static labels from the config (the encoder and the
/// exposition add those).
pub type Labels = Vec<(&'static str, String)>;

#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub labels: Labels,
    pub value: f64,
}

/// One metric family: a name, its help text and type, and its samples.
#[derive(Debug, Clone, PartialEq)]
pub struct Family {
    pub name: &'static str,
    pub help: &'static str,
    pub kind: Kind,
    pub samples: Vec<Sample>,
}

impl Family {
    pub fn gauge(name: &'static str, help: &'static str) -> Self {
        Family {
            name,
            help,
            kind: Kind::Gauge,
            samples: Vec::new(),
        }
    }

    pub fn counter(name: &'static str, help: &'static str) -> Self {
        debug_assert!(
            name.ends_with("_total"),
            "counter {name} must end in _total"
        );
        Family {
            name,
            help,
            kind: Kind::Counter,
            samples: Vec::new(),
        }
    }

    /// Adds one sample; builder-style so a family with one series reads as one expression.
    pub fn with(mut self, labels: Labels, value: f64) -> Self {
        self.push(labels, value);
        self
    }

    pub fn push(&mut self, labels: Labels, value: f64) {
        self.samples.push(Sample { labels, value });
    }
}

/// What one collector run produced, stamped with the time the run started (ms since the epoch).
#[derive(Debug, Clone, PartialEq)]
pub struct Batch {
    pub timestamp_ms: i64,
    pub families: Vec<Family>,
}

impl Batch {
    pub fn sample_count(&self) -> usize {
        self.families.iter().map(|f| f.samples.len()).sum()
    }
}

/// Prometheus' staleness marker: the NaN with exactly these bits says "this series ended
/// here" (Prometheus writes it when a scraped series disappears; `value.StaleNaN` in its
/// source, `decimal.StaleNaN` in VictoriaMetrics'). Receivers compare the bits, so it must
/// travel unchanged: any other NaN is a value (Prometheus) or dropped (VictoriaMetrics).
pub const STALE_NAN_BITS: u64 = 0x7ff0_0000_0000_0002;
pub const STALE_NAN: f64 = f64::from_bits(STALE_NAN_BITS);

/// Whether `v` is the staleness marker (not merely some NaN).
pub fn is_stale(v: f64) -> bool {
    v.to_bits() == STALE_NAN_BITS
}

/// Milliseconds since the Unix epoch, the remote-write timestamp unit.
pub fn now_ms() -> i64 {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    i64::try_from(now.as_millis()).unwrap_or(i64::MAX)
}

/// Makes an arbitrary string safe to use as a label value: trimmed, control characters
/// replaced, at most 64 characters (the catalogue's rule for every label value).
pub fn label_value(raw: &str) -> String {
    let trimmed = raw.trim();
    // Most values are clean already (at most 64 bytes is at most 64 characters): one copy.
    if trimmed.len() <= 64 && !trimmed.chars().any(char::is_control) {
        return trimmed.to_string();
    }
    trimmed
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(64)
        .collect::<String>()
        .trim_end()
        .to_string()
}

/// A server enum's value as a label: lower-cased and sanitised, or `unknown` when absent.
pub fn enum_label(value: Option<&str>) -> String {
    match value.map(str::trim).filter(|v| !v.is_empty()) {
        Some(v) => label_value(&v.to_ascii_lowercase()),
        None => "unknown".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_staleness_marker_is_one_nan_among_many() {
        assert!(STALE_NAN.is_nan() && is_stale(STALE_NAN));
        assert!(!is_stale(f64::NAN) && !is_stale(0.0) && !is_stale(f64::INFINITY));
    }

    #[test]
    fn label_values_are_trimmed_capped_and_control_free() {
        assert_eq!(label_value("  Jellyfin Server \n"), "Jellyfin Server");
        assert_eq!(label_value("a\tb"), "a b");
        let long = "é".repeat(100);
        assert_eq!(label_value(&long).chars().count(), 64);
        // Cut at 64 characters, then trimmed again; 64 bytes of 2-byte characters are kept.
        assert_eq!(
            label_value(&format!("{} b", "a".repeat(63))),
            "a".repeat(63)
        );
        assert_eq!(label_value(&"é".repeat(32)), "é".repeat(32));
        assert_eq!(label_value(" \u{85}x\u{7f} "), "x");
    }
}
