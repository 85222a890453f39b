//! Retention: how much of the log is kept once every consumer group has
//! committed past it, by size and by age per partition, as Kafka's
//! `retention.bytes` and `retention.ms` do. What some group has not yet
//! committed is never trimmed, nor is a partition's last event (its offset
//! is where the partition's next offset is found on restart).

use std::time::Duration;

/// Per partition: the newest committed events are kept while the partition
/// stays within `max_bytes` and they are younger than `max_age`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retention {
    pub max_bytes: u64,
    pub max_age: Duration,
}

/// One stored event as retention sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Entry {
    pub offset: u64,
    pub bytes: u64,
    pub published_at_ms: i64,
}

/// Where to cut one partition: the offset below which everything goes, or
/// None to keep it all. `entries` are the partition's events oldest first,
/// `floor` the lowest offset any consumer group still needs (its committed
/// next offset), `now_ms` the time retention is applied.
pub fn cut(entries: &[Entry], floor: u64, retention: Retention, now_ms: i64) -> Option<u64> {
    let mut total: u64 = entries.iter().map(|entry| entry.bytes).sum();
    let oldest_kept_ms = now_ms.saturating_sub(i64::try_from(retention.max_age.as_millis()).unwrap_or(i64::MAX));
    let last = entries.last()?.offset;
    let mut below = None;
    for entry in entries {
        let committed = entry.offset < floor && entry.offset < last;
        let too_much = total > retention.max_bytes || entry.published_at_ms < oldest_kept_ms;
        if !committed || !too_much {
            break;
        }
        total -= entry.bytes;
        below = Some(entry.offset + 1);
    }
    below
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOUR_MS: i64 = 3_600_000;

    fn entries(count: u64, bytes: u64, published_at_ms: impl Fn(u64) -> i64) -> Vec<Entry> {
        (0..count)
            .map(|offset| Entry {
                offset,
                bytes,
                published_at_ms: published_at_ms(offset),
            })
            .collect()
    }

    fn retention(max_bytes: u64, hours: u64) -> Retention {
        Retention {
            max_bytes,
            max_age: Duration::from_secs(hours * 3600),
        }
    }

    #[test]
    fn committed_events_beyond_the_size_go_oldest_first() {
        let log = entries(10, 100, |_| 0);
        // 1,000 bytes, 400 allowed: the six oldest go, all committed.
        assert_eq!(cut(&log, 10, retention(400, 24), 0), Some(6));
    }

    #[test]
    fn nothing_a_group_has_not_committed_is_trimmed() {
        let log = entries(10, 100, |_| 0);
        assert_eq!(cut(&log, 3, retention(0, 24), 0), Some(3));
        assert_eq!(cut(&log, 0, retention(0, 24), 0), None);
    }

    #[test]
    fn the_last_event_of_a_partition_always_stays() {
        let log = entries(10, 100, |_| 0);
        assert_eq!(cut(&log, 10, retention(0, 0), 100 * HOUR_MS), Some(9));
    }

    #[test]
    fn committed_events_older_than_the_age_go_even_within_the_size() {
        // Offsets 0..5 published 30 h ago, 5..10 just now.
        let log = entries(10, 100, |offset| if offset < 5 { 0 } else { 30 * HOUR_MS });
        assert_eq!(cut(&log, 10, retention(u64::MAX, 24), 30 * HOUR_MS), Some(5));
    }

    #[test]
    fn a_partition_within_both_limits_is_kept_whole() {
        let log = entries(10, 100, |_| HOUR_MS);
        assert_eq!(cut(&log, 10, retention(1000, 24), 2 * HOUR_MS), None);
        assert_eq!(cut(&[], 10, retention(0, 0), 0), None);
    }
}
