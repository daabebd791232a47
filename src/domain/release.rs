//! Releases: what an agency published at one moment, validated against its dataset.

use std::collections::HashMap;
use std::fmt;

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::dataset::Dataset;
use super::period::Period;
use super::text::{check_display_text, is_hidden};
use super::value::{parse_value, MAX_VALUE};

/// How final a release's figures are.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ReleaseStatus {
    Preliminary,
    Revised,
    Final,
}

impl ReleaseStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            ReleaseStatus::Preliminary => "PRELIMINARY",
            ReleaseStatus::Revised => "REVISED",
            ReleaseStatus::Final => "FINAL",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s.trim().to_ascii_uppercase().as_str() {
            "PRELIMINARY" => Some(Self::Preliminary),
            "REVISED" => Some(Self::Revised),
            "FINAL" => Some(Self::Final),
            _ => None,
        }
    }
}

impl fmt::Display for ReleaseStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a release revises figures, in the categories of the OECD/Eurostat revision-policy
/// guidelines.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum RevisionReasonKind {
    /// Scheduled revisions: new source data, seasonal re-estimation, the regular vintage cycle.
    Routine,
    /// A change of methods, definitions or classifications (a benchmark revision).
    Methodological,
    /// The correction of a mistake in an earlier release.
    ErrorCorrection,
}

impl RevisionReasonKind {
    pub fn as_str(self) -> &'static str {
        match self {
            RevisionReasonKind::Routine => "ROUTINE",
            RevisionReasonKind::Methodological => "METHODOLOGICAL",
            RevisionReasonKind::ErrorCorrection => "ERROR_CORRECTION",
        }
    }
}

/// The reason a release gives for the figures it revises.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RevisionReason {
    pub kind: RevisionReasonKind,
    /// Free text: what changed and why.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// One published figure.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Observation {
    /// Series key in dot notation, e.g. `IPR._T._T`.
    pub key: String,
    pub period: Period,
    pub measure: String,
    #[serde(with = "rust_decimal::serde::str")]
    pub value: Decimal,
}

/// A validated release, as recorded in a `ReleasePublished` event.
///
/// Observations are kept sorted by (key, period, measure) so that two releases with the same
/// figures compare equal whatever order they were sent in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Release {
    pub id: Uuid,
    pub dataset: String,
    pub status: ReleaseStatus,
    pub title: String,
    pub published_at: DateTime<Utc>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    pub observations: Vec<Observation>,
    /// A back-fill: published (by `published_at`) before the dataset's latest publication
    /// when it was recorded. Its versions take their place in publication order. Before the
    /// ledger decides a release this is the writer's permission (`backfill: true`); in a
    /// recorded event it says whether the release was one. Events written before the flag
    /// existed lack it; the projection derives it for them by the same rule.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub backfill: bool,
    /// Why its figures revise earlier ones, when the agency says.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revision_reason: Option<RevisionReason>,
}

impl Release {
    /// Whether `other` records the same release, whatever either says of being a back-fill
    /// (the ledger sets that when it records one, so a retry of a recorded back-fill differs
    /// from it only there).
    pub fn same_content(&self, other: &Release) -> bool {
        let (a, b) = (self, other);
        a.id == b.id
            && a.dataset == b.dataset
            && a.status == b.status
            && a.title == b.title
            && a.published_at == b.published_at
            && a.source == b.source
            && a.revision_reason == b.revision_reason
            && a.observations == b.observations
    }
}

/// A figure as submitted, before validation. Its period and value are parsed once, where
/// the text is read (a file, a JSON body, or a GraphQL argument, which arrives parsed), and
/// carried typed to the event; a text that does not parse is carried with its refusal, which
/// validation reports naming the field (`observations[3].period`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ObservationDraft {
    pub key: String,
    pub period: Parsed<Period>,
    /// Among the dataset's measures (`BAL` when not given).
    #[serde(default)]
    pub measure: Option<String>,
    /// The exact decimal; read from a string or an integer, never from a float.
    pub value: Parsed<Decimal>,
}

/// A field of a draft as parsed from its text: the value, or the text with why it was
/// refused. Parsing happens once, where the text is read; validation takes the value, or
/// reports the refusal under the field's name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Parsed<T> {
    Value(T),
    Refused(Box<Refusal>),
}

/// A text that did not parse, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub text: String,
    pub why: String,
}

impl<T> Parsed<T> {
    /// The value, or why its text was refused.
    pub fn into_result(self) -> Result<T, String> {
        match self {
            Parsed::Value(v) => Ok(v),
            Parsed::Refused(r) => Err(r.why),
        }
    }

    /// The value, if the text parsed.
    pub fn value(&self) -> Option<&T> {
        match self {
            Parsed::Value(v) => Some(v),
            Parsed::Refused(_) => None,
        }
    }

    fn from_text<E: fmt::Display>(
        text: impl AsRef<str> + Into<String>,
        parse: impl FnOnce(&str) -> Result<T, E>,
    ) -> Self {
        match parse(text.as_ref()) {
            Ok(v) => Parsed::Value(v),
            Err(e) => Parsed::Refused(Box::new(Refusal {
                why: e.to_string(),
                text: text.into(),
            })),
        }
    }
}

impl From<Period> for Parsed<Period> {
    fn from(p: Period) -> Self {
        Parsed::Value(p)
    }
}

impl From<&str> for Parsed<Period> {
    fn from(text: &str) -> Self {
        Parsed::from_text(text, Period::parse)
    }
}

impl From<String> for Parsed<Period> {
    fn from(text: String) -> Self {
        Parsed::from_text(text, Period::parse)
    }
}

impl From<Decimal> for Parsed<Decimal> {
    fn from(d: Decimal) -> Self {
        Parsed::Value(d)
    }
}

impl From<&str> for Parsed<Decimal> {
    fn from(text: &str) -> Self {
        Parsed::from_text(text, parse_value)
    }
}

impl From<String> for Parsed<Decimal> {
    fn from(text: String) -> Self {
        Parsed::from_text(text, parse_value)
    }
}

/// The value in its canonical text (`2025-S1`, `-4530.0`: a decimal keeps its scale), or
/// the refused text as given.
impl<T: fmt::Display> fmt::Display for Parsed<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Parsed::Value(v) => v.fmt(f),
            Parsed::Refused(r) => f.write_str(&r.text),
        }
    }
}

impl<T: fmt::Display> Serialize for Parsed<T> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

/// A period is read from a string.
impl<'de> Deserialize<'de> for Parsed<Period> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = Parsed<Period>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Parsed<Period>, E> {
                Ok(v.into())
            }
        }
        d.deserialize_str(V)
    }
}

/// A value is read from a string, or an integer (which JSON carries exactly); JSON numbers
/// with a fraction or exponent, which parsers turn into floats, are refused.
impl<'de> Deserialize<'de> for Parsed<Decimal> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        exact_text(d).map(Parsed::from)
    }
}

/// A release as submitted (GraphQL input, JSON or CSV file), before validation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ReleaseDraft {
    #[serde(default)]
    pub id: Option<Uuid>,
    pub dataset: String,
    pub status: ReleaseStatus,
    pub title: String,
    pub published_at: DateTime<Utc>,
    #[serde(default)]
    pub source: Option<String>,
    pub observations: Vec<ObservationDraft>,
    /// Allows a `published_at` earlier than the dataset's latest publication: an agency's
    /// older vintage recorded now (see [`Release::backfill`]).
    #[serde(default)]
    pub backfill: bool,
    /// Why the release revises figures: `ROUTINE`, `METHODOLOGICAL` or `ERROR_CORRECTION`,
    /// with an optional note.
    #[serde(default)]
    pub revision_reason: Option<RevisionReason>,
}

/// Takes a value as a string, or as an integer (which JSON carries exactly); refuses JSON
/// numbers with a fraction or exponent, which parsers turn into floats.
fn exact_text<'de, D: serde::Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    struct V;
    impl serde::de::Visitor<'_> for V {
        type Value = String;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("a decimal written as a string, like \"-4530\" or \"12.5\"")
        }
        fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<String, E> {
            Ok(v.to_owned())
        }
        fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<String, E> {
            Ok(v.to_string())
        }
        fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<String, E> {
            Ok(v.to_string())
        }
        fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<String, E> {
            Err(E::custom(format!(
                "value {v} is a JSON number with a fraction; write decimals as strings so they stay exact"
            )))
        }
    }
    d.deserialize_any(V)
}

/// A release that breaks a rule; `field` points at the offending item
/// (e.g. `observations[3].period`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct ReleaseError {
    pub field: String,
    pub message: String,
}

/// Upper bound on observations in one release: bigger uploads should be split.
pub const MAX_OBSERVATIONS_PER_RELEASE: usize = 1_000_000;
const MAX_TEXT: usize = 1_000;

impl ReleaseDraft {
    /// Checks every rule of the design and returns the release to record. `dataset` must be
    /// the definition named by `self.dataset` (the caller reports an unknown dataset).
    pub fn validate(self, dataset: &Dataset) -> Result<Release, ReleaseError> {
        let frequency = dataset.frequency;
        self.validate_at(dataset, frequency)
    }

    /// [`ReleaseDraft::validate`], with every period required to be of `frequency` (the
    /// dataset's, or for one defined without, that of its figures).
    pub fn validate_at(self, dataset: &Dataset, frequency: Option<super::Frequency>) -> Result<Release, ReleaseError> {
        let err = |field: &str, message: String| ReleaseError {
            field: field.to_owned(),
            message,
        };
        debug_assert_eq!(dataset.id, self.dataset);
        let title = self.title.trim().to_owned();
        if title.is_empty() {
            return Err(err("title", "must not be empty".into()));
        }
        check_display_text(&title, MAX_TEXT).map_err(|m| err("title", m))?;
        // A source of nothing but spaces is no source (dropped below), not an error.
        if let Some(src) = self
            .source
            .as_deref()
            .filter(|s| !s.trim().is_empty() || s.chars().any(is_hidden))
        {
            check_display_text(src, MAX_TEXT).map_err(|m| err("source", m))?;
        }
        let revision_reason = match self.revision_reason {
            Some(RevisionReason { kind, note }) => {
                let note = note.map(|n| n.trim().to_owned()).filter(|n| !n.is_empty());
                if let Some(n) = &note {
                    check_display_text(n, MAX_TEXT).map_err(|m| err("revisionReason.note", m))?;
                }
                Some(RevisionReason { kind, note })
            }
            None => None,
        };
        if self.observations.is_empty() {
            return Err(err(
                "observations",
                "a release must publish at least one observation".into(),
            ));
        }
        if self.observations.len() > MAX_OBSERVATIONS_PER_RELEASE {
            return Err(err(
                "observations",
                format!("at most {MAX_OBSERVATIONS_PER_RELEASE} observations per release; split the upload"),
            ));
        }
        let mut seen: HashMap<(String, Period, String), usize> = HashMap::with_capacity(self.observations.len());
        let mut observations = Vec::with_capacity(self.observations.len());
        for (i, o) in self.observations.into_iter().enumerate() {
            let at = |f: &str| format!("observations[{i}].{f}");
            let key = dataset.parse_key(&o.key).map_err(|e| err(&at("key"), e.to_string()))?;
            let period = o.period.into_result().map_err(|e| err(&at("period"), e))?;
            if let Some(frequency) = frequency.filter(|&f| f != period.frequency()) {
                return Err(err(&at("period"), wrong_frequency(period, &dataset.id, frequency)));
            }
            let measure = o.measure.unwrap_or_else(|| "BAL".to_owned());
            if !dataset.has_measure(&measure) {
                return Err(err(
                    &at("measure"),
                    format!(
                        "unknown measure `{}`; dataset {} has {}",
                        super::text::quote_at_most(&measure, super::text::QUOTE),
                        dataset.id,
                        dataset.measures.join(", ")
                    ),
                ));
            }
            let value = o.value.into_result().map_err(|e| err(&at("value"), e))?;
            if value.abs() > MAX_VALUE {
                return Err(err(
                    &at("value"),
                    format!(
                        "{value} is beyond the limit of ±10^20: breakdowns and revision statistics add a \
                         dataset's figures, and their sums must stay within the range of a decimal (about 7.9e28)"
                    ),
                ));
            }
            let key = dataset.format_key(&key);
            if let Some(first) = seen.insert((key.clone(), period, measure.clone()), i) {
                return Err(err(
                    &at("key"),
                    format!("duplicate observation {key} {period} {measure}: already given as observations[{first}]"),
                ));
            }
            observations.push(Observation {
                key,
                period,
                measure,
                value,
            });
        }
        check_balances(&observations)?;
        observations.sort_by(|a, b| (&a.key, a.period, &a.measure).cmp(&(&b.key, b.period, &b.measure)));
        Ok(Release {
            id: self.id.unwrap_or_else(Uuid::new_v4),
            dataset: self.dataset,
            status: self.status,
            title,
            published_at: self.published_at,
            source: self.source.map(|s| s.trim().to_owned()).filter(|s| !s.is_empty()),
            observations,
            backfill: self.backfill,
            revision_reason,
        })
    }
}

/// The message for a period of another frequency than its dataset's.
pub fn wrong_frequency(period: Period, dataset: &str, frequency: super::Frequency) -> String {
    format!(
        "{period} is a {} period; dataset {dataset} is {} (FREQ {}): its periods look like {}",
        period.frequency().name(),
        frequency.name(),
        frequency.code(),
        match frequency {
            super::Frequency::Annual => "2025",
            super::Frequency::HalfYear => "2025-S1",
            super::Frequency::Quarter => "2025-Q3",
            super::Frequency::Month => "2025-07",
        }
    )
}

/// Where a release gives balance, credits and debits for the same figure, BAL = CRE - DEB.
fn check_balances(observations: &[Observation]) -> Result<(), ReleaseError> {
    let mut by_cell: HashMap<(&str, Period), [Option<Decimal>; 3]> = HashMap::new();
    for o in observations {
        let slot = match o.measure.as_str() {
            "BAL" => 0,
            "CRE" => 1,
            "DEB" => 2,
            _ => continue,
        };
        by_cell.entry((&o.key, o.period)).or_default()[slot] = Some(o.value);
    }
    for ((key, period), m) in by_cell {
        if let [Some(bal), Some(cre), Some(deb)] = m {
            // Values are bounded (MAX_VALUE), so this cannot overflow; checked all the same.
            if cre.checked_sub(deb) != Some(bal) {
                return Err(ReleaseError {
                    field: "observations".into(),
                    message: format!("{key} {period}: BAL {bal} is not CRE {cre} minus DEB {deb}"),
                });
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::dataset::tests::sample;

    fn obs(key: &str, period: &str, measure: Option<&str>, value: &str) -> ObservationDraft {
        ObservationDraft {
            key: key.into(),
            period: period.into(),
            measure: measure.map(Into::into),
            value: value.into(),
        }
    }

    /// Text is parsed once, where the draft is made: a period or value that parses is
    /// carried typed (and shown in canonical form), one that does not is carried with its
    /// refusal, which validation reports under the field's name.
    #[test]
    fn drafts_carry_parsed_values_or_their_refusal() {
        let o = obs("IPR._T", "2025H1", None, "-4530.0");
        assert_eq!(o.period, Parsed::Value(Period::parse("2025-S1").unwrap()));
        assert_eq!(o.value.value().map(ToString::to_string).as_deref(), Some("-4530.0"));
        assert_eq!(o.period.to_string(), "2025-S1");
        let json = serde_json::to_value(&o).unwrap();
        assert_eq!(json["period"], "2025-S1");
        assert_eq!(json["value"], "-4530.0");
        let back: ObservationDraft = serde_json::from_value(json).unwrap();
        assert_eq!(back, o);
        let bad: ObservationDraft =
            serde_json::from_value(serde_json::json!({"key": "K", "period": "2025-S3", "value": "1e3"})).unwrap();
        assert_eq!(bad.period.to_string(), "2025-S3");
        assert!(bad.period.clone().into_result().unwrap_err().contains("2025-S3"));
        assert!(bad
            .value
            .clone()
            .into_result()
            .unwrap_err()
            .contains("invalid decimal `1e3`"));
        // Integers are exact; floats are refused where the JSON is read.
        let int: ObservationDraft =
            serde_json::from_value(serde_json::json!({"key": "K", "period": "2025", "value": -7})).unwrap();
        assert_eq!(int.value, Parsed::Value(Decimal::from(-7)));
        let float =
            serde_json::from_value::<ObservationDraft>(serde_json::json!({"key": "K", "period": "2025", "value": 1.5}));
        assert!(float.unwrap_err().to_string().contains("fraction"));
        let number =
            serde_json::from_value::<ObservationDraft>(serde_json::json!({"key": "K", "period": 2025, "value": "1"}));
        assert!(number.is_err());
    }

    fn draft(observations: Vec<ObservationDraft>) -> ReleaseDraft {
        ReleaseDraft {
            id: None,
            dataset: "KR_KNOWLEDGE_SERVICES".into(),
            status: ReleaseStatus::Preliminary,
            title: "2025-H1 preliminary".into(),
            published_at: "2025-09-03T00:00:00Z".parse().unwrap(),
            source: None,
            observations,
            backfill: false,
            revision_reason: None,
        }
    }

    /// A release given as text (a file) and the same given parsed (as GraphQL passes its
    /// `Period` and `Decimal`) record the same event, byte for byte: the canonical JSON the
    /// hash chain covers did not change when drafts became typed.
    #[test]
    fn text_and_parsed_drafts_record_the_same_bytes() {
        let mut text = draft(vec![
            obs("IPR._T", "2025H1", None, "-4530.10"),
            obs("ICT._T", "2025-S1", Some("BAL"), "+7"),
        ]);
        text.id = Some(Uuid::nil());
        let mut parsed = text.clone();
        for (o, (p, v)) in parsed
            .observations
            .iter_mut()
            .zip([("2025H1", "-4530.10"), ("2025-S1", "+7")])
        {
            o.period = Parsed::Value(Period::parse(p).unwrap());
            o.value = Parsed::Value(parse_value(v).unwrap());
        }
        let ds = sample();
        let a = serde_json::to_string(&text.validate(&ds).unwrap()).unwrap();
        let b = serde_json::to_string(&parsed.validate(&ds).unwrap()).unwrap();
        assert_eq!(a, b);
        assert_eq!(
            a,
            r#"{"id":"00000000-0000-0000-0000-000000000000","dataset":"KR_KNOWLEDGE_SERVICES","status":"PRELIMINARY","title":"2025-H1 preliminary","published_at":"2025-09-03T00:00:00Z","observations":[{"key":"ICT._T","period":"2025-S1","measure":"BAL","value":"7"},{"key":"IPR._T","period":"2025-S1","measure":"BAL","value":"-4530.10"}]}"#
        );
    }

    #[test]
    fn validates_and_canonicalises() {
        let r = draft(vec![
            obs("IPR._T", "2025H1", None, "-2450"),
            obs("_T._T", "2025-S1", Some("BAL"), "-4530.0"),
        ])
        .validate(&sample())
        .unwrap();
        assert_eq!(r.observations.len(), 2);
        assert_eq!(r.observations[0].key, "IPR._T");
        assert_eq!(r.observations[0].period.to_string(), "2025-S1");
        assert_eq!(r.observations[0].measure, "BAL");
        assert_eq!(r.observations[1].value.to_string(), "-4530.0");
    }

    #[test]
    fn names_the_offending_item() {
        let ds = sample();
        let cases = [
            (vec![], "observations", "at least one"),
            (
                vec![obs("IPR._T", "2025-S3", None, "1")],
                "observations[0].period",
                "2025-S3",
            ),
            (
                vec![obs("IPR", "2025-S1", None, "1")],
                "observations[0].key",
                "dimensions",
            ),
            (
                vec![obs("IPR.MARS", "2025-S1", None, "1")],
                "observations[0].key",
                "MARS",
            ),
            (
                vec![obs("IPR._T", "2025-S1", Some("XXX"), "1")],
                "observations[0].measure",
                "XXX",
            ),
            (
                vec![obs("IPR._T", "2025-S1", None, "1e3")],
                "observations[0].value",
                "1e3",
            ),
            (
                vec![obs("IPR._T", "2025-S1", None, "NaN")],
                "observations[0].value",
                "NaN",
            ),
            (
                vec![
                    obs("IPR._T", "2025-S1", None, "1"),
                    obs("IPR._T", "2025H1", Some("BAL"), "2"),
                ],
                "observations[1].key",
                "duplicate observation IPR._T 2025-S1 BAL",
            ),
            (
                vec![
                    obs("IPR._T", "2025-S1", Some("CRE"), "10"),
                    obs("IPR._T", "2025-S1", Some("DEB"), "4"),
                    obs("IPR._T", "2025-S1", Some("BAL"), "5"),
                ],
                "observations",
                "BAL 5 is not CRE 10 minus DEB 4",
            ),
        ];
        for (observations, field, needle) in cases {
            let e = draft(observations).validate(&ds).unwrap_err();
            assert_eq!(e.field, field, "{e}");
            assert!(e.message.contains(needle), "{e} should mention {needle}");
        }
        let mut d = draft(vec![obs("IPR._T", "2025-S1", None, "1")]);
        d.title = "  ".into();
        assert_eq!(d.validate(&ds).unwrap_err().field, "title");
        let mut d = draft(vec![obs("IPR._T", "2025-S1", None, "1")]);
        d.title = "bad\u{0}title".into();
        assert_eq!(d.validate(&ds).unwrap_err().field, "title");
        let mut d = draft(vec![obs("IPR._T", "2025-S1", None, "1")]);
        d.title = "SYNTHETIC \u{202E}esaeler".into();
        assert_eq!(d.validate(&ds).unwrap_err().field, "title");
        let mut d = draft(vec![obs("IPR._T", "2025-S1", None, "1")]);
        d.source = Some("a\u{2067}b".into());
        assert_eq!(d.validate(&ds).unwrap_err().field, "source");
    }

    #[test]
    fn visibly_empty_text_and_huge_values_are_refused() {
        let ds = sample();
        let one = || vec![obs("IPR._T", "2025-S1", None, "1")];
        let mut d = draft(one());
        d.title = "\u{200D}\u{200D}\u{200D}".into();
        let e = d.validate(&ds).unwrap_err();
        assert_eq!(e.field, "title");
        assert!(e.message.contains("visible"), "{e}");
        let mut d = draft(one());
        d.source = Some("\u{200B}\u{2060}".into());
        assert_eq!(d.validate(&ds).unwrap_err().field, "source");
        // Spaces only: no source, not an error.
        let mut d = draft(one());
        d.source = Some("   ".into());
        assert_eq!(d.validate(&ds).unwrap().source, None);
        for (value, ok) in [
            ("100000000000000000000", true),
            ("-100000000000000000000", true),
            ("100000000000000000000.5", false),
            ("-9999999999999999999999999999", false),
        ] {
            let r = draft(vec![obs("IPR._T", "2025-S1", None, value)]).validate(&ds);
            match ok {
                true => assert!(r.is_ok(), "{value}: {r:?}"),
                false => {
                    let e = r.unwrap_err();
                    assert_eq!(e.field, "observations[0].value", "{value}");
                    assert!(e.message.contains("10^20"), "{e}");
                }
            }
        }
    }

    #[test]
    fn consistent_balance_credits_and_debits_pass() {
        draft(vec![
            obs("IPR._T", "2025-S1", Some("CRE"), "10"),
            obs("IPR._T", "2025-S1", Some("DEB"), "4"),
            obs("IPR._T", "2025-S1", Some("BAL"), "6"),
        ])
        .validate(&sample())
        .unwrap();
    }

    #[test]
    fn same_figures_in_another_order_are_equal() {
        let ds = sample();
        let id = Some(Uuid::new_v4());
        let mut a = draft(vec![
            obs("IPR._T", "2025-S1", None, "1"),
            obs("ICT._T", "2025-S1", None, "2"),
        ]);
        a.id = id;
        let mut b = draft(vec![
            obs("ICT._T", "2025-S1", None, "2"),
            obs("IPR._T", "2025-S1", None, "1"),
        ]);
        b.id = id;
        assert_eq!(a.validate(&ds).unwrap(), b.validate(&ds).unwrap());
    }
}
