//! The on-disk form of one event: its canonical bytes and the hash chain over them.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::domain::Event;

use super::upcast::{self, Upcaster};

/// Version of the record format written now (the envelope's `format`). Readers take every
/// version up to this one, bringing older records to it with the upcasters of
/// [`super::upcast`] (one per earlier version: raising this without adding one does not
/// compile). Versions 1 and 2 have the same JSON; they differ in the event's
/// transparency-log entry (its canonical bytes in version 1, a statement of its hash from
/// version 2 on, see [`crate::tlog`]).
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
///
/// A record of an earlier format is brought to the current one by the upcasters
/// ([`super::upcast`]); its hash is the one of its stored bytes, whatever the upcasters do, and
/// its envelope keeps the format it was written in. A record of a format newer than this
/// build's is refused, naming it.
pub fn decode(revision: u64, value: &[u8], prev: &Hash) -> Result<StoredEvent, Damage> {
    decode_in(&upcast::UPCASTERS, revision, value, prev)
}

/// [`decode`] with another table of upcasters (tests give one with more steps).
fn decode_in(table: &[Upcaster], revision: u64, value: &[u8], prev: &Hash) -> Result<StoredEvent, Damage> {
    let damage = |reason: String| Damage { revision, reason };
    if value.len() < 32 {
        return Err(damage("record is truncated".into()));
    }
    let (stored_hash, body) = value.split_at(32);
    // Over the stored bytes, before anything reads them: never over an upcast form.
    let actual = Hash(Sha256::digest(body).into());
    if actual.0 != stored_hash {
        return Err(damage(format!(
            "content does not match its hash (stored {}, computed {actual})",
            hex::encode(stored_hash)
        )));
    }
    let envelope = envelope_of(table, body).map_err(damage)?;
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

/// The envelope of a record's canonical bytes, in the current format.
fn envelope_of(table: &[Upcaster], body: &[u8]) -> Result<Envelope, String> {
    let undecodable = |e: serde_json::Error| format!("record does not decode: {e}");
    // The usual case: the bytes state a format whose JSON is the current one's, and decode
    // as they are.
    if let Some(format) = upcast::stated_format(body) {
        if upcast::same_json(upcast::chain_in(table, format)?) {
            // Checking the text is UTF-8 once is cheaper than serde_json checking each string
            // of it; a body that is not UTF-8 goes through `from_slice`, for the same error.
            let envelope: Envelope = match std::str::from_utf8(body) {
                Ok(text) => serde_json::from_str(text),
                Err(_) => serde_json::from_slice(body),
            }
            .map_err(undecodable)?;
            return match envelope.format == format {
                true => Ok(envelope),
                false => Err(format!("record states format {format} and then {}", envelope.format)),
            };
        }
    }
    let mut value: serde_json::Value = serde_json::from_slice(body).map_err(undecodable)?;
    let format = value
        .get("format")
        .and_then(serde_json::Value::as_u64)
        .ok_or("record does not decode: it states no format")?;
    let format = u16::try_from(format).map_err(|_| format!("unknown record format {format}"))?;
    upcast::apply(upcast::chain_in(table, format)?, &mut value)?;
    // The envelope keeps the format the record was written in, whatever a step did.
    value["format"] = format.into();
    serde_json::from_value(value).map_err(undecodable)
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

    /// Encodes `envelope` as a record of its own `format`.
    fn record_of(envelope: &Envelope) -> (Hash, Vec<u8>) {
        encode(envelope)
    }

    /// A record of format 1 (the releases before 2026's transparency-log entries) decodes to
    /// the event of the current format, keeps the format it was written in, and its hash is
    /// the hash of its stored bytes, not of the current form.
    #[test]
    fn a_format_1_record_decodes_equal_to_its_current_form() {
        let current = envelope(1, &Hash::GENESIS);
        let old = Envelope {
            format: 1,
            ..current.clone()
        };
        let (hash, stored) = record_of(&old);
        assert!(stored[32..].starts_with(br#"{"format":1,"#));
        let back = decode(1, &stored, &Hash::GENESIS).unwrap();
        assert_eq!(back.envelope.event, current.event);
        assert_eq!(
            back.envelope,
            Envelope {
                format: 1,
                ..current.clone()
            }
        );
        assert_eq!(back.hash, hash);
        assert_eq!(back.hash, Hash(Sha256::digest(&stored[32..]).into()));
        assert_ne!(back.hash, encode(&current).0, "the current form hashes differently");
    }

    fn rename_actor(v: &mut serde_json::Value) -> Result<(), String> {
        let actor = v["actor"].as_str().ok_or("no actor")?.to_owned();
        v["actor"] = format!("upcast {actor}").into();
        // A step that touches `format` does not change what the envelope says it was.
        v["format"] = 99.into();
        Ok(())
    }

    /// Architecture invariant: the hash is computed over the stored canonical bytes, never
    /// over the upcast form. An upcaster that changes the JSON changes the decoded envelope,
    /// not its hash, and the chain still links.
    #[test]
    fn hashes_cover_the_stored_bytes_never_the_upcast_form() {
        let table = [
            Upcaster {
                from: 1,
                change: "actor renamed",
                upcast: upcast::Upcast::Json(rename_actor),
            },
            upcast::UPCASTERS[0],
        ];
        let old = Envelope {
            format: 1,
            ..envelope(1, &Hash::GENESIS)
        };
        let (h1, stored) = record_of(&old);
        let back = decode_in(&table, 1, &stored, &Hash::GENESIS).unwrap();
        assert_eq!(back.envelope.actor, "upcast test");
        assert_eq!(back.envelope.format, 1);
        assert_eq!(back.hash, h1);
        assert_ne!(back.hash, encode(&back.envelope).0);
        let (_, next) = record_of(&envelope(2, &h1));
        decode_in(&table, 2, &next, &back.hash).unwrap();
        // Damage is still found before any step runs.
        let mut bad = stored.clone();
        let at = bad.len() - 3;
        bad[at] ^= 1;
        assert!(decode_in(&table, 1, &bad, &Hash::GENESIS)
            .unwrap_err()
            .reason
            .contains("hash"));
    }

    #[test]
    fn unknown_future_formats_are_refused_with_a_clear_error() {
        let future = Envelope {
            format: FORMAT_VERSION + 1,
            ..envelope(1, &Hash::GENESIS)
        };
        let (_, stored) = record_of(&future);
        let e = decode(1, &stored, &Hash::GENESIS).unwrap_err();
        assert!(
            e.reason
                .starts_with(&format!("unknown record format {}", FORMAT_VERSION + 1)),
            "{e}"
        );
        assert!(e.reason.contains("newer"), "{e}");
        // Even when the rest of it means nothing to this build.
        let body = format!(r#"{{"format":{},"revision":1,"shape":"new"}}"#, FORMAT_VERSION + 1);
        let mut stored = Sha256::digest(body.as_bytes()).to_vec();
        stored.extend_from_slice(body.as_bytes());
        let e = decode(1, &stored, &Hash::GENESIS).unwrap_err();
        assert!(e.reason.contains("unknown record format"), "{e}");
        let zero = Envelope {
            format: 0,
            ..envelope(1, &Hash::GENESIS)
        };
        assert!(decode(1, &record_of(&zero).1, &Hash::GENESIS)
            .unwrap_err()
            .reason
            .contains("format 0"));
    }
}
