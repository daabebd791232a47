//! Structure queries (`dataflow`, `datastructure`, `codelist`, `conceptscheme`) and their
//! answers: the query parsed (`query`), the artefacts that answer it (`artefact`), and the
//! SDMX-ML 2.1 message (`ml21`); SDMX-ML 3.0, SDMX-JSON 2.0 and 1.0 (`formats`).

mod artefact;
mod formats;
mod ml21;
mod query;

pub use query::{id_list, Detail, References, Resource, StructureQuery, Versions, NOT_IMPLEMENTED};

use crate::sdmx::dsd::Flow;
use crate::sdmx::error::SdmxError;

/// The formats of structure messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StructureFormat {
    /// SDMX-ML 2.1 Structure (SDMX-REST 1.5).
    Ml21,
    /// SDMX-JSON 1.0 structure message (SDMX-REST 1.5).
    Json10,
    /// SDMX-ML 3.0 Structure (SDMX-REST 2.2).
    Ml30,
    /// SDMX-JSON 2.0 structure message (SDMX-REST 2.2).
    Json20,
}

impl StructureFormat {
    pub fn media_type(self) -> &'static str {
        match self {
            StructureFormat::Ml21 => "application/vnd.sdmx.structure+xml; version=2.1",
            StructureFormat::Json10 => "application/vnd.sdmx.structure+json; version=1.0.0",
            StructureFormat::Ml30 => "application/vnd.sdmx.structure+xml; version=3.0.0",
            StructureFormat::Json20 => "application/vnd.sdmx.structure+json; version=2.0.0",
        }
    }
}

/// Answers a structure query over `flows` in `format`; 404 when nothing matches.
pub fn answer(
    query: &StructureQuery,
    flows: &[Flow],
    prepared: chrono::DateTime<chrono::Utc>,
    format: StructureFormat,
) -> Result<String, SdmxError> {
    let all = artefact::select(query, flows)?;
    Ok(match format {
        StructureFormat::Ml21 => ml21::write_ml21(query, flows, prepared, &all),
        StructureFormat::Ml30 => formats::ml30(query, flows, prepared, &all),
        StructureFormat::Json20 => formats::json20(query, flows, prepared, &all),
        StructureFormat::Json10 => formats::json10(query, flows, prepared, &all),
    })
}
