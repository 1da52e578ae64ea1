//! Batch -> WriteRequest -> protobuf -> snappy (block format, as remote write 1.0 requires;
//! the framed/stream format is a different encoding that receivers reject).
//!
//! The WriteRequest is written field by field from the batch's own strings, the bytes prost
//! would write for the same message (a test compares them): building prost's messages first
//! cost two `String`s per label and two `Vec`s per series, a few thousand allocations a cycle.

use bytes::Bytes;
use prost::encoding::{encode_varint, encoded_len_varint};

use super::proto::WriteRequest;
use crate::queue::Block;
use crate::sample::Batch;

/// Field keys (field number << 3 | wire type) of proto/remote.proto.
const WRITE_REQUEST_TIMESERIES: u8 = 1 << 3 | 2;
const TIMESERIES_LABELS: u8 = 1 << 3 | 2;
const TIMESERIES_SAMPLES: u8 = 2 << 3 | 2;
const LABEL_NAME: u8 = 1 << 3 | 2;
const LABEL_VALUE: u8 = 2 << 3 | 2;
const SAMPLE_VALUE: u8 = 1 << 3 | 1;
const SAMPLE_TIMESTAMP: u8 = 2 << 3;

/// Encodes every sample of `batch` as one series with one sample. Labels are the static ones
/// from the config plus the sample's own plus `__name__`, sorted by name as the spec requires;
/// when a sample's label has the same name as a static one, the sample's label wins.
pub fn encode(batch: &Batch, static_labels: &[(String, String)]) -> Block {
    let mut raw = Vec::with_capacity(64 * batch.sample_count());
    let mut labels: Vec<(&str, &str)> = Vec::new();
    let mut samples = 0u32;
    for family in &batch.families {
        for sample in &family.samples {
            labels.clear();
            labels.push(("__name__", family.name));
            labels.extend(sample.labels.iter().map(|(k, v)| (*k, v.as_str())));
            for (k, v) in static_labels {
                if !labels.iter().any(|l| l.0 == k) {
                    labels.push((k, v));
                }
            }
            labels.sort_by(|a, b| a.0.cmp(b.0));
            write_series(&mut raw, &labels, sample.value, batch.timestamp_ms);
            samples = samples.saturating_add(1);
        }
    }
    Block {
        data: compress(&raw),
        samples,
        min_timestamp_ms: batch.timestamp_ms,
        max_timestamp_ms: batch.timestamp_ms,
    }
}

/// One `timeseries` entry of a WriteRequest: its labels and one sample. As prost does, a
/// field that holds its default (an empty string, a 0 value or timestamp) is left out.
fn write_series(raw: &mut Vec<u8>, labels: &[(&str, &str)], value: f64, timestamp: i64) {
    let string_len = |s: &str| {
        if s.is_empty() {
            0
        } else {
            1 + encoded_len_varint(s.len() as u64) + s.len()
        }
    };
    let label_len = |(k, v): (&str, &str)| string_len(k) + string_len(v);
    let sample_len = if value != 0.0 { 9 } else { 0 }
        + if timestamp != 0 {
            1 + encoded_len_varint(timestamp as u64)
        } else {
            0
        };
    let series_len: usize = labels
        .iter()
        .map(|&l| {
            let len = label_len(l);
            1 + encoded_len_varint(len as u64) + len
        })
        .sum::<usize>()
        + 1
        + encoded_len_varint(sample_len as u64)
        + sample_len;
    raw.push(WRITE_REQUEST_TIMESERIES);
    encode_varint(series_len as u64, raw);
    let string = |raw: &mut Vec<u8>, key: u8, s: &str| {
        if !s.is_empty() {
            raw.push(key);
            encode_varint(s.len() as u64, raw);
            raw.extend_from_slice(s.as_bytes());
        }
    };
    for &(k, v) in labels {
        raw.push(TIMESERIES_LABELS);
        encode_varint(label_len((k, v)) as u64, raw);
        string(raw, LABEL_NAME, k);
        string(raw, LABEL_VALUE, v);
    }
    raw.push(TIMESERIES_SAMPLES);
    encode_varint(sample_len as u64, raw);
    if value != 0.0 {
        raw.push(SAMPLE_VALUE);
        raw.extend_from_slice(&value.to_bits().to_le_bytes());
    }
    if timestamp != 0 {
        raw.push(SAMPLE_TIMESTAMP);
        encode_varint(timestamp as u64, raw);
    }
}

/// The uncompressed WriteRequest of `batch` as `encode` made it before: through prost's
/// messages, built from the batch and encoded. The reference the new bytes are checked against
/// (tests) and the cost is compared with (`cargo bench --bench collect`).
pub fn encode_via_prost(batch: &Batch, static_labels: &[(String, String)]) -> Vec<u8> {
    use super::proto::{Label, Sample, TimeSeries};
    use prost::Message;
    let mut timeseries = Vec::new();
    for family in &batch.families {
        for sample in &family.samples {
            let mut labels = vec![Label {
                name: "__name__".into(),
                value: family.name.into(),
            }];
            labels.extend(sample.labels.iter().map(|(k, v)| Label {
                name: (*k).into(),
                value: v.clone(),
            }));
            for (k, v) in static_labels {
                if !labels.iter().any(|l| &l.name == k) {
                    labels.push(Label {
                        name: k.clone(),
                        value: v.clone(),
                    });
                }
            }
            labels.sort_by(|a, b| a.name.cmp(&b.name));
            timeseries.push(TimeSeries {
                labels,
                samples: vec![Sample {
                    value: sample.value,
                    timestamp: batch.timestamp_ms,
                }],
            });
        }
    }
    WriteRequest {
        timeseries,
        metadata: Vec::new(),
    }
    .encode_to_vec()
}

pub(super) fn compress(raw: &[u8]) -> Bytes {
    // snap's block encoder cannot fail on input below 4 GiB, and a batch is never near that;
    // an empty body would still be a valid (empty) WriteRequest, so fall back to it.
    Bytes::from(
        snap::raw::Encoder::new()
            .compress_vec(raw)
            .unwrap_or_default(),
    )
}

/// A stored block that is not what the encoder makes.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    #[error("not a snappy block: {0}")]
    Snappy(#[from] snap::Error),
    #[error("not a WriteRequest: {0}")]
    Protobuf(#[from] prost::DecodeError),
}

/// One request body carrying several blocks, in order. A WriteRequest is a repeated field,
/// so concatenated encodings decode as one request holding every series of every block:
/// merging costs a decompression and one compression, no protobuf decoding. How the sender
/// merged blocks before [`super::splice`], which joins them as stored; kept as the reference
/// the tests and the queue bench compare with.
pub fn merge<'a>(blocks: impl IntoIterator<Item = &'a Block>) -> Result<Bytes, DecodeError> {
    let mut raw = Vec::new();
    let mut decoder = snap::raw::Decoder::new();
    for block in blocks {
        raw.extend(decoder.decompress_vec(&block.data)?);
    }
    Ok(compress(&raw))
}

/// Decompresses and decodes a block body (the packer, the tests and the benches).
pub fn decode(data: &[u8]) -> Result<WriteRequest, DecodeError> {
    use prost::Message;
    let raw = snap::raw::Decoder::new().decompress_vec(data)?;
    Ok(WriteRequest::decode(raw.as_slice())?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::remote_write::proto::{Sample, TimeSeries};
    use crate::sample::{Family, STALE_NAN};

    /// The bytes are prost's to the last one, defaults left out as prost leaves them: empty
    /// label values, a 0 (and -0) value, a 0 timestamp; NaNs, the marker, long strings.
    #[test]
    fn the_bytes_are_those_prost_writes() {
        let long = "x".repeat(300);
        let values = [
            0.0,
            -0.0,
            1.0,
            -2.5,
            f64::NAN,
            STALE_NAN,
            f64::INFINITY,
            1e300,
        ];
        let mut family = Family::gauge("jellyfin_bandwidth_bytes_per_second", "B.");
        for (i, value) in values.into_iter().enumerate() {
            family.push(
                vec![("user", format!("u{i}")), ("empty", String::new())],
                value,
            );
        }
        family.push(vec![("job", "mine".into()), ("Z", long.clone())], 3.0);
        family.push(vec![], 4.0);
        let statics = vec![
            ("instance".to_string(), "dmz".to_string()),
            ("job".to_string(), "jellyfin".to_string()),
            ("blank".to_string(), String::new()),
        ];
        for timestamp_ms in [0, 1, 1_700_000_000_123, i64::MAX, -5] {
            let batch = Batch {
                timestamp_ms,
                families: vec![family.clone(), batch().families[1].clone()],
            };
            for statics in [&statics[..], &[]] {
                let block = encode(&batch, statics);
                let raw = snap::raw::Decoder::new()
                    .decompress_vec(&block.data)
                    .unwrap();
                assert_eq!(raw, encode_via_prost(&batch, statics), "at {timestamp_ms}");
                assert_eq!(block.samples as usize, batch.sample_count());
            }
        }
        let empty = Batch {
            timestamp_ms: 5,
            families: vec![],
        };
        assert_eq!(encode(&empty, &statics).samples, 0);
        assert!(
            decode(&encode(&empty, &statics).data)
                .unwrap()
                .timeseries
                .is_empty()
        );
    }

    fn batch() -> Batch {
        Batch {
            timestamp_ms: 1_700_000_000_123,
            families: vec![
                Family::gauge("jellyfin_up", "Up.").with(vec![], 1.0),
                Family::gauge("jellyfin_info", "Info.").with(
                    vec![
                        ("version", "10.11.11".into()),
                        ("Zone", "x".into()),
                        ("job", "mine".into()),
                    ],
                    1.0,
                ),
            ],
        }
    }

    #[test]
    fn round_trips_with_sorted_labels_and_the_batch_timestamp() {
        let statics = vec![
            ("instance".to_string(), "dmz".to_string()),
            ("job".to_string(), "jellyfin".to_string()),
        ];
        let block = encode(&batch(), &statics);
        assert_eq!(block.samples, 2);
        assert_eq!(
            (block.min_timestamp_ms, block.max_timestamp_ms),
            (1_700_000_000_123, 1_700_000_000_123)
        );
        let request = decode(&block.data).unwrap();
        let names = |ts: &TimeSeries| {
            ts.labels
                .iter()
                .map(|l| format!("{}={}", l.name, l.value))
                .collect::<Vec<_>>()
        };
        assert_eq!(
            names(&request.timeseries[0]),
            ["__name__=jellyfin_up", "instance=dmz", "job=jellyfin"]
        );
        // Byte order: upper case sorts before `_`; the sample's `job` beats the static one.
        assert_eq!(
            names(&request.timeseries[1]),
            [
                "Zone=x",
                "__name__=jellyfin_info",
                "instance=dmz",
                "job=mine",
                "version=10.11.11"
            ]
        );
        assert_eq!(
            request.timeseries[1].samples,
            vec![Sample {
                value: 1.0,
                timestamp: 1_700_000_000_123
            }]
        );
    }

    #[test]
    fn merged_blocks_decode_as_one_request_with_every_series_in_order() {
        let a = encode(&batch(), &[]);
        let later = Batch {
            timestamp_ms: batch().timestamp_ms + 15_000,
            ..batch()
        };
        let b = encode(&later, &[]);
        let merged = decode(&merge([&a, &b]).unwrap()).unwrap();
        let (da, db) = (decode(&a.data).unwrap(), decode(&b.data).unwrap());
        assert_eq!(merged.timeseries, [da.timeseries, db.timeseries].concat());
    }

    /// A staleness marker is recognised by its bits alone: they must survive encoding, the
    /// disk buffer (written, reopened, read back), the merge of a backlog into one request,
    /// and the packing of a long outage (and unpacking of a rejected pack).
    #[test]
    fn the_staleness_marker_arrives_bit_exact_through_buffer_and_merge() {
        use crate::queue::{Options, Queue};
        use crate::sample::{STALE_NAN, STALE_NAN_BITS};
        let ended = Batch {
            timestamp_ms: batch().timestamp_ms + 15_000,
            families: vec![
                Family::gauge("jellyfin_transcode_speed_ratio", "Speed.")
                    .with(vec![("stat", "min".into())], STALE_NAN),
            ],
        };
        let dir = tempfile::tempdir().unwrap();
        let opts = Options {
            max_size: 1 << 20,
            max_age: std::time::Duration::from_secs(3600),
            segment_size: 1 << 16,
            memory_fallback_size: 1 << 16,
        };
        let stats = std::sync::Arc::new(crate::stats::RemoteStats::default());
        let queue = Queue::open(dir.path(), opts, stats.clone()).unwrap();
        queue.append(encode(&batch(), &[]));
        queue.append(encode(&ended, &[]));
        queue.sync();
        drop(queue);
        let queue = Queue::open(dir.path(), opts, stats).unwrap();
        let crate::queue::Take::Batch(pending) =
            queue.take(ended.timestamp_ms, 10, 1 << 20, false).unwrap()
        else {
            panic!("the two stored blocks are not deliverable");
        };
        assert_eq!(pending.len(), 2);
        let merged = decode(&merge(pending.iter().map(|p| &p.block)).unwrap()).unwrap();
        let last = merged.timeseries.last().unwrap();
        assert_eq!(last.samples.len(), 1);
        assert_eq!(last.samples[0].value.to_bits(), STALE_NAN_BITS);
        assert_eq!(last.samples[0].timestamp, ended.timestamp_ms);
        // A long outage's segments are packed (series once, their samples together) and a
        // rejected pack is unpacked into its moments: the marker survives both.
        let mut packer = crate::remote_write::pack::new_packer();
        for p in &pending {
            crate::queue::Packer::add(packer.as_mut(), &p.block).unwrap();
        }
        let pack = crate::queue::Packer::take(packer.as_mut()).unwrap();
        let marker_bits = |data: &[u8]| -> Vec<u64> {
            decode(data)
                .unwrap()
                .timeseries
                .iter()
                .filter(|ts| {
                    ts.labels
                        .iter()
                        .any(|l| l.value == "jellyfin_transcode_speed_ratio")
                })
                .flat_map(|ts| ts.samples.iter().map(|s| s.value.to_bits()))
                .collect()
        };
        assert_eq!(marker_bits(&pack.data), [STALE_NAN_BITS]);
        let moments = crate::remote_write::pack::unpack(&pack).unwrap();
        assert_eq!(marker_bits(&moments[1].data), [STALE_NAN_BITS]);
        // Any other NaN would not be a marker: the bits are the whole message.
        assert_ne!(f64::NAN.to_bits(), STALE_NAN_BITS);
    }

    #[test]
    fn body_is_a_raw_snappy_block_not_the_framed_format() {
        let block = encode(&batch(), &[]);
        // The framed format starts with the stream identifier chunk 0xff 06 00 00 "sNaPpY".
        assert_ne!(block.data.first(), Some(&0xff));
        assert!(
            snap::raw::Decoder::new()
                .decompress_vec(&block.data)
                .is_ok()
        );
        let mut framed = Vec::new();
        std::io::Write::write_all(&mut snap::write::FrameEncoder::new(&mut framed), b"x").unwrap();
        assert!(
            decode(&framed).is_err(),
            "a framed stream must not pass as a block"
        );
    }
}
