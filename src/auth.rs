//! Bearer tokens: parsing, constant-time checks, and the generated first-start token.

use std::io::Write;
use std::path::Path;

use rand::RngCore;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::graphql::Caller;

/// A configured token: its name (recorded as the actor of writes) and the digest of its
/// secret. The secret itself is not kept.
#[derive(Clone)]
pub struct Token {
    pub name: String,
    digest: [u8; 32],
}

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Token({}, <secret>)", self.name)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid token: {0}")]
pub struct TokenError(&'static str);

impl Token {
    /// Parses `name:secret`, or a bare `secret` (named after a short digest of it).
    pub fn parse(spec: &str) -> Result<Token, TokenError> {
        let spec = spec.trim();
        let (name, secret) = match spec.split_once(':') {
            Some((name, secret)) => (Some(name.trim()), secret),
            None => (None, spec),
        };
        if secret.len() < 8 {
            return Err(TokenError("the secret must have at least 8 characters"));
        }
        if secret.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(TokenError("the secret must not contain spaces or control characters"));
        }
        let digest: [u8; 32] = Sha256::digest(secret.as_bytes()).into();
        let name = match name {
            Some(n)
                if !n.is_empty()
                    && n.len() <= 64
                    && n.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b)) =>
            {
                n.to_owned()
            }
            Some(_) => return Err(TokenError("the name must be 1 to 64 letters, digits, `-`, `_` or `.`")),
            None => format!("token-{}", &hex::encode(digest)[..8]),
        };
        Ok(Token { name, digest })
    }

    /// Parses a comma-separated list.
    pub fn parse_list(list: &str) -> Result<Vec<Token>, TokenError> {
        list.split(',')
            .filter(|s| !s.trim().is_empty())
            .map(Token::parse)
            .collect()
    }
}

/// What a presented token grants.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Access {
    /// May run the online operations (`/admin/`), and write and read.
    Admin(String),
    Write(String),
    Read(String),
    Invalid,
}

/// The configured tokens.
#[derive(Debug, Clone, Default)]
pub struct Tokens {
    pub write: Vec<Token>,
    pub read: Vec<Token>,
    /// Admin tokens (`--admin-tokens`): everything a write token may do, and the online
    /// operations under `/admin/` (import, export).
    pub admin: Vec<Token>,
}

impl Tokens {
    /// Whether reads need a token.
    pub fn reads_protected(&self) -> bool {
        !self.read.is_empty()
    }

    /// Checks a presented secret against every token, in constant time per token and
    /// without stopping at the first match.
    pub fn check(&self, presented: &str) -> Access {
        let digest: [u8; 32] = Sha256::digest(presented.as_bytes()).into();
        let mut found = Access::Invalid;
        for t in &self.admin {
            if bool::from(t.digest.ct_eq(&digest)) && found == Access::Invalid {
                found = Access::Admin(t.name.clone());
            }
        }
        for t in &self.write {
            if bool::from(t.digest.ct_eq(&digest)) && found == Access::Invalid {
                found = Access::Write(t.name.clone());
            }
        }
        for t in &self.read {
            if bool::from(t.digest.ct_eq(&digest)) && found == Access::Invalid {
                found = Access::Read(t.name.clone());
            }
        }
        found
    }
}

/// Extracts the secret of an `Authorization: Bearer <secret>` header value.
pub fn bearer(header: &str) -> Option<&str> {
    let (scheme, rest) = header.trim().split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| rest.trim())
}

/// Name of the file, in the data directory, holding the generated write token.
pub const TOKEN_FILE: &str = "write-token";

/// Loads the generated write token, creating it (owner-only) on first start. Returns the
/// token and, only when it was just created, its full `name:secret` text to print once.
pub fn generated_token(data_dir: &Path) -> std::io::Result<(Token, Option<String>)> {
    let path = data_dir.join(TOKEN_FILE);
    if let Ok(text) = std::fs::read_to_string(&path) {
        let token = Token::parse(text.trim())
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, format!("{}: {e}", path.display())))?;
        return Ok((token, None));
    }
    let mut secret = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut secret);
    let text = format!("admin:{}", hex::encode(secret));
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(&path)?;
    file.write_all(text.as_bytes())?;
    file.sync_all()?;
    let token = Token::parse(&text).expect("generated tokens are valid");
    Ok((token, Some(text)))
}

/// Decides who is calling from a presented token secret (HTTP `Authorization` header or
/// WebSocket `connection_init`); the error says why the caller is refused.
pub fn authorize(tokens: &Tokens, secret: Option<&str>) -> Result<Caller, &'static str> {
    let caller = match secret.map(|s| tokens.check(s)) {
        None => Caller::default(),
        Some(Access::Write(name) | Access::Admin(name)) => Caller {
            actor: Some(name),
            can_write: true,
        },
        Some(Access::Read(name)) => Caller {
            actor: Some(name),
            can_write: false,
        },
        Some(Access::Invalid) => return Err("the bearer token is not valid"),
    };
    if tokens.reads_protected() && caller.actor.is_none() {
        return Err("this server needs a bearer token for reads");
    }
    Ok(caller)
}

/// The admin token presented in `Authorization`, by name: `Err` with the HTTP status and why
/// when there is none, it is not valid, or it is not an admin token.
pub fn admin(tokens: &Tokens, header: Option<&str>) -> Result<String, (u16, &'static str)> {
    let Some(header) = header else {
        return Err((
            401,
            "this operation needs an admin token (`Authorization: Bearer <token>`)",
        ));
    };
    let Some(secret) = bearer(header) else {
        return Err((401, "the Authorization header must be `Bearer <token>`"));
    };
    match tokens.check(secret) {
        Access::Admin(name) => Ok(name),
        Access::Write(_) | Access::Read(_) => Err((
            403,
            "this operation needs an admin token (--admin-tokens); the token given is valid but not an admin token",
        )),
        Access::Invalid => Err((401, "the bearer token is not valid")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_checks_tokens() {
        let tokens = Tokens {
            write: Token::parse_list("ci:secret-one-1, plainsecret2").unwrap(),
            read: Token::parse_list("viewer:read-secret").unwrap(),
            admin: Token::parse_list("ops:admin-secret").unwrap(),
        };
        assert_eq!(tokens.check("admin-secret"), Access::Admin("ops".into()));
        assert_eq!(tokens.check("secret-one-1"), Access::Write("ci".into()));
        assert!(matches!(tokens.check("plainsecret2"), Access::Write(n) if n.starts_with("token-")));
        assert_eq!(tokens.check("read-secret"), Access::Read("viewer".into()));
        assert_eq!(tokens.check("ci:secret-one-1"), Access::Invalid);
        assert_eq!(tokens.check(""), Access::Invalid);
        assert!(format!("{:?}", tokens).contains("<secret>"));
        assert!(!format!("{:?}", tokens).contains("secret-one-1"));
    }

    #[test]
    fn refuses_weak_or_malformed_tokens() {
        assert!(Token::parse("short").is_err());
        // Eight characters is the shortest secret taken, with or without a name.
        assert!(Token::parse("1234567").is_err());
        assert!(Token::parse("ci:1234567").is_err());
        assert!(Token::parse("12345678").is_ok());
        assert_eq!(Token::parse("ci:12345678").unwrap().name, "ci");
        assert!(Token::parse("name:has space inside").is_err());
        assert!(Token::parse("bad name!:longenoughsecret").is_err());
        assert!(Token::parse(":longenoughsecret").is_err());
    }

    fn configured(read: &str) -> Tokens {
        Tokens {
            write: Token::parse_list("ci:write-secret").unwrap(),
            read: Token::parse_list(read).unwrap(),
            admin: Token::parse_list("ops:admin-secret").unwrap(),
        }
    }

    #[test]
    fn anonymous_reads_pass_only_without_read_tokens() {
        let open = configured("");
        assert!(!open.reads_protected());
        assert_eq!(authorize(&open, None), Ok(Caller::default()));
        let closed = configured("viewer:read-secret");
        assert!(closed.reads_protected());
        assert_eq!(
            authorize(&closed, None),
            Err("this server needs a bearer token for reads")
        );
        assert_eq!(
            authorize(&closed, Some("read-secret")),
            Ok(Caller {
                actor: Some("viewer".into()),
                can_write: false
            })
        );
        for tokens in [&open, &closed] {
            assert_eq!(
                authorize(tokens, Some("wrong-secret")),
                Err("the bearer token is not valid")
            );
            for (secret, name) in [("write-secret", "ci"), ("admin-secret", "ops")] {
                assert_eq!(
                    authorize(tokens, Some(secret)),
                    Ok(Caller {
                        actor: Some(name.into()),
                        can_write: true
                    })
                );
            }
        }
    }

    #[test]
    fn admin_operations_need_an_admin_token() {
        let tokens = configured("viewer:read-secret");
        assert_eq!(admin(&tokens, Some("Bearer admin-secret")), Ok("ops".into()));
        assert_eq!(admin(&tokens, None).unwrap_err().0, 401);
        assert_eq!(admin(&tokens, Some("Basic admin-secret")).unwrap_err().0, 401);
        assert_eq!(admin(&tokens, Some("Bearer wrong-secret")).unwrap_err().0, 401);
        assert_eq!(admin(&tokens, Some("Bearer write-secret")).unwrap_err().0, 403);
        assert_eq!(admin(&tokens, Some("Bearer read-secret")).unwrap_err().0, 403);
    }

    #[test]
    fn parses_bearer_headers() {
        assert_eq!(bearer("Bearer abc"), Some("abc"));
        assert_eq!(bearer("bearer   abc "), Some("abc"));
        assert_eq!(bearer("Basic abc"), None);
        assert_eq!(bearer("Bearer"), None);
    }

    #[test]
    fn generated_token_is_private_and_stable() {
        let dir = tempfile::tempdir().unwrap();
        let (t1, printed) = generated_token(dir.path()).unwrap();
        let printed = printed.expect("printed on first start");
        let (t2, again) = generated_token(dir.path()).unwrap();
        assert!(again.is_none(), "printed only once");
        assert_eq!(t1.name, t2.name);
        let tokens = Tokens {
            write: vec![t2],
            ..Tokens::default()
        };
        assert_eq!(
            tokens.check(printed.split_once(':').unwrap().1),
            Access::Write("admin".into())
        );
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.path().join(TOKEN_FILE))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }
}
