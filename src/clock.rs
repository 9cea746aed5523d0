//! Time, behind a trait so tests can set it; nothing deeper reads the system clock.
//! Also calendar dates (UTC), for enrollment deadlines and log stamps.

#![forbid(unsafe_code)]

use std::fmt;
use std::time::{SystemTime, UNIX_EPOCH};

pub trait Clock {
    /// Seconds since the Unix epoch.
    fn now(&self) -> u64;

    /// Today's date in UTC.
    fn today(&self) -> Date {
        Date::from_unix(self.now())
    }
}

/// The system's real-time clock. A clock set before 1970 reads as 0.
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> u64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0)
    }
}

/// A clock that always reads the same time, for tests.
pub struct FixedClock(pub u64);

impl Clock for FixedClock {
    fn now(&self) -> u64 {
        self.0
    }
}

/// A calendar date. Orders chronologically.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Date {
    pub year: i64,
    pub month: u8,
    pub day: u8,
}

impl Date {
    /// A valid date, or None.
    pub fn new(year: i64, month: u8, day: u8) -> Option<Date> {
        let leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
        let days = match month {
            1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
            4 | 6 | 9 | 11 => 30,
            2 if leap => 29,
            2 => 28,
            _ => return None,
        };
        (1..=days)
            .contains(&day)
            .then_some(Date { year, month, day })
    }

    /// The UTC date of a Unix time (Howard Hinnant's civil-from-days).
    pub fn from_unix(secs: u64) -> Date {
        let z = (secs / 86_400) as i64 + 719_468;
        let era = z.div_euclid(146_097);
        let doe = z.rem_euclid(146_097);
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        let mp = (5 * doy + 2) / 153;
        let day = (doy - (153 * mp + 2) / 5 + 1) as u8;
        let month = if mp < 10 { mp + 3 } else { mp - 9 } as u8;
        let year = yoe + era * 400 + i64::from(month <= 2);
        Date { year, month, day }
    }

    pub fn month_abbreviation(self) -> &'static str {
        const MONTHS: [&str; 12] = [
            "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
        ];
        MONTHS[usize::from(self.month.clamp(1, 12) - 1)]
    }
}

/// A Unix time as `YYYY-MM-DD hh:mm:ss UTC`.
pub fn format_utc(secs: u64) -> String {
    let of_day = secs % 86_400;
    format!(
        "{} {:02}:{:02}:{:02} UTC",
        Date::from_unix(secs),
        of_day / 3600,
        of_day / 60 % 60,
        of_day % 60
    )
}

/// A Unix time as ISO 8601 in UTC, `YYYY-MM-DDThh:mm:ssZ`, for the audit line.
pub fn format_iso8601(secs: u64) -> String {
    let of_day = secs % 86_400;
    format!(
        "{}T{:02}:{:02}:{:02}Z",
        Date::from_unix(secs),
        of_day / 3600,
        of_day / 60 % 60,
        of_day % 60
    )
}

/// A Unix time in the local time zone of this process (`TZ`, else /etc/localtime), with
/// its offset: `YYYY-MM-DD hh:mm:ss +01:00`. For what a user reads at the prompt; falls
/// back to UTC where the zone cannot place the time.
pub fn format_local(secs: u64) -> String {
    use chrono::TimeZone as _;
    let local = i64::try_from(secs)
        .ok()
        .and_then(|secs| chrono::Local.timestamp_opt(secs, 0).single());
    match local {
        Some(time) => time.format("%Y-%m-%d %H:%M:%S %:z").to_string(),
        None => format_utc(secs),
    }
}

impl fmt::Display for Date {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:04}-{:02}-{:02}", self.year, self.month, self.day)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn calendar_dates() {
        assert_eq!(Date::from_unix(0), Date::new(1970, 1, 1).unwrap());
        assert_eq!(
            Date::from_unix(19_782 * 86_400),
            Date::new(2024, 2, 29).unwrap()
        );
        assert_eq!(
            Date::from_unix(20_818 * 86_400 + 86_399),
            Date::new(2026, 12, 31).unwrap()
        );
        assert_eq!(Date::from_unix(1_700_000_000).to_string(), "2023-11-14");
    }

    #[test]
    fn utc_times() {
        assert_eq!(format_utc(1_700_000_000), "2023-11-14 22:13:20 UTC");
    }

    #[test]
    fn iso8601_times() {
        assert_eq!(format_iso8601(1_700_000_000), "2023-11-14T22:13:20Z");
        assert_eq!(format_iso8601(0), "1970-01-01T00:00:00Z");
    }

    #[test]
    fn invalid_dates_are_refused() {
        assert!(Date::new(2027, 2, 29).is_none());
        assert!(Date::new(2028, 2, 29).is_some());
        assert!(Date::new(2027, 13, 1).is_none());
        assert!(Date::new(2027, 4, 31).is_none());
    }

    #[test]
    fn dates_order_chronologically() {
        assert!(Date::new(2027, 1, 31).unwrap() > Date::new(2026, 12, 31).unwrap());
        assert!(Date::new(2027, 2, 1).unwrap() > Date::new(2027, 1, 31).unwrap());
    }
}
