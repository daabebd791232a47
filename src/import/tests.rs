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
    assert_eq!(b.releases[0].observations[1].value.to_string(), "-2450");
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

/// Rows of a release that resume after another release are refused, naming the line
/// where they resume and the one where the release began; so are rows without an id
/// after another release.
#[test]
fn csv_rows_of_a_release_must_be_contiguous() {
    let mut lines: Vec<&str> = CSV.lines().collect();
    let resumed = lines[2];
    lines.remove(2);
    lines.push(resumed);
    let split = lines.join("\n");
    let e = parse_csv("x.csv", split.as_bytes()).unwrap_err();
    assert_eq!(e.at, "line 4", "{e}");
    assert!(
        e.message
            .contains("release `6f1c1a52-3a39-4c8e-9d43-0d2f2b1a0001` began at line 2")
            && e.message.contains("contiguous"),
        "{e}"
    );
    // The same id in capitals is the same release.
    let upper = split.replacen(
        "6f1c1a52-3a39-4c8e-9d43-0d2f2b1a0001",
        "6F1C1A52-3A39-4C8E-9D43-0D2F2B1A0001",
        1,
    );
    assert!(parse_csv("x.csv", upper.as_bytes())
        .unwrap_err()
        .message
        .contains("contiguous"));
    let no_ids = CSV.replace("6f1c1a52-3a39-4c8e-9d43-0d2f2b1a0001", "").replace(
        "REVISED,U,2025-12-03T00:00:00Z,src",
        "PRELIMINARY,T,2025-09-03T00:00:00Z,",
    );
    assert_eq!(parse_csv("x.csv", no_ids.as_bytes()).unwrap().releases.len(), 2);
    let e = parse_csv(
        "x.csv",
        format!("{no_ids}KR,,PRELIMINARY,T,2025-09-03T00:00:00Z,,_T._T._T,2025-S2,BAL,1\n").as_bytes(),
    )
    .unwrap_err();
    assert_eq!(e.at, "line 5", "{e}");
    assert!(e.message.contains("release `` began at line 2"), "{e}");
}

/// A reader that gives `text`, then fails.
struct FailsAfter<'a>(&'a [u8]);

impl std::io::Read for FailsAfter<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.0.is_empty() {
            return Err(std::io::Error::other("disk on fire"));
        }
        let n = buf.len().min(self.0.len());
        buf[..n].copy_from_slice(&self.0[..n]);
        self.0 = &self.0[n..];
        Ok(n)
    }
}

/// A release is handed on as soon as the next one begins, before the rest of the file is
/// read: here the file fails after the first row of the second release.
#[test]
fn csv_releases_are_handed_on_before_the_file_is_read() {
    let mut seen = Vec::new();
    let e = for_each_csv_release("x.csv", FailsAfter(CSV.as_bytes()), |r, o| {
        seen.push((r.observations.len(), o.place));
        Ok(())
    })
    .unwrap_err();
    assert!(e.message.contains("disk on fire"), "{e}");
    assert_eq!(seen, vec![(2, Place::Lines(vec![2, 3]))]);
}

/// One release may not grow past the ledger's limit: the row beyond it is refused before
/// it is held (rows are made as they are read, so this test holds one release, not a file).
#[test]
fn a_csv_release_is_bounded() {
    struct Rows {
        next: usize,
        pending: Vec<u8>,
    }
    impl std::io::Read for Rows {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            while self.pending.len() < buf.len() && self.next <= MAX_OBSERVATIONS_PER_RELEASE + 5 {
                if self.next == 0 {
                    self.pending
                        .extend_from_slice(b"dataset,status,title,published_at,key,period,value\n");
                } else {
                    self.pending
                        .extend_from_slice(b"KR,FINAL,T,2025-09-03T00:00:00Z,_T,2025,1\n");
                }
                self.next += 1;
            }
            let n = buf.len().min(self.pending.len());
            buf[..n].copy_from_slice(&self.pending[..n]);
            self.pending.drain(..n);
            Ok(n)
        }
    }
    let rows = Rows {
        next: 0,
        pending: Vec::new(),
    };
    let e = for_each_csv_release("big.csv", rows, |_, _| Ok(())).unwrap_err();
    assert_eq!(e.at, format!("line {}", MAX_OBSERVATIONS_PER_RELEASE + 2), "{e}");
    assert!(e.message.contains("split it"), "{e}");
}

/// A CSV release that differs from the one checked (the file changed between the two
/// readings) is not recorded, nor anything after it; the releases before it are.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_csv_release_changed_since_its_check_is_not_recorded() {
    let (ledger, _) = Ledger::open(
        std::sync::Arc::new(crate::store::MemoryStore::new()),
        crate::ledger::OpenOptions::default(),
    )
    .unwrap();
    ledger.define_dataset(crate::generate::dataset(), "t").await.unwrap();
    let checked: Vec<ReleaseDraft> = crate::generate::Generator::new(3, 10, 1).collect();
    let mut now = checked.clone();
    now[1].observations[4].value = "1234".into();
    let mut w = CsvWriter::new(Vec::new()).unwrap();
    now.iter().for_each(|r| w.release(r).unwrap());
    let digests = checked.iter().map(release_digest).collect();
    let mut record = Record::new(&ledger, "t", Vec::new()).await.unwrap();
    record
        .csv_releases("x.csv".into(), CsvInput::Bytes(w.finish().unwrap()), Some(digests))
        .await;
    assert_eq!(
        record.errors,
        vec!["x.csv: line 12: changed since it was checked; not recorded from here".to_owned()]
    );
    assert_eq!(
        ledger.read().head().revision,
        2,
        "the dataset and the first release only"
    );
}

/// What `CsvWriter` writes reads back as the same releases.
#[test]
fn csv_written_reads_back_the_same() {
    let releases: Vec<ReleaseDraft> = crate::generate::Generator::new(5, 40, 7).collect();
    let mut w = CsvWriter::new(Vec::new()).unwrap();
    releases.iter().for_each(|r| w.release(r).unwrap());
    let bytes = w.finish().unwrap();
    let batch = parse_csv("g.csv", &bytes).unwrap();
    assert_eq!(batch.releases, releases);
    assert_eq!(batch.origins[1].place, Place::Lines((42..82).collect()));
}

/// A CSV row over the limit is refused naming its line, before more of it is read; a row
/// just under it is read; quoted values are cut at 200 bytes.
#[test]
fn csv_rows_are_bounded_and_quoted_briefly() {
    let head = "dataset,status,title,published_at,key,period,value\n";
    let row = |title: &str| format!("KR,FINAL,{title},2025-09-03T00:00:00Z,_T,2025,1\n");
    /// Gives `text` and counts what was read of it.
    struct Counted<'a>(&'a [u8], usize);
    impl std::io::Read for Counted<'_> {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            let n = buf.len().min(self.0.len() - self.1);
            buf[..n].copy_from_slice(&self.0[self.1..self.1 + n]);
            self.1 += n;
            Ok(n)
        }
    }
    let huge = format!("{head}{}{}{}", row("a"), row(&"t".repeat(50 << 20)), row("b"));
    let mut input = Counted(huge.as_bytes(), 0);
    let e = for_each_csv_release("big.csv", &mut input, |_, _| Ok(())).unwrap_err();
    assert_eq!(e.at, "line 3", "{e}");
    assert!(e.message.contains("longer than the limit of 1048576 bytes"), "{e}");
    assert!(input.1 < (MAX_CSV_ROW_BYTES + (64 << 10)), "read {} bytes", input.1);
    let near = format!("{head}{}", row(&"t".repeat(MAX_CSV_ROW_BYTES - 100)));
    let mut seen = 0;
    for_each_csv_release("near.csv", near.as_bytes(), |_, _| {
        seen += 1;
        Ok(())
    })
    .unwrap();
    assert_eq!(seen, 1);
    let bad_status = format!("{head}KR,{},t,2025-09-03T00:00:00Z,_T,2025,1\n", "S".repeat(100_000));
    let e = parse_csv("s.csv", bad_status.as_bytes()).unwrap_err();
    assert!(e.to_string().len() < 500, "{e}");
    assert!(e.message.contains("… (100000 bytes)"), "{e}");
}

/// A JSON string over the limit is refused naming its line; serde's messages quoting a
/// value are cut.
#[test]
fn json_strings_are_bounded_and_quoted_briefly() {
    let release = |status: &str, title: &str| {
        format!(
            "[\n{{\"dataset\": \"KR\", \"status\": \"{status}\", \"title\": \"{title}\", \
             \"publishedAt\": \"2025-09-03T00:00:00Z\", \"observations\": []}}]"
        )
    };
    let e = parse_json("f.json", release("FINAL", &"t".repeat(5 << 20)).as_bytes()).unwrap_err();
    assert_eq!(e.at, "line 2", "{e}");
    assert!(
        e.message
            .contains("a JSON string of 5242880 bytes is longer than the limit of 65536 bytes"),
        "{e}"
    );
    let e = parse_json("f.json", release(&"S".repeat(60_000), "t").as_bytes()).unwrap_err();
    assert!(e.to_string().len() < 1000, "{e}");
    assert!(e.message.contains("… (60000 bytes)"), "{e}");
    let key = format!("[{{\"{}\": 1}}]", "k".repeat(70_000));
    let e = parse_json("f.json", key.as_bytes()).unwrap_err();
    assert!(e.message.contains("member name of 70000 bytes"), "{e}");
    let top = format!("\"{}\"", "x".repeat(100_000));
    let e = parse_json("f.json", top.as_bytes()).unwrap_err();
    assert!(e.to_string().len() < 1000, "{e}");
}

#[test]
fn brief_cuts_long_quotes_only() {
    assert_eq!(
        brief("unknown field `x`, expected `y`"),
        "unknown field `x`, expected `y`"
    );
    let long = format!(
        "invalid type: string \"{}\\\"{}\", expected a sequence",
        "a".repeat(300),
        "b".repeat(10)
    );
    let short = brief(&long);
    assert!(
        short.starts_with(&format!("invalid type: string \"{}… (", "a".repeat(200))),
        "{short}"
    );
    assert!(short.ends_with("\", expected a sequence"), "{short}");
    assert!(brief(&"z".repeat(5000)).len() < 1000);
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
    assert_eq!(b.releases[0].observations[1].value.to_string(), "7");
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
