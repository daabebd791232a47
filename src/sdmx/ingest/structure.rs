//! An SDMX-ML 2.1 Structure message, read for what a dataset needs: code lists, concepts
//! (names and core representations), data structure definitions (their dimensions) and
//! dataflows.

use std::io::BufRead;

use super::xml::{Ev, Start, Xml};
use super::{fail, MAX_STRUCTURE_CODES};
use crate::domain::text::{quote_at_most, QUOTE};
use crate::import::ImportError;

/// A reference to an artefact (or an item of one), by `<Ref>` or by URN.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Ref {
    pub agency: Option<String>,
    /// The maintainable's id (for an item: its scheme's, when known).
    pub id: String,
    pub version: Option<String>,
    /// The item (a concept) within the maintainable.
    pub item: Option<String>,
}

impl Ref {
    /// `<Ref agencyID id version maintainableParentID .../>`: an item when it has a parent.
    fn from_element(s: &Start) -> Option<Ref> {
        let id = s.attr("id")?.to_owned();
        Some(match s.attr("maintainableParentID") {
            Some(parent) => Ref {
                agency: s.attr("agencyID").map(str::to_owned),
                id: parent.to_owned(),
                version: s.attr("maintainableParentVersion").map(str::to_owned),
                item: Some(id),
            },
            None => Ref {
                agency: s.attr("agencyID").map(str::to_owned),
                id,
                version: s.attr("version").map(str::to_owned),
                item: None,
            },
        })
    }

    /// `urn:sdmx:org.sdmx.infomodel.codelist.Codelist=ISO:CL_CURRENCY(1.0)`, with `.ITEM`
    /// after the version for an item.
    pub(crate) fn from_urn(urn: &str) -> Option<Ref> {
        let (_, rest) = urn.trim().split_once('=')?;
        let (agency, rest) = rest.split_once(':')?;
        let (id, rest) = rest.split_once('(')?;
        let (version, rest) = rest.split_once(')')?;
        let item = rest
            .strip_prefix('.')
            .map(|s| s.trim().to_owned())
            .filter(|s| !s.is_empty());
        Some(Ref {
            agency: Some(agency.to_owned()),
            id: id.to_owned(),
            version: Some(version.to_owned()),
            item,
        })
    }

    fn matches(&self, agency: &str, id: &str) -> bool {
        self.id == id && self.agency.as_deref().is_none_or(|a| a == agency)
    }
}

/// A name in one language.
#[derive(Debug, Clone, Default)]
pub struct Names(Vec<(Option<String>, String)>);

impl Names {
    /// The English name, else the one without a language, else the first.
    pub fn best(&self) -> Option<&str> {
        let by = |f: &dyn Fn(&Option<String>) -> bool| self.0.iter().find(|(l, _)| f(l)).map(|(_, n)| n.as_str());
        by(&|l| {
            l.as_deref()
                .is_some_and(|l| l.eq_ignore_ascii_case("en") || l.starts_with("en-"))
        })
        .or_else(|| by(&|l| l.is_none()))
        .or_else(|| self.0.first().map(|(_, n)| n.as_str()))
    }
}

#[derive(Debug, Clone)]
pub struct Code {
    pub id: String,
    pub names: Names,
    pub parent: Option<String>,
}

#[derive(Debug, Clone)]
pub struct Codelist {
    pub agency: String,
    pub id: String,
    pub codes: Vec<Code>,
    /// Named only (`isExternalReference`): its codes are in another message.
    pub external: bool,
    pub line: usize,
}

#[derive(Debug, Clone)]
pub struct Concept {
    pub scheme: String,
    pub id: String,
    pub names: Names,
    pub codelist: Option<Ref>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DimensionKind {
    Dimension,
    Measure,
    Time,
}

#[derive(Debug, Clone)]
pub struct DimensionDef {
    pub id: String,
    pub kind: DimensionKind,
    pub concept: Option<Ref>,
    pub codelist: Option<Ref>,
    pub line: usize,
}

#[derive(Debug, Clone)]
pub struct Dsd {
    pub agency: String,
    pub id: String,
    pub version: Option<String>,
    pub names: Names,
    pub dimensions: Vec<DimensionDef>,
    pub line: usize,
}

#[derive(Debug, Clone)]
pub struct Dataflow {
    pub agency: String,
    pub id: String,
    pub version: Option<String>,
    pub names: Names,
    pub structure: Option<Ref>,
}

/// What a Structure message defines.
#[derive(Debug, Clone, Default)]
pub struct Structures {
    pub file: String,
    pub codelists: Vec<Codelist>,
    pub concepts: Vec<Concept>,
    pub dsds: Vec<Dsd>,
    pub dataflows: Vec<Dataflow>,
}

impl Structures {
    pub fn codelist(&self, r: &Ref) -> Option<&Codelist> {
        let found = |c: &&Codelist| c.id == r.id && r.agency.as_deref().is_none_or(|a| a == c.agency);
        // A full definition wins over a stub that only names it.
        self.codelists
            .iter()
            .filter(found)
            .find(|c| !c.external)
            .or_else(|| self.codelists.iter().find(found))
    }

    pub fn concept(&self, r: &Ref) -> Option<&Concept> {
        let item = r.item.as_deref()?;
        self.concepts
            .iter()
            .find(|c| c.id == item && c.scheme == r.id)
            .or_else(|| self.concepts.iter().find(|c| c.id == item))
    }

    /// The version of the data structure or dataflow `r` names (as `find` finds it), when
    /// the structure message gives one.
    pub fn version_named(&self, r: &Ref) -> Option<&str> {
        match self.dsds.iter().find(|d| r.matches(&d.agency, &d.id)) {
            Some(d) => d.version.as_deref(),
            None => self
                .dataflows
                .iter()
                .find(|f| r.matches(&f.agency, &f.id))
                .and_then(|f| f.version.as_deref()),
        }
    }

    /// The data structure a data message names (`Ref` to a DSD or to a dataflow), with the
    /// dataflow when there is one.
    pub fn find(&self, r: &Ref) -> Option<(&Dsd, Option<&Dataflow>)> {
        if let Some(d) = self.dsds.iter().find(|d| r.matches(&d.agency, &d.id)) {
            let flows: Vec<&Dataflow> = self
                .dataflows
                .iter()
                .filter(|f| f.structure.as_ref().is_some_and(|s| s.matches(&d.agency, &d.id)))
                .collect();
            let flow =
                flows
                    .iter()
                    .find(|f| f.id == d.id)
                    .copied()
                    .or(if flows.len() == 1 { Some(flows[0]) } else { None });
            return Some((d, flow));
        }
        let flow = self.dataflows.iter().find(|f| r.matches(&f.agency, &f.id))?;
        let s = flow.structure.as_ref()?;
        let d = self.dsds.iter().find(|d| s.matches(&d.agency, &d.id))?;
        Some((d, Some(flow)))
    }
}

/// Reads a Structure message.
pub fn read<R: BufRead>(file: &str, input: R) -> Result<Structures, ImportError> {
    let mut x = Xml::new(file, input);
    let mut out = Structures {
        file: file.to_owned(),
        ..Structures::default()
    };
    let mut codes = 0usize;
    let mut saw_root = false;
    // What the text of the current element is for, and a name's language.
    let mut lang: Option<String> = None;
    loop {
        let ev = x.next()?;
        let parent = x
            .stack
            .len()
            .checked_sub(2)
            .map(|i| x.stack[i].clone())
            .unwrap_or_default();
        match ev {
            Ev::Eof => break,
            Ev::Start(s) => {
                if !saw_root {
                    saw_root = true;
                    if s.name != "Structure" {
                        return Err(fail(
                            file,
                            s.at(),
                            format!(
                                "not an SDMX-ML Structure message (the root element is {}); --structure takes a Structure message with the data structure definition",
                                quote_at_most(&s.name, QUOTE)
                            ),
                        ));
                    }
                    continue;
                }
                let need = |a: &str| {
                    s.attr(a)
                        .map(str::to_owned)
                        .ok_or_else(|| fail(file, s.at(), format!("no `{a}` attribute")))
                };
                match (s.name.as_str(), parent.as_str()) {
                    ("Codelist", "Codelists") => out.codelists.push(Codelist {
                        agency: need("agencyID")?,
                        id: need("id")?,
                        codes: Vec::new(),
                        external: s.attr("isExternalReference") == Some("true"),
                        line: s.line,
                    }),
                    ("Code", "Codelist") => {
                        codes += 1;
                        if codes > MAX_STRUCTURE_CODES {
                            return Err(fail(
                                file,
                                s.at(),
                                format!("more than the {MAX_STRUCTURE_CODES} codes a structure message may define"),
                            ));
                        }
                        let id = need("id")?;
                        if let Some(c) = out.codelists.last_mut() {
                            c.codes.push(Code {
                                id,
                                names: Names::default(),
                                parent: None,
                            });
                        }
                    }
                    ("ConceptScheme", "Concepts") => {
                        // Remembered as the scheme of the concepts that follow.
                        out.concepts.push(Concept {
                            scheme: need("id")?,
                            id: String::new(),
                            names: Names::default(),
                            codelist: None,
                        });
                    }
                    ("Concept", "ConceptScheme") => {
                        let scheme = out.concepts.last().map(|c| c.scheme.clone()).unwrap_or_default();
                        out.concepts.push(Concept {
                            scheme,
                            id: need("id")?,
                            names: Names::default(),
                            codelist: None,
                        });
                    }
                    ("DataStructure", "DataStructures") => out.dsds.push(Dsd {
                        agency: need("agencyID")?,
                        id: need("id")?,
                        version: s.attr("version").map(str::to_owned),
                        names: Names::default(),
                        dimensions: Vec::new(),
                        line: s.line,
                    }),
                    ("Dimension" | "MeasureDimension" | "TimeDimension", "DimensionList") => {
                        let kind = match s.name.as_str() {
                            "Dimension" => DimensionKind::Dimension,
                            "MeasureDimension" => DimensionKind::Measure,
                            _ => DimensionKind::Time,
                        };
                        let id = need("id")?;
                        if let Some(d) = out.dsds.last_mut() {
                            d.dimensions.push(DimensionDef {
                                id,
                                kind,
                                concept: None,
                                codelist: None,
                                line: s.line,
                            });
                        }
                    }
                    ("Dataflow", "Dataflows") => out.dataflows.push(Dataflow {
                        agency: need("agencyID")?,
                        id: need("id")?,
                        version: s.attr("version").map(str::to_owned),
                        names: Names::default(),
                        structure: None,
                    }),
                    ("Name", _) => lang = s.attr("lang").map(str::to_owned),
                    ("Ref", _) => {
                        if let Some(r) = Ref::from_element(&s) {
                            place_ref(&mut out, &x.stack, r);
                        }
                    }
                    _ => {}
                }
            }
            Ev::Text(t) => {
                let Some(this) = x.stack.last() else { continue };
                match this.as_str() {
                    "Name" => place_name(&mut out, &x.stack, lang.take(), t),
                    "URN" => {
                        if let Some(r) = Ref::from_urn(&t) {
                            place_ref(&mut out, &x.stack, r);
                        }
                    }
                    _ => {}
                }
            }
            Ev::End(_) => {}
        }
    }
    // The placeholders that opened each concept scheme.
    out.concepts.retain(|c| !c.id.is_empty());
    if !saw_root {
        return Err(fail(file, "line 1".into(), "empty file: no Structure message".into()));
    }
    Ok(out)
}

/// `stack[len - n]`, from the innermost (1) outwards.
fn up(stack: &[String], n: usize) -> &str {
    stack.len().checked_sub(n).map_or("", |i| stack[i].as_str())
}

fn place_name(out: &mut Structures, stack: &[String], lang: Option<String>, text: String) {
    let names = match up(stack, 2) {
        "Code" if up(stack, 3) == "Codelist" => out
            .codelists
            .last_mut()
            .and_then(|c| c.codes.last_mut())
            .map(|c| &mut c.names),
        "Concept" => out.concepts.last_mut().map(|c| &mut c.names),
        "DataStructure" => out.dsds.last_mut().map(|d| &mut d.names),
        "Dataflow" => out.dataflows.last_mut().map(|d| &mut d.names),
        _ => None,
    };
    if let Some(n) = names {
        // Names are labels: the line breaks and indentation of the XML are not part of them.
        n.0.push((lang, text.split_whitespace().collect::<Vec<_>>().join(" ")));
    }
}

fn place_ref(out: &mut Structures, stack: &[String], r: Ref) {
    let path: Vec<&str> = stack.iter().rev().skip(1).take(4).map(String::as_str).collect();
    match path.as_slice() {
        ["Parent", "Code", ..] => {
            if let Some(c) = out.codelists.last_mut().and_then(|c| c.codes.last_mut()) {
                c.parent = Some(r.item.unwrap_or(r.id));
            }
        }
        ["Enumeration", "CoreRepresentation", "Concept", ..] => {
            if let Some(c) = out.concepts.last_mut() {
                c.codelist = Some(r);
            }
        }
        ["ConceptIdentity", "Dimension" | "MeasureDimension" | "TimeDimension", "DimensionList", ..] => {
            if let Some(d) = out.dsds.last_mut().and_then(|d| d.dimensions.last_mut()) {
                d.concept = Some(r);
            }
        }
        ["Enumeration", "LocalRepresentation", "Dimension" | "MeasureDimension", "DimensionList"] => {
            if let Some(d) = out.dsds.last_mut().and_then(|d| d.dimensions.last_mut()) {
                d.codelist = Some(r);
            }
        }
        ["Structure", "Dataflow", ..] => {
            if let Some(f) = out.dataflows.last_mut() {
                f.structure = Some(r);
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urns() {
        let r = Ref::from_urn("urn:sdmx:org.sdmx.infomodel.codelist.Codelist=ISO:CL_CURRENCY(1.0)").unwrap();
        assert_eq!(
            (r.agency.as_deref(), r.id.as_str(), r.item),
            (Some("ISO"), "CL_CURRENCY", None)
        );
        let r = Ref::from_urn("urn:sdmx:org.sdmx.infomodel.conceptscheme.Concept=SDMX:CROSS_DOMAIN_CONCEPTS(1.0).FREQ")
            .unwrap();
        assert_eq!(
            (r.id.as_str(), r.item.as_deref()),
            ("CROSS_DOMAIN_CONCEPTS", Some("FREQ"))
        );
        assert!(Ref::from_urn("nonsense").is_none());
    }
}
