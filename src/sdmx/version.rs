//! Artefact versions in queries. Every artefact has one version, `dsd::VERSION` (`1.0.0`).
//!
//! - SDMX-REST 2.2 (`/sdmx/3.0/`, structure, data and schema queries alike): the version
//!   part is one or more queries joined by `,` under the rules of "Query syntax for specific,
//!   latest or all artefact versions": `1.0.0` exactly, `+` the latest stable `x.y.z`, `~`
//!   the latest, `*` all, with a minimum (`1+.0.0`, `1.0.0~`) or a fixed part (`1.*`).
//! - SDMX-REST 1.5 (`/sdmx/2.1/`): `latest`, `all` (taken before this module), or explicit
//!   versions, a `common:VersionType` whose numeric parts compare as integers.
//!
//! A query no version matches is a 404 that names the version there is.

use super::dsd::VERSION;
use super::error::SdmxError;
use super::query::{shorten, MAX_LIST};

/// The version part of an SDMX-REST 2.2 path: its queries, and whether one admits `VERSION`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Wanted {
    pub queries: Vec<String>,
    pub admits: bool,
}

impl Wanted {
    /// The queries as written, for messages.
    pub fn text(&self) -> String {
        shorten(&self.queries.join(","))
    }
}

/// The version part of an SDMX-REST 2.2 path; `None` when it admits every version (left
/// out, `*` or `~`). A query SDMX-REST 2.2 does not support is a syntax error naming it.
pub fn rest22(segment: Option<&str>) -> Result<Option<Wanted>, SdmxError> {
    let Some(v) = segment.filter(|v| !v.is_empty() && *v != "*" && *v != "~") else {
        return Ok(None);
    };
    let queries: Vec<String> = v.split(',').map(str::to_owned).collect();
    if queries.len() > MAX_LIST {
        return Err(SdmxError::syntax(format!(
            "the version lists more than {MAX_LIST} values"
        )));
    }
    let mut admits = false;
    for q in &queries {
        if q == "latest" || q == "all" {
            return Err(SdmxError::syntax(format!(
                "version `{q}` is SDMX-REST 1.5; SDMX-REST 2.2 writes `~` (the latest) or `*` (all)"
            )));
        }
        admits |= admits22(q, VERSION)?;
    }
    Ok(Some(Wanted { queries, admits }))
}

/// Whether an explicit SDMX-REST 1.5 version names `ours`: the same number of parts, each the
/// same integer (`common:VersionType`: `1.03` is `1.3`), so `1.0` is not `1.0.0`.
pub fn rest15_is(requested: &str, ours: &str) -> bool {
    let parts = |v: &str| -> Option<Vec<u64>> { v.split('.').map(|p| p.parse::<u64>().ok()).collect() };
    requested.bytes().all(|b| b.is_ascii_digit() || b == b'.')
        && parts(requested).is_some_and(|r| parts(ours).is_some_and(|o| r == o))
}

/// The 404 of a query for `what` in a version there is not: it names the one there is.
pub fn not_there(what: &str, asked: &str) -> SdmxError {
    SdmxError::no_results(format!(
        "version `{}` matches no version of {what}: every artefact here has version {VERSION} only",
        shorten(asked)
    ))
}

/// Whether one SDMX-REST 2.2 version query admits `ours`; a syntax error names what is not
/// supported.
pub fn admits22(query: &str, ours: &str) -> Result<bool, SdmxError> {
    let bad = |why: &str| Err(SdmxError::syntax(format!("version `{}` {why}", shorten(query))));
    let number = |s: &str| -> Option<u64> {
        (!s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) && (s == "0" || !s.starts_with('0')))
            .then(|| s.parse().ok())
            .flatten()
    };
    // Ours: `x`, `x.y`, or `x.y.z` with an optional `-ext`.
    let (our_core, our_ext) = match ours.split_once('-') {
        Some((core, ext)) => (core, Some(ext)),
        None => (ours, None),
    };
    let our_parts: Vec<u64> = our_core.split('.').filter_map(number).collect();

    if query == "~" || query == "*" {
        return Ok(true);
    }
    if query.contains('-') {
        // `X.Y.Z-EXT`: that version exactly.
        let (core, ext) = query.split_once('-').expect("has -");
        let parts: Vec<&str> = core.split('.').collect();
        if parts.len() != 3 || parts.iter().any(|p| number(p).is_none()) || ext.is_empty() {
            return bad("is not a version: an extension follows X.Y.Z");
        }
        return Ok(query == ours);
    }
    let query = if query == "+" { "+.0.0" } else { query };
    let parts: Vec<&str> = query.split('.').collect();
    if parts.len() > 3 {
        return bad("has more than three parts");
    }
    let ops: Vec<(usize, char)> = parts
        .iter()
        .enumerate()
        .flat_map(|(i, p)| p.chars().filter(|c| matches!(c, '+' | '~' | '*')).map(move |c| (i, c)))
        .collect();
    match ops.as_slice() {
        [] => {
            if parts.iter().any(|p| number(p).is_none()) {
                return bad("is not a version: its parts are numbers, or a wildcard (+, ~, *)");
            }
            Ok(query == ours)
        }
        [(at, op)] => {
            let (at, op) = (*at, *op);
            let part = parts[at];
            let head = &part[..part.len() - 1];
            if !part.ends_with(op) || (!head.is_empty() && number(head).is_none()) {
                return bad("is not a version: a wildcard (+, ~, *) ends a part");
            }
            let mut minimum: Vec<u64> = Vec::new();
            for (i, p) in parts.iter().enumerate() {
                if i == at {
                    minimum.push(number(head).unwrap_or(0));
                } else {
                    match number(p) {
                        Some(n) => minimum.push(n),
                        None => return bad("is not a version: its parts are numbers, or a wildcard (+, ~, *)"),
                    }
                }
            }
            if head.is_empty() && minimum[at + 1..].iter().any(|n| *n != 0) {
                return bad("is not supported: parts after a bare wildcard must be 0");
            }
            if op == '+' {
                if parts.len() != 3 {
                    return bad("is not supported: `+` asks for a stable version X.Y.Z, of three parts");
                }
                if at > 0 && minimum[0] == 0 {
                    return bad("is not supported: `+` needs a major version above 0");
                }
            }
            // The form: as many parts as the query (an extension only with three), stable for `+`.
            if our_parts.len() != parts.len() || (our_ext.is_some() && (parts.len() != 3 || op == '+')) {
                return Ok(false);
            }
            if op == '+' && our_parts[0] == 0 {
                return Ok(false);
            }
            Ok(our_parts[..at] == minimum[..at] && our_parts[at..] >= minimum[at..])
        }
        _ => bad("is not supported: it has more than one wildcard (+, ~, *)"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rest22_queries_against_our_version() {
        assert_eq!(VERSION, "1.0.0");
        let admits = |q: &str| rest22(Some(q)).unwrap().is_none_or(|w| w.admits);
        for yes in [
            "1.0.0",
            "+",
            "~",
            "*",
            "+.0.0",
            "1+.0.0",
            "1.+.0",
            "1.0.+",
            "1.0.0+",
            "1.0.*",
            "1.*.0",
            "~.0.0",
            "*.0.0",
            "1.0.0~",
            "0~.0.0",
            "2.0.0,1.0.0",
            "2.0.0,1.*.0",
        ] {
            assert!(admits(yes), "{yes}");
        }
        // `1.0` is a version of two parts, not ours; `1.*` (all `1.y`) and `1.~` are
        // two-part forms too.
        for no in [
            "1.0",
            "1.*",
            "1",
            "2.0.0",
            "1.1+.0",
            "1.0.1+",
            "2+.0.0",
            "1.1.*",
            "1.~",
            "1.0~",
            "~.0",
            "*.0",
            "1.0.0-draft",
        ] {
            assert!(!admits(no), "{no}");
        }
        assert_eq!(rest22(None), Ok(None));
        assert_eq!(rest22(Some("")), Ok(None));
        for bad in ["latest", "all", "+.0", "2.3+", "1.*.3", "x", "1.0.0,x"] {
            assert!(rest22(Some(bad)).is_err(), "{bad}");
        }
        let many = vec!["1.0.0"; MAX_LIST + 1].join(",");
        assert!(rest22(Some(&many)).is_err());
    }

    #[test]
    fn rest15_versions_compare_by_their_numbers() {
        assert!(rest15_is("1.0.0", "1.0.0"));
        assert!(rest15_is("1.00.0", "1.0.0"));
        assert!(!rest15_is("1.0", "1.0.0"));
        assert!(!rest15_is("1", "1.0.0"));
        assert!(!rest15_is("1.0.0.0", "1.0.0"));
        assert!(!rest15_is("2.0.0", "1.0.0"));
        assert!(!rest15_is("+1.0.0", "1.0.0"));
        assert!(!rest15_is("1..0", "1.0.0"));
    }

    #[test]
    fn semantic_versions_against_a_two_part_version() {
        let admits = |q: &str| admits22(q, "1.0").unwrap();
        for yes in [
            "1.0", "~", "*", "~.0", "*.0", "1.~", "1.*", "1.0~", "0~.0", "1*.0", "0*.0",
        ] {
            assert!(admits(yes), "{yes}");
        }
        // `+` is the latest stable semantic version, x.y.z: a two-part version is none.
        for no in [
            "+",
            "+.0.0",
            "1.+.0",
            "1.0.0",
            "1",
            "2.0",
            "1.1~",
            "2~.0",
            "~.0.0",
            "*.0.0",
            "1.0.0-draft",
        ] {
            assert!(!admits(no), "{no}");
        }
        for bad in [
            "+.0", "2.3+", "~.2", "1.*.3", "~.0.*", "3.2+.1+", "x", "1.0.0.0", "01.0", "1.0.0-",
        ] {
            assert!(admits22(bad, "1.0").is_err(), "{bad}");
        }
    }

    #[test]
    fn semantic_versions_against_three_parts() {
        let admits = |q: &str, ours: &str| admits22(q, ours).unwrap();
        assert!(admits("+", "1.2.3"));
        assert!(!admits("+", "0.2.3"));
        assert!(!admits("+", "1.2.3-draft"));
        assert!(admits("~", "1.2.3-draft"));
        assert!(admits("1.2+.0", "1.3.0"));
        assert!(!admits("1.2+.0", "2.0.0"));
        assert!(admits("1+.2.0", "2.0.0"));
        assert!(!admits("1+.2.0", "1.1.9"));
        assert!(admits("1.2.3-draft", "1.2.3-draft"));
        assert!(admits("1.2.*", "1.2.7-x"));
    }
}
