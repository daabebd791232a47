//! The projection as bytes: a snapshot that lets a node start from a fold it made before and
//! fold only the events recorded since (the log stays the truth; see `ledger::Prefold`).
//!
//! Layout: a fixed header, then the body.
//!
//! | bytes | what |
//! |---|---|
//! | 8 | magic `TLSNAPSH` |
//! | 4 | format version ([`FORMAT`]), little-endian |
//! | 8 | revision covered (the projection's head), little-endian |
//! | 32 | hash of the event at that revision |
//! | 8 | body length, little-endian |
//! | 32 | SHA-256 of the header's first 60 bytes (all of the above) and the body |
//!
//! The body is a compact binary encoding written here rather than through a serde format: the
//! bulk of it is the figures' version lists and cell indexes, which a serde format would need
//! hand-written impls for anyway (to avoid one allocation per figure, and decimals and periods
//! as strings), and the dataset definitions skip empty optional fields, which non
//! self-describing formats cannot read back. Integers are LEB128 varints, decimals their sign,
//! scale and mantissa; definitions are their JSON. Indexes the projection derives (the hash
//! maps, the publication-time index) are rebuilt on load rather than stored.
//!
//! Decoding is hostile-input safe: every read is bounds-checked, no count is trusted for an
//! allocation beyond the bytes left, and every position that a query would index by (figures,
//! releases, codes, measures) is checked, so a bad snapshot is an error, never a panic later.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::domain::{Dataset, Frequency, Period, ReleaseStatus, RevisionReason, RevisionReasonKind, SeriesKey};
use crate::store::{Hash, Head};

use super::{DatasetView, Extents, FigureKey, Figures, Projection, ReleaseInfo, Series, Version};

/// Bump whenever the body's layout or the meaning of a field changes: an older snapshot is
/// then ignored (a full fold), never misread.
pub const FORMAT: u32 = 3;

const MAGIC: &[u8; 8] = b"TLSNAPSH";
/// Bytes before the body.
pub const HEADER_LEN: usize = 8 + 4 + 8 + 32 + 8 + 32;

/// Why a snapshot was not used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SnapshotError {
    #[error("not a snapshot file (bad magic or shorter than its header)")]
    NotASnapshot,
    #[error("snapshot format {found}, this build reads format {FORMAT}")]
    Format { found: u32 },
    #[error("the body is {found} bytes, the header says {expected} (torn write?)")]
    Length { expected: u64, found: u64 },
    #[error("checksum mismatch: the file was altered or torn")]
    Checksum,
    #[error("the body does not decode: {0}")]
    Body(String),
}

/// What the header of a snapshot says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    pub format: u32,
    pub head: Head,
    pub body_len: u64,
    pub checksum: [u8; 32],
}

/// Reads and checks a header (not the body's checksum).
pub fn read_header(bytes: &[u8]) -> Result<Header, SnapshotError> {
    if bytes.len() < HEADER_LEN || &bytes[..8] != MAGIC {
        return Err(SnapshotError::NotASnapshot);
    }
    let u64_at = |at: usize| u64::from_le_bytes(bytes[at..at + 8].try_into().expect("8 bytes"));
    let format = u32::from_le_bytes(bytes[8..12].try_into().expect("4 bytes"));
    if format != FORMAT {
        return Err(SnapshotError::Format { found: format });
    }
    let revision = u64_at(12);
    let hash = Hash(bytes[20..52].try_into().expect("32 bytes"));
    let body_len = u64_at(52);
    let checksum = bytes[60..92].try_into().expect("32 bytes");
    Ok(Header {
        format,
        head: Head { revision, hash },
        body_len,
        checksum,
    })
}

impl Projection {
    /// The whole snapshot file: header and body.
    pub fn to_snapshot(&self) -> Vec<u8> {
        self.snapshot_unsealed().seal()
    }

    /// The snapshot without its checksum: the part that needs the projection, so that a
    /// caller holding a lock on it can let go before hashing ([`Unsealed::seal`]).
    pub fn snapshot_unsealed(&self) -> Unsealed {
        let mut w = Writer(Vec::with_capacity(HEADER_LEN + 8 * self.version_count as usize));
        w.0.extend_from_slice(MAGIC);
        w.0.extend_from_slice(&FORMAT.to_le_bytes());
        w.0.extend_from_slice(&self.head.revision.to_le_bytes());
        w.0.extend_from_slice(&self.head.hash.0);
        w.0.resize(HEADER_LEN, 0);
        self.encode_body(&mut w);
        Unsealed(w.0)
    }

    /// A projection from a snapshot file's bytes, after checking its header and checksum.
    pub fn from_snapshot(bytes: &[u8]) -> Result<Projection, SnapshotError> {
        let header = read_header(bytes)?;
        let body = &bytes[HEADER_LEN..];
        if body.len() as u64 != header.body_len {
            return Err(SnapshotError::Length {
                expected: header.body_len,
                found: body.len() as u64,
            });
        }
        if checksum(bytes) != header.checksum {
            return Err(SnapshotError::Checksum);
        }
        let mut r = Reader(body);
        let p = Projection::decode_body(&mut r, header.head).map_err(SnapshotError::Body)?;
        if !r.0.is_empty() {
            return Err(SnapshotError::Body(format!("{} bytes after the end", r.0.len())));
        }
        Ok(p)
    }

    fn encode_body(&self, w: &mut Writer) {
        w.uint(self.version_count);
        let e = &self.extents;
        for x in [
            e.datasets,
            e.releases,
            e.events,
            e.max_figures,
            e.max_release_observations,
            e.max_versions,
            e.max_dimensions,
            e.max_codes,
            e.max_measures,
        ] {
            w.uint(x);
        }
        w.uint(self.datasets.len() as u64);
        for ds in &self.datasets {
            ds.encode(w);
        }
        w.uint(self.releases.len() as u64);
        for r in &self.releases {
            w.bytes(r.id.as_bytes());
            w.uint(self.dataset_ix[&r.dataset] as u64);
            w.uint(r.status as u64);
            w.str(&r.title);
            w.time(r.published_at);
            match &r.source {
                None => w.uint(0),
                Some(s) => {
                    w.uint(1);
                    w.str(s);
                }
            }
            w.uint(r.revision);
            w.time(r.recorded_at);
            w.str(&r.actor);
            w.uint(u64::from(r.observation_count));
            w.uint(u64::from(r.revised_count));
            w.uint(u64::from(r.backfilled));
            match &r.revision_reason {
                None => w.uint(0),
                Some(reason) => {
                    w.uint(1 + reason.kind as u64);
                    w.str(reason.note.as_deref().unwrap_or(""));
                }
            }
        }
        // The recording times, as seconds and nanoseconds since the one before (they never
        // go back: it is the running maximum).
        w.uint(self.recorded.len() as u64);
        let mut last: Option<DateTime<Utc>> = None;
        for &t in &self.recorded {
            let delta = last.map_or(t.timestamp_nanos_opt().unwrap_or(0), |l| {
                (t - l).num_nanoseconds().unwrap_or(0)
            });
            w.uint(delta as u64);
            last = Some(t);
        }
        // Scheduled releases: few, so their JSON.
        w.str(&serde_json::to_string(&self.schedules).expect("schedules serialize"));
    }

    fn decode_body(r: &mut Reader, head: Head) -> Result<Projection, String> {
        let version_count = r.uint()?;
        let mut x = [0u64; 9];
        for v in &mut x {
            *v = r.uint()?;
        }
        let extents = Extents {
            datasets: x[0],
            releases: x[1],
            events: x[2],
            max_figures: x[3],
            max_release_observations: x[4],
            max_versions: x[5],
            max_dimensions: x[6],
            max_codes: x[7],
            max_measures: x[8],
        };
        let n = r.count()?;
        let mut datasets = Vec::with_capacity(n);
        let mut dataset_ix = HashMap::with_capacity(n);
        for i in 0..n {
            let ds = DatasetView::decode(r, head.revision)?;
            if dataset_ix.insert(ds.def.id.clone(), i).is_some() {
                return Err(format!("dataset {} twice", ds.def.id));
            }
            datasets.push(ds);
        }
        let n = r.count()?;
        let mut releases = Vec::with_capacity(n);
        let mut release_ix = HashMap::with_capacity(n);
        for position in 0..n {
            let id = Uuid::from_bytes(r.array()?);
            let ds = r.uint()? as usize;
            let dataset = datasets.get(ds).ok_or("release of an unknown dataset")?.def.id.clone();
            let status = match r.uint()? {
                0 => ReleaseStatus::Preliminary,
                1 => ReleaseStatus::Revised,
                2 => ReleaseStatus::Final,
                s => return Err(format!("unknown release status {s}")),
            };
            let title = r.str()?;
            let published_at = r.time()?;
            let source = match r.uint()? {
                0 => None,
                1 => Some(r.str()?),
                t => return Err(format!("bad source tag {t}")),
            };
            let revision = r.uint()?;
            let before = releases.last().map_or(0, |p: &ReleaseInfo| p.revision);
            if revision <= before || revision > head.revision {
                return Err(format!("release revision {revision} out of order"));
            }
            let recorded_at = r.time()?;
            let actor = r.str()?;
            let observation_count = r.u32()?;
            let revised_count = r.u32()?;
            let backfilled = match r.uint()? {
                0 => false,
                1 => true,
                b => return Err(format!("bad back-fill flag {b}")),
            };
            let kind = match r.uint()? {
                0 => None,
                1 => Some(RevisionReasonKind::Routine),
                2 => Some(RevisionReasonKind::Methodological),
                3 => Some(RevisionReasonKind::ErrorCorrection),
                k => return Err(format!("bad revision reason {k}")),
            };
            let revision_reason = match kind {
                None => None,
                Some(kind) => {
                    let note = r.str()?;
                    Some(RevisionReason {
                        kind,
                        note: (!note.is_empty()).then_some(note),
                    })
                }
            };
            if release_ix.insert(id, position as u32).is_some() {
                return Err(format!("release {id} twice"));
            }
            releases.push(ReleaseInfo {
                id,
                dataset,
                status,
                title,
                published_at,
                source,
                revision,
                recorded_at,
                actor,
                observation_count,
                revised_count,
                backfilled,
                revision_reason,
            });
        }
        let n = r.count()?;
        if n as u64 != head.revision {
            return Err(format!("{n} recording times for {} events", head.revision));
        }
        let mut recorded = Vec::with_capacity(n);
        let mut nanos: i64 = 0;
        for i in 0..n {
            let delta = i64::try_from(r.uint()?).map_err(|_| "bad recording time")?;
            nanos = if i == 0 {
                delta
            } else {
                nanos.checked_add(delta).ok_or("bad recording time")?
            };
            recorded.push(DateTime::from_timestamp_nanos(nanos));
        }
        let release_count = releases.len() as u32;
        for (position, r) in releases.iter().enumerate() {
            let ds = &mut datasets[dataset_ix[&r.dataset]];
            match r.backfilled {
                true => ds.backfills.push((position as u32, r.published_at)),
                false => ds.mainline.push((r.published_at, position as u32)),
            }
        }
        for ds in &mut datasets {
            if ds.mainline.windows(2).any(|w| w[0].0 > w[1].0) {
                return Err(format!("dataset {}: releases out of publication order", ds.def.id));
            }
            for id in 0..ds.figures.len() {
                let versions = ds.figures.versions(id);
                if versions.iter().any(|v| v.release >= release_count) {
                    return Err(format!("a version of dataset {} names an unknown release", ds.def.id));
                }
                // In publication order, and (ties) recording order.
                let order = |v: &Version| (releases[v.release as usize].published_at, v.release);
                if versions.windows(2).any(|w| order(&w[0]) >= order(&w[1])) {
                    return Err(format!("dataset {}: versions out of order", ds.def.id));
                }
                if versions.iter().any(|v| releases[v.release as usize].backfilled) {
                    ds.figures.mixed.insert(id);
                }
            }
        }
        // Releases are applied in revision order and each inserted after those published at
        // the same time or earlier: a stable sort by time gives the same order.
        let mut published: Vec<(DateTime<Utc>, u64)> = releases.iter().map(|r| (r.published_at, r.revision)).collect();
        published.sort_by_key(|p| p.0);
        let mut max = 0;
        let published_max = published
            .iter()
            .map(|p| {
                max = max.max(p.1);
                max
            })
            .collect();
        let schedules: Vec<super::ScheduleInfo> =
            serde_json::from_str(&r.str()?).map_err(|e| format!("schedules: {e}"))?;
        let mut p = Projection {
            head,
            datasets,
            dataset_ix,
            releases,
            release_ix,
            published,
            published_max,
            recorded,
            version_count,
            extents,
            ..Projection::default()
        };
        if schedules
            .iter()
            .any(|s| !p.dataset_ix.contains_key(&s.schedule.dataset))
        {
            return Err("a schedule names an unknown dataset".to_owned());
        }
        p.set_schedules(schedules);
        Ok(p)
    }
}

/// The checksum of a snapshot file: everything but the checksum itself, so that neither the
/// body nor the revision and hash it claims to cover can change unnoticed.
fn checksum(file: &[u8]) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(&file[..60]);
    h.update(&file[HEADER_LEN..]);
    h.finalize().into()
}

/// A snapshot whose header still lacks the body's length and checksum.
pub struct Unsealed(Vec<u8>);

impl Unsealed {
    /// Fills in the body's length and the checksum: the snapshot file's bytes.
    pub fn seal(mut self) -> Vec<u8> {
        let body_len = (self.0.len() - HEADER_LEN) as u64;
        self.0[52..60].copy_from_slice(&body_len.to_le_bytes());
        let sum = checksum(&self.0);
        self.0[60..92].copy_from_slice(&sum);
        self.0
    }
}

impl DatasetView {
    fn encode(&self, w: &mut Writer) {
        w.str(&serde_json::to_string(&*self.def).expect("a dataset serializes"));
        w.uint(self.revision);
        w.uint(self.def_revision);
        w.uint(u64::from(self.release_count));
        w.uint(u64::from(self.frequencies));
        w.uint(self.series.len() as u64);
        // Series by number, each with its key: the two key indexes are rebuilt from these.
        let mut keys = vec![None; self.series.len()];
        for (key, &s) in &self.series_order {
            keys[s as usize] = Some(key);
        }
        for (series, key) in self.series.iter().zip(keys) {
            let key = key.expect("every series is in the key order");
            w.uint(key.len() as u64);
            for c in key.codes() {
                w.uint(u64::from(c));
            }
            w.uint(series.cells.len() as u64);
            for &(period, measure, figure) in &series.cells {
                w.uint(period.frequency() as u64);
                w.uint(u64::from(period.year()));
                w.uint(u64::from(period.index()));
                w.uint(u64::from(measure));
                w.uint(u64::from(figure));
            }
        }
        w.uint(self.figures.len() as u64);
        for id in 0..self.figures.len() {
            let versions = self.figures.versions(id);
            w.uint(versions.len() as u64);
            for v in versions {
                w.uint(u64::from(v.release));
                w.decimal(v.value);
            }
        }
    }

    fn decode(r: &mut Reader, head: u64) -> Result<DatasetView, String> {
        let def: Dataset = serde_json::from_str(&r.str()?).map_err(|e| format!("dataset definition: {e}"))?;
        let revision = r.uint()?;
        let def_revision = r.uint()?;
        if revision == 0 || def_revision < revision || def_revision > head {
            return Err(format!("dataset {}: bad revisions", def.id));
        }
        let release_count = r.u32()?;
        let frequencies = u8::try_from(r.uint()?).map_err(|_| "bad frequency bits")?;
        let n_series = r.count()?;
        let mut series = Vec::with_capacity(n_series);
        let mut series_order = BTreeMap::new();
        let mut series_ix = HashMap::default();
        let mut cells_of = Vec::with_capacity(n_series);
        for s in 0..n_series as u32 {
            let len = r.uint()? as usize;
            if len != def.dimensions.len() {
                return Err(format!("a series key of {len} codes in dataset {}", def.id));
            }
            let mut codes = Vec::with_capacity(len);
            for d in &def.dimensions {
                let c = r.uint()?;
                if c >= d.codes.len() as u64 {
                    return Err(format!("code {c} beyond dimension {}", d.id));
                }
                codes.push(c as u16);
            }
            let key = SeriesKey::from_codes(&codes);
            if series_order.insert(key, s).is_some() {
                return Err("a series twice".into());
            }
            series_ix.insert(key, s);
            let n_cells = r.count()?;
            let mut cells = Vec::with_capacity(n_cells);
            for _ in 0..n_cells {
                let frequency = match r.uint()? {
                    0 => Frequency::Annual,
                    1 => Frequency::HalfYear,
                    2 => Frequency::Quarter,
                    3 => Frequency::Month,
                    f => return Err(format!("unknown frequency {f}")),
                };
                let year = u16::try_from(r.uint()?).map_err(|_| "bad year")?;
                let index = u8::try_from(r.uint()?).map_err(|_| "bad period index")?;
                let period = Period::new(frequency, year, index)?;
                let measure = u8::try_from(r.uint()?).map_err(|_| "bad measure")?;
                if measure as usize >= def.measures.len() {
                    return Err(format!("measure {measure} beyond dataset {}", def.id));
                }
                cells.push((period, measure, r.u32()?));
            }
            if cells.windows(2).any(|w| (w[0].0, w[0].1) >= (w[1].0, w[1].1)) {
                return Err("cells out of order".into());
            }
            cells_of.push(cells);
            series.push(Series { cells: Vec::new() });
        }
        let n_figures = r.count()?;
        let mut figures = Figures::default();
        for _ in 0..n_figures {
            let id = figures.push();
            let n = r.count()?;
            if n == 0 {
                return Err("a figure without versions".into());
            }
            // Their order (publication order) is checked once the releases are read.
            for _ in 0..n {
                let release = r.u32()?;
                figures.add(
                    id,
                    Version {
                        release,
                        value: r.decimal()?,
                    },
                );
            }
        }
        let mut seen = vec![false; n_figures];
        let mut entries = Vec::with_capacity(n_figures);
        for (s, cells) in cells_of.into_iter().enumerate() {
            for &(period, measure, figure) in &cells {
                match seen.get_mut(figure as usize) {
                    Some(seen @ false) => *seen = true,
                    _ => return Err(format!("figure {figure} unknown or in two cells")),
                }
                let key = FigureKey {
                    series: s as u32,
                    period,
                    measure,
                };
                entries.push((key, figure));
            }
            series[s].cells = cells;
        }
        let lookup = index_of(entries);
        if seen.iter().any(|s| !s) {
            return Err("a figure in no cell".into());
        }
        Ok(DatasetView {
            def: Arc::new(def),
            revision,
            def_revision,
            series_order,
            series_ix,
            series,
            lookup,
            figures,
            release_count,
            frequencies,
            mainline: Vec::new(),
            backfills: Vec::new(),
        })
    }
}

/// The point index of the figures. Inserted in key order, millions of entries land at random
/// places of a table far larger than the caches, one miss or two each (measured: most of the
/// time a snapshot takes to load); inserted in the order of their buckets, the table fills
/// front to back.
fn index_of(entries: Vec<(FigureKey, u32)>) -> HashMap<FigureKey, u32, fxhash::FxBuildHasher> {
    use std::hash::BuildHasher;
    let mut lookup = HashMap::with_capacity_and_hasher(entries.len(), fxhash::FxBuildHasher::default());
    // The bucket is the hash's low bits, below the table's (power of two) size; each entry's
    // is computed once, not at every comparison of the sort.
    let mask = (lookup.capacity() as u64 + 1).next_power_of_two() - 1;
    let hasher = lookup.hasher().clone();
    let mut placed: Vec<(u64, (FigureKey, u32))> =
        entries.into_iter().map(|e| (hasher.hash_one(e.0) & mask, e)).collect();
    placed.sort_unstable_by_key(|p| p.0);
    lookup.extend(placed.into_iter().map(|p| p.1));
    lookup
}

impl Figures {
    fn len(&self) -> u32 {
        self.blocks.iter().map(Vec::len).sum::<usize>() as u32
    }
}

struct Writer(Vec<u8>);

impl Writer {
    fn uint(&mut self, mut x: u64) {
        while x >= 0x80 {
            self.0.push(x as u8 | 0x80);
            x >>= 7;
        }
        self.0.push(x as u8);
    }

    fn bytes(&mut self, b: &[u8]) {
        self.0.extend_from_slice(b);
    }

    fn str(&mut self, s: &str) {
        self.uint(s.len() as u64);
        self.bytes(s.as_bytes());
    }

    fn time(&mut self, t: DateTime<Utc>) {
        // Zigzag, so times before 1970 stay short too.
        let s = t.timestamp();
        self.uint(((s << 1) ^ (s >> 63)) as u64);
        self.uint(u64::from(t.timestamp_subsec_nanos()));
    }

    /// Sign and scale in one byte, then the mantissa's magnitude (96 bits) as two varints.
    fn decimal(&mut self, d: Decimal) {
        self.0
            .push(d.scale() as u8 | if d.is_sign_negative() { 0x80 } else { 0 });
        let m = d.mantissa().unsigned_abs();
        self.uint(m as u64);
        self.uint((m >> 64) as u64);
    }
}

struct Reader<'a>(&'a [u8]);

const EOF: &str = "ends early";

impl Reader<'_> {
    fn byte(&mut self) -> Result<u8, String> {
        let (&b, rest) = self.0.split_first().ok_or(EOF)?;
        self.0 = rest;
        Ok(b)
    }

    fn uint(&mut self) -> Result<u64, String> {
        let mut x = 0u64;
        for shift in (0..64).step_by(7) {
            let b = self.byte()?;
            x |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Ok(x);
            }
        }
        Err("varint too long".into())
    }

    fn u32(&mut self) -> Result<u32, String> {
        u32::try_from(self.uint()?).map_err(|_| "a count beyond 32 bits".into())
    }

    /// A count of items that take at least one byte each: never more than the bytes left, so
    /// a forged count cannot make an allocation larger than the file.
    fn count(&mut self) -> Result<usize, String> {
        let n = self.uint()?;
        if n > self.0.len() as u64 {
            return Err(format!("a count of {n} with {} bytes left", self.0.len()));
        }
        Ok(n as usize)
    }

    fn take(&mut self, n: usize) -> Result<&[u8], String> {
        if n > self.0.len() {
            return Err(EOF.into());
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], String> {
        Ok(self.take(N)?.try_into().expect("N bytes"))
    }

    fn str(&mut self) -> Result<String, String> {
        let n = self.count()?;
        String::from_utf8(self.take(n)?.to_vec()).map_err(|_| "a string that is not UTF-8".into())
    }

    fn time(&mut self) -> Result<DateTime<Utc>, String> {
        let z = self.uint()?;
        let secs = (z >> 1) as i64 ^ -((z & 1) as i64);
        let nanos = self.u32()?;
        DateTime::from_timestamp(secs, nanos).ok_or_else(|| "a time out of range".into())
    }

    fn decimal(&mut self) -> Result<Decimal, String> {
        let flags = self.byte()?;
        let lo = self.uint()?;
        let hi = self.uint()?;
        let m = u128::from(lo) | u128::from(hi) << 64;
        if m >> 96 != 0 {
            return Err("a decimal mantissa beyond 96 bits".into());
        }
        let mut d = Decimal::try_from_i128_with_scale(m as i128, u32::from(flags & 0x7f)).map_err(|e| e.to_string())?;
        d.set_sign_negative(flags & 0x80 != 0);
        Ok(d)
    }
}
