//! SDMX-CSV 1.0 (`DATAFLOW` first) and 2.0 (`STRUCTURE`, `STRUCTURE_ID`, optional
//! `ACTION`), read one row at a time. Headers and values written with labels
//! (`labels=both`: `FREQ: Frequency`, `S: Half-yearly`) are cut at their first `: `.

use std::io::BufRead;

use super::structure::Ref;
use super::xml::Counted;
use super::{fail, Item, RawObs, MAX_TOKEN_BYTES};
use crate::domain::text::{quote_at_most, QUOTE};
use crate::import::ImportError;

/// The dataflow or structure the file names (from its first row), then every row.
pub fn read<R: BufRead>(
    file: &str,
    input: R,
    mut each: impl FnMut(Item) -> Result<(), ImportError>,
) -> Result<(), ImportError> {
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(false)
        .from_reader(Counted::new(input));
    let mut record = csv::StringRecord::new();
    let at = |r: &csv::StringRecord| format!("line {}", r.position().map_or(0, |p| p.line()));
    // A row is refused once more than the limit was read for it (within one buffer of the
    // reader past it), and after it is read when its fields are longer than the limit.
    let read_row = |reader: &mut csv::Reader<Counted<R>>, record: &mut csv::StringRecord| {
        reader.get_mut().reset_token();
        let more = reader.read_record(record).map_err(|e| {
            let line = e.position().map_or(0, |p| p.line());
            let message = match e.kind() {
                csv::ErrorKind::Io(io) => io.to_string(),
                _ => quote_at_most(&e.to_string(), QUOTE),
            };
            fail(file, format!("line {line}"), message)
        })?;
        if record.as_slice().len() > MAX_TOKEN_BYTES {
            return Err(fail(
                file,
                at(record),
                format!("a row longer than the limit of {MAX_TOKEN_BYTES} bytes"),
            ));
        }
        Ok(more)
    };
    if !read_row(&mut reader, &mut record)? {
        return Err(fail(file, "line 1".into(), "empty file: no SDMX-CSV header".into()));
    }
    let labelled = record.iter().any(|h| h.contains(": "));
    let header: Vec<String> = record
        .iter()
        .map(|h| {
            h.split_once(':')
                .map_or(h, |(id, _)| id)
                .trim()
                .trim_start_matches('\u{feff}')
                .to_owned()
        })
        .collect();
    let v2 = match header.first().map(String::as_str) {
        Some("DATAFLOW") => false,
        Some("STRUCTURE") => true,
        _ => {
            return Err(fail(
                file,
                "line 1".into(),
                format!(
                    "not SDMX-CSV: the first column is {}, not DATAFLOW (SDMX-CSV 1.0) or STRUCTURE (2.0)",
                    quote_at_most(&record[0], QUOTE)
                ),
            ))
        }
    };
    let action = header.iter().position(|h| h == "ACTION").filter(|_| v2);
    let skip = if v2 { 2 } else { 1 };
    let mut named: Option<String> = None;
    while read_row(&mut reader, &mut record)? {
        let line = record.position().map_or(0, |p| p.line()) as usize;
        let flow = if v2 { record.get(1) } else { record.get(0) }.unwrap_or("");
        if v2
            && !matches!(
                record.get(0),
                Some("dataflow" | "datastructure" | "dataprovisionagreement")
            )
        {
            return Err(fail(
                file,
                at(&record),
                format!(
                    "STRUCTURE is {}: SDMX-CSV 2.0 names a dataflow, datastructure or dataprovisionagreement",
                    quote_at_most(record.get(0).unwrap_or(""), QUOTE)
                ),
            ));
        }
        match &named {
            None => {
                let r = parse_ref(flow).ok_or_else(|| {
                    fail(
                        file,
                        at(&record),
                        format!(
                            "{} is not a structure reference AGENCY:ID(VERSION)",
                            quote_at_most(flow, QUOTE)
                        ),
                    )
                })?;
                each(Item::Structure(&r, line))?;
                named = Some(flow.to_owned());
            }
            Some(first) if first != flow => {
                return Err(fail(
                    file,
                    at(&record),
                    format!(
                        "{} differs from the structure of the first row ({}): one file, one structure",
                        quote_at_most(flow, QUOTE),
                        quote_at_most(first, QUOTE)
                    ),
                ))
            }
            Some(_) => {}
        }
        if let Some(a) = action.and_then(|i| record.get(i)) {
            if a.eq_ignore_ascii_case("D") {
                return Err(fail(
                    file,
                    at(&record),
                    "ACTION D: the ledger never deletes a figure (a later release revises it)".into(),
                ));
            }
        }
        let values = header
            .iter()
            .zip(record.iter())
            .enumerate()
            .filter(|(i, _)| *i >= skip && Some(*i) != action)
            .map(|(_, (h, v))| {
                let v = if labelled && !matches!(h.as_str(), "OBS_VALUE" | "TIME_PERIOD") {
                    v.split_once(": ").map_or(v, |(code, _)| code)
                } else {
                    v
                };
                (h.clone(), v.to_owned())
            })
            .collect();
        each(Item::Obs(RawObs {
            line,
            values,
            set: None,
        }))?;
    }
    Ok(())
}

/// `AGENCY:ID(VERSION)`, also with a label after it (`BOK:KR(1.0): Name`).
fn parse_ref(s: &str) -> Option<Ref> {
    let (agency, rest) = s.split_once(':')?;
    let (id, rest) = rest.split_once('(').map_or((rest, None), |(id, v)| (id, Some(v)));
    let version = rest.and_then(|v| v.split_once(')')).map(|(v, _)| v.to_owned());
    let (agency, id) = (agency.trim(), id.trim());
    if agency.is_empty() || id.is_empty() {
        return None;
    }
    Some(Ref {
        agency: Some(agency.to_owned()),
        id: id.to_owned(),
        version,
        item: None,
    })
}
