//! `store::decode` on arbitrary bytes, three ways, chosen by the low two bits of the first
//! input byte (its high six bits choose the revision asked for: 0 means 1, n means n - 1, so
//! the seeds ask for revision 1 and the fuzzer may try 0 and others):
//!
//! - `0`: the rest, as a stored value, after the genesis hash: must not panic.
//! - `1`: the rest as the body of a record whose hash is recomputed (so the fuzzer gets past
//!   the SHA-256 check into the envelope decoding): must not panic; whatever decodes is the
//!   envelope the body says, and re-encoding it decodes to the same envelope.
//! - `2`: a canonical encoded event (dataset or release, chosen by the next byte) with a
//!   mutation chosen by the fuzzer (flip, overwrite, insert, delete, truncate, append,
//!   swap): decode must fail, unless the mutated bytes are identical to the original.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sha2::{Digest, Sha256};
use tradeledger::store::{decode, encode, Hash};
use tradeledger_fuzz::canonical_events;

/// Reads a position from two bytes of `rest` (0 when exhausted).
fn take_u16(rest: &mut &[u8]) -> usize {
    let v = match rest {
        [a, b, ..] => u16::from_le_bytes([*a, *b]) as usize,
        [a] => *a as usize,
        [] => 0,
    };
    *rest = rest.get(2..).unwrap_or(&[]);
    v
}

fn mutate(original: &[u8], mut rest: &[u8]) -> Vec<u8> {
    let mut v = original.to_vec();
    let Some((&kind, tail)) = rest.split_first() else {
        return v;
    };
    rest = tail;
    let len = v.len();
    match kind % 7 {
        0 => {
            // Flip bits at one or more positions.
            while rest.len() >= 3 {
                let at = take_u16(&mut rest) % len;
                let mask = rest[0];
                rest = &rest[1..];
                v[at] ^= mask;
            }
        }
        1 => {
            // Overwrite a range with fuzzer bytes.
            let at = take_u16(&mut rest) % len;
            let n = rest.len().min(len - at);
            v[at..at + n].copy_from_slice(&rest[..n]);
        }
        2 => {
            let at = take_u16(&mut rest) % (len + 1);
            v.splice(at..at, rest.iter().copied());
        }
        3 => {
            let at = take_u16(&mut rest) % len;
            let n = take_u16(&mut rest) % (len - at + 1);
            v.drain(at..at + n);
        }
        4 => v.truncate(take_u16(&mut rest) % len),
        5 => v.extend_from_slice(rest),
        _ => {
            let a = take_u16(&mut rest) % len;
            let b = take_u16(&mut rest) % len;
            v.swap(a, b);
        }
    }
    v
}

fuzz_target!(|data: &[u8]| {
    let Some((&first, rest)) = data.split_first() else {
        return;
    };
    let revision = match first >> 2 {
        0 => 1,
        n => u64::from(n) - 1,
    };
    match first & 3 {
        0 => {
            if let Ok(event) = decode(revision, rest, &Hash::GENESIS) {
                // Only possible for a record that carries its own correct hash.
                assert_eq!(event.hash.0.as_slice(), &rest[..32]);
                assert_eq!(event.revision(), revision);
            }
        }
        1 => {
            let hash: [u8; 32] = Sha256::digest(rest).into();
            let mut value = hash.to_vec();
            value.extend_from_slice(rest);
            if let Ok(event) = decode(revision, &value, &Hash::GENESIS) {
                assert_eq!(event.hash.0, hash);
                assert_eq!(event.revision(), revision);
                let (h2, bytes) = encode(&event.envelope);
                let again = decode(revision, &bytes, &Hash::GENESIS).expect("a re-encoded record decodes");
                assert_eq!(again.envelope, event.envelope);
                assert_eq!(again.hash, h2);
            }
        }
        2 => {
            let Some((&which, rest)) = rest.split_first() else {
                return;
            };
            let events = canonical_events();
            let original = &events[which as usize % events.len()];
            let mutated = mutate(original, rest);
            if let Ok(event) = decode(1, &mutated, &Hash::GENESIS) {
                assert_eq!(
                    &mutated, original,
                    "a mutated record decoded (as {:?})",
                    event.envelope.event.kind()
                );
            }
        }
        _ => {}
    }
});
