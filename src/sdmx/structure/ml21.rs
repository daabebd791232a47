//! The SDMX-ML 2.1 Structure message.

use std::fmt::Write;

use super::artefact::{items, kept_items, title, urn, Artefact, Ctx, Entry};
use super::query::{Detail, Resource, StructureQuery};
use crate::sdmx::dsd::{Flow, FREQ, MEASURE, OBS_ATTRIBUTES, OBS_VALUE, SERIES_ATTRIBUTES, TIME_PERIOD, VERSION};
use crate::sdmx::xml::{escape, header_time, COMMON_NS, MESSAGE_NS, STRUCTURE_NS, XSI_NS};

/// The SDMX-ML 2.1 Structure message.
pub(super) fn write_ml21(
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

fn section(r: Resource) -> &'static str {
    match r {
        Resource::Dataflow => "Dataflows",
        Resource::DataStructure => "DataStructures",
        Resource::Codelist => "Codelists",
        Resource::ConceptScheme => "Concepts",
    }
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
