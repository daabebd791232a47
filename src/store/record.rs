//! The on-disk form of one event: its canonical bytes and the hash chain over them.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::domain::Event;

/// Version of the record layout below. Readers accept every version up to this one.
/// Versions 1 and 2 have the same layout; they differ in the event's transparency-log entry
/// (its canonical bytes in version 1, a statement of its hash from version 2 on, see
/// [`crate::tlog`]).
pub const FORMAT_VERSION: u16 = 2;

/// A SHA-256 digest.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Hash(pub [u8; 32]);

impl Hash {
    /// The `prev_hash` of the first event.
    pub const GENESIS: Hash = Hash([0; 32]);

    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }

    pub fn from_hex(s: &str) -> Option<Hash> {
        let mut out = [0u8; 32];
        hex::decode_to_slice(s, &mut out).ok()?;
        Some(Hash(out))
    }
}

impl std::fmt::Debug for Hash {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl std::fmt::Display for Hash {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.to_hex())
    }
}

/// The envelope every event is recorded in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Envelope {
    pub format: u16,
    /// Position in the log: 1, 2, 3, ... with no gaps.
    pub revision: u64,
    pub event_id: Uuid,
    pub recorded_at: DateTime<Utc>,
    /// Name of the write token that recorded the event (never its secret).
    pub actor: String,
    /// Hash of the event at `revision - 1` (all zeros for the first).
    pub prev_hash: String,
    pub event: Event,
}

/// An event as read back from the log, with its verified hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredEvent {
    pub envelope: Envelope,
    pub hash: Hash,
}

impl StoredEvent {
    pub fn revision(&self) -> u64 {
        self.envelope.revision
    }
}

/// Why a stored record is not what the chain says it must be.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("revision {revision}: {reason}")]
pub struct Damage {
    pub revision: u64,
    pub reason: String,
}

/// Encodes an event: the canonical bytes are the JSON of the envelope (fields in declaration
/// order, decimals and periods as strings); the stored value is `hash || bytes` with
/// `hash = SHA-256(bytes)`. Since the bytes include `prev_hash`, each hash covers the whole
/// history before it.
pub fn encode(envelope: &Envelope) -> (Hash, Vec<u8>) {
    let body = serde_json::to_vec(envelope).expect("events always serialize");
    let hash = Hash(Sha256::digest(&body).into());
    let mut value = Vec::with_capacity(32 + body.len());
    value.extend_from_slice(&hash.0);
    value.extend_from_slice(&body);
    (hash, value)
}

/// Decodes and checks one stored value found under `revision`, which must follow `prev`.
pub fn decode(revision: u64, value: &[u8], prev: &Hash) -> Result<StoredEvent, Damage> {
    let damage = |reason: String| Damage { revision, reason };
    if value.len() < 32 {
        return Err(damage("record is truncated".into()));
    }
    let (stored_hash, body) = value.split_at(32);
    let actual = Hash(Sha256::digest(body).into());
    if actual.0 != stored_hash {
        return Err(damage(format!(
            "content does not match its hash (stored {}, computed {actual})",
            hex::encode(stored_hash)
        )));
    }
    // Checking the text is UTF-8 once is cheaper than serde_json checking each string of it;
    // a body that is not UTF-8 goes through `from_slice`, for the same error as ever.
    let envelope: Envelope = match std::str::from_utf8(body) {
        Ok(text) => serde_json::from_str(text),
        Err(_) => serde_json::from_slice(body),
    }
    .map_err(|e| damage(format!("record does not decode: {e}")))?;
    if envelope.format == 0 || envelope.format > FORMAT_VERSION {
        return Err(damage(format!("unknown record format {}", envelope.format)));
    }
    if envelope.revision != revision {
        return Err(damage(format!(
            "record says revision {} but is stored at {revision}",
            envelope.revision
        )));
    }
    if Hash::from_hex(&envelope.prev_hash) != Some(*prev) {
        return Err(damage(format!(
            "prev_hash {} does not match the hash of revision {} ({prev})",
            envelope.prev_hash,
            revision.saturating_sub(1)
        )));
    }
    Ok(StoredEvent { envelope, hash: actual })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::dataset::tests::sample;

    fn envelope(revision: u64, prev: &Hash) -> Envelope {
        Envelope {
            format: FORMAT_VERSION,
            revision,
            event_id: Uuid::new_v4(),
            recorded_at: Utc::now(),
            actor: "test".into(),
            prev_hash: prev.to_hex(),
            event: Event::DatasetDefined { dataset: sample() },
        }
    }

    #[test]
    fn round_trips_and_chains() {
        let e1 = envelope(1, &Hash::GENESIS);
        let (h1, v1) = encode(&e1);
        let back = decode(1, &v1, &Hash::GENESIS).unwrap();
        assert_eq!(back.envelope, e1);
        assert_eq!(back.hash, h1);
        let (_, v2) = encode(&envelope(2, &h1));
        decode(2, &v2, &h1).unwrap();
        assert!(decode(2, &v2, &Hash::GENESIS).unwrap_err().reason.contains("prev_hash"));
        assert!(decode(3, &v2, &h1).unwrap_err().reason.contains("stored at 3"));
    }

    #[test]
    fn any_flipped_byte_is_detected() {
        let (_, v) = encode(&envelope(1, &Hash::GENESIS));
        for i in (0..v.len()).step_by(7) {
            let mut bad = v.clone();
            bad[i] ^= 0x01;
            assert!(
                decode(1, &bad, &Hash::GENESIS).is_err(),
                "flip at byte {i} went unnoticed"
            );
        }
        assert!(decode(1, &v[..20], &Hash::GENESIS).is_err());
    }
}
