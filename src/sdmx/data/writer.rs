//! The frame of a data message in every format: the header, the data sets and the footer,
//! and each page of rows handed to its format's writer (`csv`, `ml`, `json20`, `json10`).

use std::collections::HashMap;
use std::fmt::Write;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::super::dsd::{obs_status, Flow, FREQ, MEASURE, OBS_ATTRIBUTES, SERIES_ATTRIBUTES, TIME_PERIOD, VERSION};
use super::super::query::ObsDimension;
use super::super::schema::MlVersion;
use super::super::xml::{
    escape, header_time, COMMON3_NS, COMMON_NS, GENERIC_NS, MESSAGE3_NS, MESSAGE_NS, SS3_NS, SS_NS, XSI_NS,
};
use super::{json10, json_text, DataFormat, Row, Selection, Writer, JSON_DATA_SCHEMA};
use crate::domain::{Dataset, ReleaseStatus};

/// The figures of one SDMX series (or section), in order.
pub(super) fn groups(mut rows: Vec<Row>, s: &Selection) -> Vec<Vec<Row>> {
    match s.obs_dimension {
        ObsDimension::Time => rows.sort_by_key(|r| (r.series(), r.period)),
        ObsDimension::All => rows.sort_by_key(|r| (r.key, r.measure, r.period)),
        ObsDimension::Dimension(d) => rows.sort_by_key(|r| {
            let (other, code) = cross_key(r, d);
            (other, r.period, code)
        }),
    }
    let same = |a: &Row, b: &Row| match s.obs_dimension {
        ObsDimension::Time => a.series() == b.series(),
        ObsDimension::All => false,
        ObsDimension::Dimension(d) => cross_key(a, d).0 == cross_key(b, d).0 && a.period == b.period,
    };
    let mut out: Vec<Vec<Row>> = Vec::new();
    for r in rows {
        match out.last_mut() {
            Some(g) if same(&g[0], &r) => g.push(r),
            _ => out.push(vec![r]),
        }
    }
    if matches!(s.obs_dimension, ObsDimension::Time) {
        for g in &mut out {
            if let Some(n) = s.first_n {
                g.truncate(n as usize);
            }
            if let Some(n) = s.last_n {
                let n = n as usize;
                if g.len() > n {
                    g.drain(..g.len() - n);
                }
            }
        }
    }
    out
}

/// The codes of every key dimension of a row (frequency, the dataset's, the measure), with
/// the code at position `d` taken out and returned apart.
pub(super) fn cross_key(r: &Row, d: usize) -> (Vec<u16>, u16) {
    let mut codes = vec![r.period.frequency() as u16];
    codes.extend(r.key.codes());
    codes.push(u16::from(r.measure));
    let code = codes.remove(d);
    (codes, code)
}

impl Writer {
    pub(super) fn new(
        format: DataFormat,
        def: &Arc<Dataset>,
        agency: String,
        s: &Selection,
        prepared: DateTime<Utc>,
    ) -> Self {
        Writer {
            format,
            def: def.clone(),
            agency,
            prepared,
            detail: s.detail,
            obs_dimension: s.obs_dimension.clone(),
            parts: s.parts,
            periods: Vec::new(),
            period_index: HashMap::new(),
            datasets: 0,
            entries: 0,
            action: "I",
            json10: json10::State::default(),
            structure: 0,
            multi: false,
            first_dataset: 0,
            csv_union: None,
        }
    }

    pub(super) fn flow(&self) -> Flow<'_> {
        Flow {
            def: &self.def,
            agency: self.agency.clone(),
        }
    }

    /// `(id, code, label)` of every key dimension of a row, in key order.
    pub(super) fn key_values(&self, r: &Row) -> Vec<(&str, String, String)> {
        let mut out = Vec::with_capacity(self.def.dimensions.len() + 2);
        let f = r.period.frequency();
        out.push((
            FREQ,
            f.code().to_owned(),
            super::super::dsd::FREQ_CODES
                .iter()
                .find(|c| c.0 == f.code())
                .map_or("", |c| c.1)
                .to_owned(),
        ));
        for (dim, c) in self.def.dimensions.iter().zip(r.key.codes()) {
            let code = &dim.codes[c as usize];
            out.push((dim.id.as_str(), code.code.clone(), code.label.clone()));
        }
        let m = &self.def.measures[r.measure as usize];
        out.push((MEASURE, m.clone(), super::super::dsd::measure_name(m).to_owned()));
        out
    }

    pub(super) fn obs_dim_id(&self) -> String {
        match self.obs_dimension {
            ObsDimension::Time => TIME_PERIOD.to_owned(),
            ObsDimension::All => "AllDimensions".to_owned(),
            ObsDimension::Dimension(d) => self.flow().key_dimensions()[d].to_owned(),
        }
    }

    /// The id the SDMX-ML 3.0 header gives this dataflow's structure.
    pub(super) fn structure_ref(&self) -> String {
        if self.multi {
            format!("STR{}", self.structure + 1)
        } else {
            "STR".to_owned()
        }
    }

    /// The namespace prefix of this dataflow's structure-specific types.
    pub(super) fn ns_prefix(&self) -> String {
        format!("ns{}", self.structure + 1)
    }

    pub(super) fn ss_namespace(&self) -> String {
        let version = if self.format == DataFormat::Ml3 {
            MlVersion::V30
        } else {
            MlVersion::V21
        };
        super::super::schema::namespace(&self.flow(), &self.obs_dim_id(), version)
    }

    pub(super) fn header(&mut self, out: &mut String) {
        let (root, ns) = match self.format {
            DataFormat::Csv { labels } => {
                self.csv_header(out, labels, false);
                return;
            }
            DataFormat::Csv2 { labels } => {
                self.csv_header(out, labels, true);
                return;
            }
            DataFormat::Json10 => {
                self.json10_header(out);
                return;
            }
            DataFormat::Json2 => {
                let _ = write!(
                    out,
                    "{{\"meta\":{{\"schema\":\"{JSON_DATA_SCHEMA}\",\"id\":\"DATA\",\"test\":false,\"prepared\":\"{}\",\"contentLanguages\":[\"en\"],\"sender\":{{\"id\":\"TRADELEDGER\"}}}},\n\"data\":{{\"dataSets\":[",
                    header_time(self.prepared)
                );
                return;
            }
            DataFormat::Ml3 => {
                let _ = writeln!(
                    out,
                    "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<message:StructureSpecificData xmlns:message=\"{MESSAGE3_NS}\" xmlns:common=\"{COMMON3_NS}\" xmlns:xsi=\"{XSI_NS}\" xmlns:ss=\"{SS3_NS}\" xmlns:ns1=\"{ns}\">\n\
                     <message:Header><message:ID>DATA</message:ID><message:Test>false</message:Test><message:Prepared>{}</message:Prepared>\
                     <message:Sender id=\"TRADELEDGER\"/><message:Structure structureID=\"STR\" namespace=\"{ns}\" dimensionAtObservation=\"{}\">\
                     <common:StructureUsage>{}</common:StructureUsage></message:Structure></message:Header>",
                    header_time(self.prepared),
                    self.obs_dim_id(),
                    escape(&self.flow().dataflow_urn()),
                    ns = escape(&self.ss_namespace()),
                );
                return;
            }
            DataFormat::Generic { time_series } => (
                if time_series {
                    "GenericTimeSeriesData"
                } else {
                    "GenericData"
                },
                format!("xmlns:generic=\"{GENERIC_NS}\""),
            ),
            DataFormat::StructureSpecific { time_series } => (
                if time_series {
                    "StructureSpecificTimeSeriesData"
                } else {
                    "StructureSpecificData"
                },
                format!("xmlns:ss=\"{SS_NS}\" xmlns:ns1=\"{}\"", escape(&self.ss_namespace())),
            ),
        };
        let _ = write!(
            out,
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<message:{root} xmlns:message=\"{MESSAGE_NS}\" xmlns:common=\"{COMMON_NS}\" xmlns:xsi=\"{XSI_NS}\" {ns}>\n\
             <message:Header><message:ID>DATA</message:ID><message:Test>false</message:Test><message:Prepared>{}</message:Prepared>\
             <message:Sender id=\"TRADELEDGER\"/><message:Structure structureID=\"STR\" dimensionAtObservation=\"{}\"",
            header_time(self.prepared),
            self.obs_dim_id()
        );
        if matches!(self.format, DataFormat::StructureSpecific { .. }) {
            let _ = write!(out, " namespace=\"{}\"", escape(&self.ss_namespace()));
        }
        let _ = writeln!(
            out,
            "><common:Structure><Ref agencyID=\"{}\" id=\"{}\" version=\"{VERSION}\"/></common:Structure></message:Structure></message:Header>",
            escape(&self.agency),
            escape(&self.def.id)
        );
    }

    /// Opens a data set; for a history, the one of a release, valid from its publication.
    pub(super) fn open_dataset(&mut self, out: &mut String, release: Option<(Uuid, ReleaseStatus, DateTime<Utc>)>) {
        let validity = release.map(|(id, _, published)| (id, header_time(published)));
        match self.format {
            DataFormat::Csv { .. } => {}
            DataFormat::Csv2 { .. } => self.action = if validity.is_some() { "R" } else { "I" },
            DataFormat::Json10 => self.json10_open(out, validity.map(|(_, from)| from)),
            DataFormat::Json2 => {
                if self.first_dataset + self.datasets > 0 {
                    out.push(',');
                }
                self.datasets += 1;
                self.entries = 0;
                let _ = write!(
                    out,
                    "{{\"structure\":{},\"links\":[{{\"urn\":{},\"rel\":\"dataflow\"}}],\"action\":\"{}\"",
                    self.structure,
                    json_text(&self.flow().dataflow_urn()),
                    if validity.is_some() { "Replace" } else { "Information" }
                );
                if let Some((_, from)) = &validity {
                    let _ = write!(out, ",\"validFrom\":\"{from}\"");
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
            DataFormat::Ml3 => {
                let _ = write!(
                    out,
                    "<message:DataSet ss:structureRef=\"{}\" xsi:type=\"{}:DataSetType\"",
                    self.structure_ref(),
                    self.ns_prefix()
                );
                match &validity {
                    Some((id, from)) => {
                        let _ = write!(
                            out,
                            " ss:action=\"Replace\" ss:setID=\"R{}\" ss:validFromDate=\"{from}\"",
                            id.simple()
                        );
                    }
                    None => out.push_str(" ss:action=\"Information\""),
                }
                out.push_str(">\n");
            }
            DataFormat::Generic { .. } => {
                out.push_str("<message:DataSet structureRef=\"STR\"");
                if let Some((id, from)) = &validity {
                    let _ = write!(
                        out,
                        " action=\"Replace\" setID=\"R{}\" validFromDate=\"{from}\"",
                        id.simple()
                    );
                }
                out.push_str(">\n");
            }
            DataFormat::StructureSpecific { .. } => {
                out.push_str("<message:DataSet ss:structureRef=\"STR\" xsi:type=\"ns1:DataSetType\" ss:dataScope=\"DataStructure\"");
                if let Some((id, from)) = &validity {
                    let _ = write!(
                        out,
                        " ss:action=\"Replace\" ss:setID=\"R{}\" ss:validFromDate=\"{from}\"",
                        id.simple()
                    );
                }
                out.push_str(">\n");
            }
        }
    }

    pub(super) fn close_dataset(&self, out: &mut String) {
        match self.format {
            DataFormat::Csv { .. } | DataFormat::Csv2 { .. } => {}
            DataFormat::Json10 => self.json10_close(out),
            DataFormat::Json2 => out.push_str("}}\n"),
            _ => out.push_str("</message:DataSet>\n"),
        }
    }

    pub(super) fn footer(&self, out: &mut String) {
        let root = match self.format {
            DataFormat::Csv { .. } | DataFormat::Csv2 { .. } => return,
            DataFormat::Json10 => {
                self.json10_structure(out);
                return;
            }
            DataFormat::Json2 => {
                let _ = writeln!(out, "],\n\"structures\":[{}]}}}}", self.json_structure());
                return;
            }
            DataFormat::Ml3 => "StructureSpecificData",
            DataFormat::Generic { time_series: false } => "GenericData",
            DataFormat::Generic { time_series: true } => "GenericTimeSeriesData",
            DataFormat::StructureSpecific { time_series: false } => "StructureSpecificData",
            DataFormat::StructureSpecific { time_series: true } => "StructureSpecificTimeSeriesData",
        };
        let _ = writeln!(out, "</message:{root}>");
    }

    /// The series attributes asked for (`attributes`), with their values.
    pub(super) fn series_attributes(&self) -> Vec<(&'static str, String)> {
        let all = [
            (SERIES_ATTRIBUTES[0].0, self.def.unit.clone()),
            (SERIES_ATTRIBUTES[1].0, self.def.unit_multiplier.to_string()),
        ];
        all.into_iter()
            .zip(self.parts.series)
            .filter(|(_, w)| *w)
            .map(|(a, _)| a)
            .collect()
    }

    /// The observation attributes asked for, with their values in row `r`.
    pub(super) fn obs_attributes(&self, r: &Row) -> Vec<(&'static str, String)> {
        let all = [
            (OBS_ATTRIBUTES[0].0, obs_status(r.status).to_owned()),
            (OBS_ATTRIBUTES[1].0, r.release.to_string()),
            (OBS_ATTRIBUTES[2].0, r.status.as_str().to_owned()),
            (OBS_ATTRIBUTES[3].0, header_time(r.published)),
        ];
        all.into_iter()
            .zip(self.parts.obs)
            .filter(|(_, w)| *w)
            .map(|(a, _)| a)
            .collect()
    }

    pub(super) fn rows(&mut self, out: &mut String, rows: Vec<Row>, s: &Selection) {
        let groups = groups(rows, s);
        match self.format {
            DataFormat::Csv { labels } => self.csv_rows(out, &groups, labels, false),
            DataFormat::Csv2 { labels } => self.csv_rows(out, &groups, labels, true),
            DataFormat::Generic { .. } => self.generic_rows(out, &groups),
            DataFormat::StructureSpecific { .. } | DataFormat::Ml3 => self.ss_rows(out, &groups),
            DataFormat::Json10 => self.json10_rows(out, &groups),
            DataFormat::Json2 => self.json_rows(out, &groups),
        }
    }
}
