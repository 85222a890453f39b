//! The hash chain.
//!
//! Each record's hash covers the previous record's hash and every stored
//! field, each length-prefixed so no two different records encode alike.
//! Changing a record breaks its own hash; removing one breaks the sequence
//! and the next record's link; both are found by [`Verifier`].

use chrono::{DateTime, Utc};
use sha2::{Digest, Sha256};
use uuid::Uuid;

/// What the first record of a chain links to.
pub const GENESIS: [u8; 32] = [0; 32];

/// The fields a record's hash covers.
#[derive(Debug, Clone)]
pub struct RecordFields<'a> {
    pub sequence: i64,
    pub event_id: Uuid,
    pub event_type: &'a str,
    pub task_id: &'a str,
    pub user_id: &'a str,
    pub occurred_at: DateTime<Utc>,
    pub payload: &'a [u8],
}

pub fn record_hash(previous: &[u8], fields: &RecordFields<'_>) -> [u8; 32] {
    let mut hasher = Sha256::new();
    hasher.update(b"todo-audit-v1");
    put_bytes(&mut hasher, previous);
    hasher.update(fields.sequence.to_be_bytes());
    hasher.update(fields.event_id.as_bytes());
    put_bytes(&mut hasher, fields.event_type.as_bytes());
    put_bytes(&mut hasher, fields.task_id.as_bytes());
    put_bytes(&mut hasher, fields.user_id.as_bytes());
    hasher.update(fields.occurred_at.timestamp_micros().to_be_bytes());
    put_bytes(&mut hasher, fields.payload);
    hasher.finalize().into()
}

fn put_bytes(hasher: &mut Sha256, bytes: &[u8]) {
    hasher.update((bytes.len() as u64).to_be_bytes());
    hasher.update(bytes);
}

/// Why a chain does not verify.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Break {
    /// The first sequence number that fails.
    pub sequence: i64,
    pub reason: String,
}

/// Checks records in sequence order, one at a time, so a chain of any
/// length is verified in constant memory.
#[derive(Debug)]
pub struct Verifier {
    expected_sequence: i64,
    previous: Vec<u8>,
    pub checked: i64,
}

impl Default for Verifier {
    fn default() -> Self {
        Self {
            expected_sequence: 1,
            previous: GENESIS.to_vec(),
            checked: 0,
        }
    }
}

impl Verifier {
    /// Checks the next record; stops at the first break.
    pub fn check(&mut self, fields: &RecordFields<'_>, previous_hash: &[u8], hash: &[u8]) -> Result<(), Break> {
        let fail = |sequence, reason: &str| {
            Err(Break {
                sequence,
                reason: reason.to_owned(),
            })
        };
        if fields.sequence != self.expected_sequence {
            return fail(self.expected_sequence, "record missing: the sequence has a gap");
        }
        if previous_hash != self.previous.as_slice() {
            return fail(
                fields.sequence,
                "link broken: previous_hash does not match the record before",
            );
        }
        if record_hash(previous_hash, fields).as_slice() != hash {
            return fail(fields.sequence, "record changed: its hash does not match its contents");
        }
        self.expected_sequence += 1;
        self.previous = hash.to_vec();
        self.checked += 1;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(sequence: i64, payload: &[u8]) -> RecordFields<'_> {
        RecordFields {
            sequence,
            event_id: Uuid::from_u128(sequence as u128),
            event_type: "task.created",
            task_id: "t1",
            user_id: "alice",
            occurred_at: DateTime::from_timestamp(1_700_000_000, 0).unwrap(),
            payload,
        }
    }

    fn chain(payloads: &[&'static [u8]]) -> Vec<(RecordFields<'static>, Vec<u8>, Vec<u8>)> {
        let mut previous = GENESIS.to_vec();
        let mut out = Vec::new();
        for (i, payload) in payloads.iter().enumerate() {
            let f = fields(i as i64 + 1, payload);
            let hash = record_hash(&previous, &f).to_vec();
            out.push((f, previous.clone(), hash.clone()));
            previous = hash;
        }
        out
    }

    #[test]
    fn an_intact_chain_verifies() {
        let mut verifier = Verifier::default();
        for (f, prev, hash) in chain(&[b"a", b"b", b"c"]) {
            verifier.check(&f, &prev, &hash).unwrap();
        }
        assert_eq!(verifier.checked, 3);
    }

    #[test]
    fn a_changed_record_is_found() {
        let mut records = chain(&[b"a", b"b", b"c"]);
        records[1].0.payload = b"B";
        let mut verifier = Verifier::default();
        verifier.check(&records[0].0, &records[0].1, &records[0].2).unwrap();
        let err = verifier.check(&records[1].0, &records[1].1, &records[1].2).unwrap_err();
        assert_eq!(err.sequence, 2);
        assert!(err.reason.contains("changed"));
    }

    #[test]
    fn a_removed_record_is_found() {
        let records = chain(&[b"a", b"b", b"c"]);
        let mut verifier = Verifier::default();
        verifier.check(&records[0].0, &records[0].1, &records[0].2).unwrap();
        let err = verifier.check(&records[2].0, &records[2].1, &records[2].2).unwrap_err();
        assert_eq!(err.sequence, 2);
        assert!(err.reason.contains("missing"));
    }

    #[test]
    fn length_prefixes_keep_field_boundaries() {
        let mut a = fields(1, b"");
        a.event_type = "task.create";
        a.task_id = "dt1";
        let mut b = fields(1, b"");
        b.event_type = "task.created";
        b.task_id = "t1";
        assert_ne!(record_hash(&GENESIS, &a), record_hash(&GENESIS, &b));
    }
}
