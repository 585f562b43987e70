//! Weekly business hours in a company's time zone, plus holiday dates.

use std::collections::BTreeSet;
use std::fmt;

use chrono::{DateTime, Datelike, NaiveDate, NaiveTime, Timelike, Utc, Weekday};
use chrono_tz::Tz;

/// Days of the week a range applies to, as a bit set (bit 0 = Monday).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Days(u8);

impl Days {
    fn contains(self, day: Weekday) -> bool {
        self.0 & (1 << day.num_days_from_monday()) != 0
    }
}

/// One line of opening hours, such as `mon-fri 08:00-18:00`. A range whose close is not after its
/// open runs past midnight into the next day (`fri 22:00-02:00`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WeeklyHours {
    pub days: Days,
    /// Minutes since midnight.
    pub open: u32,
    /// Minutes since midnight; 1440 for `24:00`.
    pub close: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "`{input}` is not a business-hours range: {reason} (expected like \"mon-fri 08:00-18:00\")"
)]
pub struct InvalidHours {
    pub input: String,
    pub reason: String,
}

const DAY_NAMES: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];

fn parse_day(s: &str) -> Option<u32> {
    let lower = s.to_ascii_lowercase();
    let short = lower.get(..3)?;
    let idx = DAY_NAMES.iter().position(|d| *d == short)?;
    // Accept "mon" and "monday", nothing in between like "mond".
    let full = [
        "monday",
        "tuesday",
        "wednesday",
        "thursday",
        "friday",
        "saturday",
        "sunday",
    ][idx];
    (lower == short || lower == full).then_some(idx as u32)
}

fn parse_time(s: &str) -> Option<u32> {
    if s == "24:00" {
        return Some(1440);
    }
    let t = NaiveTime::parse_from_str(s, "%H:%M").ok()?;
    Some(t.hour() * 60 + t.minute())
}

impl WeeklyHours {
    pub fn parse(input: &str) -> Result<Self, InvalidHours> {
        let err = |reason: &str| InvalidHours {
            input: input.to_owned(),
            reason: reason.to_owned(),
        };
        let (days_part, times_part) = input
            .trim()
            .split_once(char::is_whitespace)
            .ok_or_else(|| err("days and times must be separated by a space"))?;
        let mut days = 0u8;
        for item in days_part.split(',') {
            match item.split_once('-') {
                Some((a, b)) => {
                    let (a, b) = (parse_day(a), parse_day(b));
                    let (Some(a), Some(b)) = (a, b) else {
                        return Err(err("unknown day name"));
                    };
                    // Wrap around the week: sat-mon is Saturday, Sunday, Monday.
                    let mut d = a;
                    loop {
                        days |= 1 << d;
                        if d == b {
                            break;
                        }
                        d = (d + 1) % 7;
                    }
                }
                None => days |= 1 << parse_day(item).ok_or_else(|| err("unknown day name"))?,
            }
        }
        let (open, close) = times_part
            .trim()
            .split_once('-')
            .ok_or_else(|| err("times must be written HH:MM-HH:MM"))?;
        let open = parse_time(open.trim())
            .filter(|m| *m < 1440)
            .ok_or_else(|| err("bad opening time"))?;
        let close = parse_time(close.trim()).ok_or_else(|| err("bad closing time"))?;
        if open == close {
            return Err(err("opening and closing times are equal"));
        }
        Ok(Self {
            days: Days(days),
            open,
            close,
        })
    }

    fn covers(&self, day: Weekday, minute: u32) -> bool {
        if self.close > self.open {
            self.days.contains(day) && (self.open..self.close).contains(&minute)
        } else {
            (self.days.contains(day) && minute >= self.open)
                || (self.days.contains(day.pred()) && minute < self.close)
        }
    }
}

impl fmt::Display for WeeklyHours {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let days: Vec<&str> = (0..7)
            .filter(|d| self.days.0 & (1 << d) != 0)
            .map(|d| DAY_NAMES[d as usize])
            .collect();
        write!(
            f,
            "{} {:02}:{:02}-{:02}:{:02}",
            days.join(","),
            self.open / 60,
            self.open % 60,
            self.close / 60,
            self.close % 60
        )
    }
}

/// Whether `now` falls on one of `dates` in the given time zone.
pub fn is_holiday(now: DateTime<Utc>, tz: Tz, dates: &BTreeSet<NaiveDate>) -> bool {
    !dates.is_empty() && dates.contains(&now.with_timezone(&tz).date_naive())
}

/// Whether a business is open at `now`: not on a holiday (a local date) and inside one of the ranges.
pub fn is_open(
    now: DateTime<Utc>,
    tz: Tz,
    hours: &[WeeklyHours],
    holidays: &BTreeSet<NaiveDate>,
) -> bool {
    let local = now.with_timezone(&tz);
    if holidays.contains(&local.date_naive()) {
        return false;
    }
    let minute = local.hour() * 60 + local.minute();
    hours.iter().any(|h| h.covers(local.weekday(), minute))
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use proptest::prelude::*;

    fn ny(y: i32, m: u32, d: u32, hh: u32, mm: u32) -> DateTime<Utc> {
        chrono_tz::America::New_York
            .with_ymd_and_hms(y, m, d, hh, mm, 0)
            .single()
            .unwrap()
            .with_timezone(&Utc)
    }

    #[test]
    fn weekday_hours_in_local_time() {
        let hours = [WeeklyHours::parse("mon-fri 08:00-18:00").unwrap()];
        let none = BTreeSet::new();
        let tz = chrono_tz::America::New_York;
        // 2026-11-23 is a Monday.
        assert!(is_open(ny(2026, 11, 23, 8, 0), tz, &hours, &none));
        assert!(is_open(ny(2026, 11, 23, 17, 59), tz, &hours, &none));
        assert!(!is_open(ny(2026, 11, 23, 18, 0), tz, &hours, &none));
        assert!(!is_open(ny(2026, 11, 23, 7, 59), tz, &hours, &none));
        assert!(
            !is_open(ny(2026, 11, 28, 12, 0), tz, &hours, &none),
            "Saturday"
        );
        // 13:00 UTC is 08:00 in New York in winter: open there, though 13:00 is not 08:00.
        assert!(is_open(
            Utc.with_ymd_and_hms(2026, 11, 23, 13, 0, 0).unwrap(),
            tz,
            &hours,
            &none
        ));
        assert!(!is_open(
            Utc.with_ymd_and_hms(2026, 11, 23, 12, 59, 0).unwrap(),
            tz,
            &hours,
            &none
        ));
    }

    #[test]
    fn holidays_close_the_whole_local_day() {
        let hours = [WeeklyHours::parse("mon-sun 00:00-24:00").unwrap()];
        let holidays = BTreeSet::from([NaiveDate::from_ymd_opt(2026, 12, 25).unwrap()]);
        let tz = chrono_tz::America::New_York;
        assert!(!is_open(ny(2026, 12, 25, 0, 0), tz, &hours, &holidays));
        assert!(!is_open(ny(2026, 12, 25, 23, 59), tz, &hours, &holidays));
        assert!(is_open(ny(2026, 12, 26, 0, 0), tz, &hours, &holidays));
    }

    #[test]
    fn overnight_ranges_run_into_the_next_day() {
        let hours = [WeeklyHours::parse("fri 22:00-02:00").unwrap()];
        let tz = chrono_tz::America::New_York;
        let none = BTreeSet::new();
        assert!(is_open(ny(2026, 11, 27, 23, 0), tz, &hours, &none));
        assert!(is_open(ny(2026, 11, 28, 1, 59), tz, &hours, &none));
        assert!(!is_open(ny(2026, 11, 28, 2, 0), tz, &hours, &none));
        assert!(
            !is_open(ny(2026, 11, 27, 1, 0), tz, &hours, &none),
            "early Friday is Thursday night"
        );
    }

    #[test]
    fn parses_lists_and_wrapping_ranges() {
        let h = WeeklyHours::parse("sat-mon 09:00-12:30").unwrap();
        assert_eq!(h.to_string(), "mon,sat,sun 09:00-12:30");
        let h = WeeklyHours::parse("Monday,wed,FRI 10:00-24:00").unwrap();
        assert_eq!(h.to_string(), "mon,wed,fri 10:00-24:00");
        for bad in [
            "mon",
            "mon 8-18",
            "mond 08:00-18:00",
            "mon 08:00-08:00",
            "mon 25:00-26:00",
            "xyz 08:00-09:00",
        ] {
            assert!(WeeklyHours::parse(bad).is_err(), "{bad} accepted");
        }
    }

    proptest! {
        /// Inside a same-day range is open, outside closed, for every minute of every day.
        #[test]
        fn minute_by_minute(open in 0u32..1439, len in 1u32..600, day in 0u32..7, minute in 0u32..1440) {
            let close = (open + len).min(1440);
            let h = WeeklyHours { days: Days(1 << day), open, close };
            let weekday = Weekday::try_from(day as u8).unwrap();
            let expected = minute >= open && minute < close;
            prop_assert_eq!(h.covers(weekday, minute), expected);
            prop_assert!(!h.covers(weekday.succ(), minute) || weekday.succ() == weekday);
        }
    }
}
