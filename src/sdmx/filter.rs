//! SDMX-REST 2.2 component filters: `c[COMPONENT]=...` on any dimension, the time, the
//! measure `OBS_VALUE` and the attributes. A value is a list of alternatives joined by `,`
//! (OR), each a list of conditions joined by `+` (AND), each `op:operand` or a bare operand
//! (`eq`). Operands are read per component when the query is parsed, so a bad one is a 400
//! naming it, before anything is read.
//!
//! - Coded and text components compare as strings: `eq`, `ne`, `lt`, `le`, `gt`, `ge`
//!   (in code order), `co`, `nc`, `sw`, `ew`.
//! - `TIME_PERIOD` compares periods by the months they cover, as `startPeriod` and
//!   `endPeriod` do: `ge:2025-Q2` keeps a period that ends in or after 2025-Q2
//!   (`2025-S1`), `le:X` one that starts in or before X, `gt:X` one that starts after X
//!   ends, `lt:X` one that ends before X starts, `eq:X` one that covers exactly X's months.
//! - `OBS_VALUE` and `UNIT_MULT` compare as exact decimals; `PUBLISHED_AT` as times.

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;

use super::dsd::{FREQ, MEASURE, OBS_ATTRIBUTES, OBS_VALUE, SERIES_ATTRIBUTES, TIME_PERIOD};
use super::error::SdmxError;
use super::query::{self, months, shorten, Month};
use crate::domain::Period;

/// Most conditions all `c[...]` parameters of one query may hold together.
pub const MAX_CONDITIONS: usize = 64;

/// A component of the DSD a filter can name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Component {
    Freq,
    /// A dimension of the dataset (its position).
    Dimension(usize),
    Measure,
    Time,
    Value,
    /// A series attribute (position in `SERIES_ATTRIBUTES`).
    Series(usize),
    /// An observation attribute (position in `OBS_ATTRIBUTES`).
    Obs(usize),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    Co,
    Nc,
    Sw,
    Ew,
}

#[derive(Debug, Clone, PartialEq)]
enum Operand {
    Text(String),
    Number(Decimal),
    /// First and last month of a period bound.
    Months(Month, Month),
    Time(DateTime<Utc>),
}

#[derive(Debug, Clone, PartialEq)]
struct Condition {
    op: Op,
    /// The operand as written, for the string operators.
    raw: String,
    operand: Operand,
}

/// One `c[...]` parameter: alternatives of conjunctions.
#[derive(Debug, Clone, PartialEq)]
pub struct ComponentFilter {
    pub component: Component,
    any_of: Vec<Vec<Condition>>,
}

/// A component's value in one row, as the filter reads it.
pub enum Value<'a> {
    Text(&'a str),
    Number(Decimal),
    Period(Period),
    Time(DateTime<Utc>),
}

impl Component {
    /// The component named `id` among the key dimensions `dims` (as `Flow::key_dimensions`).
    pub fn of(id: &str, dims: &[&str]) -> Option<Component> {
        Some(match id {
            FREQ => Component::Freq,
            MEASURE => Component::Measure,
            TIME_PERIOD => Component::Time,
            OBS_VALUE => Component::Value,
            _ => {
                if let Some(i) = SERIES_ATTRIBUTES.iter().position(|(a, _)| *a == id) {
                    Component::Series(i)
                } else if let Some(i) = OBS_ATTRIBUTES.iter().position(|(a, _)| *a == id) {
                    Component::Obs(i)
                } else {
                    let i = dims.iter().position(|d| *d == id)?;
                    Component::Dimension(i.checked_sub(1)?)
                }
            }
        })
    }
}

impl ComponentFilter {
    /// Parses `c[id]=value`; `conditions` counts the conditions of the query so far.
    pub fn parse(id: &str, value: &str, dims: &[&str], conditions: &mut usize) -> Result<Self, SdmxError> {
        let param = format!("c[{}]", shorten(id));
        let component = Component::of(id, dims).ok_or_else(|| {
            SdmxError::syntax(format!(
                "parameter `{param}`: `{}` is no component of the dataflow; it has {}, {TIME_PERIOD}, {OBS_VALUE}, {}",
                shorten(id),
                dims.join(", "),
                SERIES_ATTRIBUTES
                    .iter()
                    .chain(&OBS_ATTRIBUTES)
                    .map(|(a, _)| *a)
                    .collect::<Vec<_>>()
                    .join(", ")
            ))
        })?;
        if value.is_empty() {
            return Err(SdmxError::syntax(format!("parameter `{param}` is empty")));
        }
        let mut any_of = Vec::new();
        for alternative in value.split(',') {
            let mut all_of = Vec::new();
            for term in alternative.split('+') {
                *conditions += 1;
                if *conditions > MAX_CONDITIONS {
                    return Err(SdmxError::syntax(format!(
                        "the c[...] parameters hold more than {MAX_CONDITIONS} conditions"
                    )));
                }
                all_of.push(Self::condition(&param, component, term)?);
            }
            any_of.push(all_of);
        }
        Ok(ComponentFilter { component, any_of })
    }

    fn condition(param: &str, component: Component, term: &str) -> Result<Condition, SdmxError> {
        let (op, raw) = match term.split_once(':') {
            Some((op, rest)) if op.len() == 2 && op.bytes().all(|b| b.is_ascii_lowercase()) => {
                let op = match op {
                    "eq" => Op::Eq,
                    "ne" => Op::Ne,
                    "lt" => Op::Lt,
                    "le" => Op::Le,
                    "gt" => Op::Gt,
                    "ge" => Op::Ge,
                    "co" => Op::Co,
                    "nc" => Op::Nc,
                    "sw" => Op::Sw,
                    "ew" => Op::Ew,
                    other => {
                        return Err(SdmxError::syntax(format!(
                        "parameter `{param}`: `{other}` is no operator; use eq, ne, lt, le, gt, ge, co, nc, sw or ew"
                    )))
                    }
                };
                (op, rest)
            }
            _ => (Op::Eq, term),
        };
        if raw.is_empty() {
            return Err(SdmxError::syntax(format!("parameter `{param}` has an empty value")));
        }
        let textual = matches!(op, Op::Co | Op::Nc | Op::Sw | Op::Ew);
        let operand = if textual {
            Operand::Text(raw.to_owned())
        } else {
            match component {
                Component::Time => {
                    let first = query::period_bound(param, raw, true)?;
                    let last = query::period_bound(param, raw, false)?;
                    Operand::Months(first, last)
                }
                Component::Value | Component::Series(1) => Operand::Number(raw.parse().map_err(|_| {
                    SdmxError::syntax(format!("parameter `{param}`: `{}` is not a number", shorten(raw)))
                })?),
                Component::Obs(3) => Operand::Time(query::date_time(param, raw)?),
                _ => Operand::Text(raw.to_owned()),
            }
        };
        Ok(Condition {
            op,
            raw: raw.to_owned(),
            operand,
        })
    }

    /// Whether `value` (the component's value in a row) passes.
    pub fn keeps(&self, value: &Value) -> bool {
        self.any_of.iter().any(|all| all.iter().all(|c| c.holds(value)))
    }
}

impl Condition {
    fn holds(&self, value: &Value) -> bool {
        let text;
        let s: &str = match value {
            Value::Text(t) => t,
            Value::Number(n) => {
                text = n.to_string();
                &text
            }
            Value::Period(p) => {
                text = p.to_string();
                &text
            }
            Value::Time(t) => {
                text = super::xml::header_time(*t);
                &text
            }
        };
        let r = self.raw.as_str();
        let order = match (&self.operand, value) {
            (Operand::Number(n), Value::Number(v)) => v.cmp(n),
            (Operand::Time(t), Value::Time(v)) => v.cmp(t),
            (Operand::Months(first, last), Value::Period(p)) => {
                let (pf, pl) = months(*p);
                return match self.op {
                    Op::Eq => pf == *first && pl == *last,
                    Op::Ne => !(pf == *first && pl == *last),
                    Op::Ge => pl >= *first,
                    Op::Le => pf <= *last,
                    Op::Gt => pf > *last,
                    Op::Lt => pl < *first,
                    _ => self.textual(s, r),
                };
            }
            _ => s.cmp(r),
        };
        use std::cmp::Ordering::*;
        match self.op {
            Op::Eq => order == Equal,
            Op::Ne => order != Equal,
            Op::Lt => order == Less,
            Op::Le => order != Greater,
            Op::Gt => order == Greater,
            Op::Ge => order != Less,
            _ => self.textual(s, r),
        }
    }

    fn textual(&self, s: &str, r: &str) -> bool {
        match self.op {
            Op::Co => s.contains(r),
            Op::Nc => !s.contains(r),
            Op::Sw => s.starts_with(r),
            Op::Ew => s.ends_with(r),
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DIMS: [&str; 5] = ["FREQ", "SERVICE_TYPE", "INDUSTRY", "COUNTERPART", "MEASURE"];

    fn filter(id: &str, v: &str) -> ComponentFilter {
        ComponentFilter::parse(id, v, &DIMS, &mut 0).unwrap()
    }

    #[test]
    fn alternatives_of_conjunctions() {
        let f = filter("SERVICE_TYPE", "IPR,sw:I+ne:ICT");
        assert_eq!(f.component, Component::Dimension(0));
        assert!(f.keeps(&Value::Text("IPR")));
        assert!(f.keeps(&Value::Text("INX")));
        assert!(!f.keeps(&Value::Text("ICT")));
        assert!(!f.keeps(&Value::Text("CUL")));
        let f = filter("COUNTERPART", "nc:A+ew:R");
        assert!(f.keeps(&Value::Text("EUR")));
        assert!(!f.keeps(&Value::Text("NAR")));
    }

    #[test]
    fn time_values_and_times() {
        let h1: Period = "2025-S1".parse().unwrap();
        let h2: Period = "2024-S2".parse().unwrap();
        let f = filter("TIME_PERIOD", "ge:2025-Q2+le:2025-12");
        assert!(f.keeps(&Value::Period(h1)));
        assert!(!f.keeps(&Value::Period(h2)));
        assert!(filter("TIME_PERIOD", "2025-S1").keeps(&Value::Period(h1)));
        assert!(!filter("TIME_PERIOD", "gt:2025-Q1").keeps(&Value::Period(h1)));
        assert!(filter("TIME_PERIOD", "lt:2025").keeps(&Value::Period(h2)));
        let v = filter("OBS_VALUE", "lt:-2450.0");
        assert!(v.keeps(&Value::Number("-4530".parse().unwrap())));
        assert!(!v.keeps(&Value::Number("-2450".parse().unwrap())));
        let t = filter("PUBLISHED_AT", "gt:2025-10-01");
        assert!(t.keeps(&Value::Time("2025-12-10T00:00:00Z".parse().unwrap())));
    }

    #[test]
    fn bad_filters_name_what_is_wrong() {
        let err = |id: &str, v: &str| ComponentFilter::parse(id, v, &DIMS, &mut 0).unwrap_err().message;
        assert!(err("COLOUR", "X").contains("`COLOUR` is no component"));
        assert!(err("OBS_VALUE", "ge:lots").contains("not a number"));
        assert!(err("FREQ", "xx:A").contains("`xx` is no operator"));
        assert!(err("TIME_PERIOD", "ge:soon").contains("TIME_PERIOD"));
        assert!(err("FREQ", "A,").contains("empty"));
        let many = vec!["A"; MAX_CONDITIONS + 1].join(",");
        assert!(err("FREQ", &many).contains("conditions"));
    }
}
