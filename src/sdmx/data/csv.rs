//! SDMX-CSV 1.0 and 2.0 rows and their header.

use super::super::dsd::{FREQ, MEASURE, OBS_ATTRIBUTES, OBS_VALUE, SERIES_ATTRIBUTES, TIME_PERIOD};
use super::super::query::{DataDetail, ObsDimension};
use super::{Row, Writer};

/// CSV field: quoted when it holds a comma, quote or line break.
pub(super) fn csv_field(out: &mut String, s: &str) {
    if s.contains([',', '"', '\n', '\r']) {
        out.push('"');
        out.push_str(&s.replace('"', "\"\""));
        out.push('"');
    } else {
        out.push_str(s);
    }
}

impl Writer {
    pub(super) fn csv_columns(&self) -> Vec<(String, String)> {
        let mut cols = vec![("DATAFLOW".to_owned(), String::new())];
        cols.push((FREQ.into(), "Frequency".into()));
        for d in &self.def.dimensions {
            cols.push((d.id.clone(), d.label.clone()));
        }
        cols.push((MEASURE.into(), "Measure".into()));
        cols.push((TIME_PERIOD.into(), "Time period".into()));
        if self.parts.value {
            cols.push((OBS_VALUE.into(), String::new()));
        }
        if self.detail.attributes() || self.detail == DataDetail::Full {
            let wanted = self.parts.series.iter().chain(&self.parts.obs);
            for ((id, name), _) in SERIES_ATTRIBUTES
                .iter()
                .chain(&OBS_ATTRIBUTES)
                .zip(wanted)
                .filter(|(_, w)| **w)
            {
                cols.push((id.to_string(), name.to_string()));
            }
        }
        cols
    }

    /// The header row; SDMX-CSV 2.0 (`v2`) names the structure and the action first.
    pub(super) fn csv_header(&self, out: &mut String, labels: bool, v2: bool) {
        let mut columns = self.csv_columns();
        if v2 {
            columns[0] = ("STRUCTURE_ID".to_owned(), String::new());
            out.push_str("STRUCTURE,");
            columns.insert(1, ("ACTION".to_owned(), String::new()));
        }
        for (i, (id, name)) in columns.into_iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            if labels && !name.is_empty() {
                csv_field(out, &format!("{id}: {name}"));
            } else {
                out.push_str(&id);
            }
        }
        out.push_str("\r\n");
    }

    pub(super) fn csv_rows(&self, out: &mut String, groups: &[Vec<Row>], labels: bool, v2: bool) {
        let flow = self.flow().csv_ref();
        let flow = if labels {
            format!("{flow}: {}", self.def.name)
        } else {
            flow
        };
        let observations = self.detail.observations();
        let attributes = self.detail.attributes();
        // With several dataflows, where each of this one's columns goes in the message's.
        let place: Option<Vec<Option<usize>>> = self.csv_union.as_ref().map(|union| {
            let own: Vec<String> = self.csv_columns().into_iter().skip(1).map(|(id, _)| id).collect();
            union.iter().map(|c| own.iter().position(|o| o == c)).collect()
        });
        let mut fields: Vec<String> = Vec::new();
        for g in groups {
            let rows: &[Row] = if observations { g } else { &g[..1] };
            for r in rows {
                if v2 {
                    out.push_str("dataflow,");
                }
                csv_field(out, &flow);
                if v2 {
                    out.push(',');
                    out.push_str(self.action);
                }
                fields.clear();
                let field = |s: &str| {
                    let mut f = String::new();
                    csv_field(&mut f, s);
                    f
                };
                for (_, code, label) in self.key_values(r) {
                    fields.push(if labels {
                        field(&format!("{code}: {label}"))
                    } else {
                        field(&code)
                    });
                }
                fields.push(if observations || !matches!(self.obs_dimension, ObsDimension::Time) {
                    r.period.to_string()
                } else {
                    String::new()
                });
                if self.parts.value {
                    fields.push(if observations {
                        r.value.to_string()
                    } else {
                        String::new()
                    });
                }
                if attributes || self.detail == DataDetail::Full {
                    for (_, v) in self.series_attributes() {
                        fields.push(field(&v));
                    }
                    for (id, v) in self.obs_attributes(r) {
                        fields.push(if !observations {
                            String::new()
                        } else if labels && id == "OBS_STATUS" {
                            let name = super::super::dsd::OBS_STATUS_CODES
                                .iter()
                                .find(|c| c.0 == v)
                                .map_or("", |c| c.1);
                            field(&format!("{v}: {name}"))
                        } else {
                            field(&v)
                        });
                    }
                }
                match &place {
                    None => {
                        for f in &fields {
                            out.push(',');
                            out.push_str(f);
                        }
                    }
                    Some(place) => {
                        for p in place {
                            out.push(',');
                            if let Some(f) = p.and_then(|p| fields.get(p)) {
                                out.push_str(f);
                            }
                        }
                    }
                }
                out.push_str("\r\n");
            }
        }
    }
}
