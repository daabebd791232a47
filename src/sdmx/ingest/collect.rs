//! The observations of the data files collected into releases: grouped by release (its
//! attributes, else the file), checked against the dataset's codes and the file's header,
//! then made into release drafts.

use std::collections::{BTreeSet, HashMap};
use std::path::Path;

use chrono::{DateTime, Utc};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use super::mapping::{plan, same_version, Plan};
use super::structure::{Ref, Structures};
use super::{
    fail, Header, RawObs, Read, SdmxArgs, MAX_OBSERVATIONS, OBS_STATUS, OBS_VALUE_ID, PUBLISHED_AT, RELEASE_ID,
    RELEASE_STATUS, UNIT, UNIT_MULT,
};
use crate::domain::text::{quote_at_most, QUOTE};
use crate::domain::{Dataset, Frequency, ObservationDraft, ReleaseDraft, ReleaseStatus};
use crate::import::{Batch, ImportError, Origin, Place};

/// The observations of one release, being collected.
#[derive(Default)]
pub(super) struct Group {
    pub(super) file: String,
    pub(super) release_id: Option<String>,
    pub(super) set_id: Option<String>,
    pub(super) status: Option<(String, usize)>,
    pub(super) provisional: Option<usize>,
    pub(super) normal: Option<usize>,
    pub(super) published: Option<(String, usize)>,
    pub(super) valid_from: Option<String>,
    pub(super) header: Header,
    pub(super) observations: Vec<ObservationText>,
    pub(super) lines: Vec<usize>,
}

/// An observation as the file gives it: its text is what a derived release id covers (so
/// that the id stays the one earlier imports gave the same file); parsed into a draft once
/// the release is complete.
pub(super) struct ObservationText {
    pub(super) key: String,
    pub(super) period: String,
    pub(super) measure: Option<String>,
    pub(super) value: String,
}

impl ObservationText {
    pub(super) fn into_draft(self) -> ObservationDraft {
        ObservationDraft {
            key: self.key,
            period: self.period.into(),
            measure: self.measure,
            value: self.value.into(),
        }
    }
}

pub(super) struct Collect<'a> {
    pub(super) args: &'a SdmxArgs,
    pub(super) plan: Option<Plan>,
    pub(super) groups: Vec<Group>,
    pub(super) by_key: HashMap<String, usize>,
    pub(super) frequency: Option<(Frequency, String, usize)>,
    pub(super) units: BTreeSet<String>,
    pub(super) unit_at: Option<(String, usize)>,
    pub(super) multipliers: BTreeSet<String>,
    pub(super) multiplier_at: Option<(String, usize)>,
    pub(super) observations: usize,
    /// The first data file, which errors about the whole import name.
    pub(super) first_file: String,
    /// Observations without a value (`NaN` or none: SDMX's missing values), left out.
    pub missing: usize,
}

impl Collect<'_> {
    /// The plan for the structure a data file names; every file must name the same one.
    pub(super) fn plan_for(
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

    pub(super) fn observation(&mut self, file: &str, n: usize, header: &Header, o: RawObs) -> Result<(), ImportError> {
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

    pub(super) fn finish(self) -> Result<Read, ImportError> {
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
pub(super) fn derived_id(dataset: &str, published_at: DateTime<Utc>, observations: &[ObservationText]) -> Uuid {
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
