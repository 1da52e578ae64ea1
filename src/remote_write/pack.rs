//! The packer the queue compacts sealed segments with ([`crate::queue::compact`]): the
//! WriteRequests of many cycles become one WriteRequest per [`PACK_SAMPLES`] samples in which
//! each series appears once, with its samples in the order they were stored. A cycle's
//! WriteRequest repeats every label of every series; packed, a series' labels are stored once
//! for hundreds of its samples, which is most of the bytes of a long outage.
//!
//! The pack is still a snappy-compressed remote-write 1.0 WriteRequest, so the sender sends it
//! as it sends any block, and a receiver that needs per-series order (Prometheus) gets it:
//! within a series the samples keep their order, and packs follow each other in queue order.

use std::collections::{BTreeMap, HashMap};

use super::encode::{DecodeError, compress, decode};
use super::proto::{Label, TimeSeries, WriteRequest};
use crate::queue::{Block, Packer};

/// Samples per pack: about 1 MiB of protobuf before compression, within what every receiver
/// accepts in one request, and a bounded amount of memory while packing.
pub const PACK_SAMPLES: usize = 50_000;
/// At most this much time per pack: a pack counts as too old (`buffer.max_age`) only when its
/// newest sample is, so this bounds how far past `max_age` its oldest samples may be sent.
pub const PACK_SPAN_MS: i64 = 30 * 60 * 1000;

#[derive(Default)]
pub struct SeriesPacker {
    /// Index in `series` of each label set.
    index: HashMap<Vec<Label>, usize>,
    series: Vec<TimeSeries>,
    samples: usize,
    min_timestamp_ms: i64,
    max_timestamp_ms: i64,
}

/// The queue's [`crate::queue::NewPacker`].
pub fn new_packer() -> Box<dyn Packer> {
    Box::new(SeriesPacker::default())
}

impl Packer for SeriesPacker {
    fn add(&mut self, block: &Block) -> Result<(), String> {
        let request = decode(&block.data).map_err(|e| e.to_string())?;
        if !request.metadata.is_empty() {
            return Err("a stored block carries metadata, which packing would lose".into());
        }
        if self.samples == 0 {
            (self.min_timestamp_ms, self.max_timestamp_ms) =
                (block.min_timestamp_ms, block.max_timestamp_ms);
        }
        self.min_timestamp_ms = self.min_timestamp_ms.min(block.min_timestamp_ms);
        self.max_timestamp_ms = self.max_timestamp_ms.max(block.max_timestamp_ms);
        for ts in request.timeseries {
            self.samples += ts.samples.len();
            match self.index.get(&ts.labels) {
                Some(&i) => self.series[i].samples.extend(ts.samples),
                None => {
                    self.index.insert(ts.labels.clone(), self.series.len());
                    self.series.push(ts);
                }
            }
        }
        Ok(())
    }

    fn is_full(&self) -> bool {
        self.samples >= PACK_SAMPLES
            || (self.samples > 0 && self.max_timestamp_ms - self.min_timestamp_ms >= PACK_SPAN_MS)
    }

    fn take(&mut self) -> Option<Block> {
        if self.series.is_empty() {
            return None;
        }
        self.index.clear();
        let request = WriteRequest {
            timeseries: std::mem::take(&mut self.series),
            metadata: Vec::new(),
        };
        let samples = u32::try_from(std::mem::take(&mut self.samples)).unwrap_or(u32::MAX);
        Some(Block {
            data: compress(&prost::Message::encode_to_vec(&request)),
            samples,
            min_timestamp_ms: self.min_timestamp_ms,
            max_timestamp_ms: self.max_timestamp_ms,
        })
    }
}

/// The cycles of a pack, one block per timestamp in time order (each series' sample of that
/// moment), for a receiver that rejected the pack: sent one by one, a rejection then drops
/// only the samples of the moment that caused it, as before packing.
pub fn unpack(pack: &Block) -> Result<Vec<Block>, DecodeError> {
    let request = decode(&pack.data)?;
    let mut moments: BTreeMap<i64, Vec<TimeSeries>> = BTreeMap::new();
    for ts in request.timeseries {
        for sample in ts.samples {
            moments
                .entry(sample.timestamp)
                .or_default()
                .push(TimeSeries {
                    labels: ts.labels.clone(),
                    samples: vec![sample],
                });
        }
    }
    Ok(moments
        .into_iter()
        .map(|(timestamp, timeseries)| Block {
            samples: u32::try_from(timeseries.len()).unwrap_or(u32::MAX),
            data: compress(&prost::Message::encode_to_vec(&WriteRequest {
                timeseries,
                metadata: Vec::new(),
            })),
            min_timestamp_ms: timestamp,
            max_timestamp_ms: timestamp,
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::remote_write::encode;
    use crate::remote_write::proto::Sample;
    use crate::sample::{Batch, Family};

    fn cycle(ts: i64, users: &[&str]) -> Block {
        let mut streams = Family::gauge("jellyfin_user_streams", "");
        for (i, u) in users.iter().enumerate() {
            streams.push(vec![("user", (*u).into())], (ts + i as i64) as f64);
        }
        let families = vec![Family::gauge("jellyfin_up", "").with(vec![], 1.0), streams];
        encode(
            &Batch {
                timestamp_ms: ts,
                families,
            },
            &[],
        )
    }

    fn labels(ts: &TimeSeries) -> Vec<String> {
        ts.labels
            .iter()
            .map(|l| format!("{}={}", l.name, l.value))
            .collect()
    }

    /// Three cycles in which users come and go, and a packer holding them.
    fn three_cycles_packed() -> ([Block; 3], SeriesPacker) {
        let blocks = [
            cycle(1000, &["a", "b"]),
            cycle(2000, &["b"]),
            cycle(3000, &["a", "c"]),
        ];
        let mut packer = SeriesPacker::default();
        for b in &blocks {
            packer.add(b).unwrap();
        }
        (blocks, packer)
    }

    #[test]
    fn each_series_once_with_its_samples_in_order_and_every_sample_kept() {
        let (blocks, mut packer) = three_cycles_packed();
        let pack = packer.take().unwrap();
        assert!(packer.take().is_none(), "taken means empty");
        assert_eq!(pack.samples, 3 + 2 + 3);
        assert_eq!((pack.min_timestamp_ms, pack.max_timestamp_ms), (1000, 3000));
        let request = decode(&pack.data).unwrap();
        let got: Vec<(Vec<String>, Vec<Sample>)> = request
            .timeseries
            .iter()
            .map(|ts| (labels(ts), ts.samples.clone()))
            .collect();
        let s = |value: f64, timestamp: i64| Sample { value, timestamp };
        assert_eq!(
            got,
            vec![
                (
                    vec!["__name__=jellyfin_up".to_string()],
                    vec![s(1.0, 1000), s(1.0, 2000), s(1.0, 3000)]
                ),
                (
                    vec!["__name__=jellyfin_user_streams".into(), "user=a".into()],
                    vec![s(1000.0, 1000), s(3000.0, 3000)]
                ),
                (
                    vec!["__name__=jellyfin_user_streams".into(), "user=b".into()],
                    vec![s(1001.0, 1000), s(2000.0, 2000)]
                ),
                (
                    vec!["__name__=jellyfin_user_streams".into(), "user=c".into()],
                    vec![s(3001.0, 3000)]
                ),
            ]
        );
        let stored: usize = blocks.iter().map(|b| b.data.len()).sum();
        assert!(pack.data.len() < stored, "{} vs {stored}", pack.data.len());
    }

    #[test]
    fn a_pack_unpacks_into_its_cycles_in_time_order() {
        let (blocks, mut packer) = three_cycles_packed();
        let parts = unpack(&packer.take().unwrap()).unwrap();
        assert_eq!(parts.len(), 3);
        for (part, original) in parts.iter().zip(&blocks) {
            assert_eq!(
                (part.samples, part.min_timestamp_ms, part.max_timestamp_ms),
                (
                    original.samples,
                    original.min_timestamp_ms,
                    original.max_timestamp_ms
                )
            );
            let mut got = decode(&part.data).unwrap().timeseries;
            let mut want = decode(&original.data).unwrap().timeseries;
            got.sort_by_key(|t| format!("{:?}", t.labels));
            want.sort_by_key(|t| format!("{:?}", t.labels));
            assert_eq!(got, want);
        }
    }

    #[test]
    fn a_staleness_marker_keeps_its_bits_through_packing_and_unpacking() {
        use crate::sample::{STALE_NAN, STALE_NAN_BITS};
        let ended = Batch {
            timestamp_ms: 2000,
            families: vec![Family::gauge("jellyfin_up", "").with(vec![], STALE_NAN)],
        };
        let mut packer = SeriesPacker::default();
        packer.add(&cycle(1000, &[])).unwrap();
        packer.add(&encode(&ended, &[])).unwrap();
        let pack = packer.take().unwrap();
        let bits = |block: &Block| -> Vec<u64> {
            decode(&block.data).unwrap().timeseries[0]
                .samples
                .iter()
                .map(|s| s.value.to_bits())
                .collect()
        };
        assert_eq!(bits(&pack), [1f64.to_bits(), STALE_NAN_BITS]);
        let parts = unpack(&pack).unwrap();
        assert_eq!(bits(&parts[1]), [STALE_NAN_BITS]);
    }

    #[test]
    fn packs_are_bounded_and_unreadable_blocks_refused() {
        let mut packer = SeriesPacker::default();
        let mut cycles = 0;
        while !packer.is_full() {
            packer.add(&cycle(cycles, &["a", "b", "c", "d"])).unwrap();
            cycles += 1;
        }
        assert_eq!(cycles as usize, PACK_SAMPLES.div_ceil(5));
        // Long cycles: the span ends the pack first.
        let mut long = SeriesPacker::default();
        let mut n = 0;
        while !long.is_full() {
            long.add(&cycle(n * 15_000, &["a"])).unwrap();
            n += 1;
        }
        assert_eq!(n, PACK_SPAN_MS / 15_000 + 1);
        let pack = packer.take().unwrap();
        assert!(pack.data.len() < 1 << 20, "{} bytes", pack.data.len());
        let garbage = Block {
            data: bytes::Bytes::from_static(b"not snappy at all"),
            ..pack
        };
        assert!(packer.add(&garbage).is_err());
    }
}
