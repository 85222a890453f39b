//! When the next occurrence of a series is due.
//!
//! Times are UTC; the next occurrence keeps the time of day. Monthly series
//! fall on their month day, clamped to shorter months without drifting:
//! Jan 31 gives Feb 28 (29 in leap years), then Mar 31.

use chrono::{DateTime, Datelike, Days, NaiveDate, Utc};
use todo_core::proto::v1::Frequency;

/// A repeat rule, as the completed task carries it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rule {
    pub frequency: Frequency,
    /// At least 1.
    pub interval: u32,
    /// No occurrence after this instant.
    pub until: Option<DateTime<Utc>>,
    /// Occurrences in the whole series; 0 = unbounded.
    pub count: u32,
    /// Monthly only: the day of month (1 to 31); 0 = the current due day.
    pub month_day: u32,
}

/// The due date after `current`, or None when the series has ended (end
/// date or count reached, or the date would leave chrono's range).
/// `occurrence_number` is the 1-based position of the occurrence due at `current`.
pub fn next_due(current: DateTime<Utc>, occurrence_number: u32, rule: &Rule) -> Option<DateTime<Utc>> {
    if rule.count > 0 && occurrence_number >= rule.count {
        return None;
    }
    let interval = rule.interval.max(1);
    let next = match rule.frequency {
        Frequency::Daily => current.checked_add_days(Days::new(u64::from(interval)))?,
        Frequency::Weekly => current.checked_add_days(Days::new(7 * u64::from(interval)))?,
        Frequency::Monthly => add_months_on_day(current, interval, rule.month_day)?,
        Frequency::Unspecified => return None,
    };
    match rule.until {
        Some(until) if next > until => None,
        _ => Some(next),
    }
}

fn add_months_on_day(current: DateTime<Utc>, months: u32, month_day: u32) -> Option<DateTime<Utc>> {
    let anchor = if (1..=31).contains(&month_day) {
        month_day
    } else {
        current.day()
    };
    let index = i64::from(current.year()) * 12 + i64::from(current.month0()) + i64::from(months);
    let year = i32::try_from(index.div_euclid(12)).ok()?;
    let month = u32::try_from(index.rem_euclid(12)).ok()? + 1;
    let day = anchor.min(days_in_month(year, month)?);
    let date = NaiveDate::from_ymd_opt(year, month, day)?;
    Some(date.and_time(current.time()).and_utc())
}

fn days_in_month(year: i32, month: u32) -> Option<u32> {
    let first = NaiveDate::from_ymd_opt(year, month, 1)?;
    let next_first = if month == 12 {
        NaiveDate::from_ymd_opt(year.checked_add(1)?, 1, 1)?
    } else {
        NaiveDate::from_ymd_opt(year, month + 1, 1)?
    };
    Some(next_first.signed_duration_since(first).num_days() as u32)
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;
    use proptest::prelude::*;

    use super::*;

    fn at(y: i32, m: u32, d: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(y, m, d, 9, 30, 0).unwrap()
    }

    fn monthly(interval: u32, month_day: u32) -> Rule {
        Rule {
            frequency: Frequency::Monthly,
            interval,
            until: None,
            count: 0,
            month_day,
        }
    }

    #[test]
    fn month_end_clamps_without_drifting() {
        let rule = monthly(1, 31);
        let feb = next_due(at(2027, 1, 31), 1, &rule).unwrap();
        assert_eq!(feb, at(2027, 2, 28));
        assert_eq!(next_due(feb, 2, &rule).unwrap(), at(2027, 3, 31));
        assert_eq!(
            next_due(at(2028, 1, 31), 1, &rule).unwrap(),
            at(2028, 2, 29),
            "leap year"
        );
        assert_eq!(next_due(at(2027, 3, 31), 1, &rule).unwrap(), at(2027, 4, 30));
        assert_eq!(
            next_due(at(2027, 12, 31), 1, &rule).unwrap(),
            at(2028, 1, 31),
            "year boundary"
        );
        assert_eq!(next_due(at(2027, 11, 30), 1, &monthly(3, 30)).unwrap(), at(2028, 2, 29));
    }

    #[test]
    fn daily_and_weekly_keep_the_time_of_day() {
        let daily = Rule {
            frequency: Frequency::Daily,
            interval: 2,
            until: None,
            count: 0,
            month_day: 0,
        };
        assert_eq!(next_due(at(2027, 2, 27), 1, &daily).unwrap(), at(2027, 3, 1));
        let weekly = Rule {
            frequency: Frequency::Weekly,
            ..daily
        };
        assert_eq!(next_due(at(2027, 12, 25), 1, &weekly).unwrap(), at(2028, 1, 8));
    }

    #[test]
    fn end_date_and_count_end_the_series() {
        let rule = Rule {
            frequency: Frequency::Daily,
            interval: 1,
            until: Some(at(2027, 1, 2)),
            count: 0,
            month_day: 0,
        };
        assert_eq!(
            next_due(at(2027, 1, 1), 1, &rule),
            Some(at(2027, 1, 2)),
            "until is inclusive"
        );
        assert_eq!(next_due(at(2027, 1, 2), 2, &rule), None);
        let counted = Rule {
            until: None,
            count: 3,
            ..rule
        };
        assert!(next_due(at(2027, 1, 1), 2, &counted).is_some());
        assert_eq!(next_due(at(2027, 1, 1), 3, &counted), None, "the third was the last");
    }

    #[test]
    fn far_future_dates_end_instead_of_panicking() {
        let far = DateTime::<Utc>::MAX_UTC - chrono::Duration::days(1);
        assert_eq!(next_due(far, 1, &monthly(12, 0)), None);
        let daily = Rule {
            frequency: Frequency::Daily,
            interval: 365,
            until: None,
            count: 0,
            month_day: 0,
        };
        assert_eq!(next_due(far, 1, &daily), None);
    }

    proptest! {
        #[test]
        fn monthly_lands_on_the_anchor_day_or_the_month_end(
            year in 1970i32..2400, month in 1u32..=12, anchor in 1u32..=31, interval in 1u32..=36,
        ) {
            let start_day = anchor.min(days_in_month(year, month).unwrap());
            let start = Utc.with_ymd_and_hms(year, month, start_day, 7, 0, 0).unwrap();
            let next = next_due(start, 1, &monthly(interval, anchor)).unwrap();
            prop_assert!(next > start);
            let months = (next.year() - start.year()) * 12 + next.month() as i32 - start.month() as i32;
            prop_assert_eq!(months, interval as i32);
            prop_assert_eq!(next.day(), anchor.min(days_in_month(next.year(), next.month()).unwrap()));
            prop_assert_eq!(next.time(), start.time());
        }

        #[test]
        fn daily_and_weekly_advance_by_exact_days(
            seconds in 0i64..10_000_000_000, interval in 1u32..=365, weekly in any::<bool>(),
        ) {
            let start = DateTime::from_timestamp(seconds, 0).unwrap();
            let rule = Rule {
                frequency: if weekly { Frequency::Weekly } else { Frequency::Daily },
                interval, until: None, count: 0, month_day: 0,
            };
            let next = next_due(start, 1, &rule).unwrap();
            let days = if weekly { 7 * i64::from(interval) } else { i64::from(interval) };
            prop_assert_eq!(next - start, chrono::Duration::days(days));
        }
    }
}
