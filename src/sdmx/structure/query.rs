//! Structure queries, parsed: the resource types, the artefacts' agencies, ids and versions,
//! the items, `detail` and `references`.

use crate::sdmx::error::SdmxError;
use crate::sdmx::query::{shorten, MAX_LIST};

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
    /// One value of `references`: a relation (`ancestors` only when `ancestors`, as in
    /// SDMX-REST 2.2) or a resource type, where a type of artefact this service has none of
    /// (one of `others`) brings nothing with the match; `None` for any other value.
    pub fn of(s: &str, ancestors: bool, others: &[&str]) -> Option<Self> {
        Some(match s {
            "none" => References::None,
            "parents" => References::Parents,
            "parentsandsiblings" => References::ParentsAndSiblings,
            "ancestors" if ancestors => References::Ancestors,
            "children" => References::Children,
            "descendants" => References::Descendants,
            "all" => References::All,
            other => match Resource::parse(other) {
                Some(r) => References::Only(r),
                None if others.contains(&other) => References::None,
                None => return None,
            },
        })
    }

    /// SDMX-REST 1.5's `references`.
    pub fn parse(s: &str) -> Result<Self, SdmxError> {
        References::of(s, false, &NOT_IMPLEMENTED).ok_or_else(|| {
            SdmxError::syntax(format!(
                "parameter `references` must be none, parents, parentsandsiblings, children, descendants, all or a resource type, not `{}`",
                shorten(s)
            ))
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
    Semantic(crate::sdmx::version::Wanted),
}

impl Versions {
    pub(super) fn admits(&self, version: &str) -> bool {
        match self {
            Versions::Latest => true,
            Versions::Exact(list) => list.iter().any(|v| crate::sdmx::version::rest15_is(v, version)),
            Versions::Semantic(wanted) => wanted.admits,
        }
    }

    pub(super) fn text(&self) -> String {
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

#[cfg(test)]
mod tests {
    use super::*;

    /// `ancestors` is SDMX-REST 2.2's: refused by SDMX-REST 1.5, naming the value; a type of
    /// artefact this service has none of brings nothing; any other value is refused.
    #[test]
    fn references_take_each_apis_relations_and_types() {
        assert_eq!(References::of("ancestors", true, &[]), Some(References::Ancestors));
        assert_eq!(References::of("ancestors", false, &[]), None);
        let e = References::parse("ancestors").unwrap_err().to_string();
        assert!(e.contains("`references`") && e.contains("not `ancestors`"), "{e}");
        assert_eq!(
            References::parse("codelist").unwrap(),
            References::Only(Resource::Codelist)
        );
        assert_eq!(References::parse("categoryscheme").unwrap(), References::None);
        assert_eq!(References::of("categoryscheme", true, &[]), None);
        assert_eq!(References::of("nonsense", true, &NOT_IMPLEMENTED), None);
        for (s, r) in [
            ("none", References::None),
            ("parents", References::Parents),
            ("parentsandsiblings", References::ParentsAndSiblings),
            ("children", References::Children),
            ("descendants", References::Descendants),
            ("all", References::All),
        ] {
            assert_eq!(References::of(s, false, &[]), Some(r), "{s}");
            assert_eq!(References::of(s, true, &[]), Some(r), "{s}");
        }
    }
}
