//! The artefacts of the flows (a dataflow, its data structure, code lists and concept
//! scheme), how they refer to one another, and which of them answer a query: what every
//! structure format writes.

use super::query::{References, Resource, StructureQuery};
use crate::domain::dataset::KNOWN_MEASURES;
use crate::sdmx::dsd::{
    measure_name, Flow, FREQ, FREQ_CODES, MEASURE, OBS_ATTRIBUTES, OBS_STATUS_CODES, OBS_VALUE, SERIES_ATTRIBUTES,
    TIME_PERIOD, VERSION,
};
use crate::sdmx::error::SdmxError;
use crate::sdmx::query::shorten;

/// Which code list of a flow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum List {
    Freq,
    Dimension(usize),
    Measure,
    ObsStatus,
}

/// One artefact: its kind, the flow it comes from and, for code lists, which one.
#[derive(Debug, Clone, Copy)]
pub(super) struct Artefact {
    pub resource: Resource,
    pub flow: usize,
    pub list: Option<List>,
}

/// What a code list or concept scheme is partial to: the items asked for.
pub(super) struct Ctx<'q> {
    pub items: Option<&'q [String]>,
    /// Only the items the DSD uses (`referencepartial`).
    pub partial: bool,
}

impl Artefact {
    pub(super) fn id(&self, flows: &[Flow]) -> String {
        let f = &flows[self.flow];
        match (self.resource, self.list) {
            (Resource::Codelist, Some(List::Freq)) => "CL_FREQ".into(),
            (Resource::Codelist, Some(List::Measure)) => "CL_MEASURE".into(),
            (Resource::Codelist, Some(List::ObsStatus)) => "CL_OBS_STATUS".into(),
            (Resource::Codelist, Some(List::Dimension(i))) => f.codelist_id(&f.def.dimensions[i].id),
            (Resource::ConceptScheme, _) => f.concept_scheme_id(),
            _ => f.id().to_owned(),
        }
    }
    pub(super) fn agency<'f>(&self, flows: &'f [Flow]) -> &'f str {
        &flows[self.flow].agency
    }
}

/// Every artefact of `flow` of one kind.
fn artefacts_of(resource: Resource, flow: usize, dimensions: usize) -> Vec<Artefact> {
    let one = |list| Artefact { resource, flow, list };
    match resource {
        Resource::Codelist => {
            let mut out = vec![one(Some(List::Freq))];
            out.extend((0..dimensions).map(|i| one(Some(List::Dimension(i)))));
            out.push(one(Some(List::Measure)));
            out.push(one(Some(List::ObsStatus)));
            out
        }
        _ => vec![one(None)],
    }
}

/// The artefacts `resource` refers to (children) and that refer to it (parents).
fn children(a: Artefact, dimensions: usize) -> Vec<Artefact> {
    match a.resource {
        Resource::Dataflow => artefacts_of(Resource::DataStructure, a.flow, dimensions),
        Resource::DataStructure => {
            let mut out = artefacts_of(Resource::Codelist, a.flow, dimensions);
            out.extend(artefacts_of(Resource::ConceptScheme, a.flow, dimensions));
            out
        }
        _ => Vec::new(),
    }
}

fn parents(a: Artefact, dimensions: usize) -> Vec<Artefact> {
    match a.resource {
        Resource::DataStructure => artefacts_of(Resource::Dataflow, a.flow, dimensions),
        Resource::Codelist | Resource::ConceptScheme => artefacts_of(Resource::DataStructure, a.flow, dimensions),
        _ => Vec::new(),
    }
}

/// One artefact of an answer: matched by the query, or come with it through `references`.
#[derive(Debug, Clone, Copy)]
pub(super) struct Entry {
    pub artefact: Artefact,
    pub referenced: bool,
}

/// The artefacts that answer `query`, sorted by resource type; 404 when nothing matches.
pub(super) fn select(query: &StructureQuery, flows: &[Flow]) -> Result<Vec<Entry>, SdmxError> {
    let wanted = |list: &Option<Vec<String>>, v: &str| list.as_ref().is_none_or(|l| l.iter().any(|x| x == v));
    let mut matched: Vec<Artefact> = Vec::new();
    for &resource in &query.resources {
        for (i, f) in flows.iter().enumerate() {
            for a in artefacts_of(resource, i, f.def.dimensions.len()) {
                if wanted(&query.agencies, a.agency(flows))
                    && wanted(&query.ids, &a.id(flows))
                    && query.versions.admits(VERSION)
                {
                    matched.push(a);
                }
            }
        }
    }
    // Item queries: the item schemes that hold one of the items.
    if let Some(items) = query.items.as_deref() {
        matched.retain(|a| has_any_item(*a, flows, items));
    }
    if matched.is_empty() {
        return Err(SdmxError::no_results(format!(
            "no {} matches {}/{}/{}{}",
            query
                .resources
                .iter()
                .map(|r| resource_name(*r))
                .collect::<Vec<_>>()
                .join(","),
            list_text(&query.agencies),
            list_text(&query.ids),
            query.versions.text(),
            if query.versions.admits(VERSION) {
                String::new()
            } else {
                format!(": every artefact here has version {VERSION} only")
            }
        )));
    }
    let mut referenced: Vec<Artefact> = Vec::new();
    let dims = |a: &Artefact| flows[a.flow].def.dimensions.len();
    for a in &matched {
        for references in &query.references {
            let mut down = Vec::new();
            let mut up = Vec::new();
            match references {
                References::None => {}
                References::Parents => up = parents(*a, dims(a)),
                References::Ancestors => {
                    let mut frontier = std::collections::VecDeque::from(parents(*a, dims(a)));
                    while let Some(p) = frontier.pop_front() {
                        frontier.extend(parents(p, dims(&p)));
                        up.push(p);
                    }
                }
                References::ParentsAndSiblings => {
                    up = parents(*a, dims(a));
                    for p in up.clone() {
                        down.extend(children(p, dims(&p)));
                    }
                }
                References::Children => down = children(*a, dims(a)),
                References::Descendants | References::All | References::Only(_) => {
                    // Breadth first, so artefacts keep their order (the code lists in key order).
                    let mut frontier = std::collections::VecDeque::from(children(*a, dims(a)));
                    while let Some(c) = frontier.pop_front() {
                        frontier.extend(children(c, dims(&c)));
                        down.push(c);
                    }
                    if matches!(references, References::All | References::Only(_)) {
                        up = parents(*a, dims(a));
                        for p in up.clone() {
                            down.extend(children(p, dims(&p)));
                        }
                    }
                }
            }
            for r in up.into_iter().chain(down) {
                if let References::Only(kind) = references {
                    if r.resource != *kind {
                        continue;
                    }
                }
                referenced.push(r);
            }
        }
    }
    let key = |a: &Artefact| (a.resource, a.agency(flows).to_owned(), a.id(flows));
    let mut all: Vec<Entry> = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for (a, is_ref) in matched
        .iter()
        .map(|a| (*a, false))
        .chain(referenced.iter().map(|a| (*a, true)))
    {
        if seen.insert(key(&a)) {
            all.push(Entry {
                artefact: a,
                referenced: is_ref,
            });
        }
    }
    all.sort_by_key(|e| e.artefact.resource);
    Ok(all)
}

fn list_text(l: &Option<Vec<String>>) -> String {
    l.as_ref().map_or("all".into(), |v| shorten(&v.join("+")))
}

pub(super) fn resource_name(r: Resource) -> &'static str {
    match r {
        Resource::Dataflow => "dataflow",
        Resource::DataStructure => "datastructure",
        Resource::Codelist => "codelist",
        Resource::ConceptScheme => "conceptscheme",
    }
}

/// `(id, name, parent)` of every item of a code list or concept scheme.
pub(super) fn items(a: Artefact, flows: &[Flow]) -> Vec<(String, String, Option<String>)> {
    let f = &flows[a.flow];
    let plain = |pairs: &[(&str, &str)]| {
        pairs
            .iter()
            .map(|(c, n)| (c.to_string(), n.to_string(), None))
            .collect()
    };
    match (a.resource, a.list) {
        (Resource::Codelist, Some(List::Freq)) => plain(&FREQ_CODES),
        (Resource::Codelist, Some(List::ObsStatus)) => plain(&OBS_STATUS_CODES),
        (Resource::Codelist, Some(List::Measure)) => KNOWN_MEASURES
            .iter()
            .map(|m| (m.to_string(), measure_name(m).to_owned(), None))
            .collect(),
        (Resource::Codelist, Some(List::Dimension(i))) => f.def.dimensions[i]
            .codes
            .iter()
            .map(|c| (c.code.clone(), c.label.clone(), c.parent.clone()))
            .collect(),
        (Resource::ConceptScheme, _) => concepts(f).into_iter().map(|(id, name)| (id, name, None)).collect(),
        _ => Vec::new(),
    }
}

/// The concepts of a flow: every component of its DSD.
fn concepts(f: &Flow) -> Vec<(String, String)> {
    let mut out = vec![(FREQ.to_owned(), "Frequency".to_owned())];
    out.extend(f.def.dimensions.iter().map(|d| (d.id.clone(), d.label.clone())));
    out.push((MEASURE.into(), "Measure".into()));
    out.push((TIME_PERIOD.into(), "Time period".into()));
    out.push((OBS_VALUE.into(), "Observation value".into()));
    for (id, name) in SERIES_ATTRIBUTES.iter().chain(&OBS_ATTRIBUTES) {
        out.push((id.to_string(), name.to_string()));
    }
    out
}

fn has_any_item(a: Artefact, flows: &[Flow], wanted: &[String]) -> bool {
    matches!(a.resource, Resource::Codelist | Resource::ConceptScheme)
        && items(a, flows).iter().any(|(id, _, _)| wanted.contains(id))
}

pub(super) fn urn(a: Artefact, flows: &[Flow]) -> String {
    let class = match a.resource {
        Resource::Dataflow => "datastructure.Dataflow",
        Resource::DataStructure => "datastructure.DataStructure",
        Resource::Codelist => "codelist.Codelist",
        Resource::ConceptScheme => "conceptscheme.ConceptScheme",
    };
    format!(
        "urn:sdmx:org.sdmx.infomodel.{class}={}:{}({VERSION})",
        a.agency(flows),
        a.id(flows)
    )
}

/// The items an item scheme keeps: `None` for all; else the items asked for and their
/// ancestors (SDMX-REST: a nested item comes with its parents).
pub(super) fn kept_items(all_items: &[(String, String, Option<String>)], ctx: &Ctx) -> Option<Vec<String>> {
    if ctx.partial {
        return None;
    }
    ctx.items.map(|wanted| {
        let mut keep: Vec<String> = Vec::new();
        for w in wanted {
            let mut cur = all_items.iter().find(|(id, _, _)| id == w);
            while let Some((id, _, parent)) = cur {
                if !keep.contains(id) {
                    keep.push(id.clone());
                }
                cur = parent
                    .as_ref()
                    .and_then(|p| all_items.iter().find(|(id, _, _)| id == p));
            }
        }
        keep
    })
}

/// The name of an artefact.
pub(super) fn title(a: Artefact, flows: &[Flow]) -> String {
    let f = &flows[a.flow];
    match (a.resource, a.list) {
        (Resource::Dataflow | Resource::DataStructure, _) => f.def.name.clone(),
        (Resource::ConceptScheme, _) => format!("Concepts of {}", f.def.name),
        (_, Some(List::Freq)) => "Frequency".into(),
        (_, Some(List::Measure)) => "Measure".into(),
        (_, Some(List::ObsStatus)) => "Observation status".into(),
        (_, Some(List::Dimension(i))) => f.def.dimensions[i].label.clone(),
        _ => String::new(),
    }
}
