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
    fn stub(self, referenced: bool) -> bool {
        match self {
            Detail::Full | Detail::ReferencePartial => false,
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

/// A structure query, parsed.
#[derive(Debug, Clone)]
pub struct StructureQuery {
    pub resource: Resource,
    pub agencies: Option<Vec<String>>,
    pub ids: Option<Vec<String>>,
    /// `None`: the latest (every artefact has one version).
    pub versions: Option<Vec<String>>,
    /// Items of a code list or concept scheme (none: all).
    pub items: Option<Vec<String>>,
    pub detail: Detail,
    pub references: References,
}

/// Which code list of a flow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum List {
    Freq,
    Dimension(usize),
    Measure,
    ObsStatus,
}

/// One artefact: its kind, the flow it comes from and, for code lists, which one.
#[derive(Debug, Clone, Copy)]
struct Artefact {
    resource: Resource,
    flow: usize,
    list: Option<List>,
}

/// What a code list or concept scheme is partial to: the items asked for.
struct Ctx<'q> {
    items: Option<&'q [String]>,
    /// Only the items the DSD uses (`referencepartial`).
    partial: bool,
}

impl Artefact {
    fn id(&self, flows: &[Flow]) -> String {
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
    fn agency<'f>(&self, flows: &'f [Flow]) -> &'f str {
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

/// Answers a structure query over `flows` with an SDMX-ML 2.1 Structure message; 404 when
/// nothing matches.
pub fn answer(
    query: &StructureQuery,
    flows: &[Flow],
    prepared: chrono::DateTime<chrono::Utc>,
) -> Result<String, SdmxError> {
    let wanted = |list: &Option<Vec<String>>, v: &str| list.as_ref().is_none_or(|l| l.iter().any(|x| x == v));
    let mut matched: Vec<Artefact> = Vec::new();
    for (i, f) in flows.iter().enumerate() {
        for a in artefacts_of(query.resource, i, f.def.dimensions.len()) {
            if wanted(&query.agencies, a.agency(flows))
                && wanted(&query.ids, &a.id(flows))
                && wanted(&query.versions, VERSION)
            {
                matched.push(a);
            }
        }
    }
    let ctx_items = query.items.as_deref();
    // Item queries: the item schemes that hold one of the items.
    if let Some(items) = ctx_items {
        matched.retain(|a| has_any_item(*a, flows, items));
    }
    if matched.is_empty() {
        return Err(SdmxError::no_results(format!(
            "no {} matches {}/{}/{}",
            resource_name(query.resource),
            list_text(&query.agencies),
            list_text(&query.ids),
            query.versions.as_ref().map_or("latest".into(), |v| v.join("+"))
        )));
    }
    let mut referenced: Vec<Artefact> = Vec::new();
    let dims = |a: &Artefact| flows[a.flow].def.dimensions.len();
    for a in &matched {
        let mut down = Vec::new();
        let mut up = Vec::new();
        match query.references {
            References::None => {}
            References::Parents => up = parents(*a, dims(a)),
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
                if matches!(query.references, References::All | References::Only(_)) {
                    up = parents(*a, dims(a));
                    for p in up.clone() {
                        down.extend(children(p, dims(&p)));
                    }
                }
            }
        }
        for r in up.into_iter().chain(down) {
            if let References::Only(kind) = query.references {
                if r.resource != kind {
                    continue;
                }
            }
            referenced.push(r);
        }
    }
    let key = |a: &Artefact| (a.resource, a.agency(flows).to_owned(), a.id(flows));
    let mut all: Vec<(Artefact, bool)> = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for (a, is_ref) in matched
        .iter()
        .map(|a| (*a, false))
        .chain(referenced.iter().map(|a| (*a, true)))
    {
        if seen.insert(key(&a)) {
            all.push((a, is_ref));
        }
    }
    all.sort_by_key(|(a, _)| a.resource);

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
    for (a, is_ref) in &all {
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
    Ok(out)
}

fn list_text(l: &Option<Vec<String>>) -> String {
    l.as_ref().map_or("all".into(), |v| shorten(&v.join("+")))
}

fn resource_name(r: Resource) -> &'static str {
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
fn items(a: Artefact, flows: &[Flow]) -> Vec<(String, String, Option<String>)> {
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

fn urn(a: Artefact, flows: &[Flow]) -> String {
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

fn write_artefact(out: &mut String, a: Artefact, flows: &[Flow], stub: bool, ctx: &Ctx) {
    let f = &flows[a.flow];
    let element = match a.resource {
        Resource::Dataflow => "Dataflow",
        Resource::DataStructure => "DataStructure",
        Resource::Codelist => "Codelist",
        Resource::ConceptScheme => "ConceptScheme",
    };
    let all_items = items(a, flows);
    let used: Option<Vec<String>> = if ctx.partial {
        None
    } else {
        ctx.items.map(|wanted| {
            // An item and its ancestors (SDMX-REST: a nested item comes with its parents).
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
    };
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
    let title = match (a.resource, a.list) {
        (Resource::Dataflow | Resource::DataStructure, _) => f.def.name.clone(),
        (Resource::ConceptScheme, _) => format!("Concepts of {}", f.def.name),
        (_, Some(List::Freq)) => "Frequency".into(),
        (_, Some(List::Measure)) => "Measure".into(),
        (_, Some(List::ObsStatus)) => "Observation status".into(),
        (_, Some(List::Dimension(i))) => f.def.dimensions[i].label.clone(),
        _ => String::new(),
    };
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
