//! C2SP `tlog-policy` files: the logs and witnesses a verifier trusts, and the quorum of
//! witnesses a checkpoint needs.
//!
//! ```text
//! log <vkey> [<url>]
//! witness <name> <vkey> [<url>]
//! group <name> all|any|<k> <name>...
//! quorum <name>|none
//! ```

use std::collections::{BTreeSet, HashMap};

use super::cosign::CosignatureVerifier;
use super::note::{split_note, Checkpoint, NoteError, Verifier};

/// Most logs, witnesses and groups a policy may define (the spec asks for at least 32).
pub const MAX_ENTRIES: usize = 256;
/// Longest policy file read.
pub const MAX_POLICY_BYTES: usize = 256 * 1024;

/// A policy file line that is not what the spec allows: names the line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {message}")]
pub struct PolicyError {
    pub line: usize,
    pub message: String,
}

#[derive(Debug, Clone)]
pub struct PolicyLog {
    pub verifier: Verifier,
    pub url: Option<String>,
}

#[derive(Debug, Clone)]
pub struct PolicyWitness {
    pub name: String,
    pub verifier: CosignatureVerifier,
    pub url: Option<String>,
}

/// A member of a group, or the quorum: a witness or an earlier group, by position.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Member {
    Witness(usize),
    Group(usize),
}

#[derive(Debug, Clone)]
struct Group {
    threshold: usize,
    members: Vec<Member>,
}

/// A parsed policy.
#[derive(Debug, Clone)]
pub struct Policy {
    pub logs: Vec<PolicyLog>,
    pub witnesses: Vec<PolicyWitness>,
    groups: Vec<Group>,
    /// `None` for `quorum none`.
    quorum: Option<Member>,
}

/// What a checkpoint's signatures show under a policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Witnessed {
    pub checkpoint: Checkpoint,
    /// Names (in the policy) of the witnesses whose cosignatures verify, in policy order.
    pub cosigners: Vec<String>,
    pub quorum: bool,
}

fn is_space(c: char) -> bool {
    c == ' ' || c == '\t'
}

impl Policy {
    pub fn parse(text: &str) -> Result<Policy, PolicyError> {
        let at = |line: usize, message: String| PolicyError { line, message };
        if text.len() > MAX_POLICY_BYTES {
            return Err(at(0, format!("the policy is longer than {MAX_POLICY_BYTES} bytes")));
        }
        let mut logs: Vec<PolicyLog> = Vec::new();
        let mut witnesses: Vec<PolicyWitness> = Vec::new();
        let mut groups: Vec<Group> = Vec::new();
        let mut names: HashMap<&str, Member> = HashMap::new();
        let mut quorum: Option<Option<Member>> = None;
        for (i, raw) in text.split('\n').enumerate() {
            let n = i + 1;
            if let Some(c) = raw.chars().find(|c| c.is_ascii_control() && *c != '\t') {
                return Err(at(
                    n,
                    format!("control character {c:?} (only tab and newline are allowed)"),
                ));
            }
            let line = raw.trim_matches(is_space);
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let words: Vec<&str> = line.split(is_space).filter(|w| !w.is_empty()).collect();
            // The quorum line defines nothing: a policy of MAX_ENTRIES entries still has one.
            let defines = matches!(words[0], "log" | "witness" | "group");
            if defines && logs.len() + witnesses.len() + groups.len() >= MAX_ENTRIES {
                return Err(at(n, format!("more than {MAX_ENTRIES} logs, witnesses and groups")));
            }
            match words[0] {
                "log" => {
                    let (vkey, url) = match words[1..] {
                        [vkey] => (vkey, None),
                        [vkey, url] => (vkey, Some(url.to_owned())),
                        _ => return Err(at(n, "expected `log <vkey> [<url>]`".into())),
                    };
                    let verifier = Verifier::parse(vkey).map_err(|e| at(n, format!("the log's vkey: {e}")))?;
                    if logs.iter().any(|l| l.verifier.public_key() == verifier.public_key()) {
                        return Err(at(n, "a duplicate log (the same public key is listed before)".into()));
                    }
                    logs.push(PolicyLog { verifier, url });
                }
                "witness" => {
                    let (name, vkey, url) = match words[1..] {
                        [name, vkey] => (name, vkey, None),
                        [name, vkey, url] => (name, vkey, Some(url.to_owned())),
                        _ => return Err(at(n, "expected `witness <name> <vkey> [<url>]`".into())),
                    };
                    let verifier = CosignatureVerifier::parse(vkey)
                        .map_err(|e| at(n, format!("the vkey of witness `{name}`: {e}")))?;
                    if witnesses
                        .iter()
                        .any(|w| w.verifier.public_key() == verifier.public_key())
                    {
                        return Err(at(
                            n,
                            format!("witness `{name}` is a duplicate (its public key is listed before)"),
                        ));
                    }
                    define(&mut names, name, Member::Witness(witnesses.len())).map_err(|m| at(n, m))?;
                    witnesses.push(PolicyWitness {
                        name: name.to_owned(),
                        verifier,
                        url,
                    });
                }
                "group" => {
                    let [_, name, threshold, ref members @ ..] = words[..] else {
                        return Err(at(n, "expected `group <name> all|any|<k> <name>...`".into()));
                    };
                    if members.is_empty() {
                        return Err(at(n, format!("group `{name}` has no members")));
                    }
                    let mut resolved = Vec::new();
                    for m in members {
                        let member = lookup(&names, m).map_err(|e| at(n, e))?;
                        if resolved.contains(&member) {
                            return Err(at(n, format!("`{m}` is listed twice in group `{name}`")));
                        }
                        resolved.push(member);
                    }
                    let k = match threshold {
                        "all" => resolved.len(),
                        "any" => 1,
                        k => {
                            let parsed = (k.bytes().all(|b| b.is_ascii_digit()) && !k.starts_with('0'))
                                .then(|| k.parse::<usize>().ok())
                                .flatten();
                            match parsed {
                                Some(v) if v >= 1 && v <= resolved.len() => v,
                                _ => {
                                    return Err(at(
                                        n,
                                        format!(
                                            "the threshold `{k}` of group `{name}` must be all, any or a \
                                             decimal from 1 to its {} members",
                                            resolved.len()
                                        ),
                                    ))
                                }
                            }
                        }
                    };
                    define(&mut names, name, Member::Group(groups.len())).map_err(|m| at(n, m))?;
                    groups.push(Group {
                        threshold: k,
                        members: resolved,
                    });
                }
                "quorum" => {
                    let [_, name] = words[..] else {
                        return Err(at(n, "expected `quorum <name>`".into()));
                    };
                    if quorum.is_some() {
                        return Err(at(n, "a second quorum line (a policy has exactly one)".into()));
                    }
                    quorum = Some(if name == "none" {
                        None
                    } else {
                        Some(lookup(&names, name).map_err(|e| at(n, e))?)
                    });
                }
                other => {
                    return Err(at(
                        n,
                        format!(
                            "unknown keyword `{}` (expected log, witness, group or quorum)",
                            other.escape_debug()
                        ),
                    ))
                }
            }
        }
        let Some(quorum) = quorum else {
            return Err(at(0, "the policy has no quorum line".into()));
        };
        Ok(Policy {
            logs,
            witnesses,
            groups,
            quorum,
        })
    }

    /// Whether the witnesses at these positions satisfy the quorum.
    pub fn quorum_met(&self, cosigned: &BTreeSet<usize>) -> bool {
        match self.quorum {
            None => true,
            Some(m) => self.member_met(m, cosigned),
        }
    }

    fn member_met(&self, member: Member, cosigned: &BTreeSet<usize>) -> bool {
        match member {
            Member::Witness(w) => cosigned.contains(&w),
            Member::Group(g) => {
                let group = &self.groups[g];
                group.members.iter().filter(|m| self.member_met(**m, cosigned)).count() >= group.threshold
            }
        }
    }

    /// The log of the policy whose key name is `origin`.
    pub fn log_for(&self, origin: &str) -> Option<&PolicyLog> {
        self.logs.iter().find(|l| l.verifier.name() == origin)
    }

    /// Checks a checkpoint note: signed by a log of the policy for its origin, and every
    /// cosignature by a witness of the policy valid (one that fails refuses the note, as
    /// signed-note asks); reports which witnesses cosigned and whether the quorum holds.
    pub fn check(&self, note: &str) -> Result<Witnessed, NoteError> {
        let (body, lines) = split_note(note)?;
        let origin = body.split('\n').next().unwrap_or_default();
        let log = self.log_for(origin).ok_or_else(|| {
            NoteError(format!(
                "the checkpoint's origin `{}` is not a log of the policy",
                origin.escape_debug()
            ))
        })?;
        let checkpoint = log.verifier.open_checkpoint(note)?;
        let mut cosigned = BTreeSet::new();
        for line in &lines {
            for (i, w) in self.witnesses.iter().enumerate() {
                if w.verifier.matches(line) {
                    w.verifier.verify(body, line)?;
                    cosigned.insert(i);
                }
            }
        }
        Ok(Witnessed {
            checkpoint,
            cosigners: cosigned.iter().map(|i| self.witnesses[*i].name.clone()).collect(),
            quorum: self.quorum_met(&cosigned),
        })
    }
}

fn define<'a>(names: &mut HashMap<&'a str, Member>, name: &'a str, member: Member) -> Result<(), String> {
    if name == "none" {
        return Err("`none` is reserved (it is the quorum of no witness)".into());
    }
    if names.insert(name, member).is_some() {
        return Err(format!("`{name}` is defined twice"));
    }
    Ok(())
}

fn lookup(names: &HashMap<&str, Member>, name: &str) -> Result<Member, String> {
    if name == "none" {
        return Err("`none` cannot be a group member".into());
    }
    names
        .get(name)
        .copied()
        .ok_or_else(|| format!("`{name}` is not a witness or group defined on an earlier line"))
}

#[cfg(test)]
mod tests {
    use super::super::cosign::Cosigner;
    use super::super::note::Signer;
    use super::*;

    fn keys() -> (Signer, Vec<Cosigner>) {
        let log = Signer::new("example.com/log", [1; 32]).unwrap();
        let ws = (0..3)
            .map(|i| Cosigner::new(&format!("w{i}.example"), [10 + i; 32]).unwrap())
            .collect();
        (log, ws)
    }

    #[test]
    fn parses_the_spec_example_shape_and_evaluates_groups() {
        let (log, ws) = keys();
        let text = format!(
            "# a comment\nlog {}\n\n witness A {} http://a.example/\nwitness\tB {}\nwitness C {}\n\
             group AB 2 A B\ngroup top any AB C\nquorum top\n",
            log.verifier_key(),
            ws[0].verifier_key(),
            ws[1].verifier_key(),
            ws[2].verifier_key()
        );
        let p = Policy::parse(&text).unwrap();
        assert_eq!(p.witnesses[0].url.as_deref(), Some("http://a.example/"));
        let set = |v: &[usize]| v.iter().copied().collect::<BTreeSet<_>>();
        assert!(!p.quorum_met(&set(&[0])));
        assert!(p.quorum_met(&set(&[0, 1])));
        assert!(p.quorum_met(&set(&[2])));
        let body = log.checkpoint(5, &[9; 32]);
        let text_of = body.split("\n\n").next().unwrap().to_owned() + "\n";
        let cosigned = format!("{body}{}\n", ws[0].cosign(&text_of, 7));
        let w = p.check(&cosigned).unwrap();
        assert_eq!((w.cosigners.clone(), w.quorum), (vec!["A".to_owned()], false));
        let both = format!("{cosigned}{}\n", ws[1].cosign(&text_of, 8));
        assert!(p.check(&both).unwrap().quorum);
        // A known witness's bad cosignature refuses the note.
        let bad = format!("{body}{}\n", ws[0].cosign("other\n", 7));
        assert!(p.check(&bad).is_err());
    }

    #[test]
    fn names_the_line_of_each_mistake() {
        let (log, ws) = keys();
        let w = ws[0].verifier_key();
        let l = log.verifier_key();
        for (text, line, says) in [
            (format!("log {l}\nquorum X\n"), 2, "not a witness or group"),
            (format!("witness A {w}\nwitness B {w}\nquorum A\n"), 2, "duplicate"),
            (format!("witness A {w}\ngroup G 2 A\nquorum G\n"), 2, "threshold"),
            (format!("witness A {w}\ngroup G 0 A\nquorum G\n"), 2, "threshold"),
            (format!("witness A {w}\ngroup G 01 A\nquorum G\n"), 2, "threshold"),
            (format!("witness A {w}\ngroup G +1 A\nquorum G\n"), 2, "threshold"),
            (format!("witness A {w}\ngroup G any A A\nquorum G\n"), 2, "listed twice"),
            (format!("witness A {w}\ngroup G any\nquorum G\n"), 2, "no members"),
            (format!("witness A {w}\nquorum A\nquorum A\n"), 3, "second quorum"),
            (format!("witness none {w}\nquorum none\n"), 1, "reserved"),
            (format!("witness A {l}\nquorum A\n"), 1, "type 0x04"),
            (format!("log {w}\nquorum none\n"), 1, "the log's vkey"),
            ("witnesses A B\nquorum none\n".to_owned(), 1, "unknown keyword"),
            ("quorum none\nlog\n".to_owned(), 2, "expected `log"),
            ("quorum none\x0b\n".to_owned(), 1, "control character"),
            (format!("log {l}\n"), 0, "no quorum"),
        ] {
            let e = Policy::parse(&text).unwrap_err();
            assert_eq!(e.line, line, "{text}: {e}");
            assert!(e.message.contains(says), "{text}: {e}");
        }
        assert!(Policy::parse("quorum none\n").unwrap().quorum_met(&BTreeSet::new()));
    }

    /// A policy defines at most 256 logs, witnesses and groups together, and its quorum line
    /// after them is not one more; a log may have a URL, and the same log key twice is refused.
    #[test]
    fn counts_every_kind_of_entry_against_one_limit() {
        let (log, _) = keys();
        let witnesses: Vec<String> = (0..200u8)
            .map(|i| Cosigner::new(&format!("w{i}.example"), [i; 32]).unwrap().verifier_key())
            .collect();
        let policy = |groups: usize| {
            let mut text = format!("log {} https://log.example/\n", log.verifier_key());
            for (i, w) in witnesses.iter().enumerate() {
                text += &format!("witness W{i} {w}\n");
            }
            for g in 0..groups {
                text += &format!("group G{g} any W{g}\n");
            }
            text + "quorum G0\n"
        };
        let p = Policy::parse(&policy(MAX_ENTRIES - 201)).unwrap();
        assert_eq!((p.logs.len(), p.witnesses.len(), p.groups.len()), (1, 200, 55));
        assert_eq!(p.logs[0].url.as_deref(), Some("https://log.example/"));
        let e = Policy::parse(&policy(MAX_ENTRIES - 200)).unwrap_err();
        assert_eq!(e.line, 257, "{e}");
        assert!(e.message.contains("more than 256 logs, witnesses and groups"), "{e}");
        let other = Signer::new("example.com/other", [2; 32]).unwrap();
        let two = format!(
            "log {}\nlog {}\nquorum none\n",
            log.verifier_key(),
            other.verifier_key()
        );
        assert_eq!(Policy::parse(&two).unwrap().logs.len(), 2);
        let twice = format!("log {}\nlog {}\nquorum none\n", log.verifier_key(), log.verifier_key());
        let e = Policy::parse(&twice).unwrap_err();
        assert!(e.line == 2 && e.message.contains("duplicate log"), "{e}");
    }

    /// A policy of 256 KiB is read; one byte more is refused for its length.
    #[test]
    fn reads_a_policy_up_to_its_length_limit() {
        let policy = |len: usize| format!("quorum none\n#{}\n", "x".repeat(len - 14));
        assert_eq!(policy(MAX_POLICY_BYTES).len(), 262_144);
        assert!(Policy::parse(&policy(MAX_POLICY_BYTES)).is_ok());
        let e = Policy::parse(&policy(MAX_POLICY_BYTES + 1)).unwrap_err();
        assert!(e.message.contains("longer than 262144 bytes"), "{e}");
    }
}
