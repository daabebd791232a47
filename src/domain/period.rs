//! Reference periods in SDMX notation.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// How often a series is observed. The order is from the coarsest to the finest, so that
/// periods of different frequencies still sort deterministically.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Frequency {
    Annual,
    HalfYear,
    Quarter,
    Month,
}

/// Written as its SDMX code (`"S"`), as dataset definitions carry it.
impl Serialize for Frequency {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.code())
    }
}

impl<'de> Deserialize<'de> for Frequency {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let code = String::deserialize(d)?;
        Frequency::from_code(&code).ok_or_else(|| {
            serde::de::Error::custom(format!("unknown frequency `{code}`; use A, S, Q or M (SDMX codes)"))
        })
    }
}

impl Frequency {
    /// The SDMX frequency code (`A`, `S`, `Q`, `M`).
    pub fn code(self) -> &'static str {
        match self {
            Frequency::Annual => "A",
            Frequency::HalfYear => "S",
            Frequency::Quarter => "Q",
            Frequency::Month => "M",
        }
    }

    /// The frequency of an SDMX frequency code (`A`, `S`, `Q`, `M`; `H` is read as `S`).
    pub fn from_code(code: &str) -> Option<Self> {
        match code.trim().to_ascii_uppercase().as_str() {
            "A" => Some(Frequency::Annual),
            "S" | "H" => Some(Frequency::HalfYear),
            "Q" => Some(Frequency::Quarter),
            "M" => Some(Frequency::Month),
            _ => None,
        }
    }

    /// The frequency in words: `annual`, `half-yearly`, `quarterly`, `monthly`.
    pub fn name(self) -> &'static str {
        match self {
            Frequency::Annual => "annual",
            Frequency::HalfYear => "half-yearly",
            Frequency::Quarter => "quarterly",
            Frequency::Month => "monthly",
        }
    }

    fn sub_periods(self) -> u8 {
        match self {
            Frequency::Annual => 1,
            Frequency::HalfYear => 2,
            Frequency::Quarter => 4,
            Frequency::Month => 12,
        }
    }
}

/// A reference period: a year, a half, a quarter or a month.
///
/// Canonical forms are SDMX's `2025`, `2025-S1`, `2025-Q3` and `2025-07`; [`Period::parse`]
/// also takes `2025-H1`, `2025H1` and `2025S1` (the form of the Bank of Korea's own API) and
/// `2025Q3`. Periods of one frequency are totally ordered in time; across frequencies the
/// order is by frequency first, which is arbitrary but stable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Period {
    frequency: Frequency,
    year: u16,
    /// 1-based index within the year (always 1 for annual periods).
    index: u8,
}

/// Why a period literal was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid period `{input}`: {reason}")]
pub struct PeriodError {
    pub input: String,
    pub reason: &'static str,
}

const FORMS: &str = "expected one of 2025, 2025-S1 (or 2025-H1, 2025H1, 2025S1), 2025-Q3, 2025-07";

impl Period {
    pub const MIN_YEAR: u16 = 1000;
    pub const MAX_YEAR: u16 = 9999;

    /// Builds a period, checking the year and the index within the year.
    pub fn new(frequency: Frequency, year: u16, index: u8) -> Result<Self, &'static str> {
        if !(Self::MIN_YEAR..=Self::MAX_YEAR).contains(&year) {
            return Err("year must have four digits");
        }
        if index == 0 || index > frequency.sub_periods() {
            return Err(match frequency {
                Frequency::Annual => "an annual period has no sub-period",
                Frequency::HalfYear => "half-year must be 1 or 2",
                Frequency::Quarter => "quarter must be 1 to 4",
                Frequency::Month => "month must be 01 to 12",
            });
        }
        Ok(Period { frequency, year, index })
    }

    pub fn annual(year: u16) -> Result<Self, &'static str> {
        Self::new(Frequency::Annual, year, 1)
    }

    pub fn half(year: u16, half: u8) -> Result<Self, &'static str> {
        Self::new(Frequency::HalfYear, year, half)
    }

    pub fn quarter(year: u16, quarter: u8) -> Result<Self, &'static str> {
        Self::new(Frequency::Quarter, year, quarter)
    }

    pub fn month(year: u16, month: u8) -> Result<Self, &'static str> {
        Self::new(Frequency::Month, year, month)
    }

    pub fn frequency(&self) -> Frequency {
        self.frequency
    }

    pub fn year(&self) -> u16 {
        self.year
    }

    /// 1-based position within the year: the half, quarter or month number (1 for years).
    pub fn index(&self) -> u8 {
        self.index
    }

    /// The period just before this one, of the same frequency.
    pub fn previous(&self) -> Option<Period> {
        if self.index > 1 {
            Some(Period {
                index: self.index - 1,
                ..*self
            })
        } else if self.year > Self::MIN_YEAR {
            Some(Period {
                year: self.year - 1,
                index: self.frequency.sub_periods(),
                ..*self
            })
        } else {
            None
        }
    }

    /// The period just after this one, of the same frequency.
    pub fn next(&self) -> Option<Period> {
        if self.index < self.frequency.sub_periods() {
            Some(Period {
                index: self.index + 1,
                ..*self
            })
        } else if self.year < Self::MAX_YEAR {
            Some(Period {
                year: self.year + 1,
                index: 1,
                ..*self
            })
        } else {
            None
        }
    }

    /// Parses any accepted form; see the type's documentation.
    pub fn parse(input: &str) -> Result<Self, PeriodError> {
        let fail = |reason| PeriodError {
            input: super::text::quote_at_most(input, super::text::QUOTE),
            reason,
        };
        let s = input.trim();
        if s.len() < 4 || !s.is_char_boundary(4) {
            return Err(fail(FORMS));
        }
        let (year_part, rest) = s.split_at(4);
        if !year_part.bytes().all(|b| b.is_ascii_digit()) {
            return Err(fail(FORMS));
        }
        let year: u16 = year_part.parse().map_err(|_| fail(FORMS))?;
        let rest = rest.strip_prefix('-').unwrap_or(rest);
        let digits = |d: &str| -> Result<u8, PeriodError> {
            if d.is_empty() || d.len() > 2 || !d.bytes().all(|b| b.is_ascii_digit()) {
                return Err(fail(FORMS));
            }
            d.parse().map_err(|_| fail(FORMS))
        };
        let period = if rest.is_empty() {
            if s.len() != 4 {
                // "2025-" has a dangling separator.
                return Err(fail(FORMS));
            }
            Period::annual(year)
        } else {
            if !rest.is_char_boundary(1) {
                return Err(fail(FORMS));
            }
            let (tag, num) = rest.split_at(1);
            match tag {
                "S" | "H" | "s" | "h" => Period::half(year, digits(num)?),
                "Q" | "q" => Period::quarter(year, digits(num)?),
                _ if rest.len() == 2 && s.as_bytes()[4] == b'-' => Period::month(year, digits(rest)?),
                _ => return Err(fail(FORMS)),
            }
        };
        period.map_err(fail)
    }
}

impl fmt::Display for Period {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.frequency {
            Frequency::Annual => write!(f, "{}", self.year),
            Frequency::HalfYear => write!(f, "{}-S{}", self.year, self.index),
            Frequency::Quarter => write!(f, "{}-Q{}", self.year, self.index),
            Frequency::Month => write!(f, "{}-{:02}", self.year, self.index),
        }
    }
}

impl FromStr for Period {
    type Err = PeriodError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Period::parse(s)
    }
}

impl Serialize for Period {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Period {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        // A visitor rather than `Cow<str>` (which serde always fills with a new `String`): a
        // fold decodes millions of periods.
        struct Text;
        impl serde::de::Visitor<'_> for Text {
            type Value = Period;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a string")
            }
            fn visit_str<E: serde::de::Error>(self, s: &str) -> Result<Period, E> {
                Period::parse(s).map_err(E::custom)
            }
        }
        deserializer.deserialize_str(Text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn accepts_every_documented_half_year_form() {
        for form in ["2025-S1", "2025-H1", "2025H1", "2025S1", "2025-s1", "2025h1"] {
            let p = Period::parse(form).unwrap();
            assert_eq!(p.to_string(), "2025-S1", "{form}");
        }
    }

    #[test]
    fn parses_years_quarters_and_months() {
        assert_eq!(Period::parse("2025").unwrap().to_string(), "2025");
        assert_eq!(Period::parse("2025-Q3").unwrap().to_string(), "2025-Q3");
        assert_eq!(Period::parse("2025Q3").unwrap().to_string(), "2025-Q3");
        assert_eq!(Period::parse("2025-07").unwrap().to_string(), "2025-07");
        assert_eq!(Period::parse("2025-12").unwrap().frequency(), Frequency::Month);
    }

    #[test]
    fn rejects_bad_periods_with_a_reason() {
        for bad in [
            "2025-S3",
            "2025-S0",
            "2025-H3",
            "2025-13",
            "2025-00",
            "2025-Q5",
            "2025-Q0",
            "abc",
            "",
            "25-S1",
            "2025-",
            "2025-S",
            "2025-S1x",
            "2025-S01x",
            "20251",
            "2025-7",
            "0999",
            "2025 S1",
            "2025-W01",
            "２０２５",
            "2025-S١",
            "2025é",
            "2025-é1",
        ] {
            let err = Period::parse(bad).unwrap_err();
            assert_eq!(err.input, bad);
            assert!(err.to_string().contains(bad), "{err}");
        }
        assert_eq!(Period::parse("2025-S3").unwrap_err().reason, "half-year must be 1 or 2");
        assert_eq!(Period::parse("2025-13").unwrap_err().reason, "month must be 01 to 12");
    }

    #[test]
    fn orders_in_time_within_a_frequency() {
        let p = |s| Period::parse(s).unwrap();
        assert!(p("2024-S2") < p("2025-S1"));
        assert!(p("2025-S1") < p("2025-S2"));
        assert!(p("2025-Q4") < p("2026-Q1"));
        assert!(p("2025-09") < p("2025-10"));
        assert_eq!(p("2025-S1").previous(), Some(p("2024-S2")));
        assert_eq!(p("2024-S2").next(), Some(p("2025-S1")));
        assert_eq!(p("2025-12").next(), Some(p("2026-01")));
    }

    #[test]
    fn serde_uses_the_canonical_form() {
        let p: Period = serde_json::from_str("\"2025H1\"").unwrap();
        assert_eq!(serde_json::to_string(&p).unwrap(), "\"2025-S1\"");
        assert!(serde_json::from_str::<Period>("\"2025-S3\"").is_err());
    }

    proptest! {
        #[test]
        fn display_then_parse_round_trips(year in 1000u16..=9999, f in 0usize..4, i in 1u8..=12) {
            let freq = [Frequency::Annual, Frequency::HalfYear, Frequency::Quarter, Frequency::Month][f];
            if let Ok(p) = Period::new(freq, year, i) {
                prop_assert_eq!(Period::parse(&p.to_string()).unwrap(), p);
            }
        }

        #[test]
        fn never_panics_on_arbitrary_input(s in "\\PC{0,12}") {
            let _ = Period::parse(&s);
        }

        #[test]
        fn next_is_greater_and_previous_inverts_it(year in 1000u16..9999, i in 1u8..=4) {
            let p = Period::quarter(year, i).unwrap();
            let n = p.next().unwrap();
            prop_assert!(n > p);
            prop_assert_eq!(n.previous(), Some(p));
        }
    }
}
