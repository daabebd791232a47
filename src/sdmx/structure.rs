//! Structure queries (`dataflow`, `datastructure`, `codelist`, `conceptscheme`) and their
//! SDMX-ML 2.1 Structure messages.

use std::fmt::Write;

use super::dsd::{
    measure_name, Flow, FREQ, FREQ_CODES, MEASURE, OBS_ATTRIBUTES, OBS_STATUS_CODES, OBS_VALUE, SERIES_ATTRIBUTES,
    TIME_PERIOD, VERSION,
};
use super::error::SdmxError;
use super::query::{shorten, MAX_LIST};
use super::xml::{escape, header_time, COMMON_NS, MESSAGE_NS, STRUCTURE_NS, XSI_NS};
use crate::domain::dataset::KNOWN_MEASURES;

/// The structure resources this service answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Resource {
    Dataflow,
    Codelist,
    ConceptScheme,
    DataStructure,
}

impl Resource {
    pub fn parse(s: &str) -> Option<Resource> {
        Some(match s {
            "dataflow" => Resource::Dataflow,
            "datastructure" => Resource::DataStructure,
            "codelist" => Resource::Codelist,
            "conceptscheme" => Resource::ConceptScheme,
            _ => return None,
        })
    }
}

/// The SDMX-REST 1.5 structure resources this service does not implement (501), as opposed
/// to paths that are no SDMX resource at all (404).
pub const NOT_IMPLEMENTED: [&str; 25] = [
    "metadatastructure",
    "categoryscheme",
    "hierarchicalcodelist",
    "organisationscheme",
    "agencyscheme",
    "dataproviderscheme",
    "dataconsumerscheme",
    "organisationunitscheme",
    "metadataflow",
    "reportingtaxonomy",
    "provisionagreement",
    "structureset",
    "process",
    "categorisation",
    "contentconstraint",
    "actualconstraint",
    "allowedconstraint",
    "attachmentconstraint",
    "transformationscheme",
    "rulesetscheme",
    "userdefinedoperatorscheme",
    "customtypescheme",
    "namepersonalisationscheme",
    "vtlmappingscheme",
    "structure",
];

/// `references`: which related artefacts come with the ones matched.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum References {
    None,
    Parents,
    ParentsAndSiblings,
    /// Parents, up to any level (SDMX-REST 2.2).
    Ancestors,
    Children,
    Descendants,
    All,
    /// Only related artefacts of this type.
    Only(Resource),
}

impl References {
    pub fn parse(s: &str) -> Result<Self, SdmxError> {
        Ok(match s {
            "none" => References::None,
            "parents" => References::Parents,
            "parentsandsiblings" => References::ParentsAndSiblings,
            "children" => References::Children,
            "descendants" => References::Descendants,
            "all" => References::All,
            other => match Resource::parse(other) {
                Some(r) => References::Only(r),
                // A type of artefact this service has none of: nothing comes with the match.
                None if NOT_IMPLEMENTED.contains(&other) => References::None,
                None => {
                    return Err(SdmxError::syntax(format!(
                        "parameter `references` must be none, parents, parentsandsiblings, children, descendants, all or a resource type, not `{}`",
                        shorten(other)
                    )))
                }
            },
        })
    }
}

/// `detail` of a structure query.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Detail {
    Full,
    AllStubs,
    ReferenceStubs,
    ReferencePartial,
    AllCompleteStubs,
    ReferenceCompleteStubs,
    /// SDMX-REST 2.2: as `full`, extended code lists left unresolved (this service has none).
    Raw,
}

impl Detail {
    pub fn parse(s: &str) -> Result<Self, SdmxError> {
        Ok(match s {
            "full" => Detail::Full,
            "allstubs" => Detail::AllStubs,
            "referencestubs" => Detail::ReferenceStubs,
            "referencepartial" => Detail::ReferencePartial,
            "allcompletestubs" => Detail::AllCompleteStubs,
            "referencecompletestubs" => Detail::ReferenceCompleteStubs,
            _ => {
                return Err(SdmxError::syntax(format!(
                    "parameter `detail` must be full, allstubs, referencestubs, referencepartial, allcompletestubs or referencecompletestubs, not `{}`",
                    shorten(s)
                )))
            }
        })
    }

    /// Whether an artefact is written as a stub: matched ones (`referenced == false`) or
    /// those that came through `references`.
    pub(super) fn stub(self, referenced: bool) -> bool {
        match self {
            Detail::Full | Detail::ReferencePartial | Detail::Raw => false,
            Detail::AllStubs | Detail::AllCompleteStubs => true,
            Detail::ReferenceStubs | Detail::ReferenceCompleteStubs => referenced,
        }
    }
}

/// A list path parameter: `None` for any (`all`, `*`, or left out), else the ids joined by
/// `+` (or `,`, as SDMX-REST 2 writes them).
pub fn id_list(what: &str, s: Option<&str>, any: &[&str]) -> Result<Option<Vec<String>>, SdmxError> {
    let Some(s) = s.filter(|s| !s.is_empty() && !any.contains(s)) else {
        return Ok(None);
    };
    let items: Vec<String> = s.split(['+', ',']).map(str::to_owned).collect();
    if items.len() > MAX_LIST {
        return Err(SdmxError::syntax(format!(
            "the {what} lists more than {MAX_LIST} values"
        )));
    }
    if items.iter().any(|i| i.is_empty() || i.len() > 128) {
        return Err(SdmxError::syntax(format!(
            "the {what} `{}` is not a list of ids",
            shorten(s)
        )));
    }
    Ok(Some(items))
}

/// Which versions a structure query asks for (every artefact has one, `VERSION`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Versions {
    /// The latest (SDMX-REST 1.5 `latest`, `all`, `*` or `~`; SDMX-REST 2.2 `*` or `~`).
    Latest,
    /// Exactly these (SDMX-REST 1.5).
    Exact(Vec<String>),
    /// SDMX-REST 2.2 version queries, checked when parsed; one admits `VERSION` or none does.
    Semantic(super::version::Wanted),
}

impl Versions {
    fn admits(&self, version: &str) -> bool {
        match self {
            Versions::Latest => true,
            Versions::Exact(list) => list.iter().any(|v| super::version::rest15_is(v, version)),
            Versions::Semantic(wanted) => wanted.admits,
        }
    }

    fn text(&self) -> String {
        match self {
            Versions::Latest => "latest".into(),
            Versions::Exact(v) => v.join("+"),
            Versions::Semantic(wanted) => wanted.text(),
        }
    }
}

/// A structure query, parsed.
#[derive(Debug, Clone)]
pub struct StructureQuery {
    /// The resource types asked for (SDMX-REST 2.2 `*`: all four).
    pub resources: Vec<Resource>,
    pub agencies: Option<Vec<String>>,
    pub ids: Option<Vec<String>>,
    pub versions: Versions,
    /// Items of a code list or concept scheme (none: all).
    pub items: Option<Vec<String>>,
    pub detail: Detail,
    /// Which related artefacts come too: the union of these.
    pub references: Vec<References>,
}

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

/// Answers a structure query over `flows` in `format`; 404 when nothing matches.
pub fn answer(
    query: &StructureQuery,
    flows: &[Flow],
    prepared: chrono::DateTime<chrono::Utc>,
    format: StructureFormat,
) -> Result<String, SdmxError> {
    let all = select(query, flows)?;
    Ok(match format {
        StructureFormat::Ml21 => write_ml21(query, flows, prepared, &all),
        StructureFormat::Ml30 => super::structure_formats::ml30(query, flows, prepared, &all),
        StructureFormat::Json20 => super::structure_formats::json20(query, flows, prepared, &all),
        StructureFormat::Json10 => super::structure_formats::json10(query, flows, prepared, &all),
    })
}

/// The SDMX-ML 2.1 Structure message.
fn write_ml21(
    query: &StructureQuery,
    flows: &[Flow],
    prepared: chrono::DateTime<chrono::Utc>,
    all: &[Entry],
) -> String {
    let ctx_items = query.items.as_deref();
    let mut out = String::with_capacity(16 * 1024);
    let _ = write!(
        out,
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<message:Structure xmlns:message=\"{MESSAGE_NS}\" \
         xmlns:structure=\"{STRUCTURE_NS}\" xmlns:common=\"{COMMON_NS}\" xmlns:xsi=\"{XSI_NS}\">\n\
         <message:Header><message:ID>STRUCTURE</message:ID><message:Test>false</message:Test>\
         <message:Prepared>{}</message:Prepared><message:Sender id=\"TRADELEDGER\"/></message:Header>\n\
         <message:Structures>\n",
        header_time(prepared)
    );
    let mut open: Option<Resource> = None;
    for Entry {
        artefact: a,
        referenced: is_ref,
    } in all
    {
        if open != Some(a.resource) {
            if let Some(r) = open {
                let _ = writeln!(out, "</structure:{}>", section(r));
            }
            let _ = writeln!(out, "<structure:{}>", section(a.resource));
            open = Some(a.resource);
        }
        let stub = query.detail.stub(*is_ref);
        let ctx = Ctx {
            items: if *is_ref { None } else { ctx_items },
            partial: *is_ref && query.detail == Detail::ReferencePartial,
        };
        write_artefact(&mut out, *a, flows, stub, &ctx);
    }
    if let Some(r) = open {
        let _ = writeln!(out, "</structure:{}>", section(r));
    }
    out.push_str("</message:Structures>\n</message:Structure>\n");
    out
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

fn section(r: Resource) -> &'static str {
    match r {
        Resource::Dataflow => "Dataflows",
        Resource::DataStructure => "DataStructures",
        Resource::Codelist => "Codelists",
        Resource::ConceptScheme => "Concepts",
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

fn name(out: &mut String, text: &str) {
    let _ = write!(out, "<common:Name xml:lang=\"en\">{}</common:Name>", escape(text));
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

fn write_artefact(out: &mut String, a: Artefact, flows: &[Flow], stub: bool, ctx: &Ctx) {
    let f = &flows[a.flow];
    let element = match a.resource {
        Resource::Dataflow => "Dataflow",
        Resource::DataStructure => "DataStructure",
        Resource::Codelist => "Codelist",
        Resource::ConceptScheme => "ConceptScheme",
    };
    let all_items = items(a, flows);
    let used = kept_items(&all_items, ctx);
    let partial = used.is_some();
    let _ = write!(
        out,
        "<structure:{element} id=\"{}\" agencyID=\"{}\" version=\"{VERSION}\" urn=\"{}\"",
        escape(&a.id(flows)),
        escape(&f.agency),
        escape(&urn(a, flows))
    );
    if stub {
        out.push_str(" isExternalReference=\"true\"");
    }
    if partial {
        out.push_str(" isPartial=\"true\"");
    }
    out.push('>');
    let title = title(a, flows);
    name(out, &title);
    if !stub {
        if let (Resource::Dataflow | Resource::DataStructure, Some(d)) = (a.resource, &f.def.description) {
            let _ = write!(
                out,
                "<common:Description xml:lang=\"en\">{}</common:Description>",
                escape(d)
            );
        }
        match a.resource {
            Resource::Dataflow => {
                let _ = write!(
                    out,
                    "<structure:Structure><Ref id=\"{}\" version=\"{VERSION}\" agencyID=\"{}\" package=\"datastructure\" class=\"DataStructure\"/></structure:Structure>",
                    escape(f.id()),
                    escape(&f.agency)
                );
            }
            Resource::DataStructure => write_components(out, f),
            Resource::Codelist | Resource::ConceptScheme => {
                let item = if a.resource == Resource::Codelist {
                    "Code"
                } else {
                    "Concept"
                };
                let class = if a.resource == Resource::Codelist {
                    "codelist.Code"
                } else {
                    "conceptscheme.Concept"
                };
                for (id, label, parent) in &all_items {
                    if used.as_ref().is_some_and(|u| !u.contains(id)) {
                        continue;
                    }
                    let _ = write!(
                        out,
                        "\n<structure:{item} id=\"{}\" urn=\"urn:sdmx:org.sdmx.infomodel.{class}={}:{}({VERSION}).{}\">",
                        escape(id),
                        escape(&f.agency),
                        escape(&a.id(flows)),
                        escape(id)
                    );
                    name(out, label);
                    if let Some(p) = parent {
                        let _ = write!(out, "<structure:Parent><Ref id=\"{}\"/></structure:Parent>", escape(p));
                    }
                    let _ = write!(out, "</structure:{item}>");
                }
            }
        }
    }
    let _ = writeln!(out, "</structure:{element}>");
}

fn concept_ref(out: &mut String, f: &Flow, id: &str) {
    let _ = write!(
        out,
        "<structure:ConceptIdentity><Ref id=\"{}\" maintainableParentID=\"{}\" maintainableParentVersion=\"{VERSION}\" agencyID=\"{}\" package=\"conceptscheme\" class=\"Concept\"/></structure:ConceptIdentity>",
        escape(id),
        escape(&f.concept_scheme_id()),
        escape(&f.agency)
    );
}

fn codelist_ref(out: &mut String, f: &Flow, codelist: &str) {
    let _ = write!(
        out,
        "<structure:LocalRepresentation><structure:Enumeration><Ref id=\"{}\" version=\"{VERSION}\" agencyID=\"{}\" package=\"codelist\" class=\"Codelist\"/></structure:Enumeration></structure:LocalRepresentation>",
        escape(codelist),
        escape(&f.agency)
    );
}

fn text_format(out: &mut String, text_type: &str) {
    let _ = write!(
        out,
        "<structure:LocalRepresentation><structure:TextFormat textType=\"{text_type}\"/></structure:LocalRepresentation>"
    );
}

fn write_components(out: &mut String, f: &Flow) {
    out.push_str("\n<structure:DataStructureComponents>\n<structure:DimensionList id=\"DimensionDescriptor\">");
    let mut position = 0;
    let mut dimension = |out: &mut String, id: &str, codelist: String| {
        position += 1;
        let _ = write!(
            out,
            "\n<structure:Dimension id=\"{}\" position=\"{position}\">",
            escape(id)
        );
        concept_ref(out, f, id);
        codelist_ref(out, f, &codelist);
        out.push_str("</structure:Dimension>");
    };
    dimension(out, FREQ, "CL_FREQ".into());
    for d in &f.def.dimensions {
        dimension(out, &d.id, f.codelist_id(&d.id));
    }
    dimension(out, MEASURE, "CL_MEASURE".into());
    let _ = write!(
        out,
        "\n<structure:TimeDimension id=\"{TIME_PERIOD}\" position=\"{}\">",
        position + 1
    );
    concept_ref(out, f, TIME_PERIOD);
    text_format(out, "ObservationalTimePeriod");
    out.push_str(
        "</structure:TimeDimension>\n</structure:DimensionList>\n<structure:AttributeList id=\"AttributeDescriptor\">",
    );
    for (id, _) in SERIES_ATTRIBUTES {
        let _ = write!(
            out,
            "\n<structure:Attribute id=\"{id}\" assignmentStatus=\"Mandatory\">"
        );
        concept_ref(out, f, id);
        text_format(out, if id == "UNIT_MULT" { "Integer" } else { "String" });
        out.push_str("<structure:AttributeRelationship>");
        for d in f.key_dimensions() {
            let _ = write!(
                out,
                "<structure:Dimension><Ref id=\"{}\"/></structure:Dimension>",
                escape(d)
            );
        }
        out.push_str("</structure:AttributeRelationship></structure:Attribute>");
    }
    for (id, _) in OBS_ATTRIBUTES {
        let status = if id == "OBS_STATUS" { "Mandatory" } else { "Conditional" };
        let _ = write!(out, "\n<structure:Attribute id=\"{id}\" assignmentStatus=\"{status}\">");
        concept_ref(out, f, id);
        match id {
            "OBS_STATUS" => codelist_ref(out, f, "CL_OBS_STATUS"),
            "PUBLISHED_AT" => text_format(out, "DateTime"),
            _ => text_format(out, "String"),
        }
        let _ = write!(
            out,
            "<structure:AttributeRelationship><structure:PrimaryMeasure><Ref id=\"{OBS_VALUE}\"/></structure:PrimaryMeasure></structure:AttributeRelationship></structure:Attribute>"
        );
    }
    out.push_str("\n</structure:AttributeList>\n<structure:MeasureList id=\"MeasureDescriptor\">\n");
    let _ = write!(out, "<structure:PrimaryMeasure id=\"{OBS_VALUE}\">");
    concept_ref(out, f, OBS_VALUE);
    text_format(out, "Decimal");
    out.push_str("</structure:PrimaryMeasure>\n</structure:MeasureList>\n</structure:DataStructureComponents>\n");
}
