//! A dataset's definition seen as SDMX artefacts: the dataflow, its data structure
//! definition (DSD), the code lists and the concept scheme.
//!
//! - Dimensions, in this order: `FREQ` (code list `CL_FREQ`: `A`, `S`, `Q`, `M`), one per
//!   dimension of the dataset with its code list (codes, labels and parents), `MEASURE` (the
//!   dataset's measures: `BAL`, `CRE`, `DEB`), and the time dimension `TIME_PERIOD`. A series
//!   key is therefore `S.IPR._T._T.BAL`: the ledger's key between the frequency and the
//!   measure.
//! - The primary measure `OBS_VALUE`.
//! - Attributes: `UNIT` and `UNIT_MULT` per series (the dataset's unit and power of ten);
//!   per observation `OBS_STATUS` (from the status of the release that set the value:
//!   PRELIMINARY is `P`, provisional; REVISED and FINAL are `A`, normal), and the vintage:
//!   `RELEASE_ID`, `RELEASE_STATUS` (PRELIMINARY, REVISED or FINAL) and `PUBLISHED_AT`.
//! - The maintainer is the agency that publishes the dataset; its id is the publisher's
//!   name when that is an SDMX id, else its initials (`Bank of Korea` is `BOK`).
//! - Every artefact has version `1.0.0`, a stable semantic version (SDMX 3.0) and an SDMX
//!   2.1 `VersionType`; amendments of a definition only add codes and change labels.
//!   Builds before wrote `1.0`; the importer takes that as `1.0.0`.

use crate::domain::dataset::is_valid_id;
use crate::domain::{Dataset, ReleaseStatus};

/// The version of every artefact.
pub const VERSION: &str = "1.0.0";
/// The frequency dimension, its code list and the measure dimension.
pub const FREQ: &str = "FREQ";
pub const MEASURE: &str = "MEASURE";
pub const TIME_PERIOD: &str = "TIME_PERIOD";
pub const OBS_VALUE: &str = "OBS_VALUE";

/// `CL_FREQ`: code and name.
pub const FREQ_CODES: [(&str, &str); 4] = [
    ("A", "Annual"),
    ("S", "Half-yearly, semester"),
    ("Q", "Quarterly"),
    ("M", "Monthly"),
];

/// `CL_OBS_STATUS`: the codes this service uses.
pub const OBS_STATUS_CODES: [(&str, &str); 2] = [("A", "Normal value"), ("P", "Provisional value")];

/// Names of the measures the ledger knows.
pub fn measure_name(id: &str) -> &'static str {
    match id {
        "BAL" => "Balance (credits minus debits)",
        "CRE" => "Credits (exports)",
        "DEB" => "Debits (imports)",
        _ => "Measure",
    }
}

/// `OBS_STATUS` of a value set by a release of `status`.
pub fn obs_status(status: ReleaseStatus) -> &'static str {
    match status {
        ReleaseStatus::Preliminary => "P",
        ReleaseStatus::Revised | ReleaseStatus::Final => "A",
    }
}

/// The series attributes (attached to every dimension but the time).
pub const SERIES_ATTRIBUTES: [(&str, &str); 2] = [("UNIT", "Unit of measure"), ("UNIT_MULT", "Unit multiplier")];
/// The observation attributes, in the order the formats list them.
pub const OBS_ATTRIBUTES: [(&str, &str); 4] = [
    ("OBS_STATUS", "Observation status"),
    ("RELEASE_ID", "Release that set the value"),
    (
        "RELEASE_STATUS",
        "Status of that release (PRELIMINARY, REVISED or FINAL)",
    ),
    ("PUBLISHED_AT", "Publication time of that release"),
];

/// The agency id of a publisher: its name if that is already an SDMX id (letters, digits,
/// `_`, starting with a letter), else the capitalised initials of its words.
pub fn agency_id(publisher: &str) -> String {
    let ncname = |s: &str| {
        s.len() <= 64
            && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
            && s.bytes().next().is_some_and(|b| b.is_ascii_alphabetic())
    };
    if ncname(publisher) {
        return publisher.to_owned();
    }
    let initials: String = publisher
        .split(|c: char| !c.is_ascii_alphanumeric())
        .filter_map(|w| w.chars().next())
        .map(|c| c.to_ascii_uppercase())
        .take(16)
        .collect();
    if ncname(&initials) {
        initials
    } else {
        format!("A{initials}")
            .chars()
            .filter(|c| c.is_ascii_alphanumeric())
            .collect()
    }
}

/// The SDMX view of one dataset.
#[derive(Debug, Clone)]
pub struct Flow<'a> {
    pub def: &'a Dataset,
    pub agency: String,
}

impl<'a> Flow<'a> {
    pub fn new(def: &'a Dataset) -> Self {
        Flow {
            agency: agency_id(&def.publisher),
            def,
        }
    }

    pub fn id(&self) -> &str {
        &self.def.id
    }

    /// The id of the code list of one of the dataset's dimensions. Code lists are named per
    /// dataset: two datasets of one agency may give one dimension id different codes.
    pub fn codelist_id(&self, dimension: &str) -> String {
        format!("CL_{}_{}", self.def.id, dimension)
    }

    pub fn concept_scheme_id(&self) -> String {
        format!("CS_{}", self.def.id)
    }

    /// Every dimension id of the DSD but the time, in key order.
    pub fn key_dimensions(&self) -> Vec<&str> {
        let mut out = vec![FREQ];
        out.extend(self.def.dimensions.iter().map(|d| d.id.as_str()));
        out.push(MEASURE);
        out
    }

    /// The dataflow's URN.
    pub fn dataflow_urn(&self) -> String {
        format!(
            "urn:sdmx:org.sdmx.infomodel.datastructure.Dataflow={}:{}({VERSION})",
            self.agency, self.def.id
        )
    }

    /// `AGENCY:ID(VERSION)`, the SDMX-CSV dataflow reference.
    pub fn csv_ref(&self) -> String {
        format!("{}:{}({VERSION})", self.agency, self.def.id)
    }

    /// Whether the dataset's ids can be used as SDMX ids (they are checked when defined; the
    /// dimension ids must not collide with the ones this view adds).
    pub fn is_representable(&self) -> bool {
        is_valid_id(&self.def.id)
            && self.def.dimensions.iter().all(|d| {
                ![FREQ, MEASURE, TIME_PERIOD, OBS_VALUE].contains(&d.id.as_str())
                    && !SERIES_ATTRIBUTES.iter().chain(&OBS_ATTRIBUTES).any(|(a, _)| *a == d.id)
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn agency_ids() {
        assert_eq!(agency_id("Bank of Korea"), "BOK");
        assert_eq!(agency_id("ECB"), "ECB");
        assert_eq!(agency_id("Statistics Korea (KOSTAT)"), "SKK");
        assert_eq!(agency_id("2 Agencies"), "A2A");
        assert_eq!(agency_id("!!"), "A");
    }
}
