//! Schema queries: the XML schema of a DSD's structure-specific data for one
//! `dimensionAtObservation`, against which StructureSpecificData answers validate.
//!
//! The schema imports the standard's structure-specific and common schemas by their file
//! names (`SDMXDataStructureSpecific.xsd`, `SDMXCommon.xsd`), to be resolved beside a copy of
//! the SDMX-ML 2.1 schemas.

use std::fmt::Write;

use super::dsd::{Flow, FREQ_CODES, OBS_ATTRIBUTES, OBS_STATUS_CODES, SERIES_ATTRIBUTES};
use super::error::SdmxError;
use super::query::{shorten, ObsDimension};
use super::xml::{escape, COMMON3_NS, COMMON_NS, SS3_NS, SS_NS};
use crate::domain::dataset::KNOWN_MEASURES;
use crate::projection::{DatasetView, Projection};

/// The dataset a schema query names in `context`, as `agency`'s flow; no results when there
/// is no such dataset or another agency maintains it.
pub fn find_flow<'p>(
    projection: &'p Projection,
    context: &str,
    agency: &str,
    id: &str,
) -> Result<(&'p DatasetView, Flow<'p>), SdmxError> {
    let view = projection
        .dataset(id)
        .ok_or_else(|| SdmxError::no_results(format!("no {context} `{}`", shorten(id))))?;
    let flow = Flow::new(&view.def);
    if agency != flow.agency {
        return Err(SdmxError::no_results(format!(
            "no {context} {}:{}",
            shorten(agency),
            shorten(id)
        )));
    }
    Ok((view, flow))
}

/// The SDMX-ML version of structure-specific data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MlVersion {
    V21,
    /// SDMX-ML 3.0: no time-series variants; data sets are derived from `dsd:DataSetType`
    /// and name their dataflow.
    V30,
}

/// The namespace of a DSD's structure-specific data with `dimension` at the observation level.
pub fn namespace(flow: &Flow, dimension: &str, version: MlVersion) -> String {
    match version {
        MlVersion::V21 => format!(
            "urn:sdmx:org.sdmx.infomodel.datastructure.DataStructure={}:{}({}):ObsLevelDim:{dimension}",
            flow.agency,
            flow.id(),
            super::dsd::VERSION
        ),
        MlVersion::V30 => format!("{}:ObsLevelDim:{dimension}", flow.dataflow_urn()),
    }
}

/// The schema of `flow`'s structure-specific data with `at` at the observation level.
pub fn schema(flow: &Flow, at: &ObsDimension, version: MlVersion) -> String {
    let (ss_ns, common_ns) = match version {
        MlVersion::V21 => (SS_NS, COMMON_NS),
        MlVersion::V30 => (SS3_NS, COMMON3_NS),
    };
    let dims = flow.key_dimensions();
    let at_id = match at {
        ObsDimension::Time => super::dsd::TIME_PERIOD.to_owned(),
        ObsDimension::All => "AllDimensions".to_owned(),
        ObsDimension::Dimension(d) => dims[*d].to_owned(),
    };
    let ns = namespace(flow, &at_id, version);
    let mut out = String::new();
    let _ = write!(
        out,
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<xs:schema xmlns:xs=\"http://www.w3.org/2001/XMLSchema\" xmlns=\"{ns}\" \
         xmlns:dsd=\"{ss_ns}\" xmlns:common=\"{common_ns}\" targetNamespace=\"{ns}\" elementFormDefault=\"qualified\" attributeFormDefault=\"unqualified\">\n\
         <xs:import namespace=\"{ss_ns}\" schemaLocation=\"SDMXDataStructureSpecific.xsd\"/>\n\
         <xs:import namespace=\"{common_ns}\" schemaLocation=\"SDMXCommon.xsd\"/>\n",
        ns = escape(&ns)
    );
    // One enumerated type per code list.
    let codes = |out: &mut String, name: &str, codes: &mut dyn Iterator<Item = String>| {
        let _ = write!(
            out,
            "<xs:simpleType name=\"{}\"><xs:restriction base=\"xs:string\">",
            escape(name)
        );
        for c in codes {
            let _ = write!(out, "<xs:enumeration value=\"{}\"/>", escape(&c));
        }
        out.push_str("</xs:restriction></xs:simpleType>\n");
    };
    codes(&mut out, "CL_FREQ", &mut FREQ_CODES.iter().map(|c| c.0.to_owned()));
    for d in &flow.def.dimensions {
        codes(
            &mut out,
            &flow.codelist_id(&d.id),
            &mut d.codes.iter().map(|c| c.code.clone()),
        );
    }
    codes(
        &mut out,
        "CL_MEASURE",
        &mut KNOWN_MEASURES.iter().map(|m| m.to_string()),
    );
    codes(
        &mut out,
        "CL_OBS_STATUS",
        &mut OBS_STATUS_CODES.iter().map(|c| c.0.to_owned()),
    );

    let dim_type = |i: usize| -> String {
        match i {
            0 => "CL_FREQ".to_owned(),
            i if i == dims.len() - 1 => "CL_MEASURE".to_owned(),
            i => flow.codelist_id(dims[i]),
        }
    };
    let attr = |out: &mut String, name: &str, ty: &str, required: bool| {
        let _ = write!(
            out,
            "<xs:attribute name=\"{}\" type=\"{}\" use=\"{}\"/>",
            escape(name),
            escape(ty),
            if required { "required" } else { "optional" }
        );
    };
    let series_attrs = |out: &mut String| {
        attr(out, SERIES_ATTRIBUTES[0].0, "xs:string", false);
        attr(out, SERIES_ATTRIBUTES[1].0, "xs:integer", false);
    };
    let obs_attrs = |out: &mut String| {
        for (id, _) in OBS_ATTRIBUTES {
            let ty = match id {
                "OBS_STATUS" => "CL_OBS_STATUS",
                "PUBLISHED_AT" => "xs:dateTime",
                _ => "xs:string",
            };
            attr(out, id, ty, false);
        }
    };
    let prohibited = "<xs:attribute name=\"REPORTING_YEAR_START_DAY\" type=\"xs:gMonthDay\" use=\"prohibited\"/>";
    let (ds_base, series_base, obs_base) = match at {
        ObsDimension::Time if version == MlVersion::V21 => (
            "dsd:TimeSeriesDataSetType",
            "dsd:TimeSeriesType",
            "dsd:TimeSeriesObsType",
        ),
        _ => ("dsd:DataSetType", "dsd:SeriesType", "dsd:ObsType"),
    };
    let child = if matches!(at, ObsDimension::All) {
        "Obs"
    } else {
        "Series"
    };
    let child_type = if matches!(at, ObsDimension::All) {
        "ObsType"
    } else {
        "SeriesType"
    };
    // In SDMX-ML 3.0 the base's choice repeats.
    let repeat = if version == MlVersion::V30 {
        " maxOccurs=\"unbounded\""
    } else {
        ""
    };
    let _ = writeln!(
        out,
        "<xs:complexType name=\"DataSetType\"><xs:complexContent><xs:restriction base=\"{ds_base}\"><xs:sequence>\
         <xs:element ref=\"common:Annotations\" minOccurs=\"0\"/>\
         <xs:element name=\"DataProvider\" type=\"common:DataProviderReferenceType\" form=\"unqualified\" minOccurs=\"0\"/>\
         <xs:choice minOccurs=\"0\"{repeat}><xs:element name=\"{child}\" type=\"{child_type}\" form=\"unqualified\" maxOccurs=\"unbounded\"/></xs:choice>\
         </xs:sequence>{prohibited}</xs:restriction></xs:complexContent></xs:complexType>"
    );
    if !matches!(at, ObsDimension::All) {
        let _ = write!(
            out,
            "<xs:complexType name=\"SeriesType\"><xs:complexContent><xs:restriction base=\"{series_base}\"><xs:sequence>\
             <xs:element ref=\"common:Annotations\" minOccurs=\"0\"/>\
             <xs:element name=\"Obs\" type=\"ObsType\" form=\"unqualified\" minOccurs=\"0\" maxOccurs=\"unbounded\"/></xs:sequence>"
        );
        for (i, d) in dims.iter().enumerate() {
            if !matches!(at, ObsDimension::Dimension(x) if *x == i) {
                attr(&mut out, d, &dim_type(i), true);
            }
        }
        match at {
            ObsDimension::Time => series_attrs(&mut out),
            _ => attr(&mut out, "TIME_PERIOD", "common:ObservationalTimePeriodType", true),
        }
        let _ = writeln!(
            out,
            "{prohibited}</xs:restriction></xs:complexContent></xs:complexType>"
        );
    }
    let _ = write!(
        out,
        "<xs:complexType name=\"ObsType\"><xs:complexContent><xs:restriction base=\"{obs_base}\"><xs:sequence>\
         <xs:element ref=\"common:Annotations\" minOccurs=\"0\"/></xs:sequence>"
    );
    match at {
        ObsDimension::Time => attr(&mut out, "TIME_PERIOD", "common:ObservationalTimePeriodType", true),
        ObsDimension::All => {
            for (i, d) in dims.iter().enumerate() {
                attr(&mut out, d, &dim_type(i), true);
            }
            attr(&mut out, "TIME_PERIOD", "common:ObservationalTimePeriodType", true);
        }
        ObsDimension::Dimension(x) => {
            attr(&mut out, dims[*x], &dim_type(*x), true);
            out.push_str(
                "<xs:attribute name=\"TIME_PERIOD\" type=\"common:ObservationalTimePeriodType\" use=\"prohibited\"/>",
            );
        }
    }
    attr(&mut out, "OBS_VALUE", "xs:decimal", false);
    if !matches!(at, ObsDimension::Time) {
        series_attrs(&mut out);
    }
    obs_attrs(&mut out);
    let _ = writeln!(
        out,
        "<xs:attribute name=\"type\" type=\"common:IDType\" use=\"prohibited\"/>{prohibited}</xs:restriction></xs:complexContent></xs:complexType>\n</xs:schema>"
    );
    out
}
