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
//! - `structure`: the Structure message; `data`: SDMX-ML data; `csv`: SDMX-CSV;
//!   `xml`: the bounded pull reader both XML readers use.

mod csv;
mod data;
mod structure;
mod xml;

use std::collections::{BTreeSet, HashMap};
use std::io::BufReader;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::domain::dataset::{Code, Dimension, KNOWN_MEASURES, TOTAL};
use crate::domain::text::{quote_at_most, QUOTE};
use crate::domain::{Dataset, Frequency, ObservationDraft, ReleaseDraft, ReleaseStatus};
use crate::import::{Batch, ImportError, Origin, Place};
use structure::{DimensionKind, Ref, Structures};

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

/// How the DSD's components map onto the dataset.
struct Plan {
    dataset: Dataset,
    /// The DSD ids of the ledger's dimensions, in key order.
    key: Vec<String>,
    freq: Option<String>,
    measure: Option<String>,
    time: String,
    /// The definition was already in the ledger.
    existing: bool,
    /// Where the DSD is: the structure file and `line N: DataStructure ID`.
    defined_at: (String, String),
}

/// The observations of one release, being collected.
#[derive(Default)]
struct Group {
    file: String,
    release_id: Option<String>,
    set_id: Option<String>,
    status: Option<(String, usize)>,
    provisional: Option<usize>,
    normal: Option<usize>,
    published: Option<(String, usize)>,
    valid_from: Option<String>,
    header: Header,
    observations: Vec<ObservationText>,
    lines: Vec<usize>,
}

/// An observation as the file gives it: its text is what a derived release id covers (so
/// that the id stays the one earlier imports gave the same file); parsed into a draft once
/// the release is complete.
struct ObservationText {
    key: String,
    period: String,
    measure: Option<String>,
    value: String,
}

impl ObservationText {
    fn into_draft(self) -> ObservationDraft {
        ObservationDraft {
            key: self.key,
            period: self.period.into(),
            measure: self.measure,
            value: self.value.into(),
        }
    }
}

struct Collect<'a> {
    args: &'a SdmxArgs,
    plan: Option<Plan>,
    groups: Vec<Group>,
    by_key: HashMap<String, usize>,
    frequency: Option<(Frequency, String, usize)>,
    units: BTreeSet<String>,
    unit_at: Option<(String, usize)>,
    multipliers: BTreeSet<String>,
    multiplier_at: Option<(String, usize)>,
    observations: usize,
    /// The first data file, which errors about the whole import name.
    first_file: String,
    /// Observations without a value (`NaN` or none: SDMX's missing values), left out.
    pub missing: usize,
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

impl Collect<'_> {
    /// The plan for the structure a data file names; every file must name the same one.
    fn plan_for(
        &mut self,
        s: &Structures,
        r: &Ref,
        file: &str,
        line: usize,
        existing: &dyn Fn(&str) -> Option<Dataset>,
    ) -> Result<(), ImportError> {
        let at = format!("line {line}: structure {}:{}", r.agency.as_deref().unwrap_or("*"), r.id);
        let Some((dsd, flow)) = s.find(r) else {
            return Err(fail(
                file,
                at,
                format!(
                    "the structure file {} defines no data structure or dataflow {} (it has {})",
                    s.file,
                    quote_at_most(&r.id, QUOTE),
                    if s.dsds.is_empty() {
                        "none".to_owned()
                    } else {
                        s.dsds
                            .iter()
                            .map(|d| format!("{}:{}", d.agency, d.id))
                            .collect::<Vec<_>>()
                            .join(", ")
                    }
                ),
            ));
        };
        if let (Some(named), Some(defined)) = (r.version.as_deref(), s.version_named(r)) {
            if !same_version(named, defined) {
                return Err(fail(
                    file,
                    at,
                    format!(
                        "names version {} of {}; the structure file {} defines version {}",
                        quote_at_most(named, QUOTE),
                        r.id,
                        s.file,
                        quote_at_most(defined, QUOTE)
                    ),
                ));
            }
        }
        let plan = plan(s, dsd, flow, self.args, existing)?;
        match &self.plan {
            Some(p) if p.dataset.id != plan.dataset.id => Err(fail(
                file,
                at,
                format!(
                    "names dataset {}, another file named {}: one import, one dataset",
                    plan.dataset.id, p.dataset.id
                ),
            )),
            Some(_) => Ok(()),
            None => {
                self.plan = Some(plan);
                Ok(())
            }
        }
    }

    fn observation(&mut self, file: &str, n: usize, header: &Header, o: RawObs) -> Result<(), ImportError> {
        let at = || format!("line {}: element Obs", o.line);
        let plan = self
            .plan
            .as_ref()
            .ok_or_else(|| fail(file, at(), "an observation before the structure is known".into()))?;
        let need = |id: &str| {
            o.get(id).filter(|v| !v.is_empty()).ok_or_else(|| {
                fail(
                    file,
                    at(),
                    format!(
                        "no value for {id} (the dimensions of {} are {})",
                        plan.dataset.id,
                        plan.all().join(", ")
                    ),
                )
            })
        };
        let mut key = String::new();
        for (i, d) in plan.key.iter().enumerate() {
            if i > 0 {
                key.push('.');
            }
            key.push_str(need(d)?);
        }
        let period = need(&plan.time)?.to_owned();
        let measure = match &plan.measure {
            Some(m) => Some(need(m)?.to_owned()),
            None => None,
        };
        if let Some(f) = &plan.freq {
            let code = need(f)?;
            let Some(freq) = Frequency::from_code(code) else {
                return Err(fail(
                    file,
                    at(),
                    format!(
                        "{f} `{}` cannot be represented: the ledger holds annual (A), half-yearly (S), quarterly (Q) and monthly (M) figures",
                        quote_at_most(code, QUOTE)
                    ),
                ));
            };
            match &self.frequency {
                None => self.frequency = Some((freq, file.to_owned(), o.line)),
                Some((f0, file0, line0)) if *f0 != freq => {
                    return Err(fail(
                        file,
                        at(),
                        format!(
                            "{f} `{}`, but {file0} line {line0} is {}: a dataset has one frequency",
                            freq.code(),
                            f0.code()
                        ),
                    ))
                }
                Some(_) => {}
            }
        }
        if !plan.existing {
            if let Some(u) = UNIT.iter().find_map(|u| o.get(u)) {
                if self.units.insert(u.to_owned()) && self.unit_at.is_none() {
                    self.unit_at = Some((file.to_owned(), o.line));
                }
            }
            if let Some(m) = o.get(UNIT_MULT) {
                if self.multipliers.insert(m.to_owned()) && self.multipliers.len() > 1 {
                    return Err(fail(
                        file,
                        at(),
                        format!(
                            "UNIT_MULT `{}` differs from `{}` before: a dataset has one unit multiplier",
                            quote_at_most(m, QUOTE),
                            self.multipliers
                                .iter()
                                .find(|x| *x != m)
                                .map(String::as_str)
                                .unwrap_or("")
                        ),
                    ));
                }
                self.multiplier_at.get_or_insert((file.to_owned(), o.line));
            }
        }
        let value = match o.get(OBS_VALUE_ID) {
            None => {
                self.missing += 1;
                return Ok(());
            }
            Some(v) if v.trim().is_empty() || v.trim() == "NaN" => {
                self.missing += 1;
                return Ok(());
            }
            Some(v) => v.trim().to_owned(),
        };
        self.observations += 1;
        if self.observations > MAX_OBSERVATIONS {
            return Err(fail(
                file,
                at(),
                format!("more than the {MAX_OBSERVATIONS} observations one import reads: split the files"),
            ));
        }
        // The release: RELEASE_ID, else the data set's setID, else the file.
        let release_id = o.get(RELEASE_ID).map(str::to_owned);
        let set_id = o.set.as_ref().and_then(|s| s.set_id.clone());
        let group_key = match (&release_id, &set_id) {
            (Some(r), _) => format!("r:{r}"),
            (None, Some(s)) => format!("s:{n}:{s}"),
            (None, None) => format!("f:{n}"),
        };
        let g = match self.by_key.get(&group_key) {
            Some(&i) => i,
            None => {
                self.groups.push(Group {
                    file: file.to_owned(),
                    release_id: release_id.clone(),
                    set_id,
                    valid_from: o.set.as_ref().and_then(|s| s.valid_from.clone()),
                    header: header.clone(),
                    ..Group::default()
                });
                self.by_key.insert(group_key, self.groups.len() - 1);
                self.groups.len() - 1
            }
        };
        let g = &mut self.groups[g];
        for (id, slot) in [(RELEASE_STATUS, &mut g.status), (PUBLISHED_AT, &mut g.published)] {
            if let Some(v) = o.get(id) {
                match slot {
                    None => *slot = Some((v.to_owned(), o.line)),
                    Some((v0, line0)) if v0 != v => {
                        return Err(fail(
                            file,
                            at(),
                            format!(
                                "{id} `{}`, but line {line0} of the same release says `{}`",
                                quote_at_most(v, QUOTE),
                                quote_at_most(v0, QUOTE)
                            ),
                        ))
                    }
                    Some(_) => {}
                }
            }
        }
        match o.get(OBS_STATUS) {
            Some("P") => g.provisional = g.provisional.or(Some(o.line)),
            Some(_) => g.normal = g.normal.or(Some(o.line)),
            None => {}
        }
        if g.observations.len() >= crate::domain::release::MAX_OBSERVATIONS_PER_RELEASE {
            return Err(fail(
                file,
                at(),
                format!(
                    "more than the {} observations a release may have",
                    crate::domain::release::MAX_OBSERVATIONS_PER_RELEASE
                ),
            ));
        }
        g.observations.push(ObservationText {
            key,
            period,
            measure,
            value,
        });
        g.lines.push(o.line);
        Ok(())
    }

    fn finish(self) -> Result<Read, ImportError> {
        let args = self.args;
        let Some(plan) = self.plan else {
            return Err(fail(
                &self.first_file,
                "file".into(),
                "no data file named a structure".into(),
            ));
        };
        let mut dataset = plan.dataset;
        if !plan.existing {
            dataset.frequency = self.frequency.as_ref().map(|f| f.0);
            dataset.unit = match (&args.unit, self.units.len()) {
                (Some(u), _) => u.clone(),
                (None, 1) => self.units.iter().next().cloned().unwrap_or_default(),
                (None, 0) => {
                    return Err(fail(
                        &self.first_file,
                        format!("dataset {}", dataset.id),
                        "no UNIT or UNIT_MEASURE attribute says the unit of the figures: give --unit".into(),
                    ))
                }
                (None, _) => {
                    let (file, line) = self.unit_at.clone().unwrap_or_default();
                    return Err(fail(
                        &file,
                        format!("line {line}"),
                        format!(
                            "the series have different units ({}); a ledger dataset has one unit: give --unit to name it",
                            quote_at_most(&self.units.iter().cloned().collect::<Vec<_>>().join(", "), QUOTE)
                        ),
                    ));
                }
            };
            if let Some(m) = self.multipliers.iter().next() {
                let (file, line) = self.multiplier_at.clone().unwrap_or_default();
                dataset.unit_multiplier = m.trim().parse().map_err(|_| {
                    fail(
                        &file,
                        format!("line {line}"),
                        format!("UNIT_MULT `{}` is not an integer", quote_at_most(m, QUOTE)),
                    )
                })?;
            }
        }
        if !plan.existing {
            let (file, at) = &plan.defined_at;
            dataset.validate().map_err(|e| fail(file, at.clone(), e.to_string()))?;
        }
        let name = quote_at_most(&dataset.name, 400);
        let one = self.groups.len() == 1;
        if args.release_id.is_some() && !one {
            return Err(fail(
                &self.first_file,
                "--release-id".into(),
                format!("the files hold {} releases; --release-id names one", self.groups.len()),
            ));
        }
        let mut releases = Vec::new();
        let mut origins = Vec::new();
        for g in self.groups {
            let file = g.file.clone();
            let first = g.lines.first().copied().unwrap_or(0);
            let at = |line: usize| format!("line {line}");
            let status = match (args.status, &g.status) {
                (Some(s), _) => s,
                (None, Some((s, line))) => ReleaseStatus::parse(s).ok_or_else(|| {
                    fail(
                        &file,
                        at(*line),
                        format!("RELEASE_STATUS `{}`: use PRELIMINARY, REVISED or FINAL", quote_at_most(s, QUOTE)),
                    )
                })?,
                (None, None) => match (g.provisional, g.normal) {
                    (Some(_), None) => ReleaseStatus::Preliminary,
                    (Some(p), Some(n)) => {
                        return Err(fail(
                            &file,
                            at(p.max(n)),
                            format!(
                                "OBS_STATUS P (provisional) at line {p} and another status at line {n} in one release: the ledger's status belongs to a release; give --status"
                            ),
                        ))
                    }
                    _ => ReleaseStatus::Final,
                },
            };
            let time = |s: &str| {
                DateTime::parse_from_rfc3339(s.trim())
                    .map(|t| t.with_timezone(&Utc))
                    .or_else(|_| {
                        chrono::NaiveDateTime::parse_from_str(s.trim(), "%Y-%m-%dT%H:%M:%S%.f").map(|t| t.and_utc())
                    })
            };
            let published_at = match (args.published_at, &g.published, &g.valid_from, &g.header.prepared) {
                (Some(t), ..) => t,
                (None, Some((s, line)), ..) => time(s).map_err(|_| {
                    fail(
                        &file,
                        at(*line),
                        format!("PUBLISHED_AT `{}` is not a date-time", quote_at_most(s, QUOTE)),
                    )
                })?,
                (None, None, Some(s), _) => time(s).map_err(|_| {
                    fail(
                        &file,
                        at(first),
                        format!("validFromDate `{}` is not a date-time", quote_at_most(s, QUOTE)),
                    )
                })?,
                (None, None, None, Some(s)) => time(s).map_err(|_| {
                    fail(
                        &file,
                        "element Prepared".into(),
                        format!("`{}` is not a date-time", quote_at_most(s, QUOTE)),
                    )
                })?,
                _ => {
                    return Err(fail(
                        &file,
                        at(first),
                        "no publication time: no PUBLISHED_AT attribute or message header: give --published-at".into(),
                    ))
                }
            };
            let basename = Path::new(&file)
                .file_name()
                .map_or(file.clone(), |f| f.to_string_lossy().into_owned());
            let message = g
                .header
                .id
                .clone()
                .map_or(format!("file {basename}"), |id| format!("message {id}"));
            let title = args
                .title
                .clone()
                .unwrap_or_else(|| quote_at_most(&format!("{name}: SDMX {message}"), 900));
            let source = args.source.clone().unwrap_or_else(|| {
                let mut s = format!("SDMX {message}");
                if let Some(sender) = &g.header.sender {
                    s.push_str(&format!(" from {sender}"));
                }
                if let Some(p) = &g.header.prepared {
                    s.push_str(&format!(", prepared {p}"));
                }
                quote_at_most(&s, 900)
            });
            let id = match (args.release_id, &g.release_id, &g.set_id) {
                (Some(id), ..) => id,
                (None, Some(r), _) => Uuid::parse_str(r).map_err(|_| {
                    fail(
                        &file,
                        at(first),
                        format!("RELEASE_ID `{}` is not a UUID", quote_at_most(r, QUOTE)),
                    )
                })?,
                (None, None, Some(s)) => s
                    .strip_prefix('R')
                    .and_then(|u| Uuid::parse_str(u).ok())
                    .unwrap_or_else(|| derived_id(&dataset.id, published_at, &g.observations)),
                _ => derived_id(&dataset.id, published_at, &g.observations),
            };
            releases.push(ReleaseDraft {
                id: Some(id),
                dataset: dataset.id.clone(),
                status,
                title,
                published_at,
                source: Some(source),
                observations: g.observations.into_iter().map(ObservationText::into_draft).collect(),
                backfill: true,
                revision_reason: None,
            });
            origins.push(Origin {
                file,
                place: Place::Lines(g.lines),
            });
        }
        // Recorded in publication order, each in its place.
        let mut order: Vec<usize> = (0..releases.len()).collect();
        order.sort_by_key(|&i| releases[i].published_at);
        let mut batch = Batch::default();
        let (mut releases, mut origins): (Vec<Option<ReleaseDraft>>, Vec<Option<Origin>>) = (
            releases.into_iter().map(Some).collect(),
            origins.into_iter().map(Some).collect(),
        );
        for i in order {
            batch.releases.extend(releases[i].take());
            batch.origins.extend(origins[i].take());
        }
        if !plan.existing {
            batch.datasets.push(dataset);
        }
        Ok(Read {
            batch,
            missing: self.missing,
            existing_dataset: plan.existing,
        })
    }
}

/// A release id from the contents, so that importing the same figures twice is a duplicate.
fn derived_id(dataset: &str, published_at: DateTime<Utc>, observations: &[ObservationText]) -> Uuid {
    let mut h = Sha256::new();
    h.update(dataset.as_bytes());
    h.update([0]);
    h.update(published_at.to_rfc3339().as_bytes());
    // In a fixed order: the time-series, flat and cross-sectional forms of one message are
    // one release.
    let mut parts: Vec<[&str; 4]> = observations
        .iter()
        .map(|o| [&o.key, &o.period, o.measure.as_deref().unwrap_or(""), &o.value])
        .collect();
    parts.sort_unstable();
    for part in parts.iter().flatten() {
        h.update(part.as_bytes());
        h.update([0]);
    }
    let digest: [u8; 32] = h.finalize().into();
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&digest[..16]);
    uuid::Builder::from_custom_bytes(bytes).into_uuid()
}

impl Plan {
    fn all(&self) -> Vec<String> {
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
fn same_version(named: &str, defined: &str) -> bool {
    let parts = |v: &str| -> Option<Vec<u64>> { v.trim().split('.').map(|p| p.parse::<u64>().ok()).collect() };
    let legacy = |v: &[u64]| if v == [1, 0] { vec![1, 0, 0] } else { v.to_vec() };
    match (parts(named), parts(defined)) {
        (Some(n), Some(d)) => legacy(&n) == legacy(&d),
        _ => named == defined,
    }
}

/// Maps a DSD (and its dataflow) onto a dataset.
fn plan(
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

#[cfg(test)]
mod tests {
    use super::*;

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
