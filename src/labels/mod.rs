//! Every label value comes from a bounded set, so that one host's series count has a ceiling
//! whatever Jellyfin (or the host) reports: a hostile or broken server cannot flood the
//! receiver with new series.
//!
//! [`RULES`] (in `rules.rs`) gives each label its [`Bound`], using the sets in `sets.rs`; [`bound`] applies them to a collector's families
//! in the runner (`collectors::run_once`), so collectors stay free to build families as the
//! server answers. The allow-lists follow the server's own enums (Jellyfin 10.11.11 and
//! 12.0.0 OpenAPI: `TranscodeReason`, `HardwareAccelerationType`, `MediaType`, `PlayMethod`,
//! `BaseItemKind`, `CollectionType`, `LogLevel`) and, for codecs, the names ffprobe reports
//! (Jellyfin stores ffprobe's `codec_name`; `MediaBrowser.MediaEncoding/Encoder/
//! EncoderValidator.cs` lists the decoders it relies on). The README lists the worst-case series
//! count these bounds allow; a test derives it from this table.

use std::collections::{BTreeMap, BTreeSet};

use crate::sample::{Family, Labels};

mod rules;
mod sets;

pub use rules::RULES;
pub use sets::*;

/// The value that stands for everything an allow-list or a top-N leaves out.
pub const OTHER: &str = "other";

/// How a label's values are kept bounded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bound {
    /// A closed set: any other value becomes `other`.
    AllowList(&'static [&'static str]),
    /// An open set of additive values (counts, bytes): the `n` values with the largest sums
    /// are kept and the rest summed into `other`.
    TopN(usize),
    /// An open set whose values cannot be summed (ratios, timestamps): the first `n` values in
    /// name order are kept and the samples of the rest dropped.
    First(usize),
    /// Written by the agent itself from at most `n` values (endpoint paths, collector names).
    Fixed(usize),
    /// Bounded where the family is built by a config setting; `default` is its default.
    Config { key: &'static str, default: usize },
}

impl Bound {
    /// How many values the label can take in one cycle.
    pub fn cardinality(self) -> usize {
        match self {
            Bound::AllowList(list) => list.len() + 1,
            Bound::TopN(n) => n + 1,
            Bound::First(n) | Bound::Fixed(n) => n,
            Bound::Config { default, .. } => default,
        }
    }
}

/// One label's bound, for one family or (family `None`) for every family without its own.
#[derive(Debug, Clone, Copy)]
pub struct Rule {
    pub family: Option<&'static str>,
    pub label: &'static str,
    pub bound: Bound,
    /// The label whose value determines this one (an item's type): it adds no series.
    pub follows: Option<&'static str>,
}

/// The rule for `label` of `family`.
pub fn rule(family: &str, label: &str) -> Option<&'static Rule> {
    RULES
        .iter()
        .find(|r| r.family == Some(family) && r.label == label)
        .or_else(|| {
            RULES
                .iter()
                .find(|r| r.family.is_none() && r.label == label)
        })
}

/// Applies [`RULES`] to every family: values outside an allow-list or a top-N become `other`
/// (samples that then share their labels are summed), values past a `First` cap are dropped.
/// A label without a rule is left alone (the catalogue test makes sure there is none).
pub fn bound(families: &mut [Family]) {
    let mut names: Vec<&'static str> = Vec::new();
    for family in families.iter_mut() {
        names.clear();
        names.extend(
            family
                .samples
                .iter()
                .flat_map(|s| s.labels.iter().map(|(k, _)| *k)),
        );
        names.sort_unstable();
        names.dedup();
        let mut changed = false;
        for &name in &names {
            let Some(rule) = rule(family.name, name) else {
                continue;
            };
            changed |= apply(family, name, rule.bound);
        }
        if changed {
            merge(family);
        }
    }
}

/// The value of label `name` in `labels`.
fn value_of<'a>(labels: &'a Labels, name: &str) -> Option<&'a str> {
    labels
        .iter()
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.as_str())
}

/// Returns whether any value was replaced (so that samples may need merging). Values are
/// counted borrowed: a copy is made only of the values kept when a set is over its bound.
fn apply(family: &mut Family, name: &str, bound: Bound) -> bool {
    let keep: Box<dyn Fn(&str) -> bool> = match bound {
        Bound::AllowList(list) => Box::new(move |v: &str| v == OTHER || list.contains(&v)),
        Bound::TopN(n) => {
            let mut sums: BTreeMap<&str, f64> = BTreeMap::new();
            for s in &family.samples {
                if let Some(v) = value_of(&s.labels, name).filter(|v| *v != OTHER) {
                    *sums.entry(v).or_default() += s.value;
                }
            }
            if sums.len() <= n {
                return false;
            }
            let mut ranked: Vec<(&str, f64)> = sums.into_iter().collect();
            ranked.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(b.0)));
            let kept: BTreeSet<String> = ranked
                .into_iter()
                .take(n)
                .map(|(v, _)| v.to_string())
                .collect();
            Box::new(move |v: &str| v == OTHER || kept.contains(v))
        }
        Bound::First(n) => {
            let values: BTreeSet<&str> = family
                .samples
                .iter()
                .filter_map(|s| value_of(&s.labels, name))
                .collect();
            if values.len() <= n {
                return false;
            }
            let kept: BTreeSet<String> = values.into_iter().take(n).map(String::from).collect();
            family
                .samples
                .retain(|s| value_of(&s.labels, name).is_none_or(|v| kept.contains(v)));
            return false;
        }
        Bound::Fixed(_) | Bound::Config { .. } => return false,
    };
    let mut changed = false;
    for sample in &mut family.samples {
        for (k, v) in &mut sample.labels {
            if *k == name && !keep(v.as_str()) {
                *v = OTHER.to_string();
                changed = true;
            }
        }
    }
    changed
}

/// Sums samples that carry the same labels, keeping the first one's place.
fn merge(family: &mut Family) {
    let mut seen: BTreeMap<Labels, usize> = BTreeMap::new();
    let mut merged: Vec<crate::sample::Sample> = Vec::with_capacity(family.samples.len());
    for sample in family.samples.drain(..) {
        match seen.get(&sample.labels) {
            Some(&i) => merged[i].value += sample.value,
            None => {
                seen.insert(sample.labels.clone(), merged.len());
                merged.push(sample);
            }
        }
    }
    family.samples = merged;
}

/// The most series one family can have in one cycle under [`RULES`] (labels that follow
/// another add none); Err names a label without a rule.
pub fn worst_case_series(family: &str, labels: &[&str]) -> Result<usize, String> {
    let mut product = 1usize;
    for label in labels {
        let rule = rule(family, label)
            .ok_or_else(|| format!("{family}: label {label} has no bound in labels::RULES"))?;
        if rule.follows.is_none() {
            product = product.saturating_mul(rule.bound.cardinality());
        }
    }
    Ok(product)
}

#[cfg(test)]
mod tests;
