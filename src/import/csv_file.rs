//! CSV release files: one observation per row, rows of one `release_id` forming a release.

use super::*;

pub(super) const CSV_COLUMNS: [&str; 10] = [
    "dataset",
    "release_id",
    "status",
    "title",
    "published_at",
    "source",
    "key",
    "period",
    "measure",
    "value",
];

/// Writes releases as a CSV release file, header first: what [`for_each_csv_release`] reads.
pub struct CsvWriter<W: std::io::Write> {
    pub(super) out: csv::Writer<W>,
}

impl<W: std::io::Write> CsvWriter<W> {
    pub fn new(out: W) -> csv::Result<Self> {
        let mut out = csv::Writer::from_writer(out);
        out.write_record(CSV_COLUMNS)?;
        Ok(CsvWriter { out })
    }

    /// One row per observation.
    pub fn release(&mut self, r: &ReleaseDraft) -> csv::Result<()> {
        let id = r.id.map(|id| id.to_string()).unwrap_or_default();
        let published_at = r.published_at.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true);
        for o in &r.observations {
            let (period, value) = (o.period.to_string(), o.value.to_string());
            self.out.write_record([
                r.dataset.as_str(),
                &id,
                r.status.as_str(),
                &r.title,
                &published_at,
                r.source.as_deref().unwrap_or(""),
                &o.key,
                &period,
                o.measure.as_deref().unwrap_or(""),
                &value,
            ])?;
        }
        Ok(())
    }

    /// Flushes what is buffered and gives the output back.
    pub fn finish(self) -> csv::Result<W> {
        self.out.into_inner().map_err(|e| e.into_error().into())
    }
}

/// The input of a CSV reader, failing once more than [`MAX_CSV_ROW_BYTES`] were read since
/// `read` was last set to 0 (after each row). The reader asks for more only when it has used
/// all it read, inside a row: then that row is longer than the limit. (A row up to the limit
/// always passes; one longer is refused within one buffer of the reader, 8 KiB, past it.)
pub(super) struct RowLimit<R> {
    pub(super) input: R,
    pub(super) read: std::rc::Rc<std::cell::Cell<usize>>,
}

impl<R: std::io::Read> std::io::Read for RowLimit<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let read = self.read.get();
        if read > MAX_CSV_ROW_BYTES {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("a row longer than the limit of {MAX_CSV_ROW_BYTES} bytes"),
            ));
        }
        let n = self.input.read(buf)?;
        self.read.set(read + n);
        Ok(n)
    }
}

/// Parses a CSV release file (see the module docs for its columns).
pub fn parse_csv(file: &str, bytes: &[u8]) -> Result<Batch, ImportError> {
    let mut batch = Batch::default();
    for_each_csv_release(file, bytes, |draft, origin| {
        batch.releases.push(draft);
        batch.origins.push(origin);
        Ok(())
    })?;
    Ok(batch)
}

/// Calls `each` with every release of a CSV release file in order, with the line of each of
/// its observations, holding one release at a time in memory: the rows of a release are
/// contiguous, so a release is complete at the first row of the next. A row of a release
/// that came before the one just ended is refused naming both lines, as is a release of
/// more than [`MAX_OBSERVATIONS_PER_RELEASE`] rows. Besides that release, memory holds one
/// entry per release id seen (to find such rows), never the file. Stops at the first error,
/// from the file or from `each`.
pub fn for_each_csv_release(
    file: &str,
    input: impl std::io::Read,
    mut each: impl FnMut(ReleaseDraft, Origin) -> Result<(), ImportError>,
) -> Result<(), ImportError> {
    let fail = |at: String, message: String| ImportError {
        file: file.to_owned(),
        at,
        message,
    };
    let row_bytes = std::rc::Rc::new(std::cell::Cell::new(0));
    let input = RowLimit {
        input,
        read: row_bytes.clone(),
    };
    let mut reader = csv::ReaderBuilder::new().trim(csv::Trim::All).from_reader(input);
    let headers = reader
        .headers()
        .map_err(|e| fail("header".into(), brief(&e.to_string())))?
        .clone();
    row_bytes.set(0);
    let mut col = HashMap::new();
    for (i, h) in headers.iter().enumerate() {
        if !CSV_COLUMNS.contains(&h) {
            return Err(fail(
                "header".into(),
                format!(
                    "unknown column `{}`; expected {}",
                    quote_at_most(h, QUOTE),
                    CSV_COLUMNS.join(",")
                ),
            ));
        }
        if col.insert(h.to_owned(), i).is_some() {
            return Err(fail("header".into(), format!("column `{h}` appears twice")));
        }
    }
    for required in ["dataset", "status", "title", "published_at", "key", "period", "value"] {
        if !col.contains_key(required) {
            return Err(fail("header".into(), format!("missing column `{required}`")));
        }
    }
    let index = |c: &str| col.get(c).copied();
    let [dataset_col, rid_col, status_col, title_col, published_col, source_col, key_col, period_col, measure_col, value_col] =
        CSV_COLUMNS.map(index);
    // The release being read: its release_id cell, the line of each observation, its draft.
    let mut current: Option<(String, Vec<usize>, ReleaseDraft)> = None;
    // The first line of every release ended so far, by id (rows without an id form one
    // release too).
    let mut ended: HashMap<Option<uuid::Uuid>, usize> = HashMap::new();
    let mut row = csv::StringRecord::new();
    let mut rows = 0usize;
    loop {
        let more = match reader.read_record(&mut row) {
            Ok(more) => more,
            Err(e) => {
                // An I/O error (a row over the limit) has no position: the row that failed
                // begins where the reader stands.
                let line = e.position().unwrap_or(reader.position()).line();
                return Err(fail(format!("line {line}"), brief(&e.to_string())));
            }
        };
        row_bytes.set(0);
        if !more {
            break;
        }
        rows += 1;
        let line = row.position().map_or(rows + 1, |p| p.line() as usize);
        let at = || format!("line {line}");
        let get = |c: Option<usize>| c.and_then(|i| row.get(i)).unwrap_or("");
        let rid = get(rid_col);
        let same_release = current.as_ref().is_some_and(|(r, _, _)| r == rid);
        if !same_release {
            let id = if rid.is_empty() {
                None
            } else {
                Some(rid.parse::<uuid::Uuid>().map_err(|e| {
                    fail(
                        at(),
                        format!("release_id `{}` is not a UUID: {e}", quote_at_most(rid, QUOTE)),
                    )
                })?)
            };
            if let Some(first) = ended.get(&id) {
                return Err(fail(
                    at(),
                    format!(
                        "release `{rid}` began at line {first} and other rows came after it: the rows of a release must be contiguous"
                    ),
                ));
            }
            if let Some((_, lines, draft)) = current.take() {
                ended.insert(draft.id, lines[0]);
                each(
                    draft,
                    Origin {
                        file: file.to_owned(),
                        place: Place::Lines(lines),
                    },
                )?;
            }
            let status = ReleaseStatus::parse(get(status_col)).ok_or_else(|| {
                fail(
                    at(),
                    format!(
                        "status `{}` is not PRELIMINARY, REVISED or FINAL",
                        quote_at_most(get(status_col), QUOTE)
                    ),
                )
            })?;
            let published_at = get(published_col).parse().map_err(|e| {
                fail(
                    at(),
                    format!(
                        "published_at `{}` is not an RFC 3339 time: {e}",
                        quote_at_most(get(published_col), QUOTE)
                    ),
                )
            })?;
            let draft = ReleaseDraft {
                id,
                dataset: get(dataset_col).to_owned(),
                status,
                title: get(title_col).to_owned(),
                published_at,
                source: Some(get(source_col).to_owned()).filter(|s| !s.is_empty()),
                observations: Vec::new(),
                backfill: false,
                revision_reason: None,
            };
            current = Some((rid.to_owned(), Vec::new(), draft));
        }
        let (_, lines, draft) = current.as_mut().expect("a release is being read");
        if same_release {
            let first = lines[0];
            let status = ReleaseStatus::parse(get(status_col)).ok_or_else(|| {
                fail(
                    at(),
                    format!(
                        "status `{}` is not PRELIMINARY, REVISED or FINAL",
                        quote_at_most(get(status_col), QUOTE)
                    ),
                )
            })?;
            let published_at = get(published_col)
                .parse::<chrono::DateTime<chrono::Utc>>()
                .map_err(|e| {
                    fail(
                        at(),
                        format!(
                            "published_at `{}` is not an RFC 3339 time: {e}",
                            quote_at_most(get(published_col), QUOTE)
                        ),
                    )
                })?;
            for (field, same) in [
                ("dataset", draft.dataset == get(dataset_col)),
                ("status", status == draft.status),
                ("title", draft.title == get(title_col)),
                ("published_at", published_at == draft.published_at),
                ("source", draft.source.as_deref().unwrap_or("") == get(source_col)),
            ] {
                if !same {
                    return Err(fail(
                        at(),
                        format!(
                            "{field} differs from line {first} of the same release `{}`",
                            quote_at_most(rid, QUOTE)
                        ),
                    ));
                }
            }
        }
        if draft.observations.len() == MAX_OBSERVATIONS_PER_RELEASE {
            return Err(fail(
                at(),
                format!(
                    "release `{rid}` (from line {}) has more than {MAX_OBSERVATIONS_PER_RELEASE} observations; split it",
                    lines[0]
                ),
            ));
        }
        lines.push(line);
        draft.observations.push(ObservationDraft {
            key: get(key_col).to_owned(),
            period: get(period_col).into(),
            measure: Some(get(measure_col).to_owned()).filter(|m| !m.is_empty()),
            value: get(value_col).into(),
        });
    }
    if let Some((_, lines, draft)) = current {
        each(
            draft,
            Origin {
                file: file.to_owned(),
                place: Place::Lines(lines),
            },
        )?;
    }
    Ok(())
}
