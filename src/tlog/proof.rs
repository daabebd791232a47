//! C2SP `tlog-proof@v1`: offline evidence that an entry is in a log, with the checkpoint
//! (and the witnesses' cosignatures) it is proven against.
//!
//! ```text
//! c2sp.org/tlog-proof@v1
//! [extra <base64>]
//! index <leaf index>
//! <base64 hash>...            the inclusion proof, from the leaf's sibling up
//!
//! <the checkpoint note, verbatim>
//! ```

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use sha2::{Digest, Sha256};

use super::merkle::{leaf_hash, Node};
use super::note::MAX_NOTE_BYTES;
use super::policy::Policy;
use super::{entry_of_record, revision_of, verify};

pub const HEADER: &str = "c2sp.org/tlog-proof@v1";
/// Longest proof read: a checkpoint note plus 64 hashes and a bounded extra line.
pub const MAX_PROOF_BYTES: usize = MAX_NOTE_BYTES + 64 * 1024;

/// A parsed proof.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlogProof {
    pub extra: Option<Vec<u8>>,
    pub index: u64,
    pub hashes: Vec<Node>,
    /// The checkpoint note, verbatim.
    pub checkpoint: String,
}

/// Writes a proof.
pub fn encode(index: u64, hashes: &[Node], checkpoint: &str) -> String {
    let mut out = format!("{HEADER}\nindex {index}\n");
    for h in hashes {
        out.push_str(&STANDARD.encode(h));
        out.push('\n');
    }
    out.push('\n');
    out.push_str(checkpoint);
    out
}

impl TlogProof {
    pub fn parse(text: &str) -> Result<TlogProof, String> {
        if text.len() > MAX_PROOF_BYTES {
            return Err(format!("the proof is longer than {MAX_PROOF_BYTES} bytes"));
        }
        let (head, checkpoint) = text
            .split_once("\n\n")
            .ok_or("no empty line between the inclusion proof and the checkpoint")?;
        let mut lines = head.split('\n');
        if lines.next() != Some(HEADER) {
            return Err(format!("the first line is not `{HEADER}`"));
        }
        let mut line = lines.next().ok_or("no index line")?;
        let mut extra = None;
        if let Some(data) = line.strip_prefix("extra ") {
            extra = Some(STANDARD.decode(data).map_err(|_| "the extra line is not base64")?);
            line = lines.next().ok_or("no index line")?;
        }
        let index = line
            .strip_prefix("index ")
            .filter(|d| !d.is_empty() && d.bytes().all(|b| b.is_ascii_digit()) && (*d == "0" || !d.starts_with('0')))
            .and_then(|d| d.parse::<u64>().ok())
            .ok_or_else(|| format!("`{}` is not an index line (`index <decimal>`)", line.escape_debug()))?;
        let mut hashes = Vec::new();
        for (i, l) in lines.enumerate() {
            if i == 64 {
                return Err("more than 64 inclusion proof hashes".into());
            }
            let h: Node = STANDARD
                .decode(l)
                .ok()
                .and_then(|b| b.try_into().ok())
                .ok_or_else(|| format!("inclusion proof line {} is not a base64 SHA-256 hash", i + 1))?;
            hashes.push(h);
        }
        Ok(TlogProof {
            extra,
            index,
            hashes,
            checkpoint: checkpoint.to_owned(),
        })
    }
}

/// What a proof shows once verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    pub origin: String,
    pub revision: u64,
    pub size: u64,
    pub cosigners: Vec<String>,
}

/// Verifies `proof` for the event with canonical bytes `event` under `policy`, in the
/// spec's order: the leaf from the event, the log's signature, the witnesses' quorum, the
/// inclusion. The error names the step that failed.
pub fn verify_event(policy: &Policy, proof: &str, event: &[u8]) -> Result<Verified, String> {
    let proof = TlogProof::parse(proof).map_err(|e| format!("malformed proof: {e}"))?;
    // 1. The leaf: the event's entry, for the revision it states.
    let revision = revision_of(event);
    if revision == 0 {
        return Err("the event file is not a tradeledger event (no format and revision)".into());
    }
    if revision != proof.index + 1 {
        return Err(format!(
            "the proof is for another entry: index {} is revision {}, the event is revision {revision}",
            proof.index,
            proof.index + 1
        ));
    }
    let hash: [u8; 32] = Sha256::digest(event).into();
    let mut record = hash.to_vec();
    record.extend_from_slice(event);
    let leaf = leaf_hash(&entry_of_record(&record));
    // 2 and 3. The log's signature and the witnesses' cosignatures.
    let witnessed = policy
        .check(&proof.checkpoint)
        .map_err(|e| format!("the checkpoint does not verify: {e}"))?;
    if !witnessed.quorum {
        return Err(format!(
            "the witness quorum is not met: cosigned by {}",
            if witnessed.cosigners.is_empty() {
                "no witness of the policy".to_owned()
            } else {
                witnessed.cosigners.join(", ")
            }
        ));
    }
    // 4. The inclusion.
    let c = &witnessed.checkpoint;
    if !verify::inclusion(proof.index, c.size, &leaf, &proof.hashes, &c.root) {
        return Err(format!(
            "the inclusion proof does not lead from the event to the root of the checkpoint of size {}",
            c.size
        ));
    }
    Ok(Verified {
        origin: c.origin.clone(),
        revision,
        size: c.size,
        cosigners: witnessed.cosigners,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_refuses_malformed_proofs() {
        let note = "o\n1\nAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n\n\u{2014} o AAAA\n";
        let text = encode(3, &[[1; 32], [2; 32]], note);
        let p = TlogProof::parse(&text).unwrap();
        assert_eq!((p.index, p.hashes.len(), p.checkpoint.as_str()), (3, 2, note));
        let extra = text.replacen("index", "extra AAEC\nindex", 1);
        assert_eq!(TlogProof::parse(&extra).unwrap().extra, Some(vec![0, 1, 2]));
        for bad in [
            text.replacen("@v1", "@v2", 1),
            text.replacen("index 3", "index 03", 1),
            text.replacen("index 3", "index", 1),
            text.replacen("index 3", "index -3", 1),
            text.replacen("\n\n", "\n", 1),
            text.replacen("AQEB", "!QEB", 1),
        ] {
            assert!(TlogProof::parse(&bad).is_err(), "{bad}");
        }
    }

    /// A proof of 128 KiB (a note's 64 KiB and 64 KiB more) is read; one byte more is refused
    /// for its length.
    #[test]
    fn reads_a_proof_up_to_its_length_limit() {
        assert_eq!(MAX_PROOF_BYTES, 131_072);
        let note = "o\n1\nAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n\n\u{2014} o AAAA\n";
        // The checkpoint is kept verbatim, so padding it makes a proof of any length.
        let proof = |len: usize| {
            let text = encode(0, &[], note);
            format!("{text}{}", "x".repeat(len - text.len()))
        };
        assert!(TlogProof::parse(&proof(MAX_PROOF_BYTES)).is_ok());
        let e = TlogProof::parse(&proof(MAX_PROOF_BYTES + 1)).unwrap_err();
        assert!(e.contains("longer than 131072 bytes"), "{e}");
    }

    /// `verify_event` checks the event's revision, the log's signature, the witness quorum and
    /// the inclusion, in that order, and names the step that failed.
    #[test]
    fn verifies_an_event_and_names_the_step_that_fails() {
        use super::super::cosign::Cosigner;
        use super::super::merkle::MerkleTree;
        use super::super::note::Signer;
        let log = Signer::new("example.com/log", [1; 32]).unwrap();
        let witness = Cosigner::new("w.example", [2; 32]).unwrap();
        let events: Vec<Vec<u8>> = (1..=3)
            .map(|r| format!("{{\"format\":2,\"revision\":{r},\"x\":1}}").into_bytes())
            .collect();
        let leaf = |event: &[u8]| {
            let mut record = Sha256::digest(event).to_vec();
            record.extend_from_slice(event);
            leaf_hash(&entry_of_record(&record))
        };
        let tree = MerkleTree::from_leaves(events.iter().map(|e| leaf(e)).collect());
        let note = log.checkpoint(3, &tree.root(3).unwrap());
        let body = note.split("\n\n").next().unwrap().to_owned() + "\n";
        let cosigned = format!("{note}{}\n", witness.cosign(&body, 7));
        let policy = Policy::parse(&format!(
            "log {}\nwitness W {}\nquorum W\n",
            log.verifier_key(),
            witness.verifier_key()
        ))
        .unwrap();
        let proof = |index: u64, path: u64, note: &str| encode(index, &tree.inclusion_proof(path, 3).unwrap(), note);
        let verified = verify_event(&policy, &proof(1, 1, &cosigned), &events[1]).unwrap();
        let want = Verified {
            origin: "example.com/log".into(),
            revision: 2,
            size: 3,
            cosigners: vec!["W".into()],
        };
        assert_eq!(verified, want);
        let other = Signer::new("example.com/log", [3; 32])
            .unwrap()
            .checkpoint(3, &tree.root(3).unwrap());
        for (proof, event, says) in [
            (proof(1, 1, &cosigned), &b"{\"x\":1}"[..], "not a tradeledger event"),
            (
                proof(1, 1, &cosigned),
                &events[2],
                "index 1 is revision 2, the event is revision 3",
            ),
            (proof(1, 1, &other), &events[1], "the checkpoint does not verify"),
            (
                proof(1, 1, &note),
                &events[1],
                "quorum is not met: cosigned by no witness",
            ),
            (
                proof(0, 1, &cosigned),
                &events[0],
                "does not lead from the event to the root",
            ),
        ] {
            let e = verify_event(&policy, &proof, event).unwrap_err();
            assert!(e.contains(says), "{says}: {e}");
        }
    }
}
