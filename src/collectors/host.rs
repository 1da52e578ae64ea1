//! `host`: the memory and network figures of the machine Jellyfin runs on, from
//! /proc/meminfo and /proc/net/dev, named as node_exporter names them so the plan's
//! memory-pressure alert and network panels work unchanged.

use std::path::PathBuf;

use super::{CollectError, Collector};
use crate::sample::{Family, label_value};

pub struct Host {
    proc_root: PathBuf,
}

impl Host {
    pub fn new(proc_root: PathBuf) -> Self {
        Host { proc_root }
    }
}

/// (MemTotal, MemAvailable) in bytes.
pub fn parse_meminfo(text: &str) -> Option<(f64, f64)> {
    let kib = |key: &str| -> Option<f64> {
        let line = text.lines().find(|l| l.starts_with(key))?;
        Some(
            line[key.len()..]
                .split_whitespace()
                .next()?
                .parse::<f64>()
                .ok()?
                * 1024.0,
        )
    };
    Some((kib("MemTotal:")?, kib("MemAvailable:")?))
}

/// (device, received bytes, transmitted bytes) per interface.
pub fn parse_net_dev(text: &str) -> Vec<(String, f64, f64)> {
    text.lines()
        .skip(2)
        .filter_map(|line| {
            let (device, counters) = line.split_once(':')?;
            let f: Vec<f64> = counters
                .split_whitespace()
                .filter_map(|v| v.parse().ok())
                .collect();
            Some((label_value(device), *f.first()?, *f.get(8)?))
        })
        .collect()
}

#[async_trait::async_trait]
impl Collector for Host {
    fn name(&self) -> &'static str {
        "host"
    }

    async fn collect(&mut self, out: &mut Vec<Family>) -> Result<(), CollectError> {
        let meminfo = std::fs::read_to_string(self.proc_root.join("meminfo"))?;
        let (total, available) =
            parse_meminfo(&meminfo).ok_or("/proc/meminfo lacks MemTotal or MemAvailable")?;
        out.push(
            Family::gauge("node_memory_MemTotal_bytes", "Memory of the host.").with(vec![], total),
        );
        out.push(
            Family::gauge(
                "node_memory_MemAvailable_bytes",
                "Memory available for new work on the host.",
            )
            .with(vec![], available),
        );
        let net = std::fs::read_to_string(self.proc_root.join("net/dev"))?;
        let mut received = Family::counter(
            "node_network_receive_bytes_total",
            "Bytes received, per interface.",
        );
        let mut sent = Family::counter(
            "node_network_transmit_bytes_total",
            "Bytes sent, per interface.",
        );
        for (device, rx, tx) in parse_net_dev(&net) {
            received.push(vec![("device", device.clone())], rx);
            sent.push(vec![("device", device)], tx);
        }
        out.extend([received, sent]);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn meminfo_and_net_dev() {
        let meminfo =
            "MemTotal:       16384000 kB\nMemFree:         1000 kB\nMemAvailable:    8192000 kB\n";
        assert_eq!(
            parse_meminfo(meminfo),
            Some((16_384_000.0 * 1024.0, 8_192_000.0 * 1024.0))
        );
        let dev = "Inter-|   Receive                                                |  Transmit\n \
                   face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed\n    \
                   lo: 1000      10    0    0    0     0          0         0     1000      10    0    0    0     0       0          0\n  \
                   eth0: 123456789 1000    0    0    0     0          0         0 987654321  900    0    0    0     0       0          0\n";
        assert_eq!(
            parse_net_dev(dev),
            [
                ("lo".to_string(), 1000.0, 1000.0),
                ("eth0".to_string(), 123_456_789.0, 987_654_321.0)
            ]
        );
    }
}
