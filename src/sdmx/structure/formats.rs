//! The structure messages besides SDMX-ML 2.1, written from the artefacts a structure query
//! selects (`artefact::select`): SDMX-ML 3.0 and SDMX-JSON 2.0 (SDMX-REST 2.2), SDMX-JSON 1.0
//! (SDMX-REST 1.5). The artefacts, their names, items and components are the ones of the
//! SDMX-ML 2.1 message.

use std::fmt::Write;

use serde_json::{json, Map, Value};

use super::artefact::{items, kept_items, resource_name, title, urn, Ctx, Entry};
use super::query::{Detail, Resource, StructureQuery};
use crate::sdmx::dsd::{Flow, FREQ, MEASURE, OBS_ATTRIBUTES, OBS_VALUE, SERIES_ATTRIBUTES, TIME_PERIOD, VERSION};
use crate::sdmx::xml::{escape, header_time, COMMON3_NS, MESSAGE3_NS};

const STRUCTURE3_NS: &str = "http://www.sdmx.org/resources/sdmxml/schemas/v3_0/structure";
const JSON20_SCHEMA: &str = "https://raw.githubusercontent.com/sdmx-twg/sdmx-json/master/structure-message/tools/schemas/2.0.0/sdmx-json-structure-schema.json";
const JSON10_SCHEMA: &str = "https://raw.githubusercontent.com/sdmx-twg/sdmx-json/master/structure-message/tools/schemas/1.0/sdmx-json-structure-schema.json";

/// How one artefact is written: stub or not, and which of its items.
struct Shape {
    stub: bool,
    /// With its description (`full`, or a complete stub).
    described: bool,
    partial: bool,
    items: Vec<(String, String, Option<String>)>,
}

fn shape(query: &StructureQuery, flows: &[Flow], e: &Entry) -> Shape {
    let stub = query.detail.stub(e.referenced);
    let ctx = Ctx {
        items: if e.referenced { None } else { query.items.as_deref() },
        partial: e.referenced && query.detail == Detail::ReferencePartial,
    };
    let all = items(e.artefact, flows);
    let kept = kept_items(&all, &ctx);
    let partial = kept.is_some();
    let items = all
        .into_iter()
        .filter(|(id, _, _)| kept.as_ref().is_none_or(|k| k.contains(id)))
        .collect();
    Shape {
        stub,
        described: !stub || matches!(query.detail, Detail::AllCompleteStubs | Detail::ReferenceCompleteStubs),
        partial,
        items,
    }
}

/// The entries in the order SDMX-ML 3.0 and SDMX-JSON 2.0 list them (alphabetical by type).
fn ordered(all: &[Entry]) -> Vec<Entry> {
    let rank = |r: Resource| match r {
        Resource::Codelist => 0,
        Resource::ConceptScheme => 1,
        Resource::Dataflow => 2,
        Resource::DataStructure => 3,
    };
    let mut out = all.to_vec();
    out.sort_by_key(|e| rank(e.artefact.resource));
    out
}

fn description(e: &Entry, flows: &[Flow]) -> Option<String> {
    match e.artefact.resource {
        Resource::Dataflow | Resource::DataStructure => flows[e.artefact.flow].def.description.clone(),
        _ => None,
    }
}

fn concept_urn(f: &Flow, id: &str) -> String {
    format!(
        "urn:sdmx:org.sdmx.infomodel.conceptscheme.Concept={}:{}({VERSION}).{id}",
        f.agency,
        f.concept_scheme_id()
    )
}

fn codelist_urn(f: &Flow, id: &str) -> String {
    format!(
        "urn:sdmx:org.sdmx.infomodel.codelist.Codelist={}:{id}({VERSION})",
        f.agency
    )
}

fn dsd_urn(f: &Flow) -> String {
    format!(
        "urn:sdmx:org.sdmx.infomodel.datastructure.DataStructure={}:{}({VERSION})",
        f.agency,
        f.id()
    )
}

/// How a component is represented: by a code list, or as text of a type.
enum Repr {
    Codes(String),
    Text(&'static str),
}

/// A data attribute of the DSD.
struct Attribute {
    id: &'static str,
    mandatory: bool,
    repr: Repr,
    /// Per series (attached to the key dimensions), else per observation.
    series: bool,
}

/// The key dimensions with their code lists: FREQ, the dataset's, MEASURE.
fn dimensions(f: &Flow) -> Vec<(String, String)> {
    let mut out = vec![(FREQ.to_owned(), "CL_FREQ".to_owned())];
    out.extend(f.def.dimensions.iter().map(|d| (d.id.clone(), f.codelist_id(&d.id))));
    out.push((MEASURE.to_owned(), "CL_MEASURE".to_owned()));
    out
}

fn attributes() -> Vec<Attribute> {
    let mut out: Vec<Attribute> = SERIES_ATTRIBUTES
        .iter()
        .map(|(id, _)| Attribute {
            id,
            mandatory: true,
            repr: Repr::Text(if *id == "UNIT_MULT" { "Integer" } else { "String" }),
            series: true,
        })
        .collect();
    out.extend(OBS_ATTRIBUTES.iter().map(|(id, _)| Attribute {
        id,
        mandatory: *id == "OBS_STATUS",
        repr: match *id {
            "OBS_STATUS" => Repr::Codes("CL_OBS_STATUS".into()),
            "PUBLISHED_AT" => Repr::Text("DateTime"),
            _ => Repr::Text("String"),
        },
        series: false,
    }));
    out
}

// ---- SDMX-ML 3.0 ----

/// `common:NCNameIDType`: `[A-Za-z][A-Za-z0-9_\-]*`.
fn ncname(s: &str) -> bool {
    s.bytes().next().is_some_and(|b| b.is_ascii_alphabetic())
        && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

fn xml_element(r: Resource) -> (&'static str, &'static str) {
    match r {
        Resource::Codelist => ("Codelists", "Codelist"),
        Resource::ConceptScheme => ("ConceptSchemes", "ConceptScheme"),
        Resource::Dataflow => ("Dataflows", "Dataflow"),
        Resource::DataStructure => ("DataStructures", "DataStructure"),
    }
}

fn ml_repr(out: &mut String, f: &Flow, repr: &Repr) {
    out.push_str("<structure:LocalRepresentation>");
    match repr {
        Repr::Codes(cl) => {
            let _ = write!(
                out,
                "<structure:Enumeration>{}</structure:Enumeration>",
                escape(&codelist_urn(f, cl))
            );
        }
        Repr::Text(t) => {
            let _ = write!(out, "<structure:TextFormat textType=\"{t}\"/>");
        }
    }
    out.push_str("</structure:LocalRepresentation>");
}

fn ml_concept(out: &mut String, f: &Flow, id: &str) {
    let _ = write!(
        out,
        "<structure:ConceptIdentity>{}</structure:ConceptIdentity>",
        escape(&concept_urn(f, id))
    );
}

fn ml_components(out: &mut String, f: &Flow) {
    out.push_str("\n<structure:DataStructureComponents>\n<structure:DimensionList id=\"DimensionDescriptor\">");
    let dims = dimensions(f);
    for (i, (id, cl)) in dims.iter().enumerate() {
        let _ = write!(
            out,
            "\n<structure:Dimension id=\"{}\" position=\"{}\">",
            escape(id),
            i + 1
        );
        ml_concept(out, f, id);
        ml_repr(out, f, &Repr::Codes(cl.clone()));
        out.push_str("</structure:Dimension>");
    }
    let _ = write!(out, "\n<structure:TimeDimension id=\"{TIME_PERIOD}\">");
    ml_concept(out, f, TIME_PERIOD);
    ml_repr(out, f, &Repr::Text("ObservationalTimePeriod"));
    out.push_str(
        "</structure:TimeDimension>\n</structure:DimensionList>\n<structure:AttributeList id=\"AttributeDescriptor\">",
    );
    for a in attributes() {
        let usage = if a.mandatory { "mandatory" } else { "optional" };
        let _ = write!(out, "\n<structure:Attribute id=\"{}\" usage=\"{usage}\">", a.id);
        ml_concept(out, f, a.id);
        ml_repr(out, f, &a.repr);
        out.push_str("<structure:AttributeRelationship>");
        if a.series {
            for (d, _) in &dims {
                let _ = write!(out, "<structure:Dimension>{}</structure:Dimension>", escape(d));
            }
        } else {
            out.push_str("<structure:Observation/>");
        }
        out.push_str("</structure:AttributeRelationship></structure:Attribute>");
    }
    let _ = write!(
        out,
        "\n</structure:AttributeList>\n<structure:MeasureList id=\"MeasureDescriptor\">\n<structure:Measure id=\"{OBS_VALUE}\" usage=\"mandatory\">"
    );
    ml_concept(out, f, OBS_VALUE);
    ml_repr(out, f, &Repr::Text("Decimal"));
    out.push_str("</structure:Measure>\n</structure:MeasureList>\n</structure:DataStructureComponents>\n");
}

/// The SDMX-ML 3.0 Structure message.
pub fn ml30(query: &StructureQuery, flows: &[Flow], prepared: chrono::DateTime<chrono::Utc>, all: &[Entry]) -> String {
    let mut out = String::with_capacity(16 * 1024);
    let _ = write!(
        out,
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<message:Structure xmlns:message=\"{MESSAGE3_NS}\" \
         xmlns:structure=\"{STRUCTURE3_NS}\" xmlns:common=\"{COMMON3_NS}\">\n\
         <message:Header><message:ID>STRUCTURE</message:ID><message:Test>false</message:Test>\
         <message:Prepared>{}</message:Prepared><message:Sender id=\"TRADELEDGER\"/></message:Header>\n\
         <message:Structures>\n",
        header_time(prepared)
    );
    let mut open: Option<Resource> = None;
    for e in ordered(all) {
        let a = e.artefact;
        let f = &flows[a.flow];
        let (section, element) = xml_element(a.resource);
        if open != Some(a.resource) {
            if let Some(r) = open {
                let _ = writeln!(out, "</structure:{}>", xml_element(r).0);
            }
            let _ = writeln!(out, "<structure:{section}>");
            open = Some(a.resource);
        }
        let s = shape(query, flows, &e);
        let _ = write!(out, "<structure:{element} urn=\"{}\"", escape(&urn(a, flows)));
        if s.stub {
            out.push_str(" isExternalReference=\"true\"");
        }
        let _ = write!(
            out,
            " agencyID=\"{}\" id=\"{}\" version=\"{VERSION}\"",
            escape(&f.agency),
            escape(&a.id(flows))
        );
        if s.partial {
            out.push_str(" isPartial=\"true\"");
        }
        let _ = write!(
            out,
            "><common:Name xml:lang=\"en\">{}</common:Name>",
            escape(&title(a, flows))
        );
        if s.described {
            if let Some(d) = description(&e, flows) {
                let _ = write!(
                    out,
                    "<common:Description xml:lang=\"en\">{}</common:Description>",
                    escape(&d)
                );
            }
        }
        if !s.stub {
            match a.resource {
                Resource::Dataflow => {
                    let _ = write!(
                        out,
                        "<structure:Structure>{}</structure:Structure>",
                        escape(&dsd_urn(f))
                    );
                }
                Resource::DataStructure => ml_components(&mut out, f),
                Resource::Codelist | Resource::ConceptScheme => {
                    let (item, class) = if a.resource == Resource::Codelist {
                        ("Code", "codelist.Code")
                    } else {
                        ("Concept", "conceptscheme.Concept")
                    };
                    for (id, label, parent) in &s.items {
                        let _ = write!(
                            out,
                            "\n<structure:{item} urn=\"urn:sdmx:org.sdmx.infomodel.{class}={}:{}({VERSION}).{}\" id=\"{}\"><common:Name xml:lang=\"en\">{}</common:Name>",
                            escape(&f.agency),
                            escape(&a.id(flows)),
                            escape(id),
                            escape(id),
                            escape(label)
                        );
                        // SDMX-ML 3.0.0 admits only an NCName as a code's parent (`_T` is
                        // none): such a parent is left out here; SDMX-JSON carries it.
                        if let Some(p) = parent.as_ref().filter(|p| ncname(p)) {
                            let _ = write!(out, "<structure:Parent>{}</structure:Parent>", escape(p));
                        }
                        let _ = write!(out, "</structure:{item}>");
                    }
                }
            }
        }
        let _ = writeln!(out, "</structure:{element}>");
    }
    if let Some(r) = open {
        let _ = writeln!(out, "</structure:{}>", xml_element(r).0);
    }
    out.push_str("</message:Structures>\n</message:Structure>\n");
    out
}

// ---- SDMX-JSON ----

/// The SDMX-JSON versions this service writes.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Json {
    V10,
    V20,
}

fn json_key(r: Resource) -> &'static str {
    match r {
        Resource::Codelist => "codelists",
        Resource::ConceptScheme => "conceptSchemes",
        Resource::Dataflow => "dataflows",
        Resource::DataStructure => "dataStructures",
    }
}

fn json_repr(f: &Flow, repr: &Repr, v: Json) -> Value {
    match (repr, v) {
        (Repr::Codes(cl), _) => json!({"enumeration": codelist_urn(f, cl)}),
        (Repr::Text(t), Json::V20) => json!({"format": {"dataType": t}}),
        (Repr::Text(t), Json::V10) => json!({"textFormat": {"textType": t}}),
    }
}

fn json_components(f: &Flow, v: Json) -> Value {
    let dims = dimensions(f);
    let dimensions: Vec<Value> = dims
        .iter()
        .enumerate()
        .map(|(i, (id, cl))| {
            let mut d = json!({
                "id": id,
                "position": i + 1,
                "conceptIdentity": concept_urn(f, id),
                "localRepresentation": json_repr(f, &Repr::Codes(cl.clone()), v),
            });
            if v == Json::V10 {
                d["type"] = json!("Dimension");
            }
            d
        })
        .collect();
    let time = json!({
        "id": TIME_PERIOD,
        "conceptIdentity": concept_urn(f, TIME_PERIOD),
        "localRepresentation": json_repr(f, &Repr::Text("ObservationalTimePeriod"), v),
    });
    let attributes: Vec<Value> = attributes()
        .iter()
        .map(|a| {
            let mut out = json!({
                "id": a.id,
                "conceptIdentity": concept_urn(f, a.id),
                "localRepresentation": json_repr(f, &a.repr, v),
            });
            let dims: Vec<&str> = dims.iter().map(|(d, _)| d.as_str()).collect();
            match v {
                Json::V20 => {
                    out["usage"] = json!(if a.mandatory { "mandatory" } else { "optional" });
                    out["attributeRelationship"] = if a.series {
                        json!({"dimensions": dims})
                    } else {
                        json!({"observation": {}})
                    };
                }
                Json::V10 => {
                    out["assignmentStatus"] = json!(if a.mandatory { "Mandatory" } else { "Conditional" });
                    out["attributeRelationship"] = if a.series {
                        json!({"dimensions": dims})
                    } else {
                        json!({"primaryMeasure": OBS_VALUE})
                    };
                }
            }
            out
        })
        .collect();
    let measure = json!({
        "id": OBS_VALUE,
        "conceptIdentity": concept_urn(f, OBS_VALUE),
        "localRepresentation": json_repr(f, &Repr::Text("Decimal"), v),
    });
    match v {
        Json::V20 => {
            let mut measure = measure;
            measure["usage"] = json!("mandatory");
            json!({
                "dimensionList": {"id": "DimensionDescriptor", "dimensions": dimensions, "timeDimension": time},
                "attributeList": {"id": "AttributeDescriptor", "attributes": attributes},
                "measureList": {"id": "MeasureDescriptor", "measures": [measure]},
            })
        }
        Json::V10 => {
            let mut time = time;
            time["position"] = json!(dims.len() + 1);
            time["type"] = json!("TimeDimension");
            json!({
                "dimensionList": {"id": "DimensionDescriptor", "dimensions": dimensions, "timeDimensions": [time]},
                "attributeList": {"id": "AttributeDescriptor", "attributes": attributes},
                "measureList": {"id": "MeasureDescriptor", "primaryMeasure": measure},
            })
        }
    }
}

fn json_artefact(query: &StructureQuery, flows: &[Flow], e: &Entry, v: Json) -> Value {
    let a = e.artefact;
    let f = &flows[a.flow];
    let s = shape(query, flows, e);
    let name = title(a, flows);
    let mut links = vec![json!({"rel": "self", "urn": urn(a, flows), "type": resource_name(a.resource)})];
    let mut out = Map::new();
    out.insert("id".into(), json!(a.id(flows)));
    out.insert("version".into(), json!(VERSION));
    out.insert("agencyID".into(), json!(f.agency));
    out.insert("isExternalReference".into(), json!(s.stub));
    out.insert("name".into(), json!(name));
    out.insert("names".into(), json!({"en": name}));
    if s.described {
        if let Some(d) = description(e, flows) {
            out.insert("description".into(), json!(d));
            out.insert("descriptions".into(), json!({"en": d}));
        }
    }
    if !s.stub {
        match a.resource {
            Resource::Dataflow => {
                links.push(json!({"rel": "structure", "urn": dsd_urn(f), "type": "datastructure"}));
                out.insert("structure".into(), json!(dsd_urn(f)));
            }
            Resource::DataStructure => {
                out.insert("dataStructureComponents".into(), json_components(f, v));
            }
            Resource::Codelist | Resource::ConceptScheme => {
                let items: Vec<Value> = s
                    .items
                    .iter()
                    .map(|(id, label, parent)| {
                        let mut item = json!({"id": id, "name": label, "names": {"en": label}});
                        if let Some(p) = parent {
                            item["parent"] = json!(p);
                        }
                        item
                    })
                    .collect();
                if s.partial {
                    out.insert("isPartial".into(), json!(true));
                }
                // The schema wants at least one item; a stub or an empty list has none.
                if !items.is_empty() {
                    let key = if a.resource == Resource::Codelist {
                        "codes"
                    } else {
                        "concepts"
                    };
                    out.insert(key.into(), Value::Array(items));
                }
            }
        }
    }
    out.insert("links".into(), Value::Array(links));
    Value::Object(out)
}

fn json_message(
    query: &StructureQuery,
    flows: &[Flow],
    prepared: chrono::DateTime<chrono::Utc>,
    all: &[Entry],
    v: Json,
) -> String {
    let mut data = Map::new();
    for e in ordered(all) {
        let key = json_key(e.artefact.resource);
        let item = json_artefact(query, flows, &e, v);
        match data.get_mut(key) {
            Some(Value::Array(list)) => list.push(item),
            _ => {
                data.insert(key.into(), Value::Array(vec![item]));
            }
        }
    }
    let schema = match v {
        Json::V10 => JSON10_SCHEMA,
        Json::V20 => JSON20_SCHEMA,
    };
    let message = json!({
        "meta": {
            "schema": schema,
            "id": "STRUCTURE",
            "test": false,
            "prepared": header_time(prepared),
            "contentLanguages": ["en"],
            "sender": {"id": "TRADELEDGER"},
        },
        "data": data,
    });
    let mut out = message.to_string();
    out.push('\n');
    out
}

/// The SDMX-JSON 2.0 structure message.
pub fn json20(
    query: &StructureQuery,
    flows: &[Flow],
    prepared: chrono::DateTime<chrono::Utc>,
    all: &[Entry],
) -> String {
    json_message(query, flows, prepared, all, Json::V20)
}

/// The SDMX-JSON 1.0 structure message.
pub fn json10(
    query: &StructureQuery,
    flows: &[Flow],
    prepared: chrono::DateTime<chrono::Utc>,
    all: &[Entry],
) -> String {
    json_message(query, flows, prepared, all, Json::V10)
}
