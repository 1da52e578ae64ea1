//! Records settled out of order: acknowledged (or dropped and counted) while older records
//! before them are still unsettled. Parallel requests and newest-first delivery finish blocks
//! in any order, but the reader position can only move over a settled prefix; what lies
//! beyond it is kept here, as merged spans of queue offsets, and saved with the position in
//! the `position` file so that a restart neither resends these blocks nor forgets them.
//!
//! Spans stay few: blocks settled one after another merge into one span (newest-first
//! delivery settles each new cycle right after the previous one), and the reader swallows a
//! span as soon as it reaches it.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Settled records from `start` to `end` (queue offsets, `end` exclusive).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Span {
    pub start: u64,
    pub end: u64,
    /// Records (damaged stretches count as one) and samples in the span, so that the
    /// backlog's gauges and `status` can leave them out without reading them.
    pub blocks: u64,
    pub samples: u64,
}

#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Ledger {
    /// By start; disjoint, never adjacent (adjacent spans are merged).
    spans: BTreeMap<u64, Span>,
}

impl Ledger {
    /// Spans as loaded from the `position` file: those before `from` or past `to` (the data's bounds
    /// now) are left out, as are overlapping ones (damage): resending is safe, skipping is not.
    pub fn restore(spans: &[Span], from: u64, to: u64) -> Ledger {
        let mut ledger = Ledger::default();
        let mut last_end = from;
        let mut sorted = spans.to_vec();
        sorted.sort_by_key(|s| s.start);
        for span in sorted {
            if span.start < last_end || span.end > to || span.end <= span.start {
                continue;
            }
            last_end = span.end;
            ledger.insert(span);
        }
        ledger
    }

    /// The end of the span that holds `offset`.
    pub fn end_of(&self, offset: u64) -> Option<u64> {
        self.spans
            .range(..=offset)
            .next_back()
            .filter(|(_, s)| offset < s.end)
            .map(|(_, s)| s.end)
    }

    pub fn contains(&self, offset: u64) -> bool {
        self.end_of(offset).is_some()
    }

    /// Adds a settled span (a record or a damaged stretch), merging it with its neighbours
    /// (counts saturate, as in [`Ledger::totals`]).
    pub fn insert(&mut self, mut span: Span) {
        if let Some((&start, before)) = self.spans.range(..span.start).next_back()
            && before.end == span.start
        {
            span = Span {
                start,
                end: span.end,
                blocks: before.blocks.saturating_add(span.blocks),
                samples: before.samples.saturating_add(span.samples),
            };
            self.spans.remove(&start);
        }
        if let Some(after) = self.spans.remove(&span.end) {
            span.end = after.end;
            span.blocks = span.blocks.saturating_add(after.blocks);
            span.samples = span.samples.saturating_add(after.samples);
        }
        self.spans.insert(span.start, span);
    }

    /// Removes and returns the span that starts at `offset` (the reader has reached it).
    pub fn take_at(&mut self, offset: u64) -> Option<Span> {
        self.spans.remove(&offset)
    }

    /// Blocks, bytes and samples in all spans. The counts come from the `position` file on disk, so
    /// sums saturate: a damaged file gives wrong gauges, never an overflow panic.
    pub fn totals(&self) -> (u64, u64, u64) {
        self.spans.values().fold((0, 0, 0), |(b, n, s), span| {
            (
                b.saturating_add(span.blocks),
                n.saturating_add(span.end - span.start),
                s.saturating_add(span.samples),
            )
        })
    }

    pub fn spans(&self) -> Vec<Span> {
        self.spans.values().copied().collect()
    }

    /// The spans by start, without copying them (saving the position allocates nothing).
    pub fn iter(&self) -> impl ExactSizeIterator<Item = &Span> {
        self.spans.values()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn span(start: u64, end: u64) -> Span {
        Span {
            start,
            end,
            blocks: 1,
            samples: 10,
        }
    }

    #[test]
    fn adjacent_spans_merge_and_lookups_respect_bounds() {
        let mut ledger = Ledger::default();
        ledger.insert(span(100, 200));
        ledger.insert(span(300, 400));
        ledger.insert(span(200, 300));
        assert_eq!(ledger.spans().len(), 1);
        assert_eq!(ledger.totals(), (3, 300, 30));
        assert_eq!(ledger.end_of(100), Some(400));
        assert_eq!(ledger.end_of(399), Some(400));
        assert_eq!(ledger.end_of(400), None);
        assert_eq!(ledger.end_of(99), None);
        ledger.insert(span(500, 600));
        assert_eq!(ledger.take_at(100).map(|s| s.end), Some(400));
        assert!(!ledger.contains(150));
        assert!(ledger.contains(500));
    }

    #[test]
    fn restore_keeps_only_spans_inside_the_data() {
        let saved = [
            span(50, 90),
            span(100, 200),
            span(150, 250),
            span(900, 1100),
        ];
        let ledger = Ledger::restore(&saved, 60, 1000);
        assert_eq!(ledger.spans(), vec![span(100, 200)]);
    }

    #[test]
    fn counts_from_a_damaged_meta_json_saturate_instead_of_overflowing() {
        let huge = |start, end| Span {
            start,
            end,
            blocks: u64::MAX,
            samples: u64::MAX,
        };
        let ledger = Ledger::restore(&[huge(0, 10), huge(20, 30), huge(10, 20)], 0, 30);
        assert_eq!(ledger.totals(), (u64::MAX, 30, u64::MAX));
    }
}
