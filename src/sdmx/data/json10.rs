//! SDMX-JSON 1.0 data messages (SDMX-REST 1.5), as the standard's field guide and schema
//! lay them out: `meta`, then `data` with its `dataSets` and its `structure`.
//!
//! Every key and attribute value in a data set is an index into the `values` of its
//! component in the structure, and the guide lists there the values used in the message.
//! The data sets are written as they are read, each value getting the next index the first
//! time it is met; the structure follows the data sets (the guide leaves the order of an
//! object's members undefined), when every value used is known. What is held meanwhile is
//! one entry per distinct code, period and release met, never the observations.
//!
//! Levels: the dimensions at series level are the key's but the one at observation level
//! (`TIME_PERIOD` for time series, the named one for a cross-section; a flat view has
//! none); `UNIT` and `UNIT_MULT`, one value per data set, are data-set attributes; the
//! observation attributes (`OBS_STATUS` and the vintage) follow each observation's value.

use std::collections::HashMap;
use std::fmt::Write;
use std::hash::Hash;

use super::super::dsd::{
    measure_name, obs_status, FREQ, FREQ_CODES, MEASURE, OBS_ATTRIBUTES, OBS_STATUS_CODES, OBS_VALUE,
    SERIES_ATTRIBUTES, TIME_PERIOD,
};
use super::super::query::{DataDetail, ObsDimension};
use super::super::xml::header_time;
use super::{json_text, Row, Writer};

/// Where SDMX-JSON 1.0 data messages name their schema.
pub const SCHEMA: &str =
    "https://raw.githubusercontent.com/sdmx-twg/sdmx-json/master/data-message/tools/schemas/1.0/sdmx-json-data-schema.json";

/// The values met so far, each at its index in the message.
#[derive(Debug)]
struct Seen<K> {
    index: HashMap<K, usize>,
    order: Vec<K>,
}

impl<K> Default for Seen<K> {
    fn default() -> Self {
        Seen {
            index: HashMap::new(),
            order: Vec::new(),
        }
    }
}

impl<K: Hash + Eq + Clone> Seen<K> {
    fn at(&mut self, k: K) -> usize {
        let next = self.order.len();
        *self.index.entry(k.clone()).or_insert_with(|| {
            self.order.push(k);
            next
        })
    }
}

/// What an SDMX-JSON 1.0 answer has met so far.
#[derive(Debug, Default)]
pub struct State {
    /// Per key position but the time (`FREQ`, the dataset's dimensions, `MEASURE`): the
    /// positions of the codes met. The periods are in the writer's `periods`.
    codes: Vec<Seen<u16>>,
    /// Per observation attribute: the values met.
    attributes: [Seen<String>; 4],
}

impl Writer {
    pub(super) fn json10_header(&mut self, out: &mut String) {
        self.json10.codes = (0..self.def.dimensions.len() + 2).map(|_| Seen::default()).collect();
        let _ = write!(
            out,
            "{{\"meta\":{{\"schema\":\"{SCHEMA}\",\"id\":\"DATA\",\"test\":false,\"prepared\":\"{}\",\"contentLanguages\":[\"en\"],\"sender\":{{\"id\":\"TRADELEDGER\"}}}},\n\"data\":{{\"dataSets\":[",
            header_time(self.prepared)
        );
    }

    /// The series attributes asked for, presented once per data set.
    fn json10_dataset_attributes(&self) -> bool {
        self.detail.attributes() && self.parts.series.iter().any(|w| *w)
    }

    /// Opens a data set: `Information`, or for a release `Replace`, valid from its
    /// publication.
    pub(super) fn json10_open(&mut self, out: &mut String, valid_from: Option<String>) {
        if self.datasets > 0 {
            out.push(',');
        }
        self.datasets += 1;
        self.entries = 0;
        // The schema wants links on every data set: the dataflow's.
        let _ = write!(
            out,
            "{{\"links\":[{{\"urn\":{},\"rel\":\"dataflow\"}}],\"action\":\"{}\"",
            json_text(&self.flow().dataflow_urn()),
            if valid_from.is_some() { "Replace" } else { "Information" }
        );
        if let Some(from) = valid_from {
            let _ = write!(out, ",\"validFrom\":\"{from}\"");
        }
        if self.json10_dataset_attributes() {
            let indices: Vec<&str> = self.parts.series.iter().filter(|w| **w).map(|_| "0").collect();
            let _ = write!(out, ",\"attributes\":[{}]", indices.join(","));
        }
        let _ = writeln!(
            out,
            ",\"{}\":{{",
            if self.obs_dimension == ObsDimension::All {
                "observations"
            } else {
                "series"
            }
        );
    }

    /// The message index of row `r`'s value at key position `p` (the time last).
    fn json10_index(&mut self, r: &Row, p: usize) -> usize {
        let n = self.def.dimensions.len();
        let code = match p {
            0 => FREQ_CODES
                .iter()
                .position(|c| c.0 == r.period.frequency().code())
                .unwrap_or(0) as u16,
            p if p <= n => r.key.code(p - 1),
            p if p == n + 1 => u16::from(r.measure),
            _ => {
                let next = self.periods.len();
                return *self.period_index.entry(r.period).or_insert_with(|| {
                    self.periods.push(r.period);
                    next
                });
            }
        };
        self.json10.codes[p].at(code)
    }

    fn json10_key(&mut self, r: &Row, positions: &[usize]) -> String {
        let mut key = String::new();
        for (i, p) in positions.iter().enumerate() {
            if i > 0 {
                key.push(':');
            }
            let index = self.json10_index(r, *p);
            let _ = write!(key, "{index}");
        }
        key
    }

    /// An observation's array: the value, then the indices of its attributes.
    fn json10_obs(&mut self, out: &mut String, r: &Row) {
        if !self.detail.observations() {
            out.push_str("[]");
            return;
        }
        let mut values = vec![if self.parts.value {
            r.value.to_string()
        } else {
            "null".to_owned()
        }];
        if self.detail == DataDetail::Full {
            let all = [
                obs_status(r.status).to_owned(),
                r.release.to_string(),
                r.status.as_str().to_owned(),
                header_time(r.published),
            ];
            for (i, v) in all.into_iter().enumerate() {
                if self.parts.obs[i] {
                    values.push(self.json10.attributes[i].at(v).to_string());
                }
            }
        }
        let _ = write!(out, "[{}]", values.join(","));
    }

    pub(super) fn json10_rows(&mut self, out: &mut String, groups: &[Vec<Row>]) {
        let (series, obs) = self.json_levels();
        for g in groups {
            if series.is_empty() {
                for r in g {
                    let key = self.json10_key(r, &obs);
                    if self.entries > 0 {
                        out.push(',');
                    }
                    self.entries += 1;
                    let _ = write!(out, "\"{key}\":");
                    self.json10_obs(out, r);
                    out.push('\n');
                }
                continue;
            }
            let key = self.json10_key(&g[0], &series);
            if self.entries > 0 {
                out.push(',');
            }
            self.entries += 1;
            let _ = write!(out, "\"{key}\":{{");
            if self.detail.observations() {
                out.push_str("\"observations\":{");
                for (i, r) in g.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    let key = self.json10_key(r, &obs);
                    let _ = write!(out, "\"{key}\":");
                    self.json10_obs(out, r);
                }
                out.push('}');
            }
            out.push_str("}\n");
        }
    }

    pub(super) fn json10_close(&self, out: &mut String) {
        out.push_str("}}\n");
    }

    /// A component value: its id, and its name in English.
    fn json10_value(id: &str, name: &str) -> String {
        format!(
            "\"id\":{},\"name\":{},\"names\":{{\"en\":{}}}",
            json_text(id),
            json_text(name),
            json_text(name)
        )
    }

    /// The dimension at key position `p` with the values the message used.
    fn json10_dimension(&self, p: usize) -> String {
        let n = self.def.dimensions.len();
        let used = |p: usize| self.json10.codes[p].order.iter().map(|c| *c as usize);
        let (id, name, values): (&str, &str, Vec<String>) = match p {
            0 => (
                FREQ,
                "Frequency",
                used(0)
                    .map(|c| {
                        format!(
                            "{{{},\"order\":{c}}}",
                            Self::json10_value(FREQ_CODES[c].0, FREQ_CODES[c].1)
                        )
                    })
                    .collect(),
            ),
            p if p <= n => {
                let d = &self.def.dimensions[p - 1];
                let values = used(p)
                    .map(|c| {
                        let code = &d.codes[c];
                        let parent = code
                            .parent
                            .as_ref()
                            .map(|parent| format!(",\"parent\":{}", json_text(parent)))
                            .unwrap_or_default();
                        format!(
                            "{{{}{parent},\"order\":{c}}}",
                            Self::json10_value(&code.code, &code.label)
                        )
                    })
                    .collect();
                (&d.id, &d.label, values)
            }
            p if p == n + 1 => (
                MEASURE,
                "Measure",
                used(p)
                    .map(|c| {
                        let m = &self.def.measures[c];
                        format!("{{{},\"order\":{c}}}", Self::json10_value(m, measure_name(m)))
                    })
                    .collect(),
            ),
            _ => (
                TIME_PERIOD,
                "Time period",
                self.periods
                    .iter()
                    .map(|t| format!("{{{}}}", Self::json10_value(&t.to_string(), &t.to_string())))
                    .collect(),
            ),
        };
        format!(
            "{{\"id\":{},\"name\":{},\"names\":{{\"en\":{}}},\"keyPosition\":{p},\"values\":[{}]}}",
            json_text(id),
            json_text(name),
            json_text(name),
            values.join(",")
        )
    }

    /// The structure, after the data sets; closes the message.
    pub(super) fn json10_structure(&self, out: &mut String) {
        let (series, obs) = self.json_levels();
        let list = |positions: &[usize]| {
            positions
                .iter()
                .map(|p| self.json10_dimension(*p))
                .collect::<Vec<_>>()
                .join(",")
        };
        let component = |id: &str, name: &str, relationship: &str, values: Vec<String>| {
            format!(
                "{{\"id\":{},\"name\":{},\"names\":{{\"en\":{}}},\"relationship\":{relationship},\"values\":[{}]}}",
                json_text(id),
                json_text(name),
                json_text(name),
                values.join(",")
            )
        };
        let key_dims: Vec<String> = self.flow().key_dimensions().iter().map(|d| json_text(d)).collect();
        let by_key = format!("{{\"dimensions\":[{}]}}", key_dims.join(","));
        let mut dataset_attributes = Vec::new();
        if self.json10_dataset_attributes() {
            let values = [self.def.unit.clone(), self.def.unit_multiplier.to_string()];
            for (((id, name), value), wanted) in SERIES_ATTRIBUTES.iter().zip(values).zip(self.parts.series) {
                if wanted {
                    // Free text in the DSD: a value with a name and no id.
                    let value = format!(
                        "{{\"name\":{},\"names\":{{\"en\":{}}}}}",
                        json_text(&value),
                        json_text(&value)
                    );
                    dataset_attributes.push(component(id, name, &by_key, vec![value]));
                }
            }
        }
        let mut obs_attributes = Vec::new();
        if self.detail == DataDetail::Full {
            let by_measure = format!("{{\"primaryMeasure\":\"{OBS_VALUE}\"}}");
            for (i, (id, name)) in OBS_ATTRIBUTES.iter().enumerate() {
                if !self.parts.obs[i] {
                    continue;
                }
                let values = self.json10.attributes[i]
                    .order
                    .iter()
                    .map(|v| {
                        if *id == "OBS_STATUS" {
                            // Coded (CL_OBS_STATUS).
                            let label = OBS_STATUS_CODES.iter().find(|c| c.0 == v).map_or("", |c| c.1);
                            format!("{{{}}}", Self::json10_value(v, label))
                        } else {
                            format!("{{\"name\":{},\"names\":{{\"en\":{}}}}}", json_text(v), json_text(v))
                        }
                    })
                    .collect();
                obs_attributes.push(component(id, name, &by_measure, values));
            }
        }
        let _ = writeln!(
            out,
            "],\n\"structure\":{{\"links\":[{{\"urn\":{},\"rel\":\"dataflow\"}}],\"name\":{},\"names\":{{\"en\":{}}},\
             \"dimensions\":{{\"dataSet\":[],\"series\":[{}],\"observation\":[{}]}},\
             \"attributes\":{{\"dataSet\":[{}],\"series\":[],\"observation\":[{}]}}}}}}}}",
            json_text(&self.flow().dataflow_urn()),
            json_text(&self.def.name),
            json_text(&self.def.name),
            list(&series),
            list(&obs),
            dataset_attributes.join(","),
            obs_attributes.join(",")
        );
    }
}
