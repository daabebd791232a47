//! SDMX-JSON 2.0 data: the data sets and the structure that follows them.

use std::fmt::Write;

use super::super::dsd::{FREQ, MEASURE, OBS_ATTRIBUTES, OBS_VALUE, SERIES_ATTRIBUTES, TIME_PERIOD};
use super::super::query::{DataDetail, ObsDimension};
use super::{Row, Writer};

/// Where SDMX-JSON 2.0 data messages name their schema.
pub(super) const JSON_DATA_SCHEMA: &str =
    "https://raw.githubusercontent.com/sdmx-twg/sdmx-json/master/data-message/tools/schemas/2.0.0/sdmx-json-data-schema.json";

/// SDMX-JSON 2.0 data: data sets of series (or of observations in a flat view) keyed by the
/// positions of their codes, written as they are read; the structure follows the data sets,
/// since the periods (the time dimension's values) are only known once every figure is out.
impl Writer {
    /// The key positions at series and at observation level: the key dimensions (`FREQ`, the
    /// dataset's, `MEASURE`), then `TIME_PERIOD`.
    pub(super) fn json_levels(&self) -> (Vec<usize>, Vec<usize>) {
        let time = self.def.dimensions.len() + 2;
        match self.obs_dimension {
            ObsDimension::Time => ((0..time).collect(), vec![time]),
            ObsDimension::All => (Vec::new(), (0..=time).collect()),
            ObsDimension::Dimension(d) => ((0..=time).filter(|p| *p != d).collect(), vec![d]),
        }
    }

    /// The index of row `r`'s value of the component at key position `p`.
    pub(super) fn json_index(&mut self, r: &Row, p: usize) -> usize {
        let n = self.def.dimensions.len();
        match p {
            0 => super::super::dsd::FREQ_CODES
                .iter()
                .position(|c| c.0 == r.period.frequency().code())
                .unwrap_or(0),
            p if p <= n => r.key.code(p - 1) as usize,
            p if p == n + 1 => r.measure as usize,
            _ => {
                let next = self.periods.len();
                *self.period_index.entry(r.period).or_insert_with(|| {
                    self.periods.push(r.period);
                    next
                })
            }
        }
    }

    pub(super) fn json_key(&mut self, r: &Row, positions: &[usize]) -> String {
        let mut key = String::new();
        for (i, p) in positions.iter().enumerate() {
            if i > 0 {
                key.push(':');
            }
            let _ = write!(key, "{}", self.json_index(r, *p));
        }
        key
    }

    /// An observation's array: the value, then the attributes at observation level.
    pub(super) fn json_obs(&self, out: &mut String, r: &Row, series_attributes: bool) {
        let mut values: Vec<String> = Vec::new();
        if self.parts.value {
            values.push(r.value.to_string());
        }
        if self.detail == DataDetail::Full {
            values.extend(self.obs_attributes(r).into_iter().map(|(_, v)| json_text(&v)));
            if series_attributes {
                values.extend(self.series_attributes().into_iter().map(|(_, v)| json_text(&v)));
            }
        }
        let _ = write!(out, "[{}]", values.join(","));
    }

    pub(super) fn json_rows(&mut self, out: &mut String, groups: &[Vec<Row>]) {
        let (series, obs) = self.json_levels();
        let observations = self.detail.observations();
        for g in groups {
            for r in g {
                self.json_index(r, self.def.dimensions.len() + 2);
            }
            if series.is_empty() {
                for r in g {
                    let key = self.json_key(r, &obs);
                    if self.entries > 0 {
                        out.push(',');
                    }
                    self.entries += 1;
                    let _ = write!(out, "\"{key}\":");
                    self.json_obs(out, r, true);
                    out.push('\n');
                }
                continue;
            }
            let key = self.json_key(&g[0], &series);
            if self.entries > 0 {
                out.push(',');
            }
            self.entries += 1;
            let _ = write!(out, "\"{key}\":{{");
            let time_series = self.obs_dimension == ObsDimension::Time;
            let mut inner = false;
            if time_series && self.detail.attributes() {
                let values: Vec<String> = self
                    .series_attributes()
                    .into_iter()
                    .map(|(_, v)| json_text(&v))
                    .collect();
                let _ = write!(out, "\"attributes\":[{}]", values.join(","));
                inner = true;
            }
            if observations {
                if inner {
                    out.push(',');
                }
                out.push_str("\"observations\":{");
                for (i, r) in g.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    let key = self.json_key(r, &obs);
                    let _ = write!(out, "\"{key}\":");
                    self.json_obs(out, r, !time_series);
                }
                out.push('}');
            }
            out.push_str("}\n");
        }
    }

    /// The structure of this dataflow's data sets, listed after the data sets.
    pub(super) fn json_structure(&self) -> String {
        let n = self.def.dimensions.len();
        let text = json_text;
        let named = |id: &str, name: &str| {
            format!(
                "\"id\":{},\"name\":{},\"names\":{{\"en\":{}}}",
                text(id),
                text(name),
                text(name)
            )
        };
        let dimension = |p: usize| -> String {
            let (id, name, values): (&str, &str, Vec<String>) = match p {
                0 => (
                    FREQ,
                    "Frequency",
                    super::super::dsd::FREQ_CODES
                        .iter()
                        .map(|(c, l)| format!("{{{}}}", named(c, l)))
                        .collect(),
                ),
                p if p <= n => {
                    let d = &self.def.dimensions[p - 1];
                    let values = d
                        .codes
                        .iter()
                        .map(|c| match &c.parent {
                            Some(parent) => format!("{{{},\"parent\":{}}}", named(&c.code, &c.label), text(parent)),
                            None => format!("{{{}}}", named(&c.code, &c.label)),
                        })
                        .collect();
                    (&d.id, &d.label, values)
                }
                p if p == n + 1 => (
                    MEASURE,
                    "Measure",
                    self.def
                        .measures
                        .iter()
                        .map(|m| format!("{{{}}}", named(m, super::super::dsd::measure_name(m))))
                        .collect(),
                ),
                _ => (
                    TIME_PERIOD,
                    "Time period",
                    self.periods.iter().map(|p| format!("{{\"value\":\"{p}\"}}")).collect(),
                ),
            };
            format!(
                "{{{},\"keyPosition\":{p},\"values\":[{}]}}",
                named(id, name),
                values.join(",")
            )
        };
        let (series, obs) = self.json_levels();
        let list = |positions: &[usize]| positions.iter().map(|p| dimension(*p)).collect::<Vec<_>>().join(",");
        let key_dims: Vec<String> = self.flow().key_dimensions().iter().map(|d| text(d)).collect();
        let attribute = |(id, name): (&str, &str), series_level: bool| {
            let relationship = if series_level {
                format!("{{\"dimensions\":[{}]}}", key_dims.join(","))
            } else {
                "{\"observation\":{}}".to_owned()
            };
            format!("{{{},\"relationship\":{relationship}}}", named(id, name))
        };
        let wanted_series: Vec<String> = SERIES_ATTRIBUTES
            .iter()
            .zip(self.parts.series)
            .filter(|(_, w)| *w)
            .map(|(a, _)| attribute(*a, true))
            .collect();
        let wanted_obs: Vec<String> = OBS_ATTRIBUTES
            .iter()
            .zip(self.parts.obs)
            .filter(|(_, w)| *w)
            .map(|(a, _)| attribute(*a, false))
            .collect();
        let (series_attrs, obs_attrs) = match (self.detail.attributes(), self.obs_dimension == ObsDimension::Time) {
            (false, _) => (Vec::new(), Vec::new()),
            (true, true) => (wanted_series, wanted_obs),
            (true, false) => (Vec::new(), wanted_obs.into_iter().chain(wanted_series).collect()),
        };
        let obs_attrs = if self.detail == DataDetail::Full {
            obs_attrs
        } else {
            Vec::new()
        };
        let datasets: Vec<String> = (self.first_dataset..self.first_dataset + self.datasets)
            .map(|i| i.to_string())
            .collect();
        let mut dimensions = vec![format!("\"series\":[{}]", list(&series))];
        dimensions.push(format!("\"observation\":[{}]", list(&obs)));
        let mut attributes = Vec::new();
        if !series_attrs.is_empty() {
            attributes.push(format!("\"series\":[{}]", series_attrs.join(",")));
        }
        if !obs_attrs.is_empty() {
            attributes.push(format!("\"observation\":[{}]", obs_attrs.join(",")));
        }
        let measures = if self.parts.value {
            format!("\"observation\":[{{{}}}]", named(OBS_VALUE, "Observation value"))
        } else {
            String::new()
        };
        format!(
            "{{\"name\":{},\"names\":{{\"en\":{}}},\"links\":[{{\"urn\":{},\"rel\":\"dataflow\"}}],\"dataSets\":[{}],\
             \"dimensions\":{{{}}},\"measures\":{{{measures}}},\"attributes\":{{{}}}}}",
            text(&self.def.name),
            text(&self.def.name),
            text(&self.flow().dataflow_urn()),
            datasets.join(","),
            dimensions.join(","),
            attributes.join(",")
        )
    }
}

/// A JSON string.
pub(super) fn json_text(s: &str) -> String {
    serde_json::Value::String(s.to_owned()).to_string()
}
