//! The fast path: the hot read queries, compiled once, answered straight from the projection.
//!
//! async-graphql resolves every field through a boxed future, builds a `Value` tree of
//! `IndexMap`s and serializes it at the end: about 2 µs per field, where the projection
//! answers a whole query in about one. A frontend's flexible queries miss the response cache
//! (other periods, keys and points in history, or a write since), so they pay that price
//! every time.
//!
//! So a query text whose execution by async-graphql came back clean (which proves that it
//! parsed, validated and passed every limit) is compiled into a [`Plan`] for its operation: a
//! tree of the fields it selects, fragments flattened, aliases kept. The next requests with
//! that text run the plan: arguments are coerced by the schema's own input types, the
//! resolvers' logic reads the projection under its lock, taken once per root field, and the
//! JSON is written into one buffer in selection order, byte for byte what async-graphql
//! would have written.
//!
//! The plan covers `observations` (nodes, edges, pageInfo, totalCount), `observation`,
//! `history`, `breakdown` and `revisionSummary` (its scalar fields) with the fields of
//! `Observation`, `ObservationVersion`, `Release` (its in-memory fields) and
//! `DimensionValue`, `__typename`, and `@skip`/`@include`; variables of scalar types (and
//! lists of them) and of the input objects `AsOf` and `ObservationFilter`. Anything else is
//! not compiled (other fields or directives, field merging by a repeated response key,
//! variables of other types), and anything a request meets at run time that is
//! not a plain answer (a value that does not coerce, an unknown dataset, a bad cursor, an
//! overflowing sum: every error) makes the plan give up and async-graphql answer the request:
//! it stays the reference, and a differential property test checks that both agree.
//!
//! The limits are the same on both paths: every request passes [`QueryLimits::check`]
//! (fields, aliases, depth, cost) before either runs, both run on the query pool under the
//! request timeout, and the plan stops writing as soon as the response passes
//! `--max-response-bytes`.
//!
//! [`QueryLimits::check`]: super::QueryLimits::check

use std::io::Write as _;
use std::sync::Arc;

use async_graphql::parser::types::{
    BaseType, Directive, ExecutableDocument, Field, OperationType, Selection, SelectionSet, Type,
};
use async_graphql::parser::Positioned;
use async_graphql::{InputType, Name, Request, Value, ID};
use async_graphql_value::Value as InputValue;
use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use uuid::Uuid;

use super::query::{check_period, decode_cursor, encode_cursor, page_size_at_most as page_size, ObservationFilter};
use super::fields::{json_string, Scalar};
use super::types::{cell_key, observation, AsOf, DimensionValue, Observation, ObservationVersion, Release};
use super::{Limits, ResponseTooLarge};
use crate::bounded::BoundedMap;
use crate::domain::Period;
use crate::ledger::Ledger;
use crate::projection::{Bound, ObservationAt, Projection, ReleaseInfo, RevisionSummary};

/// Bytes charged to the plan cache: a plan takes a few times its query text.
const PLAN_BYTES: usize = 16 * 1024 * 1024;
const PLAN_BYTES_PER_BYTE: usize = 8;

/// Compiled plans by query text (with the operation they were compiled for).
pub struct Plans {
    cache: BoundedMap<Arc<str>, Arc<Compiled>>,
}

/// What a query text compiled to: a plan, or nothing when the fast path does not cover it.
pub struct Compiled {
    operation: Option<String>,
    plan: Option<Plan>,
}

impl Plans {
    /// Keeps at most `max` plans (`--query-plans`); 0 turns the fast path off.
    pub fn new(max: usize) -> Self {
        Plans {
            cache: BoundedMap::new(max, PLAN_BYTES),
        }
    }

    /// The plan for the request's text and operation, if one was learned.
    fn get(&self, request: &Request) -> Option<Arc<Compiled>> {
        let c = self.cache.get(request.query.as_str())?;
        (c.operation == request.operation_name).then_some(c)
    }

    /// True when a clean answer to `request` should be learned from.
    pub fn wants(&self, request: &Request, max_query: usize) -> bool {
        !self.cache.keeps_nothing() && request.query.len() <= max_query && self.get(request).is_none()
    }

    /// Compiles the request's operation of `doc`, which async-graphql has just executed
    /// without an error (so it is valid).
    pub fn learn(&self, query: &str, operation: Option<&str>, doc: &ExecutableDocument) {
        let plan = compile(doc, operation);
        let charge = query.len().saturating_mul(PLAN_BYTES_PER_BYTE) + 256;
        self.cache.insert(
            Arc::from(query),
            Arc::new(Compiled {
                operation: operation.map(str::to_owned),
                plan,
            }),
            charge,
        );
    }

    /// Runs the learned plan of `request`: `None` when there is none or it gave up (the
    /// request then goes to async-graphql), else the response body or the refusal of a body
    /// larger than `max_bytes`.
    ///
    /// The projection's lock is taken for one root field at a time, as async-graphql's
    /// resolvers take it: the lock lets a waiting write go first, so holding it across thirty
    /// aliased pages would keep a write (and every reader after it, `/healthz`-class requests
    /// included) waiting for all of them. Each root field reads one consistent state.
    pub fn run(
        &self,
        request: &Request,
        ledger: &Ledger,
        limits: &Limits,
        max_bytes: usize,
    ) -> Option<Result<Vec<u8>, ResponseTooLarge>> {
        let compiled = self.get(request)?;
        let plan = compiled.plan.as_ref()?;
        let vars = plan.variables(request)?;
        let mut out = Vec::with_capacity(1024);
        let mut too_large = false;
        out.extend_from_slice(b"{\"data\":");
        // As `Run::object` writes an object, with the lock taken per field.
        let start = out.len();
        out.push(b'{');
        let mut first = true;
        for s in &plan.root {
            let p = ledger.read();
            let mut run = Run {
                p: &p,
                limits,
                vars: &vars,
                out,
                max: max_bytes,
                too_large,
            };
            let written = run.root_sel(s, first);
            (out, too_large) = (run.out, run.too_large);
            drop(p);
            match written {
                Some(true) => first = false,
                Some(false) => {}
                None if too_large => return Some(Err(ResponseTooLarge { limit: max_bytes })),
                None => return None,
            }
        }
        if first {
            out.truncate(start);
            out.extend_from_slice(b"null");
        } else {
            out.push(b'}');
        }
        out.push(b'}');
        if too_large || out.len() > max_bytes {
            return Some(Err(ResponseTooLarge { limit: max_bytes }));
        }
        Some(Ok(out))
    }
}

// ---------------------------------------------------------------------------------------
// Plans

/// A compiled operation.
pub struct Plan {
    variables: Vec<VarDef>,
    root: Vec<Sel<RootField>>,
}

/// A declared variable: its name, type and default, and whether `@skip`/`@include` read it.
struct VarDef {
    name: Name,
    ty: Type,
    default: Option<Value>,
    /// Read by a `@skip` or `@include`: async-graphql refuses the request when such a
    /// variable is null or missing, even where the condition is never reached (under an
    /// empty list), so the plan leaves such requests to it.
    condition: bool,
}

/// One selected field: its response key, the `@skip`/`@include` conditions on it (its own
/// and its fragments'), and what it resolves to.
struct Sel<F> {
    key: Name,
    /// `"key":`, escaped once here rather than for every object written.
    key_json: Box<[u8]>,
    conditions: Vec<Condition>,
    field: F,
}

enum Condition {
    Skip(InputValue),
    Include(InputValue),
}

/// Arguments as written, variables unresolved.
type Args = Vec<(Name, InputValue)>;

enum RootField {
    Typename,
    Observations(Args, Vec<Sel<ConnField>>),
    Observation(Args, Vec<Sel<ObsField>>),
    History(Args, Vec<Sel<VersionField>>),
    Breakdown(Args, Vec<Sel<BreakdownField>>),
    RevisionSummary(Args, Vec<Sel<SummaryField>>),
}

/// The scalar fields of `RevisionSummary` (its `items` are left to async-graphql).
enum SummaryField {
    Typename,
    ObservationCount,
    RevisedCount,
    RevisionCount,
    MeanRevision,
    MeanAbsoluteRevision,
    MaxAbsoluteRevision,
}

enum ConnField {
    Typename,
    TotalCount,
    Nodes(Vec<Sel<ObsField>>),
    Edges(Vec<Sel<EdgeField>>),
    PageInfo(Vec<Sel<PageInfoField>>),
}

enum EdgeField {
    Typename,
    Cursor,
    Node(Vec<Sel<ObsField>>),
}

enum PageInfoField {
    Typename,
    HasPreviousPage,
    HasNextPage,
    StartCursor,
    EndCursor,
}

/// A field of `Observation`: a declared scalar (see `fields`), or one of its objects.
enum ObsField {
    Typename,
    Scalar(&'static Scalar<Observation>),
    Dimensions(Vec<Sel<DimField>>),
    Release(Vec<Sel<ReleaseField>>),
}

enum DimField {
    Typename,
    Scalar(&'static Scalar<DimensionValue>),
}

enum VersionField {
    Typename,
    Scalar(&'static Scalar<ObservationVersion>),
    Release(Vec<Sel<ReleaseField>>),
}

enum ReleaseField {
    Typename,
    Scalar(&'static Scalar<ReleaseInfo>),
}

enum BreakdownField {
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
const VARIABLE_TYPES: [&str; 7] = ["String", "ID", "Int", "Boolean", "Period", "UUID", "DateTime"];

/// Input-object types a variable may have (not in lists).
const INPUT_OBJECTS: [&str; 2] = ["AsOf", "ObservationFilter"];

/// An input object's fields, each with the fields of its own input-object type (empty if it
/// has none).
type InputFields = Vec<(String, Vec<String>)>;

/// The fields of [`INPUT_OBJECTS`], read from the schema's SDL.
static INPUT_FIELDS: std::sync::LazyLock<Vec<(&str, InputFields)>> = std::sync::LazyLock::new(|| {
    use async_graphql::parser::types::{TypeKind, TypeSystemDefinition};
    let doc = async_graphql::parser::parse_schema(super::sdl()).expect("the schema's own SDL parses");
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

/// Compiles the operation `name` of a valid document; `None` if the fast path does not cover it.
fn compile(doc: &ExecutableDocument, name: Option<&str>) -> Option<Plan> {
    let op = doc
        .operations
        .iter()
        .find(|(n, _)| name.is_none_or(|wanted| n.is_some_and(|n| n.as_str() == wanted)))
        .map(|(_, op)| &op.node)?;
    if op.ty != OperationType::Query || !op.directives.is_empty() {
        return None;
    }
    let mut variables = Vec::new();
    for def in &op.variable_definitions {
        let def = &def.node;
        if !def.directives.is_empty() || !simple_type(&def.var_type.node, 0) {
            return None;
        }
        variables.push(VarDef {
            name: def.name.node.clone(),
            ty: def.var_type.node.clone(),
            default: def.default_value().cloned(),
            condition: false,
        });
    }
    let c = Compiler {
        doc,
        condition_variables: Default::default(),
    };
    let root = c.object(&op.selection_set.node, "Query", |c, f| {
        Some(match f.name.node.as_str() {
            "__typename" => RootField::Typename,
            "observations" => RootField::Observations(
                args(f, &["dataset", "filter", "asOf", "first", "after"])?,
                c.object(&f.selection_set.node, "ObservationConnection", Compiler::conn_field)?,
            ),
            "observation" => RootField::Observation(
                args(f, &["dataset", "key", "period", "measure", "asOf"])?,
                c.object(&f.selection_set.node, "Observation", Compiler::obs_field)?,
            ),
            "history" => RootField::History(
                args(f, &["dataset", "key", "period", "measure", "asOf"])?,
                c.object(&f.selection_set.node, "ObservationVersion", Compiler::version_field)?,
            ),
            "breakdown" => RootField::Breakdown(
                args(f, &["dataset", "dimension", "period", "measure", "key", "asOf"])?,
                c.object(&f.selection_set.node, "Breakdown", Compiler::breakdown_field)?,
            ),
            "revisionSummary" => RootField::RevisionSummary(
                args(f, &["dataset", "filter", "asOf"])?,
                c.object(&f.selection_set.node, "RevisionSummary", |_, f| {
                    leaf(
                        f,
                        match f.name.node.as_str() {
                            "__typename" => SummaryField::Typename,
                            "observationCount" => SummaryField::ObservationCount,
                            "revisedCount" => SummaryField::RevisedCount,
                            "revisionCount" => SummaryField::RevisionCount,
                            "meanRevision" => SummaryField::MeanRevision,
                            "meanAbsoluteRevision" => SummaryField::MeanAbsoluteRevision,
                            "maxAbsoluteRevision" => SummaryField::MaxAbsoluteRevision,
                            _ => return None,
                        },
                    )
                })?,
            ),
            _ => return None,
        })
    })?;
    let read = c.condition_variables.into_inner();
    for v in &mut variables {
        v.condition = read.contains(&v.name);
    }
    Some(Plan { variables, root })
}

fn simple_type(ty: &Type, depth: usize) -> bool {
    match &ty.base {
        BaseType::Named(n) => {
            VARIABLE_TYPES.contains(&n.as_str()) || depth == 0 && INPUT_OBJECTS.contains(&n.as_str())
        }
        BaseType::List(inner) => depth == 0 && simple_type(inner, depth + 1),
    }
}

/// The field's arguments, if all are among `known`.
fn args(f: &Field, known: &[&str]) -> Option<Args> {
    f.arguments
        .iter()
        .map(|(n, v)| {
            known
                .contains(&n.node.as_str())
                .then(|| (n.node.clone(), v.node.clone()))
        })
        .collect()
}

/// A leaf: no arguments, no selection.
fn leaf<F>(f: &Field, field: F) -> Option<F> {
    (f.arguments.is_empty() && f.selection_set.node.items.is_empty()).then_some(field)
}

fn no_args(f: &Field) -> Option<()> {
    f.arguments.is_empty().then_some(())
}

struct Compiler<'a> {
    doc: &'a ExecutableDocument,
    /// The variables `@skip`/`@include` conditions read.
    condition_variables: std::cell::RefCell<Vec<Name>>,
}

impl<'a> Compiler<'a> {
    /// [`push_conditions`], noting the variables the conditions read.
    fn conditions(&self, directives: &[Positioned<Directive>], out: &mut Vec<Condition>) -> Option<()> {
        let before = out.len();
        push_conditions(directives, out)?;
        for c in &out[before..] {
            let (Condition::Skip(v) | Condition::Include(v)) = c;
            if let InputValue::Variable(name) = v {
                self.condition_variables.borrow_mut().push(name.clone());
            }
        }
        Some(())
    }

    /// Flattens a selection set on `type_name` into its fields, in order, each compiled by
    /// `field`.
    fn object<F>(
        &self,
        set: &'a SelectionSet,
        type_name: &str,
        field: impl Fn(&Self, &'a Field) -> Option<F> + Copy,
    ) -> Option<Vec<Sel<F>>> {
        let mut flat = Vec::new();
        self.flatten(set, type_name, &[], &mut flat, 0)?;
        let mut out: Vec<Sel<F>> = Vec::with_capacity(flat.len());
        for (f, conditions) in flat {
            let key = f.response_key().node.clone();
            // Fields merged under one key would need async-graphql's merging rules.
            if out.iter().any(|s| s.key == key) {
                return None;
            }
            let mut key_json = serde_json::to_vec(key.as_str()).expect("strings serialize");
            key_json.push(b':');
            out.push(Sel {
                key,
                key_json: key_json.into(),
                conditions,
                field: field(self, f)?,
            });
        }
        Some(out)
    }

    fn flatten(
        &self,
        set: &'a SelectionSet,
        type_name: &str,
        conditions: &[Condition],
        out: &mut Vec<(&'a Field, Vec<Condition>)>,
        depth: usize,
    ) -> Option<()> {
        if depth > 16 {
            return None;
        }
        for item in &set.items {
            match &item.node {
                Selection::Field(f) => {
                    let mut own = clone_conditions(conditions);
                    self.conditions(&f.node.directives, &mut own)?;
                    out.push((&f.node, own));
                }
                Selection::InlineFragment(i) => {
                    let i = &i.node;
                    if i.type_condition.as_ref().is_some_and(|t| t.node.on.node != type_name) {
                        return None;
                    }
                    let mut inner = clone_conditions(conditions);
                    self.conditions(&i.directives, &mut inner)?;
                    self.flatten(&i.selection_set.node, type_name, &inner, out, depth + 1)?;
                }
                Selection::FragmentSpread(s) => {
                    let s = &s.node;
                    let def = &self.doc.fragments.get(&s.fragment_name.node)?.node;
                    if def.type_condition.node.on.node != type_name || !def.directives.is_empty() {
                        return None;
                    }
                    let mut inner = clone_conditions(conditions);
                    self.conditions(&s.directives, &mut inner)?;
                    self.flatten(&def.selection_set.node, type_name, &inner, out, depth + 1)?;
                }
            }
        }
        Some(())
    }

    fn conn_field(&self, f: &'a Field) -> Option<ConnField> {
        no_args(f)?;
        Some(match f.name.node.as_str() {
            "__typename" => leaf(f, ConnField::Typename)?,
            "totalCount" => leaf(f, ConnField::TotalCount)?,
            "nodes" => ConnField::Nodes(self.object(&f.selection_set.node, "Observation", Self::obs_field)?),
            "edges" => ConnField::Edges(self.object(&f.selection_set.node, "ObservationEdge", |c, f| {
                no_args(f)?;
                Some(match f.name.node.as_str() {
                    "__typename" => leaf(f, EdgeField::Typename)?,
                    "cursor" => leaf(f, EdgeField::Cursor)?,
                    "node" => EdgeField::Node(c.object(&f.selection_set.node, "Observation", Self::obs_field)?),
                    _ => return None,
                })
            })?),
            "pageInfo" => ConnField::PageInfo(self.object(&f.selection_set.node, "PageInfo", |_, f| {
                leaf(
                    f,
                    match f.name.node.as_str() {
                        "__typename" => PageInfoField::Typename,
                        "hasPreviousPage" => PageInfoField::HasPreviousPage,
                        "hasNextPage" => PageInfoField::HasNextPage,
                        "startCursor" => PageInfoField::StartCursor,
                        "endCursor" => PageInfoField::EndCursor,
                        _ => return None,
                    },
                )
            })?),
            _ => return None,
        })
    }

    fn obs_field(&self, f: &'a Field) -> Option<ObsField> {
        no_args(f)?;
        Some(match f.name.node.as_str() {
            "dimensions" => ObsField::Dimensions(self.object(&f.selection_set.node, "DimensionValue", |_, f| {
                leaf(
                    f,
                    match f.name.node.as_str() {
                        "__typename" => DimField::Typename,
                        name => DimField::Scalar(Scalar::find(DimensionValue::SCALARS, name)?),
                    },
                )
            })?),
            "release" => ObsField::Release(self.release(f)?),
            "__typename" => leaf(f, ObsField::Typename)?,
            name => leaf(f, ObsField::Scalar(Scalar::find(Observation::SCALARS, name)?))?,
        })
    }

    fn version_field(&self, f: &'a Field) -> Option<VersionField> {
        no_args(f)?;
        Some(match f.name.node.as_str() {
            "release" => VersionField::Release(self.release(f)?),
            "__typename" => leaf(f, VersionField::Typename)?,
            name => leaf(f, VersionField::Scalar(Scalar::find(ObservationVersion::SCALARS, name)?))?,
        })
    }

    fn release(&self, f: &'a Field) -> Option<Vec<Sel<ReleaseField>>> {
        self.object(&f.selection_set.node, "Release", |_, f| {
            leaf(
                f,
                match f.name.node.as_str() {
                    "__typename" => ReleaseField::Typename,
                    name => ReleaseField::Scalar(Scalar::find(Release::SCALARS, name)?),
                },
            )
        })
    }

    fn breakdown_field(&self, f: &'a Field) -> Option<BreakdownField> {
        no_args(f)?;
        Some(match f.name.node.as_str() {
            "total" => BreakdownField::Total(self.object(&f.selection_set.node, "Observation", Self::obs_field)?),
            "items" => BreakdownField::Items(self.object(&f.selection_set.node, "Observation", Self::obs_field)?),
            name => leaf(
                f,
                match name {
                    "__typename" => BreakdownField::Typename,
                    "dimension" => BreakdownField::Dimension,
                    "period" => BreakdownField::Period,
                    "measure" => BreakdownField::Measure,
                    "sumOfItems" => BreakdownField::SumOfItems,
                    "residual" => BreakdownField::Residual,
                    "asOfRevision" => BreakdownField::AsOfRevision,
                    _ => return None,
                },
            )?,
        })
    }
}

fn clone_conditions(c: &[Condition]) -> Vec<Condition> {
    c.iter()
        .map(|c| match c {
            Condition::Skip(v) => Condition::Skip(v.clone()),
            Condition::Include(v) => Condition::Include(v.clone()),
        })
        .collect()
}

/// Adds `@skip`/`@include` of `directives`; `None` for any other directive.
fn push_conditions(directives: &[Positioned<Directive>], out: &mut Vec<Condition>) -> Option<()> {
    for d in directives {
        let d = &d.node;
        let [(name, value)] = d.arguments.as_slice() else {
            return None;
        };
        if name.node != "if" {
            return None;
        }
        let value = value.node.clone();
        match d.name.node.as_str() {
            "skip" => out.push(Condition::Skip(value)),
            "include" => out.push(Condition::Include(value)),
            _ => return None,
        }
    }
    Some(())
}

// ---------------------------------------------------------------------------------------
// Running a plan

/// A declared variable's value: the request's, else the default; `None` when absent.
type Resolved = Vec<(Name, Option<Value>)>;

impl Plan {
    /// The operation's variables, checked against their declared types as async-graphql's
    /// validation checks them; `None` when one does not coerce or a required one is missing
    /// (async-graphql then answers with the error).
    fn variables(&self, request: &Request) -> Option<Resolved> {
        self.variables
            .iter()
            .map(|def| {
                let given = request.variables.get(&def.name);
                // An explicit null where a default exists is left to async-graphql: the
                // variable is null (not its default), and in a non-null position, such as
                // `@skip(if:)`, the whole request is an error even where no field is reached.
                if matches!(given, Some(Value::Null)) && def.default.is_some() {
                    return None;
                }
                let value = given.or(def.default.as_ref()).cloned();
                match &value {
                    None | Some(Value::Null) if !def.ty.nullable || def.condition => None,
                    None | Some(Value::Null) => Some((def.name.clone(), value)),
                    Some(v) => conforms(&def.ty, v).then(|| (def.name.clone(), value)),
                }
            })
            .collect()
    }
}

/// True when a non-null `value` coerces to `ty` (a scalar of [`VARIABLE_TYPES`] or a list
/// of one); a single value where a list is declared is left to async-graphql.
fn conforms(ty: &Type, value: &Value) -> bool {
    match (&ty.base, value) {
        (BaseType::List(inner), Value::List(items)) => items.iter().all(|item| match item {
            Value::Null => inner.nullable,
            v => conforms(inner, v),
        }),
        (BaseType::List(_), _) => false,
        (BaseType::Named(name), v) => {
            let v = Some(v.clone());
            match name.as_str() {
                "String" => String::parse(v).is_ok(),
                "ID" => ID::parse(v).is_ok(),
                "Int" => i32::parse(v).is_ok(),
                "Boolean" => bool::parse(v).is_ok(),
                "Period" => <Period as InputType>::parse(v).is_ok(),
                "UUID" => Uuid::parse(v).is_ok(),
                "DateTime" => DateTime::<Utc>::parse(v).is_ok(),
                "AsOf" => known_fields(name, v.as_ref()) && AsOf::parse(v).is_ok(),
                "ObservationFilter" => known_fields(name, v.as_ref()) && ObservationFilter::parse(v).is_ok(),
                _ => false,
            }
        }
    }
}

/// True when `value` (of the input-object type `ty`) names only fields the type has, as
/// async-graphql's validation of variables requires (the types' own parsing ignores the rest).
fn known_fields(ty: &str, value: Option<&Value>) -> bool {
    let Some((_, fields)) = INPUT_FIELDS.iter().find(|(t, _)| *t == ty) else {
        return false;
    };
    let Some(Value::Object(object)) = value else {
        // Not an object at all: the type's parsing refuses it.
        return true;
    };
    object.iter().all(|(name, v)| {
        let Some((_, inner)) = fields.iter().find(|(f, _)| *f == name.as_str()) else {
            return false;
        };
        // A field of an input-object type (a list of them, or one coerced to a list).
        let objects_ok = |v: &Value| match v {
            Value::Object(o) => o.keys().all(|k| inner.iter().any(|f| f == k.as_str())),
            _ => true,
        };
        inner.is_empty()
            || match v {
                Value::List(items) => items.iter().all(objects_ok),
                v => objects_ok(v),
            }
    })
}

struct Run<'a> {
    p: &'a Projection,
    limits: &'a Limits,
    vars: &'a Resolved,
    out: Vec<u8>,
    max: usize,
    /// The response passed `max`: what was written is dropped, and the rest is resolved (an
    /// error further on still hands the request to async-graphql) without being kept.
    too_large: bool,
}

impl<'a> Run<'a> {
    /// Writes one root field of the operation's object (after a comma unless `first`):
    /// false when its conditions leave it out.
    fn root_sel(&mut self, s: &Sel<RootField>, first: bool) -> Option<bool> {
        if !self.included(&s.conditions)? {
            return Some(false);
        }
        if !first {
            self.out.push(b',');
        }
        self.out.extend_from_slice(&s.key_json);
        self.root_field(&s.field)?;
        Some(true)
    }

    /// Resolves a value as written (with variables) to a constant; `None` for an undefined
    /// variable.
    fn constant(&self, value: &InputValue) -> Option<Value> {
        value
            .clone()
            .into_const_with(|name| {
                self.vars
                    .iter()
                    .find(|(n, _)| *n == name)
                    .and_then(|(_, v)| v.clone())
                    .ok_or(())
            })
            .ok()
    }

    /// An argument coerced by its schema type, as async-graphql coerces it; `default` is the
    /// argument's default in the schema.
    fn arg<T: InputType>(&self, args: &Args, name: &str, default: Option<fn() -> T>) -> Option<T> {
        match args.iter().find(|(n, _)| n.as_str() == name) {
            None => match default {
                Some(d) => Some(d()),
                None => T::parse(None).ok(),
            },
            Some((_, v)) => T::parse(Some(self.constant(v)?)).ok(),
        }
    }

    fn included(&self, conditions: &[Condition]) -> Option<bool> {
        for c in conditions {
            let (value, skip_when) = match c {
                Condition::Skip(v) => (v, true),
                Condition::Include(v) => (v, false),
            };
            let Value::Boolean(b) = self.constant(value)? else {
                return None;
            };
            if b == skip_when {
                return Some(false);
            }
        }
        Some(true)
    }

    /// Bounds what is kept of a response that passed the limit.
    fn check_size(&mut self) {
        if self.out.len() > self.max {
            self.too_large = true;
            self.out.clear();
        }
    }

    /// An object of the selected fields, in selection order; null when every field was
    /// skipped, as async-graphql answers it.
    fn object<F>(&mut self, sels: &[Sel<F>], mut field: impl FnMut(&mut Self, &F) -> Option<()>) -> Option<()> {
        let start = self.out.len();
        self.out.push(b'{');
        let mut first = true;
        for s in sels {
            if !self.included(&s.conditions)? {
                continue;
            }
            if !first {
                self.out.push(b',');
            }
            first = false;
            self.out.extend_from_slice(&s.key_json);
            field(self, &s.field)?;
        }
        if first {
            self.out.truncate(start);
            self.null();
            return Some(());
        }
        self.out.push(b'}');
        Some(())
    }

    fn list<T>(&mut self, items: &[T], mut item: impl FnMut(&mut Self, &T) -> Option<()>) -> Option<()> {
        self.out.push(b'[');
        for (i, x) in items.iter().enumerate() {
            if i > 0 {
                self.out.push(b',');
            }
            item(self, x)?;
            self.check_size();
        }
        self.out.push(b']');
        Some(())
    }

    fn string(&mut self, s: &str) {
        json_string(&mut self.out, s);
    }

    fn raw(&mut self, s: &str) {
        self.out.extend_from_slice(s.as_bytes());
    }

    fn null(&mut self) {
        self.raw("null");
    }

    fn boolean(&mut self, b: bool) {
        self.raw(if b { "true" } else { "false" });
    }

    fn number(&mut self, n: u64) {
        write!(self.out, "{n}").expect("a Vec takes every write");
    }

    /// A `Decimal` (its digits need no escaping), a `Period` or a `UUID`: a string by its
    /// `Display`.
    fn display(&mut self, d: impl std::fmt::Display) {
        write!(self.out, "\"{d}\"").expect("a Vec takes every write");
    }

    fn root_field(&mut self, f: &RootField) -> Option<()> {
        match f {
            RootField::Typename => self.string("Query"),
            RootField::Observations(args, sels) => self.observations(args, sels)?,
            RootField::Observation(args, sels) => self.single_observation(args, sels)?,
            RootField::History(args, sels) => self.history(args, sels)?,
            RootField::Breakdown(args, sels) => self.breakdown(args, sels)?,
            RootField::RevisionSummary(args, sels) => self.revision_summary(args, sels)?,
        }
        Some(())
    }

    /// `Query.observations`, as its resolver answers it.
    fn observations(&mut self, args: &Args, sels: &[Sel<ConnField>]) -> Option<()> {
        let dataset: ID = self.arg(args, "dataset", None)?;
        let filter: Option<ObservationFilter> = self.arg(args, "filter", None)?;
        let as_of: Option<AsOf> = self.arg(args, "asOf", None)?;
        let first: Option<i32> = self.arg(args, "first", None)?;
        let after: Option<String> = self.arg(args, "after", None)?;
        let limit = page_size(self.limits.max_page_size, first).ok()?;
        let spec = AsOf::to_spec(as_of.as_ref()).ok()?;
        let p = self.p;
        let ds = p.dataset(&dataset)?;
        let bound = p.bound(spec).ok()?;
        let filter = filter.unwrap_or_default().resolve(ds).ok()?;
        let after_cell = match &after {
            Some(c) => Some(decode_cursor(ds, c).ok()?),
            None => None,
        };
        let mut it = p.select(ds, &filter, bound, after_cell.as_ref());
        let page: Vec<ObservationAt<'_>> = it.by_ref().take(limit).collect();
        let has_next = it.next().is_some();
        self.object(sels, |run, f| {
            match f {
                ConnField::Typename => run.string("ObservationConnection"),
                ConnField::TotalCount => run.number(p.select(ds, &filter, bound, None).count() as u64),
                ConnField::Nodes(sels) => run.list(&page, |run, o| run.observation(o, bound, sels))?,
                ConnField::Edges(sels) => run.list(&page, |run, o| {
                    run.object(sels, |run, f| {
                        match f {
                            EdgeField::Typename => run.string("ObservationEdge"),
                            EdgeField::Cursor => run.string(&encode_cursor(ds, &o.cell)),
                            EdgeField::Node(sels) => run.observation(o, bound, sels)?,
                        }
                        Some(())
                    })
                })?,
                ConnField::PageInfo(sels) => run.object(sels, |run, f| {
                    let cursor = |o: Option<&ObservationAt<'_>>| o.map(|o| encode_cursor(ds, &o.cell));
                    match f {
                        PageInfoField::Typename => run.string("PageInfo"),
                        PageInfoField::HasPreviousPage => run.boolean(after.is_some()),
                        PageInfoField::HasNextPage => run.boolean(has_next),
                        PageInfoField::StartCursor => run.optional_string(cursor(page.first()).as_deref()),
                        PageInfoField::EndCursor => run.optional_string(cursor(page.last()).as_deref()),
                    }
                    Some(())
                })?,
            }
            Some(())
        })
    }

    fn optional_string(&mut self, s: Option<&str>) {
        match s {
            Some(s) => self.string(s),
            None => self.null(),
        }
    }

    /// `Query.observation`.
    fn single_observation(&mut self, args: &Args, sels: &[Sel<ObsField>]) -> Option<()> {
        let (ds, cell, bound) = self.figure(args)?;
        match ds.get(&cell, bound) {
            Some(o) => self.observation(&o, bound, sels),
            None => {
                self.null();
                Some(())
            }
        }
    }

    /// The figure `observation` and `history` name, and the point they read at.
    fn figure(
        &self,
        args: &Args,
    ) -> Option<(
        &'a crate::projection::DatasetView,
        crate::projection::CellKey,
        crate::projection::Bound,
    )> {
        let dataset: ID = self.arg(args, "dataset", None)?;
        let key: String = self.arg(args, "key", None)?;
        let period: Period = self.arg(args, "period", None)?;
        let measure: String = self.arg(args, "measure", Some(|| String::from("BAL")))?;
        let as_of: Option<AsOf> = self.arg(args, "asOf", None)?;
        let spec = AsOf::to_spec(as_of.as_ref()).ok()?;
        let ds = self.p.dataset(&dataset)?;
        check_period(ds, period, "period").ok()?;
        let cell = cell_key(ds, &key, period, &measure).ok()?;
        let bound = self.p.bound(spec).ok()?;
        Some((ds, cell, bound))
    }

    /// `Query.history`.
    fn history(&mut self, args: &Args, sels: &[Sel<VersionField>]) -> Option<()> {
        let (ds, cell, bound) = self.figure(args)?;
        let Some(obs) = ds.get(&cell, bound) else {
            self.raw("[]");
            return Some(());
        };
        let p = self.p;
        let versions = super::types::versions(p, &obs);
        self.list(&versions, |run, v| {
            run.object(sels, |run, f| {
                match f {
                    VersionField::Typename => run.string("ObservationVersion"),
                    VersionField::Scalar(s) => run.scalar(s, v)?,
                    VersionField::Release(sels) => run.release(p.release_at(v.release_position), sels)?,
                }
                Some(())
            })
        })
    }

    /// `Query.revisionSummary`, its scalar fields.
    fn revision_summary(&mut self, args: &Args, sels: &[Sel<SummaryField>]) -> Option<()> {
        let dataset: ID = self.arg(args, "dataset", None)?;
        let filter: Option<ObservationFilter> = self.arg(args, "filter", None)?;
        let as_of: Option<AsOf> = self.arg(args, "asOf", None)?;
        let spec = AsOf::to_spec(as_of.as_ref()).ok()?;
        let p = self.p;
        let ds = p.dataset(&dataset)?;
        let bound = p.bound(spec).ok()?;
        let filter = filter.unwrap_or_default().resolve(ds).ok()?;
        let s = RevisionSummary::of(p.select(ds, &filter, bound, None));
        if s.overflow.is_some() {
            // The figures are then errors: async-graphql says which.
            return None;
        }
        self.object(sels, |run, f| {
            match f {
                SummaryField::Typename => run.string("RevisionSummary"),
                SummaryField::ObservationCount => run.number(s.observations),
                SummaryField::RevisedCount => run.number(s.revised),
                SummaryField::RevisionCount => run.number(s.revisions),
                SummaryField::MeanRevision => run.optional_decimal(s.mean_revision),
                SummaryField::MeanAbsoluteRevision => run.optional_decimal(s.mean_absolute_revision),
                SummaryField::MaxAbsoluteRevision => run.optional_decimal(s.max_absolute_revision),
            }
            Some(())
        })
    }

    fn optional_decimal(&mut self, d: Option<Decimal>) {
        match d {
            Some(d) => self.display(d),
            None => self.null(),
        }
    }

    /// `Query.breakdown`.
    fn breakdown(&mut self, args: &Args, sels: &[Sel<BreakdownField>]) -> Option<()> {
        let dataset: ID = self.arg(args, "dataset", None)?;
        let dimension: String = self.arg(args, "dimension", None)?;
        let period: Period = self.arg(args, "period", None)?;
        let measure: String = self.arg(args, "measure", Some(|| String::from("BAL")))?;
        let key: Option<String> = self.arg(args, "key", None)?;
        let as_of: Option<AsOf> = self.arg(args, "asOf", None)?;
        let spec = AsOf::to_spec(as_of.as_ref()).ok()?;
        let p = self.p;
        let ds = p.dataset(&dataset)?;
        let (dim, _) = ds.def.dimension(&dimension)?;
        let base = match &key {
            Some(k) => ds.def.parse_key(k).ok()?,
            None => ds.def.total_key(),
        };
        check_period(ds, period, "period").ok()?;
        let measure_pos = cell_key(ds, &ds.def.format_key(&base), period, &measure).ok()?.measure;
        let bound = p.bound(spec).ok()?;
        let b = ds.breakdown(&base, dim, period, measure_pos, bound);
        if b.overflow.is_some() {
            return None;
        }
        let as_of = bound.revision;
        self.object(sels, |run, f| {
            match f {
                BreakdownField::Typename => run.string("Breakdown"),
                BreakdownField::Dimension => run.string(&dimension),
                BreakdownField::Period => run.display(period),
                BreakdownField::Measure => run.string(&measure),
                BreakdownField::Total(sels) => match &b.total {
                    Some(t) => run.observation(t, bound, sels)?,
                    None => run.null(),
                },
                BreakdownField::Items(sels) => run.list(&b.items, |run, o| run.observation(o, bound, sels))?,
                BreakdownField::SumOfItems => run.display(b.sum_of_items),
                BreakdownField::Residual => run.optional_decimal(b.residual),
                BreakdownField::AsOfRevision => run.number(as_of),
            }
            Some(())
        })
    }

    /// One declared scalar field of `value`.
    fn scalar<T>(&mut self, s: &Scalar<T>, value: &T) -> Option<()> {
        #[cfg(test)]
        if tests::PERTURBED.with(|p| p.get() == Some(s.name)) {
            self.raw("\"perturbed\"");
            return Some(());
        }
        (s.write)(value, &mut self.out)
    }

    /// An `Observation` read at `bound`.
    fn observation(&mut self, obs: &ObservationAt<'_>, bound: Bound, sels: &[Sel<ObsField>]) -> Option<()> {
        let p = self.p;
        let o = observation(p, obs, bound);
        self.object(sels, |run, f| {
            match f {
                ObsField::Typename => run.string("Observation"),
                ObsField::Scalar(s) => run.scalar(s, &o)?,
                ObsField::Dimensions(sels) => {
                    let dims = DimensionValue::of_key(&obs.dataset.def, &obs.cell.key);
                    run.list(&dims, |run, d| {
                        run.object(sels, |run, f| {
                            match f {
                                DimField::Typename => run.string("DimensionValue"),
                                DimField::Scalar(s) => run.scalar(s, d)?,
                            }
                            Some(())
                        })
                    })?;
                }
                ObsField::Release(sels) => run.release(p.release_at(o.release_position()), sels)?,
            }
            Some(())
        })
    }

    fn release(&mut self, r: &ReleaseInfo, sels: &[Sel<ReleaseField>]) -> Option<()> {
        self.object(sels, |run, f| {
            match f {
                ReleaseField::Typename => run.string("Release"),
                ReleaseField::Scalar(s) => run.scalar(s, r)?,
            }
            Some(())
        })
    }
}

#[cfg(test)]
mod tests {
    //! The differential property test: random queries over the schema subset the plan
    //! covers (and a little beyond), both executors, byte-identical answers.

    use std::sync::Arc;

    use async_graphql::{Request, Variables};
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use base64::Engine;
    use proptest::prelude::*;
    use proptest::test_runner::{Config, TestRunner};
    use rand::rngs::StdRng;
    use rand::seq::SliceRandom;
    use rand::{Rng, SeedableRng};
    use serde_json::{json, Value as Json};

    use super::Plans;
    use crate::graphql::fields::{graphql_name, Scalar};
    use crate::graphql::types::{DimensionValue, Observation, ObservationVersion, Release};

    thread_local! {
        /// The declared field (Rust name) the fast path writes wrong on this thread, to show
        /// that the differential test catches it.
        pub(super) static PERTURBED: std::cell::Cell<Option<&'static str>> = const { std::cell::Cell::new(None) };
    }
    use crate::graphql::{add_codes, build_schema, to_json_capped, AppSchema, Limits, QueryLimits};
    use crate::ledger::{Ledger, OpenOptions};
    use crate::store::{LogStore, MemoryStore};

    struct Env {
        ledger: Ledger,
        schema: AppSchema,
        queries: QueryLimits,
        limits: Limits,
        releases: Vec<String>,
        head: u64,
    }

    async fn env() -> Env {
        let store = Arc::new(MemoryStore::new()) as Arc<dyn LogStore>;
        let (ledger, _) = Ledger::open(store, OpenOptions::default()).expect("ledger opens");
        ledger
            .define_dataset(crate::generate::dataset(), "test")
            .await
            .expect("dataset defined");
        for draft in crate::generate::Generator::new(14, 60, 7) {
            ledger.publish(draft, None, "test").await.expect("release published");
        }
        let limits = Limits {
            max_page_size: 50,
            ..Limits::default()
        };
        let p = ledger.read();
        let releases = p.releases().iter().map(|r| r.id.to_string()).collect();
        let head = p.head().revision;
        drop(p);
        Env {
            schema: build_schema(ledger.clone(), limits),
            queries: QueryLimits::new(limits, ledger.clone()),
            ledger,
            limits,
            releases,
            head,
        }
    }

    /// What builds a field's sub-selection, if it has one.
    type Sub<G> = Option<fn(&mut G) -> String>;

    /// A variable of the generated operation.
    struct Var {
        name: String,
        ty: &'static str,
        /// What `variables` holds for it; `None` leaves it out.
        sent: Option<Json>,
        /// The value intended (none left out or null).
        intended: Json,
        /// The default in its definition (a literal), if any.
        default: Option<String>,
    }

    /// Builds one random query text and its variables.
    struct Gen<'a> {
        rng: StdRng,
        env: &'a Env,
        vars: Vec<Var>,
        fragments: Vec<String>,
        aliases: usize,
    }

    impl Gen<'_> {
        fn chance(&mut self, p: f64) -> bool {
            self.rng.gen_bool(p)
        }

        fn pick<T: Clone>(&mut self, xs: &[T]) -> T {
            xs[self.rng.gen_range(0..xs.len())].clone()
        }

        /// A literal, or (sometimes) a variable of type `ty` holding `value`.
        fn value(&mut self, ty: &'static str, literal: String, value: Json) -> String {
            if self.chance(0.35) {
                let default = self.chance(0.3);
                self.variable(ty, literal, value, default)
            } else {
                literal
            }
        }

        /// A variable of type `ty` holding `value` (`literal` in GraphQL), with `literal` as
        /// its default if `default` (and then mostly left out of `variables`, so that the
        /// default applies); now and then null, or missing.
        fn variable(&mut self, ty: &'static str, literal: String, value: Json, default: bool) -> String {
            let name = format!("v{}", self.vars.len());
            let default = default.then_some(literal);
            let sent = match self.rng.gen_range(0..30) {
                0 => Some(Json::Null),
                1 => None,
                2..=17 if default.is_some() => None,
                _ => Some(value.clone()),
            };
            self.vars.push(Var {
                name: name.clone(),
                ty,
                sent,
                intended: value,
                default,
            });
            format!("${name}")
        }

        fn string(&mut self, ty: &'static str, s: &str) -> String {
            let literal = serde_json::to_string(s).expect("strings serialize");
            self.value(ty, literal, json!(s))
        }

        fn int(&mut self, ty: &'static str, n: i64) -> String {
            self.value(ty, n.to_string(), json!(n))
        }

        fn period(&mut self) -> String {
            let p = match self.rng.gen_range(0..40) {
                0 => "1990".to_owned(),
                1 => "1990-13".to_owned(),
                2 => "junk".to_owned(),
                _ => crate::generate::period(self.rng.gen_range(0..16)).to_string(),
            };
            self.string("Period!", &p)
        }

        fn key_text(&mut self) -> String {
            match self.rng.gen_range(0..24) {
                0 => "ZZ._T._T".to_owned(),
                1 => "_T._T".to_owned(),
                _ => {
                    let keys = crate::generate::keys(&crate::generate::dataset());
                    let i = self.rng.gen_range(0..25);
                    keys[i].clone()
                }
            }
        }

        fn dataset(&mut self) -> String {
            let id = if self.chance(0.02) { "NOPE" } else { "SYNTHETIC_TRADE" };
            self.string("ID!", id)
        }

        fn measure(&mut self) -> Option<String> {
            match self.rng.gen_range(0..20) {
                0..=11 => None,
                12..=16 => Some(self.string("String!", "BAL")),
                17 | 18 => Some(self.string("String!", "CRE")),
                _ => Some(self.string("String!", "XXX")),
            }
        }

        /// A whole input object as one variable of type `ty` (nullable): its JSON value, now
        /// and then with a field the type does not have.
        fn object_variable(&mut self, ty: &'static str, mut value: Json) -> String {
            if self.chance(0.08) {
                value["nope"] = json!(1);
            }
            let name = format!("v{}", self.vars.len());
            let sent = match self.rng.gen_range(0..20) {
                0 => Some(Json::Null),
                1 => None,
                _ => Some(value.clone()),
            };
            self.vars.push(Var {
                name: name.clone(),
                ty,
                sent,
                intended: value,
                default: None,
            });
            format!("${name}")
        }

        fn as_of(&mut self) -> Option<String> {
            if self.chance(0.25) {
                let value = match self.rng.gen_range(0..12) {
                    0..=3 => json!({"revision": self.rng.gen_range(-1..self.env.head as i64 + 3)}),
                    4..=6 => {
                        let releases = self.env.releases.clone();
                        json!({"release": self.pick(&releases)})
                    }
                    7 | 8 => json!({"publishedAt": self.pick(&["1990-01-01T00:00:00Z", "1990-06-20T12:00:00+02:00"])}),
                    9 => json!({"revision": "three"}),
                    10 => json!({"revision": 3_000_000_000i64}),
                    11 if self.chance(0.5) => {
                        json!({"knownAt": self.pick(&["1990-01-01T00:00:00Z", "2100-01-01T00:00:00Z"]),
                               "publishedAt": self.pick(&["1990-01-01T00:00:00Z", "1990-06-20T12:00:00+02:00"])})
                    }
                    _ => json!({"revision": 2, "publishedAt": "1990-01-01T00:00:00Z"}),
                };
                return Some(self.object_variable("AsOf", value));
            }
            Some(match self.rng.gen_range(0..10) {
                0..=4 => return None,
                5 | 6 => {
                    let r = self.rng.gen_range(-1..self.env.head as i64 + 3);
                    format!("{{revision: {}}}", self.int("Int", r))
                }
                7 => {
                    let id = if self.chance(0.9) {
                        let releases = self.env.releases.clone();
                        self.pick(&releases)
                    } else {
                        "00000000-0000-0000-0000-000000000001".to_owned()
                    };
                    format!("{{release: {}}}", self.string("UUID", &id))
                }
                8 => {
                    let t = self.pick(&[
                        "1990-01-01T00:00:00Z",
                        "1990-06-20T12:00:00+02:00",
                        "2030-01-01T00:00:00Z",
                    ]);
                    if self.chance(0.3) {
                        let k = self.pick(&["1990-01-01T00:00:00Z", "2100-01-01T00:00:00Z"]);
                        format!(
                            "{{publishedAt: {}, knownAt: {}}}",
                            self.string("DateTime", t),
                            self.string("DateTime", k)
                        )
                    } else {
                        format!("{{publishedAt: {}}}", self.string("DateTime", t))
                    }
                }
                _ => "{revision: 1, release: \"00000000-0000-0000-0000-000000000001\"}".to_owned(),
            })
        }

        fn cursor(&mut self) -> String {
            let raw = if self.chance(0.8) {
                let key = self.key_text();
                let p = crate::generate::period(self.rng.gen_range(0..16));
                URL_SAFE_NO_PAD.encode(format!("{key}|{p}|BAL"))
            } else {
                "not-a-cursor".to_owned()
            };
            self.string("String", &raw)
        }

        /// A filter as one variable, as the mixed workload sends it.
        fn filter_variable(&mut self) -> String {
            let mut f = serde_json::Map::new();
            let period = |g: &mut Self| match g.rng.gen_range(0..20) {
                0 => json!("junk"),
                1 => json!(1990),
                _ => json!(crate::generate::period(g.rng.gen_range(0..16)).to_string()),
            };
            if self.chance(0.7) {
                let k = self.pick(&[
                    "S01+S02..",
                    "._T.",
                    "..G01",
                    "_T._T._T",
                    "_T.P01.",
                    "_T..G02",
                    "Q..",
                    "S01.P01+P02._T",
                ]);
                f.insert("key".into(), json!(k));
            }
            match self.rng.gen_range(0..5) {
                0 | 1 => {
                    let ps: Vec<Json> = (0..self.rng.gen_range(0..3)).map(|_| period(self)).collect();
                    f.insert("periods".into(), Json::Array(ps));
                }
                // One value where a list is declared: coerced to a list of one.
                2 => {
                    f.insert("periods".into(), period(self));
                }
                3 => {
                    f.insert("periodFrom".into(), period(self));
                    f.insert("periodTo".into(), period(self));
                }
                _ => {}
            }
            if self.chance(0.2) {
                let m = self.pick(&["BAL", "CRE", "XXX"]);
                f.insert("measures".into(), json!([m]));
            }
            if self.chance(0.1) {
                let st = self.pick(&["REVISED", "FINAL", "BOGUS"]);
                f.insert("status".into(), json!([st]));
            }
            if self.chance(0.1) {
                f.insert("revisedOnly".into(), json!(self.chance(0.5)));
            }
            if self.chance(0.08) {
                let d = if self.chance(0.8) {
                    json!({"dimension": "SECTOR", "codes": ["S01", "S03"]})
                } else {
                    json!({"dimension": "SECTOR", "codes": ["S01"], "nope": true})
                };
                f.insert("dimensions".into(), if self.chance(0.5) { json!([d]) } else { d });
            }
            self.object_variable("ObservationFilter", Json::Object(f))
        }

        fn filter(&mut self) -> String {
            if self.chance(0.3) {
                return self.filter_variable();
            }
            let mut parts = Vec::new();
            if self.chance(0.5) {
                let k = self.pick(&["S01+S02..", "._T.", "..G01", "_T._T._T", "Q..", "S01.P01+P02._T"]);
                parts.push(format!("key: {}", self.string("String", k)));
            }
            if self.chance(0.4) {
                let a = self.period();
                let b = self.period();
                parts.push(format!("periods: [{a}, {b}]"));
            }
            if self.chance(0.2) {
                parts.push(format!("periodFrom: {}", self.period()));
            }
            if self.chance(0.3) {
                let m = self.pick(&["BAL", "CRE", "XXX"]);
                parts.push(format!("measures: [{}]", self.string("String!", m)));
            }
            if self.chance(0.15) {
                parts.push("status: [REVISED]".to_owned());
            }
            if self.chance(0.15) {
                parts.push("revisedOnly: true".to_owned());
            }
            if self.chance(0.1) {
                parts.push("dimensions: [{dimension: \"SECTOR\", codes: [\"S01\", \"S03\"]}]".to_owned());
            }
            format!("{{{}}}", parts.join(", "))
        }

        fn args(&mut self, parts: Vec<Option<String>>, names: &[&str]) -> String {
            let list: Vec<String> = names
                .iter()
                .zip(parts)
                .filter_map(|(n, v)| v.map(|v| format!("{n}: {v}")))
                .collect();
            if list.is_empty() {
                String::new()
            } else {
                format!("({})", list.join(", "))
            }
        }

        /// A directive now and then.
        fn directive(&mut self) -> String {
            match self.rng.gen_range(0..40) {
                0 => " @include(if: true)".to_owned(),
                1 => " @include(if: false)".to_owned(),
                2 => " @skip(if: true)".to_owned(),
                3 | 5 => {
                    let b = self.chance(0.5);
                    let v = self.value("Boolean!", b.to_string(), json!(b));
                    let which = if self.chance(0.5) { "skip" } else { "include" };
                    format!(" @{which}(if: {v})")
                }
                // A nullable variable, as clients write it: `$v: Boolean = true`, usually
                // left out of `variables` so that its default decides.
                6 | 7 => {
                    let b = self.chance(0.5);
                    let v = self.variable("Boolean", b.to_string(), json!(b), true);
                    let which = if self.chance(0.5) { "skip" } else { "include" };
                    format!(" @{which}(if: {v})")
                }
                4 => " @deprecated".to_owned(),
                _ => String::new(),
            }
        }

        /// A selection of `fields` (name, sub-selection maker) on `type_name`.
        fn selection<S: AsRef<str> + Clone>(&mut self, type_name: &str, fields: &[(S, Sub<Self>)]) -> String {
            let n = self.rng.gen_range(1..=fields.len().min(6));
            let mut fields = fields.to_vec();
            fields.shuffle(&mut self.rng);
            let mut items = Vec::new();
            for (name, sub) in &fields[..n] {
                let (name, sub) = (name.as_ref(), *sub);
                let alias = if self.chance(0.2) && self.aliases < 25 {
                    self.aliases += 1;
                    format!("a{}: ", self.aliases)
                } else {
                    String::new()
                };
                let sub = sub.map(|f| f(self)).unwrap_or_default();
                let directive = self.directive();
                items.push(format!("{alias}{name}{directive}{sub}"));
            }
            // Some of it through fragments.
            if items.len() > 1 && self.chance(0.3) {
                let inner: Vec<String> = items.drain(..items.len() / 2).collect();
                if self.chance(0.5) {
                    let on = if self.chance(0.5) {
                        format!(" on {type_name}")
                    } else {
                        String::new()
                    };
                    items.push(format!("...{on}{} {{ {} }}", self.directive(), inner.join(" ")));
                } else {
                    let name = format!("F{}", self.fragments.len());
                    self.fragments
                        .push(format!("fragment {name} on {type_name} {{ {} }}", inner.join(" ")));
                    items.insert(0, format!("...{name}"));
                }
            }
            format!(" {{ {} }}", items.join(" "))
        }

        /// `__typename`, the declared scalars of `table`, then `more`.
        fn fields<T>(table: &[Scalar<T>], more: &[(&str, Sub<Self>)]) -> Vec<(String, Sub<Self>)> {
            std::iter::once(("__typename".to_owned(), None))
                .chain(table.iter().map(|s| (graphql_name(s.name), None)))
                .chain(more.iter().map(|(name, sub)| ((*name).to_owned(), *sub)))
                .collect()
        }

        fn release(&mut self) -> String {
            self.selection("Release", &Self::fields(Release::SCALARS, &[]))
        }

        fn observation(&mut self) -> String {
            let fields = Self::fields(
                Observation::SCALARS,
                &[
                    (
                        "dimensions",
                        Some(|g: &mut Self| g.selection("DimensionValue", &Self::fields(DimensionValue::SCALARS, &[]))),
                    ),
                    ("release", Some(Self::release)),
                    // Not compiled: the plan leaves the query to async-graphql.
                    ("versions", Some(|_: &mut Self| " { value }".to_owned())),
                    // The most used fields, twice as likely.
                    ("key", None),
                    ("value", None),
                    ("period", None),
                ],
            );
            self.selection("Observation", &fields)
        }

        fn version(&mut self) -> String {
            let fields = Self::fields(ObservationVersion::SCALARS, &[("release", Some(Self::release))]);
            self.selection("ObservationVersion", &fields)
        }

        fn connection(&mut self) -> String {
            self.selection(
                "ObservationConnection",
                &[
                    ("__typename", None),
                    ("nodes", Some(Self::observation)),
                    (
                        "edges",
                        Some(|g: &mut Self| {
                            g.selection(
                                "ObservationEdge",
                                &[
                                    ("__typename", None),
                                    ("cursor", None),
                                    ("node", Some(Self::observation)),
                                ],
                            )
                        }),
                    ),
                    (
                        "pageInfo",
                        Some(|g: &mut Self| {
                            g.selection(
                                "PageInfo",
                                &[
                                    ("__typename", None),
                                    ("hasPreviousPage", None),
                                    ("hasNextPage", None),
                                    ("startCursor", None),
                                    ("endCursor", None),
                                ],
                            )
                        }),
                    ),
                    ("totalCount", None),
                ],
            )
        }

        fn breakdown_selection(&mut self) -> String {
            self.selection(
                "Breakdown",
                &[
                    ("__typename", None),
                    ("dimension", None),
                    ("period", None),
                    ("measure", None),
                    ("total", Some(Self::observation)),
                    ("items", Some(Self::observation)),
                    ("sumOfItems", None),
                    ("residual", None),
                    ("asOfRevision", None),
                ],
            )
        }

        fn root_field(&mut self) -> String {
            match self.rng.gen_range(0..10) {
                0 => "__typename".to_owned(),
                9 => {
                    let dataset = Some(self.dataset());
                    let filter = self.chance(0.8).then(|| self.filter());
                    let as_of = self.as_of();
                    let args = self.args(vec![dataset, filter, as_of], &["dataset", "filter", "asOf"]);
                    let selection = self.selection(
                        "RevisionSummary",
                        &[
                            ("__typename", None),
                            ("observationCount", None),
                            ("revisedCount", None),
                            ("revisionCount", None),
                            ("meanRevision", None),
                            ("meanAbsoluteRevision", None),
                            ("maxAbsoluteRevision", None),
                            ("items", Some(|_: &mut Self| " { key revision }".to_owned())),
                        ],
                    );
                    format!("revisionSummary{args}{selection}")
                }
                1 | 2 => {
                    let dataset = Some(self.dataset());
                    let filter = self.chance(0.7).then(|| self.filter());
                    let as_of = self.as_of();
                    let first = match self.rng.gen_range(0..10) {
                        0..=3 => None,
                        4 => Some(self.int("Int", -1)),
                        5 => Some(self.int("Int", 100_000)),
                        _ => {
                            let n = self.rng.gen_range(0..6);
                            Some(self.int("Int", n))
                        }
                    };
                    let after = self.chance(0.2).then(|| self.cursor());
                    let args = self.args(
                        vec![dataset, filter, as_of, first, after],
                        &["dataset", "filter", "asOf", "first", "after"],
                    );
                    format!("observations{args}{}", self.connection())
                }
                3 | 4 => {
                    let parts = vec![
                        Some(self.dataset()),
                        Some({
                            let k = self.key_text();
                            self.string("String!", &k)
                        }),
                        Some(self.period()),
                        self.measure(),
                        self.as_of(),
                    ];
                    let args = self.args(parts, &["dataset", "key", "period", "measure", "asOf"]);
                    if self.chance(0.5) {
                        format!("history{args}{}", self.version())
                    } else {
                        format!("observation{args}{}", self.observation())
                    }
                }
                _ => {
                    let dimension = self.pick(&["SECTOR", "PARTNER", "PRODUCT", "PARTNER", "NOPE"]);
                    let key = self.chance(0.2).then(|| {
                        let k = self.pick(&["S01._T._T", "_T._T._T", "S02.P03._T", "XX"]);
                        self.string("String", k)
                    });
                    let parts = vec![
                        Some(self.dataset()),
                        Some(self.string("String!", dimension)),
                        Some(self.period()),
                        self.measure(),
                        key,
                        self.as_of(),
                    ];
                    let args = self.args(parts, &["dataset", "dimension", "period", "measure", "key", "asOf"]);
                    format!("breakdown{args}{}", self.breakdown_selection())
                }
            }
        }

        /// The query text, its variables, and the variables as intended (none left out or null).
        fn query(mut self) -> (String, Json, Json) {
            let n = self.rng.gen_range(1..=2);
            let mut roots = Vec::new();
            for i in 0..n {
                let field = self.root_field();
                let directive = self.directive();
                let (name, rest) = field.split_at(field.find([' ', '(']).unwrap_or(field.len()));
                roots.push(format!("r{i}: {name}{directive}{rest}"));
            }
            let decls: Vec<String> = self
                .vars
                .iter()
                .map(|v| match &v.default {
                    Some(d) => format!("${}: {} = {d}", v.name, v.ty),
                    None => format!("${}: {}", v.name, v.ty),
                })
                .collect();
            let head = if decls.is_empty() {
                "query Q".to_owned()
            } else {
                format!("query Q({})", decls.join(", "))
            };
            let text = format!("{head} {{ {} }} {}", roots.join(" "), self.fragments.join(" "));
            let vars: serde_json::Map<String, Json> = self
                .vars
                .iter()
                .filter_map(|v| v.sent.clone().map(|s| (v.name.clone(), s)))
                .collect();
            let intended: serde_json::Map<String, Json> =
                self.vars.iter().map(|v| (v.name.clone(), v.intended.clone())).collect();
            (text, Json::Object(vars), Json::Object(intended))
        }
    }

    /// True when async-graphql finds nothing wrong with the document itself (it may still
    /// fail while executing): the server learns plans of such documents only, from their
    /// first clean answer.
    fn valid(env: &Env, rt: &tokio::runtime::Runtime, request: Request) -> bool {
        let (body, _) = slow(env, rt, request, usize::MAX);
        let body = String::from_utf8(body).expect("JSON is UTF-8");
        !body.contains("GRAPHQL_VALIDATION_FAILED") && !body.contains("GRAPHQL_PARSE_FAILED")
    }

    /// What the HTTP handler sends for a response executed by async-graphql.
    fn slow(env: &Env, rt: &tokio::runtime::Runtime, request: Request, max_bytes: usize) -> (Vec<u8>, bool) {
        let mut response = match env.queries.prepare(request) {
            // async-graphql orders an object's fields by when they finish; the order of the
            // selection set is restored as the servers restore it.
            Ok((r, order)) => {
                let mut response = rt.block_on(env.schema.execute(r));
                order.apply(&mut response);
                response
            }
            Err(e) => async_graphql::Response::from_errors(vec![e]),
        };
        add_codes(&mut response.errors);
        let clean = response.errors.is_empty();
        match to_json_capped(&response, max_bytes) {
            Ok(body) => (body, clean),
            Err(too_large) => {
                let refused = async_graphql::Response::from_errors(vec![too_large.error()]);
                (serde_json::to_vec(&refused).expect("responses serialize"), false)
            }
        }
    }

    /// Answers of both executors for random queries (the number of fast answers and of
    /// fallbacks); [`PERTURBED`] checks that it can fail.
    fn differential(cases: u32) -> Result<(u32, u32), String> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        let env = rt.block_on(env());
        let plans = Plans::new(1024);
        let fast_answers = std::cell::Cell::new(0u32);
        let fallbacks = std::cell::Cell::new(0u32);
        let mut runner = TestRunner::new(Config {
            cases,
            failure_persistence: None,
            // A smaller seed is not a simpler query: shrinking would only take time.
            max_shrink_iters: 0,
            ..Config::default()
        });
        let result = runner.run(&(any::<u64>(), 0..4usize), |(seed, size)| {
            let gen = Gen {
                rng: StdRng::seed_from_u64(seed),
                env: &env,
                vars: Vec::new(),
                fragments: Vec::new(),
                aliases: 0,
            };
            let (text, vars, intended) = gen.query();
            let max_bytes = [16 * 1024 * 1024, 3000, 800, 200][size];
            let request = || Request::new(text.clone()).variables(Variables::from_json(vars.clone()));
            let (slow_body, slow_clean) = slow(&env, &rt, request(), max_bytes);
            // The server learns a plan from a clean answer, so only of a valid document;
            // here of every valid one, whether or not this request's answer is clean.
            let Ok(doc) = env.queries.check(&request()) else {
                prop_assert!(!slow_clean);
                return Ok(());
            };
            if !valid(
                &env,
                &rt,
                Request::new(text.clone()).variables(Variables::from_json(intended)),
            ) {
                return Ok(());
            }
            plans.learn(&text, Some("Q"), &doc);
            let fast = plans.run(&request().operation_name("Q"), &env.ledger, &env.limits, max_bytes);
            let fast_body = match fast {
                None => {
                    fallbacks.set(fallbacks.get() + 1);
                    return Ok(());
                }
                Some(Ok(body)) => body,
                Some(Err(too_large)) => {
                    let refused = async_graphql::Response::from_errors(vec![too_large.error()]);
                    serde_json::to_vec(&refused).expect("responses serialize")
                }
            };
            fast_answers.set(fast_answers.get() + 1);
            prop_assert_eq!(
                String::from_utf8_lossy(&fast_body),
                String::from_utf8_lossy(&slow_body),
                "query {} variables {}",
                text,
                vars
            );
            Ok(())
        });
        result.map_err(|e| e.to_string())?;
        Ok((fast_answers.get(), fallbacks.get()))
    }

    /// Strings are written exactly as serde_json (and so async-graphql) writes them.
    #[test]
    fn escapes_strings_as_serde_json_does() {
        for s in [
            "",
            "plain",
            "a\"b",
            "back\\slash",
            "tab\t",
            "\u{1}",
            "\u{7f}",
            "é 漢字 🙂",
            "</script>",
            "\u{2028}",
        ] {
            let mut out = Vec::new();
            super::json_string(&mut out, s);
            assert_eq!(out, serde_json::to_vec(s).unwrap(), "{s:?}");
        }
    }

    /// The plans kept are bounded by `--query-plans`, the oldest going first.
    #[test]
    fn keeps_at_most_the_plans_it_is_allowed() {
        let plans = Plans::new(2);
        let texts: Vec<String> = (0..3).map(|i| format!("{{ a{i}: __typename }}")).collect();
        for t in &texts {
            let doc = async_graphql::parser::parse_query(t).unwrap();
            plans.learn(t, None, &doc);
        }
        assert!(plans.get(&Request::new(texts[0].clone())).is_none());
        assert!(plans.get(&Request::new(texts[2].clone())).is_some());
        assert!(!plans.wants(&Request::new(texts[2].clone()), 1000));
        let off = Plans::new(0);
        assert!(!off.wants(&Request::new(texts[0].clone()), 1000));
    }

    /// The differential test fails when the fast path writes one declared field wrong: one
    /// field of each read type in turn.
    #[test]
    fn the_differential_test_catches_a_field_written_wrong() {
        for field in ["value", "title", "label", "published_at"] {
            PERTURBED.with(|p| p.set(Some(field)));
            let result = differential(1500);
            PERTURBED.with(|p| p.set(None));
            let error = result.expect_err(field);
            assert!(error.contains("perturbed"), "{field}: {error}");
        }
    }

    /// Random queries over the covered schema give byte-identical answers on both paths.
    #[test]
    fn fast_path_answers_exactly_as_async_graphql() {
        let (fast, fallbacks) = differential(1400).unwrap();
        // The test must exercise the fast path, not only its fallbacks.
        assert!(fast > 250, "only {fast} fast answers ({fallbacks} fallbacks)");
    }
}
