//! SDMX-ML series and observations: GenericData (2.1) and StructureSpecificData (2.1 and
//! 3.0).

use std::fmt::Write;

use super::super::dsd::{OBS_VALUE, TIME_PERIOD};
use super::super::query::{DataDetail, ObsDimension};
use super::super::xml::escape;
use super::{Row, Writer};

impl Writer {
    pub(super) fn generic_values(out: &mut String, values: impl IntoIterator<Item = (String, String)>) {
        for (id, v) in values {
            let _ = write!(out, "<generic:Value id=\"{}\" value=\"{}\"/>", escape(&id), escape(&v));
        }
    }

    pub(super) fn generic_rows(&self, out: &mut String, groups: &[Vec<Row>]) {
        let observations = self.detail.observations();
        let attributes = self.detail.attributes();
        let obs_attrs = self.detail == DataDetail::Full;
        for g in groups {
            let first = &g[0];
            let keys = self.key_values(first);
            match &self.obs_dimension {
                ObsDimension::All => {
                    for r in g {
                        out.push_str("<generic:Obs><generic:ObsKey>");
                        let mut key: Vec<(String, String)> = self
                            .key_values(r)
                            .into_iter()
                            .map(|(id, c, _)| (id.to_owned(), c))
                            .collect();
                        key.push((TIME_PERIOD.into(), r.period.to_string()));
                        Self::generic_values(out, key);
                        out.push_str("</generic:ObsKey>");
                        if observations {
                            let _ = write!(out, "<generic:ObsValue value=\"{}\"/>", r.value);
                        }
                        if attributes {
                            out.push_str("<generic:Attributes>");
                            let series = self.series_attributes().into_iter().map(|(i, v)| (i.to_owned(), v));
                            Self::generic_values(out, series);
                            if obs_attrs {
                                let obs = self.obs_attributes(r).into_iter().map(|(i, v)| (i.to_owned(), v));
                                Self::generic_values(out, obs);
                            }
                            out.push_str("</generic:Attributes>");
                        }
                        out.push_str("</generic:Obs>\n");
                    }
                }
                dim => {
                    out.push_str("<generic:Series><generic:SeriesKey>");
                    let cross = match dim {
                        ObsDimension::Dimension(d) => Some(*d),
                        _ => None,
                    };
                    let mut key: Vec<(String, String)> = keys
                        .iter()
                        .enumerate()
                        .filter(|(i, _)| Some(*i) != cross)
                        .map(|(_, (id, c, _))| (id.to_string(), c.clone()))
                        .collect();
                    if cross.is_some() {
                        key.push((TIME_PERIOD.into(), first.period.to_string()));
                    }
                    Self::generic_values(out, key);
                    out.push_str("</generic:SeriesKey>");
                    if attributes && cross.is_none() {
                        out.push_str("<generic:Attributes>");
                        Self::generic_values(
                            out,
                            self.series_attributes().into_iter().map(|(i, v)| (i.to_owned(), v)),
                        );
                        out.push_str("</generic:Attributes>");
                    }
                    if observations {
                        for r in g {
                            let at = match cross {
                                Some(d) => self.key_values(r).swap_remove(d).1,
                                None => r.period.to_string(),
                            };
                            let _ = write!(
                                out,
                                "<generic:Obs><generic:ObsDimension value=\"{}\"/><generic:ObsValue value=\"{}\"/>",
                                escape(&at),
                                r.value
                            );
                            if obs_attrs {
                                out.push_str("<generic:Attributes>");
                                if cross.is_some() {
                                    let series = self.series_attributes().into_iter().map(|(i, v)| (i.to_owned(), v));
                                    Self::generic_values(out, series);
                                }
                                Self::generic_values(
                                    out,
                                    self.obs_attributes(r).into_iter().map(|(i, v)| (i.to_owned(), v)),
                                );
                                out.push_str("</generic:Attributes>");
                            }
                            out.push_str("</generic:Obs>");
                        }
                    }
                    out.push_str("</generic:Series>\n");
                }
            }
        }
    }

    pub(super) fn ss_attrs(out: &mut String, values: impl IntoIterator<Item = (String, String)>) {
        for (id, v) in values {
            let _ = write!(out, " {}=\"{}\"", escape(&id), escape(&v));
        }
    }

    pub(super) fn ss_rows(&self, out: &mut String, groups: &[Vec<Row>]) {
        let observations = self.detail.observations();
        let attributes = self.detail.attributes();
        let obs_attrs = self.detail == DataDetail::Full;
        let series_attrs = || self.series_attributes().into_iter().map(|(i, v)| (i.to_owned(), v));
        for g in groups {
            let first = &g[0];
            let keys = self.key_values(first);
            let cross = match self.obs_dimension {
                ObsDimension::Dimension(d) => Some(d),
                _ => None,
            };
            if self.obs_dimension == ObsDimension::All {
                for r in g {
                    out.push_str("<Obs");
                    Self::ss_attrs(out, self.key_values(r).into_iter().map(|(id, c, _)| (id.to_owned(), c)));
                    Self::ss_attrs(out, [(TIME_PERIOD.to_owned(), r.period.to_string())]);
                    if observations && self.parts.value {
                        Self::ss_attrs(out, [(OBS_VALUE.to_owned(), r.value.to_string())]);
                    }
                    if attributes {
                        Self::ss_attrs(out, series_attrs());
                    }
                    if obs_attrs {
                        Self::ss_attrs(out, self.obs_attributes(r).into_iter().map(|(i, v)| (i.to_owned(), v)));
                    }
                    out.push_str("/>\n");
                }
                continue;
            }
            out.push_str("<Series");
            let key = keys
                .iter()
                .enumerate()
                .filter(|(i, _)| Some(*i) != cross)
                .map(|(_, (id, c, _))| (id.to_string(), c.clone()));
            Self::ss_attrs(out, key);
            if cross.is_some() {
                Self::ss_attrs(out, [(TIME_PERIOD.to_owned(), first.period.to_string())]);
            } else if attributes {
                Self::ss_attrs(out, series_attrs());
            }
            if !observations {
                out.push_str("/>\n");
                continue;
            }
            out.push('>');
            for r in g {
                out.push_str("<Obs");
                let at = match cross {
                    Some(d) => (keys[d].0.to_owned(), self.key_values(r).swap_remove(d).1),
                    None => (TIME_PERIOD.to_owned(), r.period.to_string()),
                };
                Self::ss_attrs(out, [at]);
                if self.parts.value {
                    Self::ss_attrs(out, [(OBS_VALUE.to_owned(), r.value.to_string())]);
                }
                if obs_attrs {
                    if cross.is_some() {
                        Self::ss_attrs(out, series_attrs());
                    }
                    Self::ss_attrs(out, self.obs_attributes(r).into_iter().map(|(i, v)| (i.to_owned(), v)));
                }
                out.push_str("/>");
            }
            out.push_str("</Series>\n");
        }
    }
}
