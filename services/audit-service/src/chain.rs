//! The hash chain.
//!
//! Each record's hash covers the previous record's hash and every stored
//! field, each length-prefixed so no two different records encode alike.
//! Changing a record breaks its own hash; removing one breaks the sequence
//! and the next record's link; both are found by [`Verifier`].

use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
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

/// How records are hashed. Without a key, a SHA-256 chain: any change made
/// around the service (the append-only triggers) without recomputing the
/// chain is found, but anyone who can write the table and read this code
/// can recompute it. With `AUDIT_CHAIN_KEY`, an HMAC-SHA-256 chain under a
/// key the database never sees: a rewrite by anyone with database access
/// alone (an administrator, a stolen credential, another service's role)
/// no longer verifies.
#[derive(Clone, Default)]
pub struct Chain {
    key: Option<Vec<u8>>,
}

impl std::fmt::Debug for Chain {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Chain").field("keyed", &self.key.is_some()).finish()
    }
}

impl Chain {
    pub fn keyed(key: &[u8]) -> Self {
        Self {
            key: Some(key.to_vec()),
        }
    }

    pub fn record_hash(&self, previous: &[u8], fields: &RecordFields<'_>) -> [u8; 32] {
        match &self.key {
            None => {
                let mut hasher = Sha256::new();
                Digest::update(&mut hasher, b"todo-audit-v1");
                feed(&mut hasher, previous, fields);
                hasher.finalize().into()
            }
            Some(key) => {
                let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes a key of any length");
                Mac::update(&mut mac, b"todo-audit-v1-keyed");
                feed(&mut mac, previous, fields);
                mac.finalize().into_bytes().into()
            }
        }
    }

    /// A verifier of one user's chain, from its first record.
    pub fn verifier(&self) -> Verifier {
        self.verifier_after(0, GENESIS.to_vec())
    }

    /// A verifier that takes records up to `sequence` (whose hash is
    /// `hash`) as verified already and goes on from the next one.
    pub fn verifier_after(&self, sequence: i64, hash: Vec<u8>) -> Verifier {
        Verifier {
            chain: self.clone(),
            expected_sequence: sequence + 1,
            previous: hash,
            checked: sequence,
        }
    }
}

/// The link and every field, each variable one length-prefixed.
fn feed(hasher: &mut impl sha2::digest::Update, previous: &[u8], fields: &RecordFields<'_>) {
    put_bytes(hasher, previous);
    hasher.update(&fields.sequence.to_be_bytes());
    hasher.update(fields.event_id.as_bytes());
    put_bytes(hasher, fields.event_type.as_bytes());
    put_bytes(hasher, fields.task_id.as_bytes());
    put_bytes(hasher, fields.user_id.as_bytes());
    hasher.update(&fields.occurred_at.timestamp_micros().to_be_bytes());
    put_bytes(hasher, fields.payload);
}

fn put_bytes(hasher: &mut impl sha2::digest::Update, bytes: &[u8]) {
    hasher.update(&(bytes.len() as u64).to_be_bytes());
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
    chain: Chain,
    expected_sequence: i64,
    previous: Vec<u8>,
    pub checked: i64,
}

impl Verifier {
    /// The last record verified: its sequence (0: none) and hash.
    pub fn head(&self) -> (i64, &[u8]) {
        (self.expected_sequence - 1, &self.previous)
    }

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
        if self.chain.record_hash(previous_hash, fields).as_slice() != hash {
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
            let hash = Chain::default().record_hash(&previous, &f).to_vec();
            out.push((f, previous.clone(), hash.clone()));
            previous = hash;
        }
        out
    }

    #[test]
    fn an_intact_chain_verifies() {
        let mut verifier = Chain::default().verifier();
        for (f, prev, hash) in chain(&[b"a", b"b", b"c"]) {
            verifier.check(&f, &prev, &hash).unwrap();
        }
        assert_eq!(verifier.checked, 3);
    }

    #[test]
    fn a_changed_record_is_found() {
        let mut records = chain(&[b"a", b"b", b"c"]);
        records[1].0.payload = b"B";
        let mut verifier = Chain::default().verifier();
        verifier.check(&records[0].0, &records[0].1, &records[0].2).unwrap();
        let err = verifier.check(&records[1].0, &records[1].1, &records[1].2).unwrap_err();
        assert_eq!(err.sequence, 2);
        assert!(err.reason.contains("changed"));
    }

    #[test]
    fn a_removed_record_is_found() {
        let records = chain(&[b"a", b"b", b"c"]);
        let mut verifier = Chain::default().verifier();
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
        assert_ne!(
            Chain::default().record_hash(&GENESIS, &a),
            Chain::default().record_hash(&GENESIS, &b)
        );
    }

    #[test]
    fn a_keyed_chain_cannot_be_recomputed_without_the_key() {
        let keyed = Chain::keyed(b"a key the database never sees, 32+ bytes");
        let f = fields(1, b"a");
        let hash = keyed.record_hash(&GENESIS, &f);
        keyed.verifier().check(&f, &GENESIS, &hash).unwrap();
        // Rewritten by someone with the table but not the key: the chain
        // they can compute does not verify.
        let forged = fields(1, b"forged");
        let recomputed = Chain::default().record_hash(&GENESIS, &forged);
        assert!(keyed.verifier().check(&forged, &GENESIS, &recomputed).is_err());
        let other_key = Chain::keyed(b"another key").record_hash(&GENESIS, &forged);
        assert!(keyed.verifier().check(&forged, &GENESIS, &other_key).is_err());
    }

    /// Chains written before keys existed still verify: the unkeyed hash is
    /// the one it always was.
    #[test]
    fn the_unkeyed_hash_has_not_changed() {
        let hash = Chain::default().record_hash(&GENESIS, &fields(1, b"a"));
        assert_eq!(hex(&hash), UNKEYED_FIRST_RECORD);
    }

    /// Computed apart from this code, from the v1 layout.
    const UNKEYED_FIRST_RECORD: &str = "9c2a6b2db0396a2d37b0b7b4601c03851e6fc2b58b27ffa5c3a755748a86db8d";

    fn hex(bytes: &[u8]) -> String {
        bytes.iter().map(|byte| format!("{byte:02x}")).collect()
    }
}
