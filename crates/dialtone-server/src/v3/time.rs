//! Dates as CallRail reads and writes them: a `date_range` or `start_date`/`end_date` (whole
//! days, the end included) in a time zone, and times with their offset.

use chrono::{
    DateTime, Datelike, Days, Months, NaiveDate, NaiveDateTime, SecondsFormat, TimeZone, Utc,
};
use chrono_tz::Tz;

use super::V3Error;

/// A span of time: calls that started at or after `from` and before `until`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Span {
    pub from: Option<DateTime<Utc>>,
    pub until: Option<DateTime<Utc>>,
}

/// The named ranges CallRail knows; `recent` (the last 7 days, today included) when none is
/// asked for.
pub fn date_range(name: Option<&str>, zone: Tz, now: DateTime<Utc>) -> Result<Span, V3Error> {
    let today = now.with_timezone(&zone).date_naive();
    let day = |n: u64| today.checked_sub_days(Days::new(n)).unwrap_or(today);
    let month_start = today.with_day(1).unwrap_or(today);
    let year_start = NaiveDate::from_ymd_opt(today.year(), 1, 1).unwrap_or(today);
    let last_year_start = NaiveDate::from_ymd_opt(today.year() - 1, 1, 1).unwrap_or(today);
    // (first day, last day), both included.
    let (first, last) = match name.unwrap_or("recent") {
        "recent" => (day(6), today),
        "today" => (today, today),
        "yesterday" => (day(1), day(1)),
        "last_7_days" => (day(7), day(1)),
        "last_30_days" => (day(30), day(1)),
        "this_month" => (month_start, today),
        "last_month" => (
            month_start
                .checked_sub_months(Months::new(1))
                .unwrap_or(month_start),
            month_start.pred_opt().unwrap_or(month_start),
        ),
        "this_year" => (year_start, today),
        "last_year" => (last_year_start, year_start.pred_opt().unwrap_or(year_start)),
        "all_time" => {
            return Ok(Span {
                from: None,
                until: None,
            });
        }
        other => {
            return Err(V3Error::bad(format!(
                "date_range `{other}` is not one of recent, today, yesterday, last_7_days, \
                 last_30_days, this_month, last_month, this_year, last_year, all_time"
            )));
        }
    };
    Ok(Span {
        from: Some(day_start(first, zone)),
        until: Some(day_start(last.succ_opt().unwrap_or(last), zone)),
    })
}

/// `start_date` and `end_date`: dates (whole days, the end day included) or date-times (from
/// and up to that instant), in `zone` unless they carry an offset.
pub fn dates(start: Option<&str>, end: Option<&str>, zone: Tz) -> Result<Span, V3Error> {
    let from = start
        .map(|s| instant(s, zone, false).ok_or_else(|| not_a_date("start_date", s)))
        .transpose()?;
    let until = end
        .map(|s| instant(s, zone, true).ok_or_else(|| not_a_date("end_date", s)))
        .transpose()?;
    if let (Some(f), Some(u)) = (from, until)
        && u <= f
    {
        return Err(V3Error::bad("end_date is before start_date"));
    }
    Ok(Span { from, until })
}

fn not_a_date(name: &str, value: &str) -> V3Error {
    V3Error::bad(format!(
        "{name} `{value}` is not a date (YYYY-MM-DD) or a date and time (YYYY-MM-DDTHH:MM[:SS][offset])"
    ))
}

/// Where a date or date-time puts a bound: a date's start, or the start of the next day when
/// it ends a range; a date-time (with its own offset, or in `zone`) where it says, and just
/// past it when it ends a range (an end is inclusive).
fn instant(s: &str, zone: Tz, end: bool) -> Option<DateTime<Utc>> {
    if let Ok(d) = NaiveDate::parse_from_str(s, "%Y-%m-%d") {
        let d = if end { d.succ_opt()? } else { d };
        return Some(day_start(d, zone));
    }
    let at = ["%Y-%m-%dT%H:%M:%S%.f%z", "%Y-%m-%dT%H:%M:%S%.f%:z"]
        .iter()
        .find_map(|f| DateTime::parse_from_str(s, f).ok())
        .map(|t| t.with_timezone(&Utc))
        .or_else(|| {
            ["%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%dT%H:%M"]
                .iter()
                .find_map(|f| NaiveDateTime::parse_from_str(s, f).ok())
                .and_then(|t| zone.from_local_datetime(&t).earliest())
                .map(|t| t.with_timezone(&Utc))
        })?;
    Some(if end {
        at + chrono::Duration::microseconds(1)
    } else {
        at
    })
}

/// The first instant of `day` in `zone` (a day that starts in a gap begins when the gap ends).
fn day_start(day: NaiveDate, zone: Tz) -> DateTime<Utc> {
    let midnight = day.and_time(chrono::NaiveTime::MIN);
    (0..=3)
        .find_map(|h| {
            zone.from_local_datetime(&(midnight + chrono::Duration::hours(h)))
                .earliest()
        })
        .map_or_else(|| midnight.and_utc(), |t| t.with_timezone(&Utc))
}

/// A call's time as CallRail writes one: local, to the millisecond, with its offset.
pub fn local(t: DateTime<Utc>, zone: Tz) -> String {
    t.with_timezone(&zone)
        .to_rfc3339_opts(SecondsFormat::Millis, false)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn named_ranges_are_whole_days_in_the_zone() {
        let ny: Tz = "America/New_York".parse().unwrap();
        // 02:00 UTC on 3 December is still 2 December in New York.
        let now = at("2026-12-03T02:00:00Z");
        let span = |n| date_range(Some(n), ny, now).unwrap();
        assert_eq!(
            span("today"),
            Span {
                from: Some(at("2026-12-02T05:00:00Z")),
                until: Some(at("2026-12-03T05:00:00Z"))
            }
        );
        assert_eq!(span("recent").from, Some(at("2026-11-26T05:00:00Z")));
        assert_eq!(span("last_7_days").until, Some(at("2026-12-02T05:00:00Z")));
        assert_eq!(span("last_month").from, Some(at("2026-11-01T04:00:00Z")));
        assert_eq!(span("last_month").until, Some(at("2026-12-01T05:00:00Z")));
        assert_eq!(span("all_time").from, None);
        assert!(date_range(Some("fortnight"), ny, now).is_err());
    }

    #[test]
    fn end_dates_include_their_whole_day_and_date_times_their_instant() {
        let span = dates(Some("2026-01-05"), Some("2026-01-05"), Tz::UTC).unwrap();
        assert_eq!(span.from, Some(at("2026-01-05T00:00:00Z")));
        assert_eq!(span.until, Some(at("2026-01-06T00:00:00Z")));
        let span = dates(Some("2024-01-01T00:00:00.000000+0000"), None, Tz::UTC).unwrap();
        assert_eq!(span.from, Some(at("2024-01-01T00:00:00Z")));
        assert!(dates(Some("2026-01-05"), Some("2026-01-04"), Tz::UTC).is_err());
        assert!(dates(Some("5 Jan"), None, Tz::UTC).is_err());
    }

    #[test]
    fn times_are_local_with_their_offset() {
        let ny: Tz = "America/New_York".parse().unwrap();
        assert_eq!(
            local(at("2017-01-24T16:27:48.119Z"), ny),
            "2017-01-24T11:27:48.119-05:00"
        );
    }
}
