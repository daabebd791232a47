//! How a data structure definition (and its dataflow) maps onto a dataset: its dimensions,
//! measures, frequency and time, and the version a data file names for it.

use super::structure::{self, DimensionKind, Structures};
use super::{fail, SdmxArgs, FREQ};
use crate::domain::dataset::{Code, Dimension, KNOWN_MEASURES, TOTAL};
use crate::domain::Dataset;
use crate::import::ImportError;

/// How the DSD's components map onto the dataset.
pub(super) struct Plan {
    pub(super) dataset: Dataset,
    /// The DSD ids of the ledger's dimensions, in key order.
    pub(super) key: Vec<String>,
    pub(super) freq: Option<String>,
    pub(super) measure: Option<String>,
    pub(super) time: String,
    /// The definition was already in the ledger.
    pub(super) existing: bool,
    /// Where the DSD is: the structure file and `line N: DataStructure ID`.
    pub(super) defined_at: (String, String),
}

impl Plan {
    pub(super) fn all(&self) -> Vec<String> {
        let mut v: Vec<String> = self.freq.iter().cloned().collect();
        v.extend(self.key.iter().cloned());
        v.extend(self.measure.iter().cloned());
        v.push(self.time.clone());
        v
    }
}

/// Whether the version a data file names for its structure (`named`) is the version the
/// structure message defines: the same numbers, part by part (SDMX 2.1 `VersionType`: `1.03`
/// is `1.3`). On import only, `1.0` is also `1.0.0`: tradeledger wrote `1.0` for its
/// artefacts before it wrote `1.0.0`, so its older exports import with its newer structures.
pub(super) fn same_version(named: &str, defined: &str) -> bool {
    let parts = |v: &str| -> Option<Vec<u64>> { v.trim().split('.').map(|p| p.parse::<u64>().ok()).collect() };
    let legacy = |v: &[u64]| if v == [1, 0] { vec![1, 0, 0] } else { v.to_vec() };
    match (parts(named), parts(defined)) {
        (Some(n), Some(d)) => legacy(&n) == legacy(&d),
        _ => named == defined,
    }
}

/// Maps a DSD (and its dataflow) onto a dataset.
pub(super) fn plan(
    s: &Structures,
    dsd: &structure::Dsd,
    flow: Option<&structure::Dataflow>,
    args: &SdmxArgs,
    existing: &dyn Fn(&str) -> Option<Dataset>,
) -> Result<Plan, ImportError> {
    let file = s.file.as_str();
    let defined_at = (file.to_owned(), format!("line {}: DataStructure {}", dsd.line, dsd.id));
    let id = args
        .dataset
        .clone()
        .unwrap_or_else(|| flow.map_or(dsd.id.clone(), |f| f.id.clone()));
    let mut freq = None;
    let mut measure = None;
    let mut time = None;
    let mut key = Vec::new();
    let mut dimensions = Vec::new();
    let mut measures = Vec::new();
    for d in &dsd.dimensions {
        let at = || format!("line {}: Dimension {}", d.line, d.id);
        let concept = d.concept.as_ref().and_then(|c| s.concept(c));
        if d.kind == DimensionKind::Time {
            time = Some(d.id.clone());
            continue;
        }
        let is_freq = d.id == FREQ || concept.is_some_and(|c| c.id == FREQ);
        if is_freq && freq.is_none() {
            freq = Some(d.id.clone());
            continue;
        }
        let list_ref = d.codelist.as_ref().or(concept.and_then(|c| c.codelist.as_ref()));
        let Some(list_ref) = list_ref else {
            return Err(fail(
                file,
                at(),
                "no code list (neither the dimension nor its concept names one): a ledger dimension is a code list"
                    .into(),
            ));
        };
        let Some(list) = s.codelist(list_ref) else {
            return Err(fail(
                file,
                at(),
                format!(
                    "its code list {}:{} is not in the structure message",
                    list_ref.agency.as_deref().unwrap_or("*"),
                    list_ref.id
                ),
            ));
        };
        if list.external {
            return Err(fail(
                file,
                format!("line {}: Codelist {}", list.line, list.id),
                "only referenced (isExternalReference): give a structure message that holds its codes".into(),
            ));
        }
        let is_measure = (d.kind == DimensionKind::Measure || d.id == "MEASURE")
            && measure.is_none()
            && !list.codes.is_empty()
            && list.codes.iter().all(|c| KNOWN_MEASURES.contains(&c.id.as_str()));
        if is_measure {
            measure = Some(d.id.clone());
            measures = list.codes.iter().map(|c| c.id.clone()).collect();
            continue;
        }
        let mut codes: Vec<Code> = list
            .codes
            .iter()
            .map(|c| Code {
                code: c.id.clone(),
                label: c.names.best().unwrap_or(&c.id).to_owned(),
                parent: c.parent.clone(),
            })
            .collect();
        if !codes.iter().any(|c| c.code == TOTAL) {
            codes.insert(
                0,
                Code {
                    code: TOTAL.into(),
                    label: "Total".into(),
                    parent: None,
                },
            );
        }
        for c in codes.iter_mut().filter(|c| c.code != TOTAL && c.parent.is_none()) {
            c.parent = Some(TOTAL.into());
        }
        key.push(d.id.clone());
        dimensions.push(Dimension {
            id: d.id.clone(),
            label: concept.and_then(|c| c.names.best()).unwrap_or(&d.id).to_owned(),
            codes,
        });
    }
    let Some(time) = time else {
        return Err(fail(
            file,
            format!("line {}: DataStructure {}", dsd.line, dsd.id),
            "no TimeDimension: the ledger's figures are per period".into(),
        ));
    };
    if measures.is_empty() {
        measures.push("BAL".into());
    }
    if let Some(def) = existing(&id) {
        let ids: Vec<&str> = def.dimensions.iter().map(|d| d.id.as_str()).collect();
        if ids != key.iter().map(String::as_str).collect::<Vec<_>>() {
            return Err(fail(
                file,
                format!("line {}: DataStructure {}", dsd.line, dsd.id),
                format!(
                    "the ledger's dataset {id} has the dimensions {}, this structure {}",
                    ids.join(", "),
                    key.join(", ")
                ),
            ));
        }
        return Ok(Plan {
            dataset: def,
            key,
            freq,
            measure,
            time,
            existing: true,
            defined_at,
        });
    }
    let names = flow
        .map(|f| &f.names)
        .filter(|n| n.best().is_some())
        .unwrap_or(&dsd.names);
    let dataset = Dataset {
        id: id.clone(),
        name: names.best().unwrap_or(&id).to_owned(),
        publisher: args
            .publisher
            .clone()
            .unwrap_or_else(|| flow.map_or(dsd.agency.clone(), |f| f.agency.clone())),
        unit: String::new(),
        unit_multiplier: 0,
        dimensions,
        measures,
        description: None,
        frequency: None,
    };
    Ok(Plan {
        dataset,
        key,
        freq,
        measure,
        time,
        existing: false,
        defined_at,
    })
}
