//! C2SP `tlog-cosignature` Ed25519 cosignatures (`cosignature/v1`, signature type 0x04):
//! a witness's timestamped statement that a checkpoint is the largest consistent tree it has
//! seen of that log.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use ed25519_dalek::Signer as _;

use super::keys::{NamedKey, NamedVerifier};
use super::note::{NoteError, SignatureLine};

/// The signature type byte of Ed25519 checkpoint cosignatures.
pub const ALG_COSIGNATURE_V1: u8 = 0x04;

fn err(message: impl Into<String>) -> NoteError {
    NoteError(message.into())
}

/// The message a `cosignature/v1` signs: a header line, a time line, then the checkpoint's
/// note text (with its final newline, without signatures).
pub fn message(body: &str, time: u64) -> String {
    format!("cosignature/v1\ntime {time}\n{body}")
}

/// A cosigner's signing key, kept as `PRIVATE+KEY+<name>+<hex key ID>+<base64(0x04 || seed)>`.
pub struct Cosigner(NamedKey<ALG_COSIGNATURE_V1>);

impl std::fmt::Debug for Cosigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Cosigner({})", self.verifier_key())
    }
}

impl Cosigner {
    pub fn new(name: &str, seed: [u8; 32]) -> Result<Cosigner, NoteError> {
        NamedKey::new(name, seed).map(Cosigner)
    }

    pub fn generate(name: &str) -> Result<Cosigner, NoteError> {
        NamedKey::generate(name).map(Cosigner)
    }

    pub fn parse(text: &str) -> Result<Cosigner, NoteError> {
        NamedKey::parse(text, "cosigner key").map(Cosigner)
    }

    pub fn to_private_text(&self) -> String {
        self.0.private_text()
    }

    pub fn name(&self) -> &str {
        &self.0.name
    }

    /// `<name>+<hex key ID>+<base64(0x04 || public key)>`.
    pub fn verifier_key(&self) -> String {
        self.0.verifier_text()
    }

    /// The signature line cosigning the checkpoint note text `body` at `time`.
    pub fn cosign(&self, body: &str, time: u64) -> String {
        let signature = self.0.key.sign(message(body, time).as_bytes());
        let mut data = self.0.id.to_vec();
        data.extend_from_slice(&time.to_be_bytes());
        data.extend_from_slice(&signature.to_bytes());
        format!("\u{2014} {} {}", self.0.name, STANDARD.encode(data))
    }
}

/// A cosigner's verifier key (signature type 0x04).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CosignatureVerifier(NamedVerifier<ALG_COSIGNATURE_V1>);

impl CosignatureVerifier {
    pub fn parse(text: &str) -> Result<CosignatureVerifier, NoteError> {
        NamedVerifier::parse(text, "cosignature verifier key", "Ed25519 cosignature").map(CosignatureVerifier)
    }

    pub fn name(&self) -> &str {
        &self.0.name
    }

    pub fn public_key(&self) -> &[u8; 32] {
        self.0.key.as_bytes()
    }

    /// Whether a signature line is this key's (same name and key ID); others are ignored.
    pub fn matches(&self, line: &SignatureLine) -> bool {
        self.0.matches(line)
    }

    /// Verifies this key's signature line over the note text `body`: its timestamp.
    pub fn verify(&self, body: &str, line: &SignatureLine) -> Result<u64, NoteError> {
        let sig = &line.signature;
        if !self.matches(line) || sig.len() != 8 + 64 {
            return Err(err(format!("the cosignature by {} is malformed", self.0.name)));
        }
        let time = u64::from_be_bytes(sig[..8].try_into().expect("8 bytes"));
        if time > i64::MAX as u64 {
            return Err(err(format!(
                "the cosignature by {} has a timestamp beyond 2^63 - 1",
                self.0.name
            )));
        }
        let signature = ed25519_dalek::Signature::from_bytes(sig[8..].try_into().expect("64 bytes"));
        self.0
            .key
            .verify_strict(message(body, time).as_bytes(), &signature)
            .map_err(|_| err(format!("the cosignature by {} does not verify", self.0.name)))?;
        Ok(time)
    }
}

#[cfg(test)]
mod tests {
    use super::super::note::parse_signature_line;
    use super::*;

    #[test]
    fn cosignatures_verify_over_the_body_and_time() {
        let w = Cosigner::new("witness.example/w1", [3; 32]).unwrap();
        let v = CosignatureVerifier::parse(&w.verifier_key()).unwrap();
        let body = "example.com/log\n5\nCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQk=\n";
        let line = parse_signature_line(&w.cosign(body, 1_700_000_000)).unwrap();
        assert_eq!(v.verify(body, &line), Ok(1_700_000_000));
        assert!(v.verify(&body.replace("\n5\n", "\n6\n"), &line).is_err());
        let mut later = line.clone();
        later.signature[7] ^= 1;
        assert!(v.verify(body, &later).is_err(), "the time is signed");
        let back = Cosigner::parse(&w.to_private_text()).unwrap();
        assert_eq!(back.verifier_key(), w.verifier_key());
        // A log key (type 0x01) is not a cosigner key.
        let log = super::super::note::Signer::new("witness.example/w1", [3; 32]).unwrap();
        assert!(CosignatureVerifier::parse(&log.verifier_key()).is_err());
        assert!(Cosigner::parse(&log.to_private_text()).is_err());
    }

    /// A cosignature is this verifier's only with its name and its key ID both; a line of the
    /// wrong length is malformed (not read past its end), and the timestamp may be at most
    /// 2^63 - 1, as the spec asks.
    #[test]
    fn a_cosignature_must_be_this_keys_and_well_formed() {
        let w = Cosigner::new("witness.example/w1", [3; 32]).unwrap();
        let v = CosignatureVerifier::parse(&w.verifier_key()).unwrap();
        assert_eq!((w.name(), v.name()), ("witness.example/w1", "witness.example/w1"));
        let debug = format!("{w:?}");
        assert_eq!(debug, format!("Cosigner({})", w.verifier_key()));
        assert!(!debug.contains(&w.to_private_text()["PRIVATE+KEY+".len()..]));
        let body = "example.com/log\n5\nCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQk=\n";
        let line = parse_signature_line(&w.cosign(body, 7)).unwrap();
        assert!(v.matches(&line));
        let renamed = SignatureLine {
            name: "witness.example/w2".into(),
            ..line.clone()
        };
        let rekeyed = SignatureLine {
            key_id: [0; 4],
            ..line.clone()
        };
        for other in [&renamed, &rekeyed] {
            assert!(!v.matches(other), "{other:?}");
            let e = v.verify(body, other).unwrap_err();
            assert!(e.0.contains("malformed"), "{e}");
        }
        for len in [0, 7, 71, 73] {
            let mut short = line.clone();
            short.signature.resize(len, 0);
            let e = v.verify(body, &short).unwrap_err();
            assert!(e.0.contains("malformed"), "{len}: {e}");
        }
        let last = i64::MAX as u64;
        let at = |time: u64| v.verify(body, &parse_signature_line(&w.cosign(body, time)).unwrap());
        assert_eq!(at(last), Ok(last));
        for time in [last + 1, u64::MAX] {
            let e = at(time).unwrap_err();
            assert!(e.0.contains("beyond 2^63 - 1"), "{time}: {e}");
        }
    }
}
