//! Writes the generated seeds of the `event_decode` corpus: canonical encoded events (the
//! fixture dataset and the fixture preliminary release) framed for each mode of the target;
//! and the `event_decode` regression input `revision_zero`.
//!
//! Run from `fuzz/`: `cargo run --example seeds` (add `--target-dir ../target` to reuse the
//! main crate's build).

use std::path::Path;

use tradeledger::domain::Event;
use tradeledger::store::{encode, Hash};
use tradeledger_fuzz::{canonical_events, dataset, envelope};

fn main() -> std::io::Result<()> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus/event_decode");
    std::fs::create_dir_all(&dir)?;
    for (i, name) in ["dataset", "release"].iter().enumerate() {
        let event = &canonical_events()[i];
        // Mode 0: the stored value as it is.
        let mut v = vec![0u8];
        v.extend_from_slice(event);
        std::fs::write(dir.join(format!("raw_{name}")), &v)?;
        // Mode 1: the body alone (the target recomputes the hash).
        let mut v = vec![1u8];
        v.extend_from_slice(&event[32..]);
        std::fs::write(dir.join(format!("body_{name}")), &v)?;
        // Mode 2: a few mutations of the canonical record.
        for (kind, args) in [
            ("flip", vec![0u8, 40, 0, 1]),
            ("overwrite", vec![1u8, 60, 0, b'9', b'9']),
            ("insert", vec![2u8, 33, 0, b' ']),
            ("truncate", vec![4u8, 100, 0]),
        ] {
            let mut v = vec![2u8, i as u8];
            v.extend_from_slice(&args);
            std::fs::write(dir.join(format!("mutate_{kind}_{name}")), &v)?;
        }
    }
    // Mode 1 (recomputed hash) asking for revision 0 (first byte: revision bits 1, mode 1):
    // an envelope that says revision 0 and whose prev_hash is not the genesis hash, which
    // sends `decode` into its prev_hash error message, computed with `revision - 1`.
    let mut env = envelope(0, &Hash::GENESIS, Event::DatasetDefined { dataset: dataset().clone() });
    env.prev_hash = Hash([0x11; 32]).to_hex();
    let (_, stored) = encode(&env);
    let mut v = vec![(1u8 << 2) | 1];
    v.extend_from_slice(&stored[32..]);
    let regressions = Path::new(env!("CARGO_MANIFEST_DIR")).join("regressions/event_decode");
    std::fs::create_dir_all(&regressions)?;
    std::fs::write(regressions.join("revision_zero"), &v)?;
    Ok(())
}
