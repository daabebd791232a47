//! Datasets, their dimensions and code lists, and series keys.

use std::collections::{HashMap, HashSet};
use std::fmt;

use serde::{Deserialize, Serialize};

use super::text::{check_display_text, quote_at_most, QUOTE};

/// Longest name or label, in characters.
const MAX_LABEL: usize = 1_000;

/// Most codes in one dimension's code list. Real code lists are far smaller: countries and
/// areas (SDMX `CL_AREA`) about 450, NACE Rev. 2 at all levels about 1,000, CPA 2.1 about
/// 5,400, the Harmonized System with its chapters and headings about 7,000; the Combined
/// Nomenclature's 8-digit codes with their hierarchy about 16,000.
pub const MAX_CODES_PER_DIMENSION: usize = 20_000;

/// Most codes in one dataset, all its dimensions together.
pub const MAX_CODES: usize = 50_000;

// A code's position in its list is packed into 16 bits of a series key.
const _: () = assert!(MAX_CODES_PER_DIMENSION <= u16::MAX as usize);

/// The code every dimension uses for "all of it".
pub const TOTAL: &str = "_T";

/// The measures a dataset may carry.
pub const KNOWN_MEASURES: [&str; 3] = ["BAL", "CRE", "DEB"];

/// One entry of a dimension's code list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Code {
    pub code: String,
    pub label: String,
    /// The code this one is a part of; `None` only for the total `_T`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent: Option<String>,
}

/// A dimension with its code list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Dimension {
    pub id: String,
    pub label: String,
    pub codes: Vec<Code>,
}

impl Dimension {
    /// Position of `code` in this dimension's code list.
    pub fn position(&self, code: &str) -> Option<usize> {
        self.codes.iter().position(|c| c.code == code)
    }

    /// Position of the total `_T`; every validated dimension has one.
    pub fn total_position(&self) -> usize {
        self.position(TOTAL).unwrap_or(0)
    }
}

/// A dataset definition as published in a `DatasetDefined` event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Dataset {
    pub id: String,
    pub name: String,
    pub publisher: String,
    /// Currency or unit of the figures, e.g. `USD`.
    pub unit: String,
    /// Power of ten the figures are expressed in (6 = millions).
    pub unit_multiplier: i32,
    pub dimensions: Vec<Dimension>,
    pub measures: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

/// A dataset definition that breaks a rule.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid dataset `{dataset}`: {message}")]
pub struct DatasetError {
    pub dataset: String,
    pub message: String,
}

/// Identifiers are SDMX-like: letters, digits and underscores, starting with a letter or `_`.
pub fn is_valid_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 64
        && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
        && !id.as_bytes()[0].is_ascii_digit()
        && id.as_bytes()[0] != b'-'
}

impl Dataset {
    /// Checks the definition: ids, a `_T` in every code list, parents that exist and form no
    /// cycle, no duplicate codes or dimensions, known measures.
    pub fn validate(&self) -> Result<(), DatasetError> {
        // The id is quoted, not copied: an invalid one may be of any length.
        let fail = |message: String| DatasetError {
            dataset: quote_at_most(&self.id, QUOTE),
            message,
        };
        if !is_valid_id(&self.id) {
            return Err(fail("dataset id must be 1 to 64 letters, digits, `_` or `-`".into()));
        }
        if self.name.trim().is_empty() {
            return Err(fail("name is empty".into()));
        }
        let text = |what: String, s: &str| check_display_text(s, MAX_LABEL).map_err(|m| fail(format!("{what} {m}")));
        text("name".into(), &self.name)?;
        if self.dimensions.is_empty() {
            return Err(fail("a dataset needs at least one dimension".into()));
        }
        if self.dimensions.len() > MAX_DIMENSIONS {
            return Err(fail(format!("a dataset has at most {MAX_DIMENSIONS} dimensions")));
        }
        let total: usize = self.dimensions.iter().map(|d| d.codes.len()).sum();
        if total > MAX_CODES {
            return Err(fail(format!(
                "the dataset has {total} codes; the limit is {MAX_CODES} codes in all dimensions together"
            )));
        }
        let mut dim_ids = HashSet::new();
        for dim in &self.dimensions {
            if !is_valid_id(&dim.id) {
                return Err(fail(format!(
                    "invalid dimension id `{}`",
                    quote_at_most(&dim.id, QUOTE)
                )));
            }
            if !dim_ids.insert(dim.id.as_str()) {
                return Err(fail(format!("dimension `{}` appears twice", dim.id)));
            }
            text(format!("the label of dimension `{}`", dim.id), &dim.label)?;
            if dim.codes.len() > MAX_CODES_PER_DIMENSION {
                return Err(fail(format!(
                    "dimension `{}` has {} codes; the limit is {MAX_CODES_PER_DIMENSION} codes per dimension",
                    dim.id,
                    dim.codes.len()
                )));
            }
            let mut codes = HashSet::new();
            for c in &dim.codes {
                if !is_valid_id(&c.code) {
                    return Err(fail(format!(
                        "invalid code `{}` in dimension `{}`",
                        quote_at_most(&c.code, QUOTE),
                        dim.id
                    )));
                }
                text(
                    format!("the label of code `{}` in dimension `{}`", c.code, dim.id),
                    &c.label,
                )?;
                if !codes.insert(c.code.as_str()) {
                    return Err(fail(format!(
                        "code `{}` appears twice in dimension `{}`",
                        c.code, dim.id
                    )));
                }
            }
            if !codes.contains(TOTAL) {
                return Err(fail(format!("dimension `{}` has no total code `_T`", dim.id)));
            }
            for c in &dim.codes {
                match (&c.parent, c.code == TOTAL) {
                    (Some(_), true) => {
                        return Err(fail(format!(
                            "the total `_T` of dimension `{}` cannot have a parent",
                            dim.id
                        )))
                    }
                    (Some(p), false) if !codes.contains(p.as_str()) => {
                        return Err(fail(format!(
                            "code `{}` in dimension `{}` has unknown parent `{}`",
                            c.code,
                            dim.id,
                            quote_at_most(p, QUOTE)
                        )))
                    }
                    _ => {}
                }
            }
            check_parents(dim).map_err(|code| {
                fail(format!(
                    "parents of code `{code}` in dimension `{}` form a cycle",
                    dim.id
                ))
            })?;
        }
        if self.measures.is_empty() {
            return Err(fail("a dataset needs at least one measure".into()));
        }
        let mut seen = HashSet::new();
        for m in &self.measures {
            if !KNOWN_MEASURES.contains(&m.as_str()) {
                return Err(fail(format!(
                    "unknown measure `{}`; known measures are BAL, CRE, DEB",
                    quote_at_most(m, QUOTE)
                )));
            }
            if !seen.insert(m.as_str()) {
                return Err(fail(format!("measure `{m}` appears twice")));
            }
        }
        Ok(())
    }

    /// Checks that this definition may replace `previous` (an amendment): the name, the
    /// description and labels may change, and codes may be appended to a code list; nothing
    /// else, so that every recorded figure keeps its meaning. Call [`Dataset::validate`] too.
    pub fn check_amends(&self, previous: &Dataset) -> Result<(), DatasetError> {
        let fail = |message: String| DatasetError {
            dataset: self.id.clone(),
            message,
        };
        let fixed = |what: &str, same: bool| {
            if same {
                Ok(())
            } else {
                Err(fail(format!("the {what} cannot be amended")))
            }
        };
        fixed("id", self.id == previous.id)?;
        fixed("publisher", self.publisher == previous.publisher)?;
        fixed("unit", self.unit == previous.unit)?;
        fixed("unit multiplier", self.unit_multiplier == previous.unit_multiplier)?;
        fixed("measure list", self.measures == previous.measures)?;
        let ids = |d: &Dataset| d.dimensions.iter().map(|x| x.id.clone()).collect::<Vec<_>>();
        fixed("dimension list", ids(self) == ids(previous))?;
        for (new, old) in self.dimensions.iter().zip(&previous.dimensions) {
            for (i, code) in old.codes.iter().enumerate() {
                match new.codes.get(i) {
                    Some(c) if c.code == code.code && c.parent == code.parent => {}
                    _ if new.position(&code.code).is_none() => {
                        return Err(fail(format!(
                            "code `{}` of dimension `{}` cannot be removed",
                            code.code, old.id
                        )))
                    }
                    _ => {
                        return Err(fail(format!(
                            "code `{}` of dimension `{}` must keep its place and parent; new codes go at the end",
                            code.code, old.id
                        )))
                    }
                }
            }
        }
        Ok(())
    }

    pub fn dimension(&self, id: &str) -> Option<(usize, &Dimension)> {
        self.dimensions.iter().enumerate().find(|(_, d)| d.id == id)
    }

    pub fn has_measure(&self, measure: &str) -> bool {
        self.measures.iter().any(|m| m == measure)
    }

    /// Parses a series key in SDMX dot notation (`IPR._T._T`) against this dataset.
    pub fn parse_key(&self, key: &str) -> Result<SeriesKey, KeyError> {
        // Called for every observation a fold applies: no allocation unless the key is bad.
        let got = key.split('.').count();
        if got != self.dimensions.len() || got > MAX_DIMENSIONS {
            return Err(KeyError::Arity {
                key: quote_at_most(key, QUOTE),
                expected: self.dimensions.len(),
                got,
                dimensions: self
                    .dimensions
                    .iter()
                    .map(|d| d.id.clone())
                    .collect::<Vec<_>>()
                    .join("."),
            });
        }
        let mut codes = [0u16; MAX_DIMENSIONS];
        for ((dim, part), code) in self.dimensions.iter().zip(key.split('.')).zip(&mut codes) {
            let pos = dim.position(part).ok_or_else(|| KeyError::UnknownCode {
                key: quote_at_most(key, QUOTE),
                dimension: dim.id.clone(),
                code: quote_at_most(part, QUOTE),
            })?;
            *code = pos as u16;
        }
        Ok(SeriesKey::from_codes(&codes[..got]))
    }

    /// Formats a key back into dot notation.
    pub fn format_key(&self, key: &SeriesKey) -> String {
        let mut out = String::new();
        for (i, (dim, c)) in self.dimensions.iter().zip(key.codes()).enumerate() {
            if i > 0 {
                out.push('.');
            }
            out.push_str(&dim.codes[c as usize].code);
        }
        out
    }

    /// The key with the total in every dimension.
    pub fn total_key(&self) -> SeriesKey {
        let codes: Vec<u16> = self.dimensions.iter().map(|d| d.total_position() as u16).collect();
        SeriesKey::from_codes(&codes)
    }
}

/// Checks that every chain of parents in `dim` ends at a code without a parent, in one pass
/// over the codes: each code is put on a chain once and marked done once, and a parent is
/// found through a map, so the check is O(codes) however deep the hierarchy. (Walking every
/// code's chain with a linear search per step was O(codes³): hours for a chain of 20,000.)
/// `Err` names a code on a cycle. Parents not in the list count as roots (checked before).
fn check_parents(dim: &Dimension) -> Result<(), &str> {
    const UNSEEN: u8 = 0;
    const ON_CHAIN: u8 = 1;
    const DONE: u8 = 2;
    let index: HashMap<&str, usize> = dim
        .codes
        .iter()
        .enumerate()
        .map(|(i, c)| (c.code.as_str(), i))
        .collect();
    let parent = |i: usize| dim.codes[i].parent.as_deref().and_then(|p| index.get(p).copied());
    let mut state = vec![UNSEEN; dim.codes.len()];
    let mut chain = Vec::new();
    for start in 0..dim.codes.len() {
        let mut i = start;
        let cycle = loop {
            match state[i] {
                DONE => break false,
                ON_CHAIN => break true,
                _ => {}
            }
            state[i] = ON_CHAIN;
            chain.push(i);
            match parent(i) {
                Some(p) => i = p,
                None => break false,
            }
        };
        if cycle {
            return Err(&dim.codes[i].code);
        }
        for j in chain.drain(..) {
            state[j] = DONE;
        }
    }
    Ok(())
}

/// Most dimensions a dataset may have (series keys are packed into 128 bits).
pub const MAX_DIMENSIONS: usize = 8;

/// A series key resolved against its dataset: the position of each code in its dimension's
/// code list, in dimension order, packed 16 bits per dimension (the first dimension in the
/// highest bits). Fixed-size and `Copy`, so figures are keyed without a heap allocation, and
/// ordered the way the dataset lists its codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SeriesKey {
    hi: u64,
    lo: u64,
    len: u8,
}

impl SeriesKey {
    /// Packs code positions; at most [`MAX_DIMENSIONS`] of them.
    pub fn from_codes(codes: &[u16]) -> SeriesKey {
        assert!(codes.len() <= MAX_DIMENSIONS, "at most {MAX_DIMENSIONS} dimensions");
        let mut packed: u128 = 0;
        for (i, &c) in codes.iter().enumerate() {
            packed |= u128::from(c) << (16 * (MAX_DIMENSIONS - 1 - i));
        }
        SeriesKey {
            hi: (packed >> 64) as u64,
            lo: packed as u64,
            len: codes.len() as u8,
        }
    }

    fn packed(&self) -> u128 {
        (u128::from(self.hi) << 64) | u128::from(self.lo)
    }

    /// Number of dimensions.
    pub fn len(&self) -> usize {
        self.len as usize
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Code position in dimension `dimension`.
    pub fn code(&self, dimension: usize) -> u16 {
        (self.packed() >> (16 * (MAX_DIMENSIONS - 1 - dimension))) as u16
    }

    /// Code positions in dimension order.
    pub fn codes(&self) -> impl Iterator<Item = u16> + '_ {
        (0..self.len()).map(|d| self.code(d))
    }

    /// The same key with another code in one dimension.
    pub fn with(&self, dimension: usize, code: u16) -> SeriesKey {
        let shift = 16 * (MAX_DIMENSIONS - 1 - dimension);
        let packed = (self.packed() & !(0xffffu128 << shift)) | (u128::from(code) << shift);
        SeriesKey {
            hi: (packed >> 64) as u64,
            lo: packed as u64,
            len: self.len,
        }
    }
}

/// A series key that does not fit its dataset.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    #[error("key `{key}` has {got} parts but the dataset has {expected} dimensions ({dimensions})")]
    Arity {
        key: String,
        expected: usize,
        got: usize,
        dimensions: String,
    },
    #[error("key `{key}`: unknown code `{code}` for dimension {dimension}")]
    UnknownCode {
        key: String,
        dimension: String,
        code: String,
    },
}

impl fmt::Display for Dataset {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.id, self.name)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    fn code(code: &str, label: &str, parent: Option<&str>) -> Code {
        Code {
            code: code.into(),
            label: label.into(),
            parent: parent.map(Into::into),
        }
    }

    /// A small dataset shaped like the Bank of Korea one.
    pub(crate) fn sample() -> Dataset {
        Dataset {
            id: "KR_KNOWLEDGE_SERVICES".into(),
            name: "Knowledge services trade".into(),
            publisher: "Bank of Korea".into(),
            unit: "USD".into(),
            unit_multiplier: 6,
            dimensions: vec![
                Dimension {
                    id: "SERVICE_TYPE".into(),
                    label: "Service type".into(),
                    codes: vec![
                        code("_T", "Total", None),
                        code("IPR", "IP royalties", Some("_T")),
                        code("ICT", "ICT services", Some("_T")),
                    ],
                },
                Dimension {
                    id: "COUNTERPART".into(),
                    label: "Region".into(),
                    codes: vec![code("_T", "World", None), code("ASIA", "Asia", Some("_T"))],
                },
            ],
            measures: vec!["BAL".into(), "CRE".into(), "DEB".into()],
            description: None,
        }
    }

    #[test]
    fn sample_is_valid() {
        sample().validate().unwrap();
    }

    #[test]
    fn parses_and_formats_keys() {
        let ds = sample();
        let k = ds.parse_key("IPR._T").unwrap();
        assert_eq!(k.codes().collect::<Vec<_>>(), vec![1, 0]);
        assert_eq!(k.with(1, 1).codes().collect::<Vec<_>>(), vec![1, 1]);
        assert!(ds.parse_key("_T._T").unwrap() < k, "keys order like their code lists");
        assert_eq!(ds.format_key(&k), "IPR._T");
        assert_eq!(ds.total_key(), ds.parse_key("_T._T").unwrap());
    }

    #[test]
    fn rejects_keys_with_wrong_arity_or_unknown_codes() {
        let ds = sample();
        let e = ds.parse_key("IPR").unwrap_err();
        assert!(
            matches!(
                e,
                KeyError::Arity {
                    expected: 2,
                    got: 1,
                    ..
                }
            ),
            "{e}"
        );
        assert!(e.to_string().contains("SERVICE_TYPE.COUNTERPART"));
        assert!(matches!(
            ds.parse_key("IPR._T._T").unwrap_err(),
            KeyError::Arity { got: 3, .. }
        ));
        let e = ds.parse_key("XXX._T").unwrap_err();
        assert_eq!(
            e.to_string(),
            "key `XXX._T`: unknown code `XXX` for dimension SERVICE_TYPE"
        );
        assert!(matches!(
            ds.parse_key("IPR.NAM").unwrap_err(),
            KeyError::UnknownCode { .. }
        ));
        assert!(ds.parse_key("").is_err());
        assert!(ds.parse_key("ipr._T").is_err(), "codes are case-sensitive");
        assert!(ds.parse_key("IPR._T.").is_err());
    }

    /// A dimension of `n` codes: `_T`, then a chain in which each code is the parent of the next.
    fn chain(id: &str, n: usize) -> Dimension {
        let mut codes = vec![code("_T", "All", None)];
        codes.extend((1..n).map(|i| {
            let parent = if i == 1 { "_T".to_owned() } else { format!("C{}", i - 1) };
            code(&format!("C{i}"), "c", Some(&parent))
        }));
        Dimension {
            id: id.into(),
            label: id.into(),
            codes,
        }
    }

    /// The deepest chain the limit allows checks in one pass (quadratic walks would take
    /// minutes here, cubic ones hours); a cycle at its far end is found; sizes are bounded.
    #[test]
    fn deep_hierarchies_are_checked_and_sizes_bounded() {
        let mut ds = sample();
        ds.dimensions = vec![chain("DEEP", MAX_CODES_PER_DIMENSION)];
        ds.validate().unwrap();
        ds.dimensions[0].codes[1].parent = Some(format!("C{}", MAX_CODES_PER_DIMENSION - 1));
        assert!(ds.validate().unwrap_err().message.contains("form a cycle"));
        // A code that is its own parent.
        ds.dimensions[0].codes[1].parent = Some("C1".into());
        assert!(ds.validate().unwrap_err().message.contains("`C1`"));

        ds.dimensions = vec![chain("WIDE", MAX_CODES_PER_DIMENSION + 1)];
        let e = ds.validate().unwrap_err();
        assert!(
            e.message
                .contains(&format!("the limit is {MAX_CODES_PER_DIMENSION} codes per dimension")),
            "{e}"
        );
        let n = MAX_CODES / 3 + 1;
        ds.dimensions = vec![chain("A", n), chain("B", n), chain("C", n)];
        let e = ds.validate().unwrap_err();
        assert!(
            e.message
                .contains(&format!("the limit is {MAX_CODES} codes in all dimensions together")),
            "{e}"
        );
    }

    /// Errors quote what they were given, at most 200 bytes of it.
    #[test]
    fn errors_quote_long_input_briefly() {
        let long = "Z".repeat(1_000_000);
        type Mutation<'a> = Box<dyn Fn(&mut Dataset) + 'a>;
        let cases: Vec<Mutation> = vec![
            Box::new(|d| d.id = long.clone()),
            Box::new(|d| d.dimensions[0].id = long.clone()),
            Box::new(|d| d.dimensions[0].codes[1].code = long.clone()),
            Box::new(|d| d.dimensions[0].codes[1].parent = Some(long.clone())),
            Box::new(|d| d.measures = vec![long.clone()]),
        ];
        for mutate in cases {
            let mut ds = sample();
            mutate(&mut ds);
            let e = ds.validate().unwrap_err().to_string();
            assert!(
                e.len() < 600 && e.contains("… (1000000 bytes)"),
                "{}",
                &e[..e.len().min(600)]
            );
        }
        let ds = sample();
        for key in [format!("{long}._T"), format!("IPR.{long}._T")] {
            let e = ds.parse_key(&key).unwrap_err().to_string();
            assert!(e.len() < 600 && e.contains("bytes)"), "{}", &e[..e.len().min(600)]);
        }
    }

    #[test]
    fn rejects_broken_definitions() {
        type Mutation = Box<dyn Fn(&mut Dataset)>;
        let cases: Vec<(Mutation, &str)> = vec![
            (Box::new(|d| d.id = "".into()), "dataset id"),
            (Box::new(|d| d.id = "BAD ID".into()), "dataset id"),
            (Box::new(|d| d.dimensions.clear()), "at least one dimension"),
            (
                Box::new(|d| d.dimensions[1].id = "SERVICE_TYPE".into()),
                "appears twice",
            ),
            (Box::new(|d| drop(d.dimensions[0].codes.remove(0))), "no total code"),
            (
                Box::new(|d| d.dimensions[0].codes[1].parent = Some("NOPE".into())),
                "unknown parent",
            ),
            (
                Box::new(|d| d.dimensions[0].codes[2].code = "IPR".into()),
                "appears twice",
            ),
            (
                Box::new(|d| d.dimensions[0].codes[0].parent = Some("IPR".into())),
                "cannot have a parent",
            ),
            (Box::new(|d| d.measures = vec!["XYZ".into()]), "unknown measure"),
            (
                Box::new(|d| d.measures = vec!["BAL".into(), "BAL".into()]),
                "appears twice",
            ),
            (Box::new(|d| d.measures.clear()), "at least one measure"),
            (
                Box::new(|d| d.name = "\u{200D}\u{200D}".into()),
                "name must contain at least one visible",
            ),
            (
                Box::new(|d| d.dimensions[0].label = "\u{200B} \u{FEFF}".into()),
                "label of dimension `SERVICE_TYPE` must contain at least one visible",
            ),
            (
                Box::new(|d| d.dimensions[0].codes[1].label = "\u{0301}\u{0301}".into()),
                "in dimension `SERVICE_TYPE` must contain at least one visible",
            ),
            (
                Box::new(|d| d.dimensions[0].codes[1].label = "a\u{202E}b".into()),
                "text-direction",
            ),
            (
                Box::new(|d| {
                    d.dimensions[0].codes[1].parent = Some("ICT".into());
                    d.dimensions[0].codes[2].parent = Some("IPR".into());
                }),
                "cycle",
            ),
        ];
        for (mutate, expected) in cases {
            let mut ds = sample();
            mutate(&mut ds);
            let err = ds.validate().unwrap_err();
            assert!(err.to_string().contains(expected), "{err} should mention {expected}");
        }
    }
}
