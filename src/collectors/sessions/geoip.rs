//! Optional country count of sessions (`collectors.sessions.geoip_database`, a MaxMind
//! GeoIP2/GeoLite2 Country database). The address is looked up in memory and dropped: it is
//! never a label, logged or pushed. Without a database nothing is looked up.

use std::net::{IpAddr, SocketAddr};
use std::path::Path;

use maxminddb::Reader;
use maxminddb::geoip2::Country;

use crate::jellyfin::dto::Session;
use crate::sample::Family;

pub struct GeoIp {
    reader: Reader<Vec<u8>>,
}

/// The database named by `geoip_database` cannot be used.
#[derive(Debug, thiserror::Error)]
#[error("geoip_database {}: {source}", path.display())]
pub struct GeoIpError {
    path: std::path::PathBuf,
    source: maxminddb::MaxMindDbError,
}

impl GeoIp {
    pub fn open(path: &Path) -> Result<GeoIp, GeoIpError> {
        let reader = Reader::open_readfile(path).map_err(|source| GeoIpError {
            path: path.to_path_buf(),
            source,
        })?;
        Ok(GeoIp { reader })
    }

    /// ISO country code of an address as Jellyfin reports it (an address, or address:port).
    pub fn country(&self, remote: &str) -> Option<String> {
        let ip: IpAddr = remote
            .parse()
            .ok()
            .or_else(|| remote.parse::<SocketAddr>().ok().map(|s| s.ip()))?;
        let found = self.reader.lookup(ip).ok()?;
        let record: Country<'_> = found.decode().ok()??;
        record.country.iso_code.map(str::to_string)
    }

    /// Sessions per country; `unknown` for addresses the database does not place (private
    /// networks, for one).
    pub fn family(&self, sessions: &[Session]) -> Family {
        let mut counts = std::collections::BTreeMap::new();
        for session in sessions {
            let country = session
                .remote_end_point
                .as_deref()
                .and_then(|r| self.country(r))
                .unwrap_or_else(|| "unknown".into());
            *counts.entry(country).or_insert(0.0) += 1.0;
        }
        let mut family = Family::gauge(
            "jellyfin_sessions_by_country",
            "Active sessions by the client's country (GeoIP).",
        );
        for (country, n) in counts {
            family.push(vec![("country", country)], n);
        }
        family
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DB: &str = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/geoip/GeoLite2-Country-Test.mmdb"
    );

    #[test]
    fn countries_of_the_test_database_and_unknown_for_the_rest() {
        let geoip = GeoIp::open(Path::new(DB)).unwrap();
        assert_eq!(geoip.country("81.2.69.142").as_deref(), Some("GB"));
        assert_eq!(geoip.country("[2001:218::1]:8096").as_deref(), Some("JP"));
        assert_eq!(geoip.country("89.160.20.113:51234").as_deref(), Some("SE"));
        assert_eq!(geoip.country("192.168.1.1"), None);
        let sessions: Vec<Session> = serde_json::from_str(
            r#"[{"RemoteEndPoint":"81.2.69.142"},{"RemoteEndPoint":"81.2.69.150"},{"RemoteEndPoint":"216.160.83.57"},{"RemoteEndPoint":"192.168.1.1"},{}]"#,
        )
        .unwrap();
        let family = geoip.family(&sessions);
        let got: Vec<(String, f64)> = family
            .samples
            .iter()
            .map(|s| (s.labels[0].1.clone(), s.value))
            .collect();
        assert_eq!(
            got,
            [
                ("GB".to_string(), 2.0),
                ("US".to_string(), 1.0),
                ("unknown".to_string(), 2.0)
            ]
        );
    }

    #[test]
    fn a_missing_database_is_named() {
        let err = GeoIp::open(Path::new("/nonexistent/country.mmdb"))
            .err()
            .unwrap()
            .to_string();
        assert!(
            err.contains("geoip_database /nonexistent/country.mmdb"),
            "{err}"
        );
    }
}
