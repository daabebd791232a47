//! The named Ed25519 keys of signed notes, for a note signer (signature type 0x01) and a
//! witness cosigner (0x04) alike: the private key `PRIVATE+KEY+<name>+<hex id>+<base64(type
//! || seed)>` (the form Go's `golang.org/x/mod/sumdb/note` reads and writes), the verifier key
//! `<name>+<hex id>+<base64(type || public key)>`, and the key ID, which depends on the type.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use ed25519_dalek::{SigningKey, VerifyingKey};
use sha2::{Digest, Sha256};

use super::note::{NoteError, SignatureLine, MAX_NAME_BYTES};

fn err(message: impl Into<String>) -> NoteError {
    NoteError(message.into())
}

/// Checks a key name (the log origin): 1 to 256 bytes, no spaces and no `+`.
pub fn check_name(name: &str) -> Result<(), NoteError> {
    if name.is_empty() || name.len() > MAX_NAME_BYTES {
        return Err(err(format!(
            "the log origin must have 1 to {MAX_NAME_BYTES} bytes (got {})",
            name.len()
        )));
    }
    if name.chars().any(|c| c.is_whitespace() || c.is_control() || c == '+') {
        return Err(err(format!(
            "the log origin `{}` must not contain spaces, control characters or `+`",
            name.escape_debug()
        )));
    }
    Ok(())
}

/// The 4-byte key ID of a key of signature type `alg`: the first bytes of
/// `SHA-256(name || "\n" || alg || public key)`.
pub fn typed_key_hash(name: &str, alg: u8, public: &[u8; 32]) -> [u8; 4] {
    let mut h = Sha256::new();
    h.update(name.as_bytes());
    h.update(b"\n");
    h.update([alg]);
    h.update(public);
    let d = h.finalize();
    [d[0], d[1], d[2], d[3]]
}

/// `<prefix><name>+<hex id>+<base64(alg || key)>`: a private key text (prefix `PRIVATE+KEY+`)
/// or a verifier key (no prefix).
fn key_text(prefix: &str, name: &str, id: &[u8], alg: u8, key: &[u8; 32]) -> String {
    let mut data = vec![alg];
    data.extend_from_slice(key);
    format!("{prefix}{name}+{}+{}", hex::encode(id), STANDARD.encode(data))
}

/// A signing key of signature type `ALG` under its name, with its key ID.
pub(crate) struct NamedKey<const ALG: u8> {
    pub name: String,
    pub key: SigningKey,
    pub id: [u8; 4],
}

impl<const ALG: u8> NamedKey<ALG> {
    pub fn new(name: &str, seed: [u8; 32]) -> Result<Self, NoteError> {
        check_name(name)?;
        let key = SigningKey::from_bytes(&seed);
        let id = typed_key_hash(name, ALG, key.verifying_key().as_bytes());
        Ok(NamedKey {
            name: name.to_owned(),
            key,
            id,
        })
    }

    /// A new key from the operating system's random source.
    pub fn generate(name: &str) -> Result<Self, NoteError> {
        use rand::RngCore;
        let mut seed = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut seed);
        NamedKey::new(name, seed)
    }

    /// Reads `PRIVATE+KEY+<name>+<hex id>+<base64(ALG || seed)>`; `what` names the key in
    /// errors.
    pub fn parse(text: &str, what: &str) -> Result<Self, NoteError> {
        let bad = |why: &str| err(format!("not a {what} (`PRIVATE+KEY+name+id+key`): {why}"));
        // The base64 key may itself contain `+`: split off the first four fields only.
        let parts: Vec<&str> = text.trim().splitn(5, '+').collect();
        let [private, key, name, id, data] = parts[..] else {
            return Err(bad("wrong number of `+`-separated fields"));
        };
        if private != "PRIVATE" || key != "KEY" {
            return Err(bad("it does not start with `PRIVATE+KEY+`"));
        }
        let data = STANDARD.decode(data).map_err(|_| bad("the key is not base64"))?;
        let Some((_, seed)) = data.split_first().filter(|(a, _)| **a == ALG) else {
            return Err(bad(&format!("the key is not of signature type 0x{ALG:02x}")));
        };
        let seed: [u8; 32] = seed.try_into().map_err(|_| bad("the key is not 32 bytes"))?;
        let named = NamedKey::new(name, seed)?;
        if id != hex::encode(named.id) {
            return Err(bad("the key ID does not match the name and key"));
        }
        Ok(named)
    }

    /// The form [`NamedKey::parse`] reads. Secret: keep it owner-only.
    pub fn private_text(&self) -> String {
        key_text("PRIVATE+KEY+", &self.name, &self.id, ALG, self.key.as_bytes())
    }

    /// The verifier key: `<name>+<hex id>+<base64(ALG || public key)>`.
    pub fn verifier_text(&self) -> String {
        key_text("", &self.name, &self.id, ALG, self.key.verifying_key().as_bytes())
    }
}

/// A verifier key of signature type `ALG` under its name, with its key ID.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct NamedVerifier<const ALG: u8> {
    pub name: String,
    pub id: [u8; 4],
    pub key: VerifyingKey,
}

impl<const ALG: u8> NamedVerifier<ALG> {
    /// Parses `<name>+<hex id>+<base64(ALG || public key)>`; `what` names the key in errors,
    /// `kind` the signature type.
    pub fn parse(text: &str, what: &str, kind: &str) -> Result<Self, NoteError> {
        let bad = |why: &str| err(format!("not a {what} (`name+id+key`): {why}"));
        let parts: Vec<&str> = text.trim().splitn(3, '+').collect();
        let [name, id, data] = parts[..] else {
            return Err(bad("wrong number of `+`-separated fields"));
        };
        check_name(name)?;
        let data = STANDARD.decode(data).map_err(|_| bad("the key is not base64"))?;
        let Some((_, public)) = data.split_first().filter(|(a, _)| **a == ALG) else {
            return Err(bad(&format!("the key is not of signature type 0x{ALG:02x} ({kind})")));
        };
        let public: [u8; 32] = public.try_into().map_err(|_| bad("the key is not 32 bytes"))?;
        let key = VerifyingKey::from_bytes(&public).map_err(|_| bad("the key is not a valid Ed25519 point"))?;
        let computed = typed_key_hash(name, ALG, &public);
        if id != hex::encode(computed) {
            return Err(bad("the key ID does not match the name and key"));
        }
        Ok(NamedVerifier {
            name: name.to_owned(),
            id: computed,
            key,
        })
    }

    /// Whether a signature line is this key's (same name and key ID).
    pub fn matches(&self, line: &SignatureLine) -> bool {
        line.name == self.name && line.key_id == self.id
    }
}
