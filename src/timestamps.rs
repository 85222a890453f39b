//! Conversions between protobuf `Timestamp` and `chrono`, checked.
//!
//! PostgreSQL stores microseconds, so times coming in are truncated to the
//! microsecond: what a client reads back equals what was stored.

use chrono::{DateTime, SubsecRound, Utc};
use prost_types::Timestamp;

/// Earliest and latest instants the protobuf `Timestamp` allows
/// (0001-01-01 and 9999-12-31T23:59:59Z).
const MIN_SECONDS: i64 = -62_135_596_800;
const MAX_SECONDS: i64 = 253_402_300_799;

/// A `Timestamp` outside the range protobuf allows, or with bad nanos.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("timestamp out of range (seconds {seconds}, nanos {nanos})")]
pub struct InvalidTimestamp {
    pub seconds: i64,
    pub nanos: i32,
}

/// Reads a `Timestamp`, truncated to the microsecond.
pub fn from_proto(timestamp: &Timestamp) -> Result<DateTime<Utc>, InvalidTimestamp> {
    let invalid = InvalidTimestamp {
        seconds: timestamp.seconds,
        nanos: timestamp.nanos,
    };
    if !(MIN_SECONDS..=MAX_SECONDS).contains(&timestamp.seconds) || !(0..1_000_000_000).contains(&timestamp.nanos) {
        return Err(invalid);
    }
    DateTime::from_timestamp(timestamp.seconds, timestamp.nanos as u32)
        .map(|time| time.trunc_subsecs(6))
        .ok_or(invalid)
}

/// Whether `time` is within the range a protobuf `Timestamp` (and so an
/// event on the wire) can carry.
pub fn representable(time: DateTime<Utc>) -> bool {
    (MIN_SECONDS..=MAX_SECONDS).contains(&time.timestamp())
}

pub fn to_proto(time: DateTime<Utc>) -> Timestamp {
    Timestamp {
        seconds: time.timestamp(),
        nanos: time.timestamp_subsec_nanos() as i32,
    }
}

/// The current time, truncated to the microsecond like stored times.
pub fn now() -> DateTime<Utc> {
    Utc::now().trunc_subsecs(6)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_truncates_to_microseconds() {
        let time = from_proto(&Timestamp {
            seconds: 1_700_000_000,
            nanos: 123_456_789,
        })
        .unwrap();
        assert_eq!(to_proto(time).nanos, 123_456_000);
    }

    #[test]
    fn out_of_range_is_rejected_not_panicking() {
        for (seconds, nanos) in [
            (i64::MAX, 0),
            (i64::MIN, 0),
            (0, -1),
            (0, 1_000_000_000),
            (MAX_SECONDS + 1, 0),
        ] {
            assert!(from_proto(&Timestamp { seconds, nanos }).is_err(), "{seconds} {nanos}");
        }
        assert!(
            from_proto(&Timestamp {
                seconds: MAX_SECONDS,
                nanos: 999_999_999
            })
            .is_ok()
        );
    }
}
