//! Release files: JSON (datasets and releases) and CSV (one observation per row).
//!
//! A JSON file holds one object or an array of them. An object with `dimensions` is a
//! dataset definition, one with `observations` a release; a `$comment` member is ignored
//! everywhere, so files can say where their figures come from.
//!
//! A CSV file has the header
//! `dataset,release_id,status,title,published_at,source,key,period,measure,value`; rows with
//! the same `release_id` form one release and must agree on its other columns.

use std::collections::HashMap;
use std::path::Path;

use serde_json::Value;

use crate::domain::{Dataset, ObservationDraft, ReleaseDraft, ReleaseStatus};
use crate::ledger::Ledger;

/// The contents of release files, in file order.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Batch {
    pub datasets: Vec<Dataset>,
    pub releases: Vec<ReleaseDraft>,
}

/// A file that cannot be read as release data; `at` locates the problem.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{file}: {at}: {message}")]
pub struct ImportError {
    pub file: String,
    pub at: String,
    pub message: String,
}

/// Largest file accepted, to keep a mistaken path from exhausting memory.
pub const MAX_FILE_BYTES: u64 = 1 << 30;

impl Batch {
    pub fn extend(&mut self, other: Batch) {
        self.datasets.extend(other.datasets);
        self.releases.extend(other.releases);
    }

    /// Reads one file, choosing the format by its extension (`.csv`, otherwise JSON).
    pub fn read_file(path: &Path) -> Result<Batch, ImportError> {
        let name = path.display().to_string();
        let fail = |message: String| ImportError {
            file: name.clone(),
            at: "file".into(),
            message,
        };
        let len = std::fs::metadata(path).map_err(|e| fail(e.to_string()))?.len();
        if len > MAX_FILE_BYTES {
            return Err(fail(format!("{len} bytes is more than the {MAX_FILE_BYTES} accepted")));
        }
        let bytes = std::fs::read(path).map_err(|e| fail(e.to_string()))?;
        let is_csv = path.extension().is_some_and(|e| e.eq_ignore_ascii_case("csv"));
        if is_csv {
            parse_csv(&name, &bytes)
        } else {
            parse_json(&name, &bytes)
        }
    }

    /// Reads every `.json` and `.csv` file of a directory, in file-name order.
    pub fn read_dir(dir: &Path) -> Result<Batch, ImportError> {
        let fail = |message: String| ImportError {
            file: dir.display().to_string(),
            at: "directory".into(),
            message,
        };
        let mut paths: Vec<_> = std::fs::read_dir(dir)
            .map_err(|e| fail(e.to_string()))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| {
                p.extension()
                    .and_then(|e| e.to_str())
                    .is_some_and(|e| e.eq_ignore_ascii_case("json") || e.eq_ignore_ascii_case("csv"))
            })
            .collect();
        paths.sort();
        let mut batch = Batch::default();
        for p in paths {
            batch.extend(Batch::read_file(&p)?);
        }
        Ok(batch)
    }
}

/// What [`load`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LoadReport {
    pub datasets_defined: usize,
    pub releases_recorded: usize,
    /// Releases (or datasets) already in the ledger with identical content.
    pub duplicates: usize,
    pub observations: usize,
    pub head_revision: u64,
}

/// Records a batch: datasets first, then every release. All releases are validated before
/// any is recorded, so a batch with a bad release records none of them. Errors name the
/// release by its position in the batch.
pub async fn load(ledger: &Ledger, batch: Batch, actor: &str) -> Result<LoadReport, Vec<String>> {
    let mut report = LoadReport::default();
    for ds in batch.datasets {
        let id = ds.id.clone();
        match ledger.define_dataset(ds, actor).await {
            Ok(c) if c.duplicate => report.duplicates += 1,
            Ok(_) => report.datasets_defined += 1,
            Err(e) => return Err(vec![format!("dataset {id}: {e}")]),
        }
    }
    let errors: Vec<String> = batch
        .releases
        .iter()
        .enumerate()
        .filter_map(|(i, r)| {
            ledger
                .validate(r.clone())
                .err()
                .map(|e| format!("release {i} ({}): {e}", r.title))
        })
        .collect();
    if !errors.is_empty() {
        return Err(errors);
    }
    report.observations = batch.releases.iter().map(|r| r.observations.len()).sum();
    let titles: Vec<String> = batch.releases.iter().map(|r| r.title.clone()).collect();
    let mut errors = Vec::new();
    for (i, result) in ledger.publish_all(batch.releases, actor).await.into_iter().enumerate() {
        match result {
            Ok(c) if c.duplicate => report.duplicates += 1,
            Ok(_) => report.releases_recorded += 1,
            Err(e) => errors.push(format!("release {i} ({}): {e}", titles[i])),
        }
    }
    report.head_revision = ledger.read().head().revision;
    if errors.is_empty() {
        Ok(report)
    } else {
        Err(errors)
    }
}

fn strip_comments(v: &mut Value) {
    match v {
        Value::Object(map) => {
            map.remove("$comment");
            map.values_mut().for_each(strip_comments);
        }
        Value::Array(items) => items.iter_mut().for_each(strip_comments),
        _ => {}
    }
}

/// Parses a JSON release file.
pub fn parse_json(file: &str, bytes: &[u8]) -> Result<Batch, ImportError> {
    let fail = |at: String, message: String| ImportError {
        file: file.to_owned(),
        at,
        message,
    };
    let mut root: Value =
        serde_json::from_slice(bytes).map_err(|e| fail(format!("line {}", e.line()), e.to_string()))?;
    strip_comments(&mut root);
    let items = match root {
        Value::Array(items) => items,
        obj @ Value::Object(_) => vec![obj],
        _ => {
            return Err(fail(
                "top level".into(),
                "expected an object or an array of objects".into(),
            ))
        }
    };
    let mut batch = Batch::default();
    for (i, item) in items.into_iter().enumerate() {
        let at = format!("item {i}");
        let Value::Object(map) = &item else {
            return Err(fail(at, "expected an object".into()));
        };
        if map.contains_key("dimensions") {
            let d: Dataset = serde_json::from_value(item).map_err(|e| fail(at, format!("dataset: {e}")))?;
            batch.datasets.push(d);
        } else if map.contains_key("observations") {
            let r: ReleaseDraft = serde_json::from_value(item).map_err(|e| fail(at, format!("release: {e}")))?;
            batch.releases.push(r);
        } else {
            return Err(fail(
                at,
                "neither a dataset (no `dimensions`) nor a release (no `observations`)".into(),
            ));
        }
    }
    Ok(batch)
}

const CSV_COLUMNS: [&str; 10] = [
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

/// Parses a CSV release file (see the module docs for its columns).
pub fn parse_csv(file: &str, bytes: &[u8]) -> Result<Batch, ImportError> {
    let fail = |at: String, message: String| ImportError {
        file: file.to_owned(),
        at,
        message,
    };
    let mut reader = csv::ReaderBuilder::new().trim(csv::Trim::All).from_reader(bytes);
    let headers = reader
        .headers()
        .map_err(|e| fail("header".into(), e.to_string()))?
        .clone();
    let mut col = HashMap::new();
    for (i, h) in headers.iter().enumerate() {
        if !CSV_COLUMNS.contains(&h) {
            return Err(fail(
                "header".into(),
                format!("unknown column `{h}`; expected {}", CSV_COLUMNS.join(",")),
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
    // Releases in order of first appearance, keyed by their release_id cell.
    let mut order: Vec<(String, usize, ReleaseDraft)> = Vec::new();
    let mut by_id: HashMap<String, usize> = HashMap::new();
    for (n, row) in reader.records().enumerate() {
        let line = n + 2;
        let at = || format!("line {line}");
        let row = row.map_err(|e| fail(at(), e.to_string()))?;
        let get = |c: &str| col.get(c).and_then(|&i| row.get(i)).unwrap_or("");
        let rid = get("release_id").to_owned();
        let status = ReleaseStatus::parse(get("status")).ok_or_else(|| {
            fail(
                at(),
                format!("status `{}` is not PRELIMINARY, REVISED or FINAL", get("status")),
            )
        })?;
        let published_at = get("published_at").parse().map_err(|e| {
            fail(
                at(),
                format!("published_at `{}` is not an RFC 3339 time: {e}", get("published_at")),
            )
        })?;
        let id = if rid.is_empty() {
            None
        } else {
            Some(
                rid.parse()
                    .map_err(|e| fail(at(), format!("release_id `{rid}` is not a UUID: {e}")))?,
            )
        };
        let source = Some(get("source").to_owned()).filter(|s| !s.is_empty());
        let header = ReleaseDraft {
            id,
            dataset: get("dataset").to_owned(),
            status,
            title: get("title").to_owned(),
            published_at,
            source,
            observations: Vec::new(),
        };
        let slot = *by_id.entry(rid.clone()).or_insert_with(|| {
            order.push((rid.clone(), line, header.clone()));
            order.len() - 1
        });
        let (_, first_line, draft) = &mut order[slot];
        for (field, same) in [
            ("dataset", draft.dataset == header.dataset),
            ("status", draft.status == header.status),
            ("title", draft.title == header.title),
            ("published_at", draft.published_at == header.published_at),
            ("source", draft.source == header.source),
        ] {
            if !same {
                return Err(fail(
                    at(),
                    format!("{field} differs from line {first_line} of the same release `{rid}`"),
                ));
            }
        }
        draft.observations.push(ObservationDraft {
            key: get("key").to_owned(),
            period: get("period").to_owned(),
            measure: Some(get("measure").to_owned()).filter(|m| !m.is_empty()),
            value: get("value").to_owned(),
        });
    }
    Ok(Batch {
        datasets: Vec::new(),
        releases: order.into_iter().map(|(_, _, d)| d).collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const CSV: &str = "dataset,release_id,status,title,published_at,source,key,period,measure,value
KR,6f1c1a52-3a39-4c8e-9d43-0d2f2b1a0001,PRELIMINARY,T,2025-09-03T00:00:00Z,,_T._T._T,2025-S1,BAL,-4530
KR,6f1c1a52-3a39-4c8e-9d43-0d2f2b1a0001,PRELIMINARY,T,2025-09-03T00:00:00Z,,IPR._T._T,2025H1,,-2450
KR,6f1c1a52-3a39-4c8e-9d43-0d2f2b1a0002,REVISED,U,2025-12-03T00:00:00Z,src,_T._T._T,2025-S1,BAL,-4610
";

    #[test]
    fn groups_csv_rows_into_releases() {
        let b = parse_csv("x.csv", CSV.as_bytes()).unwrap();
        assert_eq!(b.releases.len(), 2);
        assert_eq!(b.releases[0].observations.len(), 2);
        assert_eq!(b.releases[0].observations[1].measure, None);
        assert_eq!(b.releases[0].observations[1].value, "-2450");
        assert_eq!(b.releases[1].status, ReleaseStatus::Revised);
        assert_eq!(b.releases[1].source.as_deref(), Some("src"));
    }

    #[test]
    fn csv_errors_name_the_line() {
        let bad = CSV.replace("REVISED,U", "REVISED?,U");
        let e = parse_csv("x.csv", bad.as_bytes()).unwrap_err();
        assert_eq!(e.at, "line 4");
        assert!(e.message.contains("REVISED?"));
        let bad = CSV.replacen("PRELIMINARY,T,", "PRELIMINARY,Other title,", 1);
        let e = parse_csv("x.csv", bad.replacen("Other title", "T2", 1).as_bytes()).unwrap_err();
        assert!(e.message.contains("title differs from line 2"), "{e}");
        let e = parse_csv("x.csv", b"dataset,colour\n").unwrap_err();
        assert!(e.message.contains("unknown column `colour`"));
        let e = parse_csv("x.csv", CSV.replace("2025-09-03T00:00:00Z", "yesterday").as_bytes()).unwrap_err();
        assert!(e.message.contains("yesterday"));
    }

    #[test]
    fn json_items_are_told_apart_and_comments_ignored() {
        let json = r#"[
          {"$comment": "synthetic", "id": "KR", "name": "n", "publisher": "p", "unit": "USD",
           "unit_multiplier": 6, "dimensions": [], "measures": ["BAL"]},
          {"dataset": "KR", "status": "PRELIMINARY", "title": "t", "publishedAt": "2025-09-03T00:00:00Z",
           "observations": [{"key": "_T", "period": "2025-S1", "value": "-1.5", "$comment": "x"},
                            {"key": "_T", "period": "2025-S2", "value": 7}]}
        ]"#;
        let b = parse_json("f.json", json.as_bytes()).unwrap();
        assert_eq!(b.datasets.len(), 1);
        assert_eq!(b.releases[0].observations[1].value, "7");
    }

    #[test]
    fn json_refuses_floats_unknown_fields_and_garbage() {
        let release = |obs: &str| {
            format!(
                r#"{{"dataset": "KR", "status": "FINAL", "title": "t", "publishedAt": "2025-09-03T00:00:00Z", "observations": [{obs}]}}"#
            )
        };
        let e = parse_json(
            "f",
            release(r#"{"key": "_T", "period": "2025", "value": 1.5}"#).as_bytes(),
        )
        .unwrap_err();
        assert!(e.message.contains("write decimals as strings"), "{e}");
        let e = parse_json(
            "f",
            release(r#"{"key": "_T", "period": "2025", "value": "1", "colour": 1}"#).as_bytes(),
        )
        .unwrap_err();
        assert!(e.message.contains("colour"), "{e}");
        assert!(parse_json("f", b"{").is_err());
        assert!(parse_json("f", b"42").is_err());
        assert!(parse_json("f", b"[{}]").unwrap_err().message.contains("neither"));
    }
}
