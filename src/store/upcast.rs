//! Versioned events: the upcasters that bring a record of an earlier format to the current one.
//!
//! Every record states the format it was written in (`format`, the envelope's first field,
//! covered by its hash). Reading a record of format `N` applies the upcasters `N → N+1 → … →`
//! [`FORMAT_VERSION`] in order to its JSON before it becomes an [`Envelope`], so that the rest
//! of the crate sees only events of the current shape. A non-additive change of the event
//! JSON (a renamed or restructured field) is then one new format and one upcaster; an
//! additive one (a new optional field with a serde default) needs neither.
//!
//! The hash of a record is always computed over its stored canonical bytes, never over the
//! upcast form: an upcaster changes what the record means to this build, not what it is.
//! The decoded envelope keeps the format the record was written in.
//!
//! [`Envelope`]: super::Envelope

use serde_json::Value;

use super::FORMAT_VERSION;

/// How a record of one format becomes one of the next.
#[derive(Debug, Clone, Copy)]
pub enum Upcast {
    /// The JSON is the same: the format changed only what is derived from the stored bytes
    /// (as the transparency-log entry). Such a step decodes the record as it is.
    SameJson,
    /// Rewrites the JSON of a record of format `from` into that of `from + 1` (the envelope,
    /// event included); an `Err` says why the record cannot be brought forward.
    Json(fn(&mut Value) -> Result<(), String>),
}

/// One step of the chain.
#[derive(Debug, Clone, Copy)]
pub struct Upcaster {
    /// The format it reads; it produces `from + 1`.
    pub from: u16,
    /// What changed from `from` to `from + 1`.
    pub change: &'static str,
    pub upcast: Upcast,
}

/// The upcaster of every earlier format, in order: `UPCASTERS[i]` brings format `i + 1` to
/// `i + 2`. Its length is tied to [`FORMAT_VERSION`], so raising the version without adding
/// the step does not compile.
pub const UPCASTERS: [Upcaster; FORMAT_VERSION as usize - 1] = [Upcaster {
    from: 1,
    change: "the transparency-log entry of an event is a statement of its hash (tlog::event_statement) \
             instead of its canonical bytes; the envelope and event JSON are unchanged",
    upcast: Upcast::SameJson,
}];

/// The steps that bring `format` to the current one (none for the current one), or why a
/// record of that format cannot be read.
pub fn chain(format: u16) -> Result<&'static [Upcaster], String> {
    chain_in(&UPCASTERS, format)
}

/// [`chain`] over another table (tests give one with more steps).
pub(super) fn chain_in(table: &[Upcaster], format: u16) -> Result<&[Upcaster], String> {
    let current = table.len() + 1;
    match usize::from(format) {
        0 => Err("unknown record format 0: formats start at 1".to_owned()),
        f if f > current => Err(format!(
            "unknown record format {format}: this tradeledger reads formats 1 to {current}; the log was written by a \
             newer release, which is needed to read it"
        )),
        f => Ok(&table[f - 1..]),
    }
}

/// Whether every step of `chain` keeps the JSON as it is, so the record decodes directly.
pub fn same_json(chain: &[Upcaster]) -> bool {
    chain.iter().all(|u| matches!(u.upcast, Upcast::SameJson))
}

/// Applies `chain` to the JSON of a record, in order.
pub fn apply(chain: &[Upcaster], value: &mut Value) -> Result<(), String> {
    for step in chain {
        if let Upcast::Json(f) = step.upcast {
            f(value).map_err(|e| format!("upcasting from format {} to {}: {e}", step.from, step.from + 1))?;
        }
    }
    Ok(())
}

/// The format a record's canonical bytes state first (`{"format":N,`), without parsing the
/// rest; `None` when they do not start that way (then the record is parsed whole to find it).
pub fn stated_format(canonical: &[u8]) -> Option<u16> {
    let rest = canonical.strip_prefix(b"{\"format\":")?;
    let digits = rest.iter().take_while(|b| b.is_ascii_digit()).count();
    if digits == 0 || digits > 5 || rest.get(digits) != Some(&b',') {
        return None;
    }
    std::str::from_utf8(&rest[..digits]).ok()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_has_one_step_per_earlier_format_in_order() {
        for (i, u) in UPCASTERS.iter().enumerate() {
            assert_eq!(usize::from(u.from), i + 1, "{}", u.change);
            assert!(!u.change.is_empty());
        }
        assert_eq!(chain(FORMAT_VERSION).unwrap().len(), 0);
        assert_eq!(chain(1).unwrap().len(), usize::from(FORMAT_VERSION) - 1);
    }

    /// Format 1 to 2 changed the transparency-log entry only: the JSON is the same.
    #[test]
    fn format_1_to_2_keeps_the_json() {
        let step = UPCASTERS[0];
        assert_eq!(step.from, 1);
        assert!(matches!(step.upcast, Upcast::SameJson));
        let mut v = serde_json::json!({"format": 1, "revision": 3, "event": {"type": "DatasetDefined"}});
        let before = v.clone();
        apply(&UPCASTERS[..1], &mut v).unwrap();
        assert_eq!(v, before);
    }

    #[test]
    fn unknown_formats_are_refused_naming_what_is_read() {
        let e = chain(FORMAT_VERSION + 1).unwrap_err();
        assert!(
            e.starts_with(&format!("unknown record format {}", FORMAT_VERSION + 1)),
            "{e}"
        );
        assert!(e.contains(&format!("formats 1 to {FORMAT_VERSION}")), "{e}");
        assert!(e.contains("newer"), "{e}");
        assert!(chain(0).unwrap_err().contains("format 0"));
        assert!(chain(u16::MAX).is_err());
    }

    fn rename_amount(v: &mut Value) -> Result<(), String> {
        let e = v["event"].as_object_mut().ok_or("no event")?;
        let amount = e.remove("amount").ok_or("no amount")?;
        e.insert("value".into(), amount);
        Ok(())
    }

    fn wrap_value(v: &mut Value) -> Result<(), String> {
        let value = v["event"]["value"].take();
        v["event"]["value"] = serde_json::json!({ "exact": value });
        Ok(())
    }

    /// A record of format N goes through every step from N, in order; one of the current
    /// format through none.
    #[test]
    fn a_chain_applies_every_step_from_the_record_format_in_order() {
        let table = [
            Upcaster {
                from: 1,
                change: "rename",
                upcast: Upcast::Json(rename_amount),
            },
            Upcaster {
                from: 2,
                change: "same",
                upcast: Upcast::SameJson,
            },
            Upcaster {
                from: 3,
                change: "wrap",
                upcast: Upcast::Json(wrap_value),
            },
        ];
        let mut v1 = serde_json::json!({"format": 1, "event": {"amount": "7"}});
        let steps = chain_in(&table, 1).unwrap();
        assert!(!same_json(steps));
        apply(steps, &mut v1).unwrap();
        assert_eq!(v1, serde_json::json!({"format": 1, "event": {"value": {"exact": "7"}}}));
        let mut v3 = serde_json::json!({"format": 3, "event": {"value": "7"}});
        apply(chain_in(&table, 3).unwrap(), &mut v3).unwrap();
        assert_eq!(v3["event"]["value"]["exact"], "7");
        assert!(chain_in(&table, 4).unwrap().is_empty());
        assert!(same_json(chain_in(&table, 2).unwrap()[..1].as_ref()));
        // A record an upcaster cannot read names the step.
        let mut bad = serde_json::json!({"format": 1, "event": {}});
        let e = apply(chain_in(&table, 1).unwrap(), &mut bad).unwrap_err();
        assert!(e.contains("from format 1 to 2") && e.contains("no amount"), "{e}");
    }

    #[test]
    fn the_stated_format_is_read_from_the_first_bytes() {
        assert_eq!(stated_format(br#"{"format":1,"revision":2}"#), Some(1));
        assert_eq!(stated_format(br#"{"format":12,"x":1}"#), Some(12));
        assert_eq!(stated_format(br#"{"revision":2,"format":1}"#), None);
        assert_eq!(stated_format(br#"{"format":"1","x":1}"#), None);
        assert_eq!(stated_format(br#"{"format":99999999,"x":1}"#), None);
        assert_eq!(stated_format(b""), None);
    }
}
