//! Signed checkpoints in the C2SP formats: `tlog-checkpoint` bodies, `signed-note` Ed25519
//! signatures, and the note signer and verifier keys (their text forms are in `keys`).

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use ed25519_dalek::Signer as _;

use super::keys::{typed_key_hash, NamedKey, NamedVerifier};
use super::merkle::Node;

/// The signature algorithm byte of Ed25519 in signed notes.
const ALG_ED25519: u8 = 0x01;
/// The longest key name (origin) accepted.
pub const MAX_NAME_BYTES: usize = 256;
/// The longest note accepted when verifying one.
pub const MAX_NOTE_BYTES: usize = 64 * 1024;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct NoteError(pub String);

fn err(message: impl Into<String>) -> NoteError {
    NoteError(message.into())
}

/// The 4-byte key hash: the first bytes of `SHA-256(name || "\n" || 0x01 || public key)`.
pub fn key_hash(name: &str, public: &[u8; 32]) -> [u8; 4] {
    typed_key_hash(name, ALG_ED25519, public)
}

/// One signature line of a note: `— <name> base64(key ID || signature)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignatureLine {
    pub name: String,
    pub key_id: [u8; 4],
    pub signature: Vec<u8>,
    /// The whole line, without its newline.
    pub line: String,
}

/// The most signature lines accepted in a note (the signed-note spec asks for at least 16).
pub const MAX_SIGNATURES: usize = 64;

/// Splits a signed note into its text (with its final newline) and its signature lines.
pub fn split_note(note: &str) -> Result<(&str, Vec<SignatureLine>), NoteError> {
    if note.len() > MAX_NOTE_BYTES {
        return Err(err(format!("the note is longer than {MAX_NOTE_BYTES} bytes")));
    }
    if note.chars().any(|c| c.is_ascii_control() && c != '\n') {
        return Err(err(
            "malformed note: it contains a control character other than newline",
        ));
    }
    let split = note
        .rfind("\n\n")
        .ok_or_else(|| err("malformed note: no blank line before the signatures"))?;
    let (text, block) = (&note[..split + 1], &note[split + 2..]);
    if !block.ends_with('\n') {
        return Err(err("malformed note: the signature block does not end with a newline"));
    }
    let mut lines = Vec::new();
    for line in block.lines() {
        if lines.len() == MAX_SIGNATURES {
            return Err(err(format!("the note has more than {MAX_SIGNATURES} signatures")));
        }
        lines.push(parse_signature_line(line)?);
    }
    Ok((text, lines))
}

/// Parses one `— <name> <base64>` line (without its newline).
pub fn parse_signature_line(line: &str) -> Result<SignatureLine, NoteError> {
    let malformed = || err(format!("malformed signature line `{}`", line.escape_debug()));
    let rest = line.strip_prefix("\u{2014} ").ok_or_else(malformed)?;
    let (name, data) = rest.split_once(' ').ok_or_else(malformed)?;
    if name.is_empty() || name.contains('+') {
        return Err(malformed());
    }
    let data = STANDARD.decode(data).map_err(|_| malformed())?;
    if data.len() < 5 {
        return Err(malformed());
    }
    Ok(SignatureLine {
        name: name.to_owned(),
        key_id: [data[0], data[1], data[2], data[3]],
        signature: data[4..].to_vec(),
        line: line.to_owned(),
    })
}

/// The C2SP `tlog-checkpoint` body: origin, tree size and base64 root, each on its own line.
pub fn checkpoint_body(origin: &str, size: u64, root: &Node) -> String {
    format!("{origin}\n{size}\n{}\n", STANDARD.encode(root))
}

/// A checkpoint read from a note body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    pub origin: String,
    pub size: u64,
    pub root: Node,
}

impl Checkpoint {
    /// Parses a `tlog-checkpoint` body (extension lines after the root are allowed).
    pub fn parse(body: &str) -> Result<Checkpoint, NoteError> {
        let mut lines = body.split('\n');
        let (Some(origin), Some(size), Some(root)) = (lines.next(), lines.next(), lines.next()) else {
            return Err(err("a checkpoint has an origin, a tree size and a root hash line"));
        };
        if !body.ends_with('\n') || origin.is_empty() {
            return Err(err("malformed checkpoint: empty origin or no final newline"));
        }
        let parsed: u64 = size.parse().map_err(|_| {
            err(format!(
                "checkpoint tree size `{}` is not a decimal number",
                size.escape_debug()
            ))
        })?;
        if parsed.to_string() != size {
            return Err(err(format!("checkpoint tree size `{size}` is not in canonical form")));
        }
        let root: Node = STANDARD
            .decode(root)
            .ok()
            .and_then(|b| b.try_into().ok())
            .ok_or_else(|| err("checkpoint root hash is not 32 bytes of base64"))?;
        Ok(Checkpoint {
            origin: origin.to_owned(),
            size: parsed,
            root,
        })
    }
}

/// The log's signing key under its name (the origin).
pub struct Signer(NamedKey<ALG_ED25519>);

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Signer({})", self.verifier_key())
    }
}

impl Signer {
    pub fn new(name: &str, seed: [u8; 32]) -> Result<Signer, NoteError> {
        NamedKey::new(name, seed).map(Signer)
    }

    /// A new key from the operating system's random source.
    pub fn generate(name: &str) -> Result<Signer, NoteError> {
        NamedKey::generate(name).map(Signer)
    }

    /// Reads `PRIVATE+KEY+<name>+<hex key hash>+<base64(0x01 || seed)>`.
    pub fn parse(text: &str) -> Result<Signer, NoteError> {
        NamedKey::parse(text, "note signing key").map(Signer)
    }

    /// The form [`Signer::parse`] reads. Secret: keep it owner-only.
    pub fn to_private_text(&self) -> String {
        self.0.private_text()
    }

    pub fn name(&self) -> &str {
        &self.0.name
    }

    /// The note verifier key: `<name>+<hex key hash>+<base64(0x01 || public key)>`.
    pub fn verifier_key(&self) -> String {
        self.0.verifier_text()
    }

    /// Signs `text` (which must end with a newline) as a signed note.
    pub fn sign(&self, text: &str) -> String {
        debug_assert!(text.ends_with('\n'));
        let signature = self.0.key.sign(text.as_bytes());
        let mut data = self.0.id.to_vec();
        data.extend_from_slice(&signature.to_bytes());
        format!("{text}\n\u{2014} {} {}\n", self.0.name, STANDARD.encode(data))
    }

    /// The signed checkpoint of a tree.
    pub fn checkpoint(&self, size: u64, root: &Node) -> String {
        self.sign(&checkpoint_body(&self.0.name, size, root))
    }
}

/// A note verifier key.
#[derive(Debug, Clone)]
pub struct Verifier(NamedVerifier<ALG_ED25519>);

impl Verifier {
    /// Parses `<name>+<hex key hash>+<base64(0x01 || public key)>`.
    pub fn parse(text: &str) -> Result<Verifier, NoteError> {
        NamedVerifier::parse(text, "note verifier key", "Ed25519").map(Verifier)
    }

    pub fn name(&self) -> &str {
        &self.0.name
    }

    pub fn public_key(&self) -> &[u8; 32] {
        self.0.key.as_bytes()
    }

    /// Whether a signature line is this key's (same name and key ID).
    pub fn matches(&self, line: &SignatureLine) -> bool {
        self.0.matches(line)
    }

    /// Checks that `note` carries a valid signature by this key; returns the signed text.
    /// Signatures by other keys are ignored, as the signed-note format allows.
    pub fn open<'a>(&self, note: &'a str) -> Result<&'a str, NoteError> {
        if note.len() > MAX_NOTE_BYTES {
            return Err(err(format!("the note is longer than {MAX_NOTE_BYTES} bytes")));
        }
        let split = note
            .rfind("\n\n")
            .ok_or_else(|| err("malformed note: no blank line before the signatures"))?;
        let (text, signatures) = (&note[..split + 1], &note[split + 2..]);
        if !signatures.ends_with('\n') {
            return Err(err("malformed note: the signature block does not end with a newline"));
        }
        for line in signatures.lines() {
            let Some(rest) = line.strip_prefix("\u{2014} ") else {
                return Err(err(format!("malformed signature line `{}`", line.escape_debug())));
            };
            let Some((name, data)) = rest.split_once(' ') else {
                return Err(err(format!("malformed signature line `{}`", line.escape_debug())));
            };
            if name != self.0.name {
                continue;
            }
            let data = STANDARD
                .decode(data)
                .map_err(|_| err("malformed signature: not base64"))?;
            if data.len() != 68 || data[..4] != self.0.id {
                continue;
            }
            let signature = ed25519_dalek::Signature::from_bytes(data[4..].try_into().expect("64 bytes"));
            return match self.0.key.verify_strict(text.as_bytes(), &signature) {
                Ok(()) => Ok(text),
                Err(_) => Err(err(format!("the signature by {} does not verify", self.0.name))),
            };
        }
        Err(err(format!(
            "the note has no signature by {}+{}",
            self.0.name,
            hex::encode(self.0.id)
        )))
    }

    /// Opens a signed checkpoint: signature, format, and origin equal to the key's name.
    pub fn open_checkpoint(&self, note: &str) -> Result<Checkpoint, NoteError> {
        let checkpoint = Checkpoint::parse(self.open(note)?)?;
        if checkpoint.origin != self.0.name {
            return Err(err(format!(
                "the checkpoint's origin `{}` is not the key's name `{}`",
                checkpoint.origin, self.0.name
            )));
        }
        Ok(checkpoint)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signs_and_verifies_checkpoints() {
        let signer = Signer::new("example.com/log", [7; 32]).unwrap();
        let verifier = Verifier::parse(&signer.verifier_key()).unwrap();
        let note = signer.checkpoint(5, &[9; 32]);
        assert!(note.starts_with("example.com/log\n5\nCQkJ"), "{note}");
        assert!(note.contains("\n\n\u{2014} example.com/log "), "{note}");
        let c = verifier.open_checkpoint(&note).unwrap();
        assert_eq!((c.size, c.root), (5, [9; 32]));
        // One changed character anywhere in the body breaks the signature.
        let forged = note.replacen("\n5\n", "\n6\n", 1);
        assert!(verifier.open_checkpoint(&forged).is_err());
        let other = Signer::new("example.com/log", [8; 32]).unwrap();
        assert!(verifier.open_checkpoint(&other.checkpoint(5, &[9; 32])).is_err());
    }

    #[test]
    fn private_key_text_round_trips() {
        let signer = Signer::generate("tradeledger.local/abc").unwrap();
        let back = Signer::parse(&signer.to_private_text()).unwrap();
        assert_eq!(back.verifier_key(), signer.verifier_key());
        assert!(Signer::parse("PRIVATE+KEY+x+00000000+AQ==").is_err());
        assert!(Signer::new("has space", [1; 32]).is_err());
        assert!(Signer::new("has+plus", [1; 32]).is_err());
        assert!(Signer::new("", [1; 32]).is_err());
    }

    /// The example of Go's `golang.org/x/mod/sumdb/note`, the reference implementation: its
    /// private key reads to its verifier key (so the key ID is the spec's hash), and signing
    /// its text gives its note byte for byte (Ed25519 is deterministic).
    #[test]
    fn signs_the_reference_implementations_example_byte_for_byte() {
        let skey = "PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz";
        let vkey = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW";
        let text = "If you think cryptography is the answer to your problem,\n\
                    then you don't know what your problem is.\n";
        let signer = Signer::parse(skey).unwrap();
        assert_eq!(signer.verifier_key(), vkey);
        assert_eq!(signer.to_private_text(), skey);
        let note = signer.sign(text);
        assert_eq!(
            note,
            format!(
                "{text}\n\u{2014} PeterNeumann \
                 x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n"
            )
        );
        assert_eq!(Verifier::parse(vkey).unwrap().open(&note), Ok(text));
        let public = signer.verifier_key();
        let public: [u8; 32] = STANDARD.decode(public.rsplit('+').next().unwrap()).unwrap()[1..]
            .try_into()
            .unwrap();
        assert_eq!(hex::encode(key_hash("PeterNeumann", &public)), "c74f20a3");
    }

    /// A note of `len` bytes: text, a blank line and one signature line by another key.
    fn padded_note(len: usize) -> String {
        let tail = "\n\n\u{2014} x AAAA\n";
        format!("{}{tail}", "a".repeat(len - tail.len()))
    }

    /// A verifier reads only its own signature lines (same name and key ID, 68 bytes), skips
    /// every other, and opens notes up to 64 KiB.
    #[test]
    fn a_verifier_reads_only_its_own_signatures() {
        let signer = Signer::new("example.com/log", [7; 32]).unwrap();
        let verifier = Verifier::parse(&signer.verifier_key()).unwrap();
        let key = STANDARD
            .decode(signer.verifier_key().rsplit('+').next().unwrap())
            .unwrap();
        assert_eq!(verifier.public_key()[..], key[1..]);
        let note = signer.sign("text\n");
        let (_, lines) = split_note(&note).unwrap();
        assert!(verifier.matches(&lines[0]));
        let renamed = SignatureLine {
            name: "example.com/other".into(),
            ..lines[0].clone()
        };
        let rekeyed = SignatureLine {
            key_id: [0; 4],
            ..lines[0].clone()
        };
        assert!(!verifier.matches(&renamed) && !verifier.matches(&rekeyed));
        // Lines under the key's name that are not its signature are skipped: a short one with
        // its key ID, a full one with another key ID.
        let hash = key_hash("example.com/log", verifier.public_key());
        let short = STANDARD.encode([&hash[..], &[1]].concat());
        let other = STANDARD.encode([&[0u8; 4][..], &[1; 64]].concat());
        for line in [short, other] {
            let e = verifier
                .open(&format!("text\n\n\u{2014} example.com/log {line}\n"))
                .unwrap_err();
            assert!(e.0.contains("has no signature by example.com/log+"), "{line}: {e}");
        }
        // At 64 KiB a note is read (here, to find no signature); one byte more is refused.
        let e = verifier.open(&padded_note(MAX_NOTE_BYTES)).unwrap_err();
        assert!(e.0.contains("has no signature"), "{e}");
        let e = verifier.open(&padded_note(MAX_NOTE_BYTES + 1)).unwrap_err();
        assert!(e.0.contains("longer than 65536 bytes"), "{e}");
    }

    /// The bounds are inclusive: a name of exactly 256 bytes and a note of exactly 64 KiB are
    /// read, one byte more is refused for its length; a private key must start `PRIVATE+KEY+`.
    #[test]
    fn refuses_past_the_bounds_and_not_at_them() {
        assert!(super::super::keys::check_name(&"n".repeat(MAX_NAME_BYTES)).is_ok());
        let e = super::super::keys::check_name(&"n".repeat(MAX_NAME_BYTES + 1)).unwrap_err();
        assert!(e.0.contains("1 to 256 bytes"), "{e}");
        assert_eq!(padded_note(MAX_NOTE_BYTES).len(), 65_536);
        let at = split_note(&padded_note(MAX_NOTE_BYTES)).map(|(text, _)| text.len());
        assert!(!at.as_ref().is_err_and(|e| e.0.contains("longer")), "{at:?}");
        let e = split_note(&padded_note(MAX_NOTE_BYTES + 1)).unwrap_err();
        assert!(e.0.contains("longer than 65536 bytes"), "{e}");
        for text in ["PRIVATE+KEX+a+00000000+AQ==", "PRIVATX+KEY+a+00000000+AQ=="] {
            let e = Signer::parse(text).unwrap_err();
            assert!(e.0.contains("does not start with `PRIVATE+KEY+`"), "{text}: {e}");
        }
    }

    #[test]
    fn refuses_malformed_checkpoints() {
        for body in [
            "",
            "o\n",
            "o\n01\nAAAA\n",
            "o\n1\nAAAA\n",
            "o\nx\nAAAA\n",
            "\n1\nAAAA\n",
        ] {
            assert!(Checkpoint::parse(body).is_err(), "{body:?}");
        }
        // Each fault alone, beside a well-formed root: no final newline, an empty origin.
        let root = STANDARD.encode([9; 32]);
        assert!(Checkpoint::parse(&format!("o\n1\n{root}\n")).is_ok());
        for body in [format!("o\n1\n{root}"), format!("\n1\n{root}\n")] {
            let e = Checkpoint::parse(&body).unwrap_err();
            assert!(e.0.contains("empty origin or no final newline"), "{body:?}: {e}");
        }
    }

    /// A signature line names a key without `+` and carries its 4-byte key ID and at least
    /// one byte of signature.
    #[test]
    fn reads_signature_lines() {
        let line = parse_signature_line("\u{2014} a AQIDBAU=").unwrap();
        assert_eq!(
            (line.name.as_str(), line.key_id, line.signature),
            ("a", [1, 2, 3, 4], vec![5])
        );
        for bad in [
            "\u{2014}  AQIDBAU=",
            "\u{2014} a+b AQIDBAU=",
            "\u{2014} a AQIDBA==",
            "\u{2014} a AQID",
        ] {
            let e = parse_signature_line(bad).unwrap_err();
            assert!(e.0.starts_with("malformed signature line"), "{bad:?}: {e}");
        }
        let signer = Signer::new("example.com/log", [7; 32]).unwrap();
        let debug = format!("{signer:?}");
        assert_eq!(debug, format!("Signer({})", signer.verifier_key()));
        assert!(!debug.contains(&signer.to_private_text()["PRIVATE+KEY+".len()..]));
    }
}
