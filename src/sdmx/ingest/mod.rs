//! `tradeledger import --format sdmx-ml|sdmx-csv --structure STRUCTURE.xml DATA…`: SDMX
//! files read into a dataset definition and releases, then recorded as release files are
//! (`import::load`: everything checked first, nothing recorded if anything is wrong).
//!
//! How a data structure definition (DSD) becomes a dataset is in `docs/sdmx.md` ("Importing
//! SDMX files"): the dataset is the dataflow (else the DSD); `FREQ` gives its frequency, a
//! measure dimension whose codes are `BAL`, `CRE`, `DEB` its measures, every other dimension
//! but the time a ledger dimension with its code list (a total `_T` added when missing);
//! `RELEASE_ID`, `RELEASE_STATUS`, `PUBLISHED_AT` (what `/sdmx/2.1/` writes) group the
//! observations into releases, else each file is one release described by its header and
//! the flags.
//!
//! - `mapping`: how the DSD maps onto the dataset; `collect`: the observations collected
//!   into releases.
//! - `structure`: the Structure message; `data`: SDMX-ML data; `csv`: SDMX-CSV;
//!   `xml`: the bounded pull reader both XML readers use.

mod collect;
mod csv;
mod data;
mod mapping;
mod structure;
mod xml;

use std::collections::{BTreeSet, HashMap};
use std::io::BufReader;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::domain::{Dataset, ReleaseStatus};
use crate::import::{Batch, ImportError};
use collect::Collect;
use structure::Ref;

/// Deepest nesting of elements in an SDMX-ML file (real messages nest about 10 deep).
pub const MAX_DEPTH: usize = 64;
/// Longest tag (with its attributes) or run of text in an SDMX-ML file, and longest row of
/// an SDMX-CSV file, in bytes: the release files' row limit.
pub const MAX_TOKEN_BYTES: usize = crate::import::MAX_CSV_ROW_BYTES;
/// Most codes, all code lists together, in one structure message.
pub const MAX_STRUCTURE_CODES: usize = 200_000;
/// Most observations read in one invocation, all files together (they are held until every
/// one is checked): the most one release may have, times ten.
pub const MAX_OBSERVATIONS: usize = 10 * crate::domain::release::MAX_OBSERVATIONS_PER_RELEASE;
/// The largest structure message read.
pub const MAX_STRUCTURE_BYTES: u64 = 256 << 20;

/// The id of the primary measure, and the attributes the import reads.
pub(crate) const OBS_VALUE_ID: &str = "OBS_VALUE";
pub(crate) const TIME_PERIOD: &str = "TIME_PERIOD";
const FREQ: &str = "FREQ";
const UNIT: [&str; 2] = ["UNIT", "UNIT_MEASURE"];
const UNIT_MULT: &str = "UNIT_MULT";
const OBS_STATUS: &str = "OBS_STATUS";
const RELEASE_ID: &str = "RELEASE_ID";
const RELEASE_STATUS: &str = "RELEASE_STATUS";
const PUBLISHED_AT: &str = "PUBLISHED_AT";
/// The SDMX formats `import --format` reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SdmxFormat {
    /// SDMX-ML 2.1 data: GenericData, StructureSpecificData and their time-series forms.
    Ml,
    /// SDMX-CSV 1.0 and 2.0.
    Csv,
}

/// `import --format`: the release file formats, and the SDMX ones.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ImportFormat {
    Json,
    Csv,
    /// SDMX-ML 2.1 data (with --structure).
    SdmxMl,
    /// SDMX-CSV 1.0 or 2.0 (with --structure).
    SdmxCsv,
}

impl ImportFormat {
    /// The release file format, if it is one.
    pub fn release(self) -> Option<crate::import::Format> {
        match self {
            ImportFormat::Json => Some(crate::import::Format::Json),
            ImportFormat::Csv => Some(crate::import::Format::Csv),
            _ => None,
        }
    }

    pub fn sdmx(self) -> Option<SdmxFormat> {
        match self {
            ImportFormat::SdmxMl => Some(SdmxFormat::Ml),
            ImportFormat::SdmxCsv => Some(SdmxFormat::Csv),
            _ => None,
        }
    }
}

/// Reads SDMX files ([`read`]) and records them in `ledger` as release files are recorded
/// ([`crate::import::load`]): every release is checked first, and nothing is recorded if
/// anything is wrong. On success, the report and the number of missing values left out.
pub async fn import(
    ledger: &crate::ledger::Ledger,
    files: &[PathBuf],
    format: SdmxFormat,
    args: &SdmxArgs,
    actor: &str,
) -> Result<(crate::import::LoadReport, usize), Vec<String>> {
    let Some(structure) = &args.structure else {
        return Err(vec!["--format sdmx-ml and sdmx-csv need --structure STRUCTURE.xml (an SDMX-ML 2.1 Structure message with the data structure definition)".into()]);
    };
    let existing = |id: &str| ledger.read().dataset(id).map(|v| (*v.def).clone());
    let read = read(structure, files, format, args, &existing).map_err(|e| vec![e.to_string()])?;
    let report = crate::import::load(ledger, read.batch, actor).await?;
    Ok((report, read.missing))
}

/// The flags of `import` for SDMX files: the structure, and release metadata that SDMX
/// files do not carry (or that the flags replace).
#[derive(Debug, Clone, Default, clap::Args)]
pub struct SdmxArgs {
    /// With --format sdmx-ml or sdmx-csv: the SDMX-ML 2.1 Structure message with the data
    /// structure definition, its code lists and concepts (and the dataflow, if any).
    #[arg(long, env = "TRADELEDGER_IMPORT_STRUCTURE", value_name = "FILE")]
    pub structure: Option<PathBuf>,
    /// SDMX: the release's id (default: RELEASE_ID attributes, else one derived from the
    /// contents, so that importing the same file again records nothing). One release only.
    #[arg(long, env = "TRADELEDGER_IMPORT_RELEASE_ID", value_name = "UUID")]
    pub release_id: Option<Uuid>,
    /// SDMX: the publication time (default: PUBLISHED_AT attributes, else the data set's
    /// validFromDate, else the message's Prepared time).
    #[arg(long, env = "TRADELEDGER_IMPORT_PUBLISHED_AT", value_name = "RFC3339")]
    pub published_at: Option<DateTime<Utc>>,
    /// SDMX: PRELIMINARY, REVISED or FINAL (default: RELEASE_STATUS attributes, else
    /// PRELIMINARY when every OBS_STATUS is P, else FINAL).
    #[arg(long, env = "TRADELEDGER_IMPORT_STATUS", value_name = "STATUS", value_parser = parse_status)]
    pub status: Option<ReleaseStatus>,
    /// SDMX: the release's title (default: the dataflow's name and the message id).
    #[arg(long, env = "TRADELEDGER_IMPORT_TITLE")]
    pub title: Option<String>,
    /// SDMX: the release's source (default: the message id, sender and prepared time).
    #[arg(long, env = "TRADELEDGER_IMPORT_SOURCE")]
    pub source: Option<String>,
    /// SDMX: the dataset id (default: the dataflow's, else the DSD's).
    #[arg(long, env = "TRADELEDGER_IMPORT_DATASET", value_name = "ID")]
    pub dataset: Option<String>,
    /// SDMX: the dataset's unit, when its series disagree (UNIT or UNIT_MEASURE) or say none.
    #[arg(long, env = "TRADELEDGER_IMPORT_UNIT")]
    pub unit: Option<String>,
    /// SDMX: the dataset's publisher (default: the dataflow's maintenance agency id).
    #[arg(long, env = "TRADELEDGER_IMPORT_PUBLISHER")]
    pub publisher: Option<String>,
}

fn parse_status(s: &str) -> Result<ReleaseStatus, String> {
    ReleaseStatus::parse(&s.to_ascii_uppercase()).ok_or_else(|| "use PRELIMINARY, REVISED or FINAL".into())
}

pub(crate) fn fail(file: &str, at: String, message: String) -> ImportError {
    ImportError {
        file: file.to_owned(),
        at,
        message,
    }
}

/// A data message's header.
#[derive(Debug, Clone, Default)]
pub struct Header {
    pub id: Option<String>,
    pub prepared: Option<String>,
    pub sender: Option<String>,
    pub structure: Option<Ref>,
    pub structure_line: usize,
    pub dimension_at_observation: Option<String>,
}

/// A data set's vintage attributes.
#[derive(Debug, Clone, Default)]
pub struct DataSetInfo {
    pub set_id: Option<String>,
    pub valid_from: Option<String>,
    pub line: usize,
}

/// What a data reader hands on, in file order.
pub enum Item<'a> {
    /// An SDMX-ML message's header, before its first observation.
    Header(&'a Header),
    /// The structure an SDMX-CSV file names (in its first row), and the line.
    Structure(&'a Ref, usize),
    Obs(RawObs),
}

/// One observation as read: every component value that applies to it, by id.
#[derive(Debug, Clone)]
pub struct RawObs {
    pub line: usize,
    pub values: Vec<(String, String)>,
    pub set: Option<DataSetInfo>,
}

impl RawObs {
    fn get(&self, id: &str) -> Option<&str> {
        self.values.iter().rev().find(|(k, _)| k == id).map(|(_, v)| v.as_str())
    }
}

/// What [`read`] gives: the batch to record, and what it left out.
#[derive(Debug)]
pub struct Read {
    pub batch: Batch,
    /// Observations without a value (SDMX's missing values), not recorded.
    pub missing: usize,
    /// The dataset's definition was already in the ledger.
    pub existing_dataset: bool,
}

/// Reads the structure and the data files into one batch (the dataset, unless `existing`
/// knows it, and the releases). Errors name the file and the line or element.
pub fn read(
    structure: &Path,
    files: &[PathBuf],
    format: SdmxFormat,
    args: &SdmxArgs,
    existing: &dyn Fn(&str) -> Option<Dataset>,
) -> Result<Read, ImportError> {
    let sname = structure.display().to_string();
    let len = std::fs::metadata(structure)
        .map_err(|e| fail(&sname, "file".into(), e.to_string()))?
        .len();
    if len > MAX_STRUCTURE_BYTES {
        return Err(fail(
            &sname,
            "file".into(),
            format!("{len} bytes is more than the {MAX_STRUCTURE_BYTES} accepted for a structure message"),
        ));
    }
    let structures = structure::read(&sname, open(structure)?)?;
    let mut c = Collect {
        args,
        plan: None,
        groups: Vec::new(),
        by_key: HashMap::new(),
        frequency: None,
        units: BTreeSet::new(),
        unit_at: None,
        multipliers: BTreeSet::new(),
        multiplier_at: None,
        observations: 0,
        first_file: String::new(),
        missing: 0,
    };
    for (n, path) in files.iter().enumerate() {
        let name = path.display().to_string();
        let input = open(path)?;
        match format {
            SdmxFormat::Ml => {
                let mut header = Header::default();
                data::read(&name, input, |item| match item {
                    Item::Header(h) => {
                        header = h.clone();
                        let Some(r) = &h.structure else {
                            return Err(fail(
                                &name,
                                format!("line {}: element Header", h.structure_line.max(1)),
                                "the header names no structure (message:Structure with a Ref)".into(),
                            ));
                        };
                        c.plan_for(&structures, r, &name, h.structure_line, existing)
                    }
                    Item::Structure(..) => Ok(()),
                    Item::Obs(o) => c.observation(&name, n, &header, o),
                })?;
            }
            SdmxFormat::Csv => {
                let header = Header::default();
                csv::read(&name, input, |item| match item {
                    Item::Structure(r, line) => c.plan_for(&structures, r, &name, line, existing),
                    Item::Header(_) => Ok(()),
                    Item::Obs(o) => c.observation(&name, n, &header, o),
                })?;
            }
        }
    }
    if c.plan.is_none() {
        let first = files.first().map(|f| f.display().to_string()).unwrap_or_default();
        return Err(fail(
            &first,
            "file".into(),
            "no observations and no structure named".into(),
        ));
    }
    c.first_file = files.first().map(|f| f.display().to_string()).unwrap_or_default();
    c.finish()
}

fn open(path: &Path) -> Result<BufReader<std::fs::File>, ImportError> {
    let name = path.display().to_string();
    if path.as_os_str() == crate::import::STDIN {
        return Err(fail(
            &name,
            "file".into(),
            "SDMX files are read from files, not standard input".into(),
        ));
    }
    std::fs::File::open(path)
        .map(|f| BufReader::with_capacity(64 * 1024, f))
        .map_err(|e| fail(&name, "file".into(), e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::mapping::same_version;
    use super::*;
    use crate::domain::Frequency;

    fn structure() -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data/sdmx-exr/ecb_exr_ng/ecb_exr_ng_full.xml")
    }

    fn sample() -> String {
        let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("tests/data/sdmx-exr/ecb_exr_ng/structured/ecb_exr_ng_ts.xml");
        std::fs::read_to_string(path).unwrap()
    }

    /// Reads `text` as one data file of `format` (the ECB structure), with `--unit`.
    fn read_text(format: SdmxFormat, text: &str, args: SdmxArgs) -> Result<Read, ImportError> {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("data");
        std::fs::write(&file, text).unwrap();
        let args = SdmxArgs {
            unit: Some("currency per euro".into()),
            ..args
        };
        read(&structure(), &[file], format, &args, &|_| None)
    }

    fn refused(format: SdmxFormat, text: &str) -> String {
        let e = read_text(format, text, SdmxArgs::default()).unwrap_err();
        assert!(
            e.to_string().len() < 1_000,
            "an error quotes briefly: {} bytes",
            e.to_string().len()
        );
        e.to_string()
    }

    #[test]
    fn the_sample_reads_into_one_release() {
        let r = read_text(SdmxFormat::Ml, &sample(), SdmxArgs::default()).unwrap();
        assert_eq!(r.batch.releases.len(), 1);
        assert_eq!(r.batch.releases[0].observations.len(), 12);
        assert_eq!(r.batch.datasets[0].frequency, Some(Frequency::Month));
        assert_eq!(r.batch.releases[0].status, ReleaseStatus::Final);
    }

    /// The version a data file names for its structure must be the structure file's (the
    /// ECB sample's DSD is `1.0`); `1.0` and `1.0.0` are one, tradeledger's older spelling.
    #[test]
    fn the_structure_version_named_must_be_the_one_defined() {
        let named = |v: &str| {
            sample().replacen(
                r#"id="ECB_EXR_NG" version="1.0""#,
                &format!(r#"id="ECB_EXR_NG" version="{v}""#),
                1,
            )
        };
        assert_ne!(named("9"), sample());
        for same in ["1.0", "1.0.0", "01.00"] {
            read_text(SdmxFormat::Ml, &named(same), SdmxArgs::default()).unwrap_or_else(|e| panic!("{same}: {e}"));
        }
        let e = refused(SdmxFormat::Ml, &named("2.0"));
        assert!(
            e.contains("line 10: structure ECB:ECB_EXR_NG: names version 2.0 of ECB_EXR_NG; the structure file"),
            "{e}"
        );
        assert!(e.ends_with("defines version 1.0"), "{e}");
        assert!(same_version("1.0.0", "1.0"));
        assert!(!same_version("1.0.1", "1.0"));
        assert!(!same_version("1", "1.0.0"));
    }

    /// Nesting past [`MAX_DEPTH`] is refused at the element that goes too deep.
    #[test]
    fn deep_nesting_is_refused() {
        let deep = format!("<GenericData>\n{}", "<a>".repeat(MAX_DEPTH + 5));
        let e = refused(SdmxFormat::Ml, &deep);
        assert!(
            e.contains("line 2: element a: elements nested deeper than the limit of 64"),
            "{e}"
        );
        // At the limit, it is the file's end that is wrong.
        let at_limit = format!("<GenericData>{}", "<a>".repeat(MAX_DEPTH - 1));
        assert!(refused(SdmxFormat::Ml, &at_limit).contains("ends inside element a"));
    }

    /// A tag, a text or a CSV row longer than [`MAX_TOKEN_BYTES`] is refused naming its line,
    /// without being held whole.
    #[test]
    fn long_tokens_are_refused() {
        let long = "x".repeat(MAX_TOKEN_BYTES + 10);
        let tag = format!("<GenericData>\n<Header a=\"{long}\"/></GenericData>");
        let e = refused(SdmxFormat::Ml, &tag);
        assert!(e.contains("longer than the limit of 1048576 bytes"), "{e}");
        let text = format!("<GenericData>\n<Header><ID>{long}</ID></Header></GenericData>");
        assert!(refused(SdmxFormat::Ml, &text).contains("longer than the limit"));
        let row = format!("DATAFLOW,FREQ\nECB:ECB_EXR_NG(1.0),{long}\n");
        let e = refused(SdmxFormat::Csv, &row);
        assert!(e.contains("longer than the limit of 1048576 bytes"), "{e}");
        // Just under the limit is a value like any other: here an unknown frequency, quoted
        // briefly.
        let code = "D".repeat(MAX_TOKEN_BYTES / 2);
        let e = refused(
            SdmxFormat::Ml,
            &sample().replacen("FREQ=\"M\"", &format!("FREQ=\"{code}\""), 1),
        );
        assert!(e.contains(&format!("… ({} bytes)", code.len())), "{e}");
    }

    /// A release whose observations are provisional and normal at once needs `--status`.
    #[test]
    fn mixed_observation_statuses_need_a_status() {
        let mixed = sample().replacen("OBS_STATUS=\"A\"", "OBS_STATUS=\"P\"", 1);
        let e = refused(SdmxFormat::Ml, &mixed);
        assert!(e.contains("OBS_STATUS P (provisional) at line 16"), "{e}");
        let r = read_text(
            SdmxFormat::Ml,
            &mixed,
            SdmxArgs {
                status: Some(ReleaseStatus::Revised),
                ..SdmxArgs::default()
            },
        )
        .unwrap();
        assert_eq!(r.batch.releases[0].status, ReleaseStatus::Revised);
        let all = sample().replace("OBS_STATUS=\"A\"", "OBS_STATUS=\"P\"");
        let r = read_text(SdmxFormat::Ml, &all, SdmxArgs::default()).unwrap();
        assert_eq!(r.batch.releases[0].status, ReleaseStatus::Preliminary);
    }

    /// Missing values are left out and counted; a deletion and two multipliers are refused.
    #[test]
    fn missing_values_deletions_and_multipliers() {
        let r = read_text(
            SdmxFormat::Ml,
            &sample().replacen("OBS_VALUE=\"1.3413\"", "OBS_VALUE=\"NaN\"", 1),
            SdmxArgs::default(),
        )
        .unwrap();
        assert_eq!((r.missing, r.batch.releases[0].observations.len()), (1, 11));
        let e = refused(
            SdmxFormat::Ml,
            &sample().replacen("data:dataScope", "data:action=\"Delete\" data:dataScope", 1),
        );
        assert!(e.contains("the ledger never deletes a figure"), "{e}");
        let e = refused(
            SdmxFormat::Ml,
            &sample().replacen("UNIT_MULT=\"0\"", "UNIT_MULT=\"3\"", 1),
        );
        assert!(e.contains("UNIT_MULT `0` differs from `3`"), "{e}");
    }

    /// A structure message defines at most [`MAX_STRUCTURE_CODES`] codes.
    #[test]
    fn structure_codes_are_bounded() {
        let codes: String = (0..=MAX_STRUCTURE_CODES)
            .map(|i| format!("<Code id=\"C{i}\"/>\n"))
            .collect();
        let text = format!(
            "<Structure><Structures><Codelists><Codelist id=\"CL\" agencyID=\"A\">\n{codes}</Codelist></Codelists></Structures></Structure>"
        );
        let e = structure::read("s.xml", text.as_bytes()).unwrap_err().to_string();
        assert!(
            e.contains(&format!(
                "line {}: element Code: more than the 200000 codes",
                MAX_STRUCTURE_CODES + 2
            )),
            "{e}"
        );
    }
}
