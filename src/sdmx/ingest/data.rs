//! SDMX-ML 2.1 data messages, read one observation at a time: GenericData and
//! StructureSpecificData, time series (`...TimeSeriesData`), flat (`AllDimensions`) and
//! cross-sectional. Each observation comes out with every component value that applies to it
//! (series key, series attributes, observation dimension, value and attributes), by id.

use std::io::BufRead;

use super::structure::Ref;
use super::xml::{Ev, Start, Xml};
use super::{fail, DataSetInfo, Header, Item, RawObs, OBS_VALUE_ID, TIME_PERIOD};
use crate::domain::text::{quote_at_most, QUOTE};
use crate::import::ImportError;

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Generic,
    StructureSpecific,
}

/// Attributes of a structure-specific element that are not components.
const NOT_COMPONENTS: [&str; 2] = ["type", "schemaLocation"];

/// Reads a data message, calling `each` with its header (once, before any observation),
/// then with every observation in file order.
pub fn read<R: BufRead>(
    file: &str,
    input: R,
    mut each: impl FnMut(Item) -> Result<(), ImportError>,
) -> Result<(), ImportError> {
    let mut x = Xml::new(file, input);
    let mut kind = None;
    let mut head = Header::default();
    let mut header_done = false;
    let mut set: Option<DataSetInfo> = None;
    let mut series: Vec<(String, String)> = Vec::new();
    let mut obs: Option<(usize, Vec<(String, String)>)> = None;
    loop {
        let ev = x.next()?;
        let depth = x.stack.len();
        let up = |n: usize| depth.checked_sub(n).map_or("", |i| x.stack[i].as_str());
        match ev {
            Ev::Eof => break,
            Ev::Start(s) => {
                if kind.is_none() {
                    kind = Some(match s.name.as_str() {
                        "GenericData" | "GenericTimeSeriesData" => Kind::Generic,
                        "StructureSpecificData" | "StructureSpecificTimeSeriesData" => Kind::StructureSpecific,
                        other => {
                            return Err(fail(
                                file,
                                s.at(),
                                format!(
                                    "not an SDMX-ML 2.1 data message (the root element is {}): --format sdmx-ml reads GenericData, GenericTimeSeriesData, StructureSpecificData and StructureSpecificTimeSeriesData",
                                    quote_at_most(other, QUOTE)
                                ),
                            ))
                        }
                    });
                    continue;
                }
                let kind = kind.unwrap_or(Kind::Generic);
                let parent = up(2).to_owned();
                match s.name.as_str() {
                    "Structure" if parent == "Header" => {
                        head.dimension_at_observation = s.attr("dimensionAtObservation").map(str::to_owned);
                        head.structure_line = s.line;
                    }
                    "Ref" if up(3) == "Structure" && up(4) == "Header" => {
                        if let Some(id) = s.attr("id") {
                            head.structure_line = s.line;
                            head.structure = Some(Ref {
                                agency: s.attr("agencyID").map(str::to_owned),
                                id: id.to_owned(),
                                version: s.attr("version").map(str::to_owned),
                                item: None,
                            });
                        }
                    }
                    "Sender" if parent == "Header" => head.sender = s.attr("id").map(str::to_owned),
                    "DataSet" => {
                        if !header_done {
                            header_done = true;
                            each(Item::Header(&head))?;
                        }
                        set = Some(data_set(file, &s)?);
                    }
                    "Series" if parent == "DataSet" => {
                        series.clear();
                        if kind == Kind::StructureSpecific {
                            series.extend(components(&s));
                        }
                    }
                    "Obs" if parent == "DataSet" || parent == "Series" => {
                        if parent == "DataSet" {
                            series.clear();
                        }
                        let mut values = Vec::new();
                        if kind == Kind::StructureSpecific {
                            values.extend(components(&s));
                        }
                        obs = Some((s.line, values));
                    }
                    "Value" if kind == Kind::Generic => {
                        let target = match (parent.as_str(), up(3)) {
                            ("SeriesKey", "Series") | ("Attributes", "Series") => Some(&mut series),
                            ("ObsKey", "Obs") | ("Attributes", "Obs") => obs.as_mut().map(|(_, v)| v),
                            _ => None,
                        };
                        if let Some(target) = target {
                            target.push(generic_value(file, &s)?);
                        }
                    }
                    "ObsDimension" if kind == Kind::Generic && parent == "Obs" => {
                        let id = head
                            .dimension_at_observation
                            .clone()
                            .filter(|d| d != "AllDimensions")
                            .unwrap_or_else(|| TIME_PERIOD.into());
                        if let (Some((_, v)), Some(value)) = (obs.as_mut(), s.attr("value")) {
                            v.push((id, value.to_owned()));
                        }
                    }
                    "ObsValue" if kind == Kind::Generic && parent == "Obs" => {
                        if let (Some((_, v)), Some(value)) = (obs.as_mut(), s.attr("value")) {
                            v.push((OBS_VALUE_ID.into(), value.to_owned()));
                        }
                    }
                    _ => {}
                }
            }
            Ev::Text(t) => match (up(1), up(2)) {
                ("ID", "Header") => head.id = Some(t),
                ("Prepared", "Header") => head.prepared = Some(t),
                ("URN", _) if up(3) == "Structure" && up(4) == "Header" => {
                    head.structure_line = x.line();
                    head.structure = Ref::from_urn(&t);
                }
                _ => {}
            },
            Ev::End(name) => {
                if name == "Obs" {
                    if let Some((line, values)) = obs.take() {
                        let mut all = series.clone();
                        all.extend(values);
                        each(Item::Obs(RawObs {
                            line,
                            values: all,
                            set: set.clone(),
                        }))?;
                    }
                }
            }
        }
    }
    if !header_done {
        each(Item::Header(&head))?;
    }
    if kind.is_none() {
        return Err(fail(
            file,
            "line 1".into(),
            "empty file: no SDMX-ML data message".into(),
        ));
    }
    Ok(())
}

fn components(s: &Start) -> impl Iterator<Item = (String, String)> + '_ {
    s.attrs
        .iter()
        .filter(|(k, _)| !NOT_COMPONENTS.contains(&k.as_str()))
        .cloned()
}

fn generic_value(file: &str, s: &Start) -> Result<(String, String), ImportError> {
    match (s.attr("id"), s.attr("value")) {
        (Some(id), Some(v)) => Ok((id.to_owned(), v.to_owned())),
        _ => Err(fail(file, s.at(), "a generic:Value needs `id` and `value`".into())),
    }
}

fn data_set(file: &str, s: &Start) -> Result<DataSetInfo, ImportError> {
    let action = s.attr("action").unwrap_or("Information");
    if action == "Delete" {
        return Err(fail(
            file,
            s.at(),
            "action=\"Delete\": the ledger never deletes a figure (a later release revises it)".into(),
        ));
    }
    Ok(DataSetInfo {
        set_id: s.attr("setID").map(str::to_owned),
        valid_from: s.attr("validFromDate").map(str::to_owned),
        line: s.line,
    })
}
