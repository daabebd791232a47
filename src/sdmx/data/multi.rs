//! A data answer over several dataflows (SDMX-REST 2.2 data queries whose agency or resource
//! id is `*` or a list): one message holding one answer per dataflow, each written page by
//! page as a lone answer would be, inside one header and one footer naming every structure.

use std::fmt::Write;
use std::sync::Arc;

use axum::body::Body;
use axum::http::HeaderMap;
use axum::response::Response;
use chrono::Utc;

use super::super::{etag, plan, resolve_key, respond, CacheFacts, DataRequest, Sdmx};
use super::{escape, header_time, prepare, Answer, DataFormat, Kind, SdmxError};
use super::{COMMON3_NS, MESSAGE3_NS, SS3_NS, TIME_PERIOD, XSI_NS};
use crate::sdmx::dsd::Flow;

/// One dataflow of the query: its request, or why it contributes nothing.
pub type FlowQuery = (String, Result<DataRequest, String>);

/// Answers `flows` in one message. A dataflow the key or the query selects nothing of is left
/// out; when every one is, 404 saying why for each. `--sdmx-max-observations` counts the
/// figures of all of them together.
pub(in crate::sdmx) async fn serve(
    sdmx: Arc<Sdmx>,
    flows: Vec<FlowQuery>,
    format: DataFormat,
    identity: &str,
    headers: &HeaderMap,
) -> Result<Response, SdmxError> {
    let now = Utc::now();
    let mut planned = Vec::new();
    let mut skipped: Vec<String> = Vec::new();
    for (id, request) in flows {
        let mut request = match request {
            Ok(r) => r,
            Err(why) => {
                skipped.push(format!("{id}: {why}"));
                continue;
            }
        };
        // A key naming a code this dataflow lacks selects nothing of it.
        if !request.keys.is_empty() {
            let projection = sdmx.ledger.read_in_place();
            let Some(view) = projection.dataset(&id) else { continue };
            let flow = Flow::new(&view.def);
            let dims = flow.key_dimensions();
            let mut why = None;
            request.keys.retain(|k| match resolve_key(view, &dims, k) {
                Ok(_) => true,
                Err(e) => {
                    why.get_or_insert(e.message);
                    false
                }
            });
            if request.keys.is_empty() {
                skipped.push(format!("{id}: {}", why.unwrap_or_default()));
                continue;
            }
        }
        let pinned = request.common.known_at.is_some_and(|k| k <= now);
        match plan(&sdmx.ledger, &request, pinned, now) {
            Ok(p) => planned.push((request, p, pinned)),
            Err(e) if e.kind == Kind::NoResults => skipped.push(format!("{id}: {}", e.message)),
            Err(e) => return Err(e),
        }
    }
    let nothing = |skipped: &[String]| {
        SdmxError::no_results(format!(
            "no dataflow has data matching the query ({})",
            skipped.join("; ")
        ))
    };
    if planned.is_empty() {
        return Err(nothing(&skipped));
    }
    let pinned = planned.iter().all(|p| p.2);
    let head = planned.iter().map(|p| p.1.head).max().unwrap_or(0);
    let mut parts = vec![
        "data-multi".to_owned(),
        identity.to_owned(),
        format.media_type().to_owned(),
    ];
    for (_, p, _) in &planned {
        parts.push(format!("{}:{:?}:{}", p.dataset, p.bound, p.def_revision));
    }
    parts.push(if pinned { String::new() } else { head.to_string() });
    let tag = etag(&parts.iter().map(String::as_str).collect::<Vec<_>>());
    let policy = CacheFacts::new(tag, pinned, head, None);
    if policy.matches(headers) {
        return respond(|| Ok(Body::empty()), format.media_type(), policy, headers);
    }

    let selections: Vec<_> = planned
        .into_iter()
        .map(|(request, p, _)| p.into_selection(&request))
        .collect();
    let ledger = sdmx.ledger.clone();
    let limit = sdmx.config.max_observations;
    let answer = tokio::task::spawn_blocking(move || {
        let mut answers = Vec::new();
        let mut used: u64 = 0;
        for (selection, agency, prepared) in selections {
            let id = selection.dataset.clone();
            match prepare(&ledger, selection, format, agency, limit - used, prepared) {
                Ok(a) => {
                    used += a.counted;
                    answers.push(a);
                }
                Err(e) if e.kind == Kind::NoResults => skipped.push(format!("{id}: {}", e.message)),
                Err(e) if e.kind == Kind::TooLarge => {
                    return Err(SdmxError::new(
                        Kind::TooLarge,
                        format!(
                            "the answer would hold more than {limit} observations across the dataflows it reads (already {used} before `{id}`); narrow the key or the periods, or use firstNObservations/lastNObservations"
                        ),
                    ))
                }
                Err(e) => return Err(e),
            }
        }
        if answers.is_empty() {
            return Err(nothing(&skipped));
        }
        Ok(Multi::new(answers, format))
    })
    .await
    .map_err(|e| SdmxError::new(Kind::Internal, e.to_string()))??;
    let body = super::super::chunked_body(answer, Multi::next_chunk);
    respond(|| Ok(body), format.media_type(), policy, headers)
}

enum Step {
    Header,
    Body,
    Footer,
    Done,
}

/// The answers of several dataflows, written one after the other in one message.
pub struct Multi {
    answers: Vec<Answer>,
    format: DataFormat,
    current: usize,
    step: Step,
}

impl Multi {
    fn new(mut answers: Vec<Answer>, format: DataFormat) -> Self {
        let several = answers.len() > 1;
        for (i, a) in answers.iter_mut().enumerate() {
            a.framed = !several;
            a.writer.structure = i;
            a.writer.multi = several;
        }
        let step = if several { Step::Header } else { Step::Body };
        Multi {
            answers,
            format,
            current: 0,
            step,
        }
    }

    /// The next piece of the body; `None` at the end.
    pub fn next_chunk(&mut self) -> Option<Result<String, SdmxError>> {
        let mut out = String::new();
        match self.step {
            Step::Header => {
                self.header(&mut out);
                self.step = Step::Body;
            }
            Step::Body => loop {
                let Some(answer) = self.answers.get_mut(self.current) else {
                    self.step = if self.answers.len() > 1 {
                        Step::Footer
                    } else {
                        Step::Done
                    };
                    return self.next_chunk();
                };
                if let Some(chunk) = answer.next_chunk() {
                    return Some(chunk);
                }
                let next = answer.writer.first_dataset + answer.writer.datasets;
                self.current += 1;
                if let Some(a) = self.answers.get_mut(self.current) {
                    a.writer.first_dataset = next;
                }
            },
            Step::Footer => {
                self.footer(&mut out);
                self.step = Step::Done;
            }
            Step::Done => return None,
        }
        Some(Ok(out))
    }

    fn header(&mut self, out: &mut String) {
        match self.format {
            DataFormat::Csv2 { labels } => {
                let columns = csv_union(&self.answers);
                out.push_str("STRUCTURE,STRUCTURE_ID,ACTION");
                for (id, name) in &columns {
                    out.push(',');
                    if labels && !name.is_empty() {
                        super::csv_field(out, &format!("{id}: {name}"));
                    } else {
                        out.push_str(id);
                    }
                }
                out.push_str("\r\n");
                let ids: Vec<String> = columns.into_iter().map(|(id, _)| id).collect();
                for a in &mut self.answers {
                    a.writer.csv_union = Some(ids.clone());
                }
            }
            DataFormat::Ml3 => {
                let writers: Vec<_> = self.answers.iter().map(|a| &a.writer).collect();
                let _ = write!(
                    out,
                    "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<message:StructureSpecificData xmlns:message=\"{MESSAGE3_NS}\" xmlns:common=\"{COMMON3_NS}\" xmlns:xsi=\"{XSI_NS}\" xmlns:ss=\"{SS3_NS}\""
                );
                for w in &writers {
                    let _ = write!(out, " xmlns:{}=\"{}\"", w.ns_prefix(), escape(&w.ss_namespace()));
                }
                let _ = write!(
                    out,
                    ">\n<message:Header><message:ID>DATA</message:ID><message:Test>false</message:Test><message:Prepared>{}</message:Prepared><message:Sender id=\"TRADELEDGER\"/>",
                    header_time(writers[0].prepared)
                );
                for w in &writers {
                    let _ = write!(
                        out,
                        "<message:Structure structureID=\"{}\" namespace=\"{}\" dimensionAtObservation=\"{}\"><common:StructureUsage>{}</common:StructureUsage></message:Structure>",
                        w.structure_ref(),
                        escape(&w.ss_namespace()),
                        w.obs_dim_id(),
                        escape(&w.flow().dataflow_urn())
                    );
                }
                out.push_str("</message:Header>\n");
            }
            // SDMX-JSON's header names no structure.
            _ => self.answers[0].writer.header(out),
        }
    }

    fn footer(&self, out: &mut String) {
        match self.format {
            DataFormat::Json2 => {
                let structures: Vec<String> = self.answers.iter().map(|a| a.writer.json_structure()).collect();
                let _ = writeln!(out, "],\n\"structures\":[{}]}}}}", structures.join(",\n"));
            }
            DataFormat::Ml3 => out.push_str("</message:StructureSpecificData>\n"),
            _ => {}
        }
    }
}

/// The SDMX-CSV 2.0 columns after ACTION of a message holding several dataflows, as the
/// SDMX-CSV 2.0 guide orders them: the dimensions of the first structure, then the further
/// dimensions of the next ones, then the measures, then the attributes, each once.
fn csv_union(answers: &[Answer]) -> Vec<(String, String)> {
    let mut dimensions: Vec<(String, String)> = Vec::new();
    let mut rest: Vec<(String, String)> = Vec::new();
    for a in answers {
        let columns = a.writer.csv_columns();
        let split = columns
            .iter()
            .position(|(id, _)| id == TIME_PERIOD)
            .map_or(columns.len(), |p| p + 1);
        for (i, c) in columns.into_iter().enumerate().skip(1) {
            let into = if i < split { &mut dimensions } else { &mut rest };
            if !into.iter().any(|(id, _)| *id == c.0) {
                into.push(c);
            }
        }
    }
    dimensions.extend(rest);
    dimensions
}
