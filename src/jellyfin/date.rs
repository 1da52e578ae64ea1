//! Jellyfin's timestamps: ISO 8601 in UTC (`2026-11-25T09:14:03.1234567Z`, 0 to 7 fraction
//! digits; a missing zone is UTC too, as the server stores UTC). To milliseconds since the
//! epoch and back for the activity-log cursor and the playback matching; to a `SystemTime`,
//! fraction kept, for the task durations (some last microseconds) and the inventory's dates.

/// The time as a `SystemTime`, every fraction digit kept; None when it is not such a time.
pub fn parse_time(text: &str) -> Option<std::time::SystemTime> {
    humantime::parse_rfc3339_weak(text.trim_end_matches('Z')).ok()
}

/// Milliseconds since the epoch, or None for anything that is not such a timestamp.
pub fn parse_ms(text: &str) -> Option<i64> {
    let text = text.trim();
    let text = text
        .strip_suffix('Z')
        .or_else(|| text.strip_suffix("+00:00"))
        .unwrap_or(text);
    let (date, time) = text.split_once('T')?;
    let mut ymd = date.splitn(3, '-').map(|p| p.parse::<i64>().ok());
    let (year, month, day) = (ymd.next()??, ymd.next()??, ymd.next()??);
    let (hms, fraction) = time.split_once('.').unwrap_or((time, ""));
    let mut parts = hms.splitn(3, ':').map(|p| p.parse::<i64>().ok());
    let (hour, minute, second) = (parts.next()??, parts.next()??, parts.next()??);
    if !(1..=12).contains(&month)
        || !(1..=31).contains(&day)
        || hour > 23
        || minute > 59
        || second > 60
        || !fraction.bytes().all(|b| b.is_ascii_digit())
    {
        return None;
    }
    let millis: i64 = format!("{fraction:0<3}")[..3].parse().ok()?;
    let days = days_from_civil(year, month, day);
    Some(((days * 24 + hour) * 60 + minute) * 60_000 + second * 1000 + millis)
}

/// The timestamp in the server's own format (7 fraction digits, `Z`), for `minDate`.
pub fn format_ms(ms: i64) -> String {
    let days = ms.div_euclid(86_400_000);
    let rest = ms.rem_euclid(86_400_000);
    let (year, month, day) = civil_from_days(days);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}0000Z",
        rest / 3_600_000,
        rest / 60_000 % 60,
        rest / 1000 % 60,
        rest % 1000
    )
}

/// Days since 1970-01-01 (Howard Hinnant's algorithm, proleptic Gregorian).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_servers_formats_and_round_trips() {
        let ms = parse_ms("2026-11-25T09:14:03.1234567Z").unwrap();
        assert_eq!(ms, 1_795_598_043_123);
        assert_eq!(format_ms(ms), "2026-11-25T09:14:03.1230000Z");
        assert_eq!(parse_ms("2026-11-25T09:14:03Z"), Some(1_795_598_043_000));
        assert_eq!(parse_ms("2026-11-25T09:14:03.5"), Some(1_795_598_043_500));
        assert_eq!(parse_ms("2024-02-29T00:00:00Z"), Some(1_709_164_800_000));
        assert_eq!(format_ms(0), "1970-01-01T00:00:00.0000000Z");
    }

    #[test]
    fn rejects_what_is_not_a_timestamp() {
        for bad in [
            "",
            "yesterday",
            "2026-13-01T00:00:00Z",
            "2026-11-25 09:14:03",
            "2026-11-25T09:14:03.x",
        ] {
            assert_eq!(parse_ms(bad), None, "{bad}");
        }
    }
}
