//! Plans: what a query text compiles to, a tree of the fields it selects.

use async_graphql::parser::types::{BaseType, Type};
use async_graphql::{Name, Value};
use async_graphql_value::Value as InputValue;

use crate::graphql::fields::Scalar;
use crate::graphql::types::{DimensionValue, Observation, ObservationVersion};
use crate::projection::ReleaseInfo;

/// A compiled operation.
pub struct Plan {
    pub(super) variables: Vec<VarDef>,
    pub(super) root: Vec<Sel<RootField>>,
}

/// A declared variable: its name, type and default, and whether `@skip`/`@include` read it.
pub(super) struct VarDef {
    pub(super) name: Name,
    pub(super) ty: Type,
    pub(super) default: Option<Value>,
    /// Read by a `@skip` or `@include`: async-graphql refuses the request when such a
    /// variable is null or missing, even where the condition is never reached (under an
    /// empty list), so the plan leaves such requests to it.
    pub(super) condition: bool,
}

/// One selected field: its response key, the `@skip`/`@include` conditions on it (its own
/// and its fragments'), and what it resolves to.
pub(super) struct Sel<F> {
    pub(super) key: Name,
    /// `"key":`, escaped once here rather than for every object written.
    pub(super) key_json: Box<[u8]>,
    pub(super) conditions: Vec<Condition>,
    pub(super) field: F,
}

pub(super) enum Condition {
    Skip(InputValue),
    Include(InputValue),
}

/// Arguments as written, variables unresolved.
pub(super) type Args = Vec<(Name, InputValue)>;

pub(super) enum RootField {
    Typename,
    Observations(Args, Vec<Sel<ConnField>>),
    Observation(Args, Vec<Sel<ObsField>>),
    History(Args, Vec<Sel<VersionField>>),
    Breakdown(Args, Vec<Sel<BreakdownField>>),
    RevisionSummary(Args, Vec<Sel<SummaryField>>),
}

/// The scalar fields of `RevisionSummary` (its `items` are left to async-graphql).
pub(super) enum SummaryField {
    Typename,
    ObservationCount,
    RevisedCount,
    RevisionCount,
    MeanRevision,
    MeanAbsoluteRevision,
    MaxAbsoluteRevision,
}

pub(super) enum ConnField {
    Typename,
    TotalCount,
    Nodes(Vec<Sel<ObsField>>),
    Edges(Vec<Sel<EdgeField>>),
    PageInfo(Vec<Sel<PageInfoField>>),
}

pub(super) enum EdgeField {
    Typename,
    Cursor,
    Node(Vec<Sel<ObsField>>),
}

pub(super) enum PageInfoField {
    Typename,
    HasPreviousPage,
    HasNextPage,
    StartCursor,
    EndCursor,
}

/// A field of `Observation`: a declared scalar (see `fields`), or one of its objects.
pub(super) enum ObsField {
    Typename,
    Scalar(&'static Scalar<Observation>),
    Dimensions(Vec<Sel<DimField>>),
    Release(Vec<Sel<ReleaseField>>),
}

pub(super) enum DimField {
    Typename,
    Scalar(&'static Scalar<DimensionValue>),
}

pub(super) enum VersionField {
    Typename,
    Scalar(&'static Scalar<ObservationVersion>),
    Release(Vec<Sel<ReleaseField>>),
}

pub(super) enum ReleaseField {
    Typename,
    Scalar(&'static Scalar<ReleaseInfo>),
}

pub(super) enum BreakdownField {
    Typename,
    Dimension,
    Period,
    Measure,
    Total(Vec<Sel<ObsField>>),
    Items(Vec<Sel<ObsField>>),
    SumOfItems,
    Residual,
    AsOfRevision,
}

/// Variable types the plan coerces itself (in lists too).
pub(super) const VARIABLE_TYPES: [&str; 7] = ["String", "ID", "Int", "Boolean", "Period", "UUID", "DateTime"];

/// Input-object types a variable may have (not in lists).
pub(super) const INPUT_OBJECTS: [&str; 2] = ["AsOf", "ObservationFilter"];

/// An input object's fields, each with the fields of its own input-object type (empty if it
/// has none).
pub(super) type InputFields = Vec<(String, Vec<String>)>;

/// The fields of [`INPUT_OBJECTS`], read from the schema's SDL.
pub(super) static INPUT_FIELDS: std::sync::LazyLock<Vec<(&str, InputFields)>> = std::sync::LazyLock::new(|| {
    use async_graphql::parser::types::{TypeKind, TypeSystemDefinition};
    let doc = async_graphql::parser::parse_schema(crate::graphql::sdl()).expect("the schema's own SDL parses");
    let inputs: Vec<_> = doc
        .definitions
        .iter()
        .filter_map(|d| match d {
            TypeSystemDefinition::Type(t) => match &t.node.kind {
                TypeKind::InputObject(i) => Some((t.node.name.node.as_str(), &i.fields)),
                _ => None,
            },
            _ => None,
        })
        .collect();
    let fields_of = |ty: &str| inputs.iter().find(|(n, _)| *n == ty).map(|(_, f)| *f);
    let named = |mut ty: &Type| loop {
        match &ty.base {
            BaseType::Named(n) => return n.to_string(),
            BaseType::List(inner) => ty = inner,
        }
    };
    INPUT_OBJECTS
        .iter()
        .map(|&ty| {
            let fields = fields_of(ty).expect("an input object of the schema");
            let fields = fields
                .iter()
                .map(|f| {
                    let inner = fields_of(&named(&f.node.ty.node))
                        .map(|inner| inner.iter().map(|g| g.node.name.node.to_string()).collect())
                        .unwrap_or_default();
                    (f.node.name.node.to_string(), inner)
                })
                .collect();
            (ty, fields)
        })
        .collect()
});
