//! Limits checked on the parsed document before anything else looks at it.
//!
//! async-graphql's own depth and complexity limits do not count `__typename`, so a query of
//! thousands of aliased `__typename` fields passes them; and its recursion-depth check expands
//! fragments without bound, so a "fragment bomb" (each fragment spreading the next twice)
//! keeps a core busy for minutes. [`QueryLimits::prepare`] parses the request itself before
//! it is executed, before those checks run, and counts every selection (with fragments
//! expanded, stopping as soon as a limit is passed, so a bomb costs no more than the limit),
//! every alias, and the nesting depth. The parsed document is handed on, so nothing is
//! parsed twice.
//!
//! This is not an async-graphql extension on purpose: with any extension registered,
//! async-graphql resolves every field through the extension chain (looking the field's type
//! up in the registry each time), which cost a fifth of the time of a 20-item breakdown.
//! The HTTP handler and the WebSocket protocols call `prepare` instead.
//!
//! Clients send the same few query texts over and over, so documents that passed are kept in
//! a small cache keyed by their text: a repeated query is neither parsed nor walked again.
//!
//! # Cost: the objects a query can return
//!
//! Counting fields says nothing of list sizes: eight aliases of
//! `releases(first: 1000) { nodes { observations { value } } }` are a few dozen fields and
//! may return a million objects. So before executing, [`QueryLimits::prepare`] also computes
//! the worst-case number of objects the chosen operation can return, as GitHub's GraphQL API
//! counts nodes and Shopify costs lists: every object a selection can return counts once,
//! multiplied by the sizes of the lists above it.
//!
//! - A connection's page is its `first` (a literal, or a variable with its default), else the
//!   default page of 100, never more than the page-size cap nor than the items there are
//!   (releases, events, figures of the largest dataset). Its `edges` and `nodes` are lists
//!   of that size; the connection and its `pageInfo` count once per parent.
//! - Other lists take the ledger's largest real size ([`Extents`], O(1) to read): the
//!   observations of the largest release, the versions of the most revised figure, the
//!   longest code list, the number of datasets; introspection lists take the schema's own
//!   sizes. A list field not known here counts as a full page (the page-size cap).
//! - Scalars cost nothing; a list of scalars counts its items.
//!
//! The field types come from the schema's own SDL, so a field added later is typed without
//! touching this file. Above `max_cost` the request is refused with `LIMIT_EXCEEDED` and the
//! computed `cost` and `maxCost` in `extensions`, before anything runs.
//!
//! # Bytes: how large the answer can be
//!
//! Objects are not all alike: an event's `canonical` text is the whole event (742 KB for a
//! release of 10,000 figures), so a page of a thousand of them is 742 MB, built in memory
//! before a byte cap could refuse it. The same walk therefore estimates the worst-case size
//! of the answer: every selected field costs its key, and its value an estimate times the
//! number of times it can be returned. Values that can be large take the real largest size
//! in the log ([`LogSizes`], JSON-escaped): `canonical` (of an event, and of an inclusion
//! proof) the largest event; titles, sources, names, publishers and descriptions the longest
//! such text. Other scalars count [`SCALAR_BYTES`] (numbers and flags [`NUMBER_BYTES`]).
//! Above `--max-response-bytes` the request is refused with `LIMIT_EXCEEDED`, the estimate
//! (`bytes`) and the limit (`maxResponseBytes`) before anything runs.
//!
//! The estimate of ordinary scalars is not a bound, so the response is also counted while it
//! is built where it grows by the most ([`ResponseBytes`]: event texts and proofs): a field
//! that takes it past the cap fails with `LIMIT_EXCEEDED` at once, and so does every one
//! after it. The response is then serialized under the byte cap ([`to_json_capped`]), which
//! stops writing as soon as the cap is passed rather than after building the whole body.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;

use async_graphql::parser::types::{
    BaseType, ExecutableDocument, Field, FragmentDefinition, OperationDefinition, Selection, SelectionSet, Type,
    TypeKind, TypeSystemDefinition,
};
use async_graphql::parser::Positioned;
use async_graphql::{Name, Request, ServerError, Value, Variables};

use super::fast::Plans;
use super::order::ResponseOrder;
use super::{Limits, LIMIT_EXCEEDED};
use crate::bounded::BoundedMap;
use crate::ledger::Ledger;
use crate::projection::{Extents, Projection};

/// Longest query text cached, by the document cache here and by the HTTP response cache.
pub const MAX_QUERY: usize = 16 * 1024;
/// Documents kept; the oldest go first when the cache is full.
const CACHE_ENTRIES: usize = 1024;
/// Bytes charged to the document cache: a parsed document takes several times its text.
const CACHE_BYTES: usize = 32 * 1024 * 1024;
/// A parsed document holds far more than its text: every selection, value, directive and
/// name is a struct of its own (a field of `{ a a a … }`, two bytes of text, is a
/// `Positioned<Selection>` of some 200 bytes). Measured with a counting allocator (document
/// and key, plus 16 bytes of allocator overhead per block, async-graphql-parser 7.2.1):
/// ordinary queries 23 (GraphiQL's introspection query) to 33 bytes per byte; the densest
/// documents the limits let through 115 (a thousand one-letter fields), 88 (a 16 KB list of
/// `{a:1}` objects), 55 (directives) and 37 (lists of numbers or strings, variables). The
/// charge covers the worst, so that the cache's byte budget bounds its real memory (at 12
/// per byte, 32 MB of budget could hold some 300 MB).
const DOCUMENT_BYTES_PER_BYTE: usize = 120;
/// The page a connection returns without `first`, as the resolvers choose it.
const DEFAULT_PAGE: u64 = 100;
/// `revisionSummary.items` holds at most this many items.
const REVISION_ITEMS: u64 = 1000;
/// Estimated bytes of a scalar value without a size of its own in [`LogSizes`] (keys,
/// periods, values, hashes, times), as JSON.
pub const SCALAR_BYTES: u64 = 48;
/// Estimated bytes of a number or a flag, as JSON.
pub const NUMBER_BYTES: u64 = 20;
/// Until the log is scanned through ([`LogSizes`]): bytes assumed per observation of the
/// largest release, plus [`UNSCANNED_EVENT_BYTES`], for an event's canonical text. A
/// canonical observation is about 75 bytes.
const UNSCANNED_OBSERVATION_BYTES: u64 = 160;
const UNSCANNED_EVENT_BYTES: u64 = 64 * 1024;
/// Events read per page while scanning the log's sizes.
const SIZES_PAGE: usize = 16;

/// The largest sizes in the log, for the byte estimate, JSON-escaped.
///
/// - The largest event's canonical text: kept up to date by a scan of the events not yet
///   seen, started (on a thread of its own, which ends when it reaches the head) by the
///   first check after they were recorded. A check never waits for it, and assumes sizes
///   from the largest release's figures for events it has not reached yet.
/// - The longest release text (title, source) and dataset text (name, publisher,
///   description): from the projection, where they are in memory, the releases not yet
///   seen at each check (datasets are few, and read every time).
#[derive(Debug, Default)]
pub struct LogSizes {
    through: AtomicU64,
    event: AtomicU64,
    scanning: AtomicBool,
    releases_seen: AtomicUsize,
    release_text: AtomicU64,
}

impl LogSizes {
    /// Starts a scan of the events after the last one scanned, unless one runs.
    fn refresh(self: &Arc<Self>, ledger: &Ledger, head: u64) {
        if self.through.load(Ordering::Acquire) >= head || self.scanning.swap(true, Ordering::AcqRel) {
            return;
        }
        let sizes = self.clone();
        let ledger = ledger.clone();
        let spawned = std::thread::Builder::new().name("log-sizes".into()).spawn(move || {
            sizes.scan(&ledger);
            sizes.scanning.store(false, Ordering::Release);
        });
        if let Err(e) = spawned {
            tracing::warn!(error = %e, "could not start the scan of the log's sizes");
            self.scanning.store(false, Ordering::Release);
        }
    }

    fn scan(&self, ledger: &Ledger) {
        loop {
            let after = self.through.load(Ordering::Acquire);
            let page = match ledger.audit_events(after, SIZES_PAGE) {
                Ok(page) => page,
                Err(e) => {
                    tracing::warn!(error = %e, after, "scanning the log's sizes stopped");
                    return;
                }
            };
            let Some(last) = page.last().map(|a| a.event.envelope.revision) else {
                return;
            };
            for a in &page {
                self.event.fetch_max(json_len(&a.canonical), Ordering::AcqRel);
            }
            self.through.store(last, Ordering::Release);
        }
    }

    /// The largest event, as JSON; guessed from `extents` for events not yet scanned.
    fn event(&self, extents: &Extents) -> u64 {
        let event = self.event.load(Ordering::Acquire);
        if self.through.load(Ordering::Acquire) >= extents.events {
            return event;
        }
        let guess = extents
            .max_release_observations
            .saturating_mul(UNSCANNED_OBSERVATION_BYTES)
            .saturating_add(UNSCANNED_EVENT_BYTES);
        event.max(guess)
    }

    /// The longest release or dataset text in `p`, as JSON.
    fn text(&self, p: &Projection) -> u64 {
        let releases = p.releases();
        let seen = self.releases_seen.load(Ordering::Acquire).min(releases.len());
        if seen < releases.len() {
            let longest = releases[seen..]
                .iter()
                .flat_map(|r| std::iter::once(r.title.as_str()).chain(r.source.as_deref()))
                .map(json_len)
                .max()
                .unwrap_or(0);
            self.release_text.fetch_max(longest, Ordering::AcqRel);
            self.releases_seen.fetch_max(releases.len(), Ordering::AcqRel);
        }
        let datasets = p
            .datasets()
            .iter()
            .flat_map(|d| {
                [d.def.name.as_str(), d.def.publisher.as_str()]
                    .into_iter()
                    .chain(d.def.description.as_deref())
            })
            .map(json_len)
            .max()
            .unwrap_or(0);
        self.release_text.load(Ordering::Acquire).max(datasets)
    }
}

/// The length of `s` as a JSON string, quotes included.
fn json_len(s: &str) -> u64 {
    let escaped: usize = s
        .bytes()
        .map(|b| match b {
            b'"' | b'\\' | b'\n' | b'\r' | b'\t' | 0x08 | 0x0c => 1,
            0..=0x1f => 5,
            _ => 0,
        })
        .sum();
    (s.len() + escaped + 2) as u64
}

/// Charges the JSON size of `texts` to the request's [`ResponseBytes`] (if it has one).
pub(crate) fn charge_texts<'t>(
    ctx: &async_graphql::Context<'_>,
    texts: impl IntoIterator<Item = &'t str>,
) -> async_graphql::Result<()> {
    let Some(counter) = ctx.data_opt::<ResponseBytes>() else {
        return Ok(());
    };
    let bytes: u64 = texts.into_iter().map(json_len).sum();
    counter.charge(bytes as usize)
}

/// Bytes of the response counted while it is built, in the request data: the resolvers of
/// the fields that can be large charge what they add ([`charge_texts`]), and once the total
/// passes `--max-response-bytes` every charge fails, so nothing more is built.
#[derive(Debug)]
pub struct ResponseBytes {
    used: AtomicUsize,
    limit: usize,
}

impl ResponseBytes {
    pub fn new(limit: usize) -> Self {
        ResponseBytes {
            used: AtomicUsize::new(0),
            limit,
        }
    }

    /// Adds `bytes`; the `LIMIT_EXCEEDED` error once the total is past the limit.
    pub fn charge(&self, bytes: usize) -> async_graphql::Result<()> {
        let used = self.used.fetch_add(bytes, Ordering::AcqRel).saturating_add(bytes);
        if used > self.limit {
            return Err(ResponseTooLarge { limit: self.limit }.error().into());
        }
        Ok(())
    }
}

/// The limits, the schema's shape, and the documents that passed the limits, by query text;
/// see the module docs.
pub struct QueryLimits {
    limits: Limits,
    shape: Shape,
    ledger: Ledger,
    cache: BoundedMap<Arc<str>, Arc<ExecutableDocument>>,
    /// Plans of the fast path ([`super::fast`]), learned from clean answers.
    plans: Plans,
    /// The log's largest sizes, for the byte estimate.
    sizes: Arc<LogSizes>,
}

impl QueryLimits {
    /// Limits for queries over `ledger`, whose list sizes bound the cost of a query.
    pub fn new(limits: Limits, ledger: Ledger) -> Self {
        QueryLimits {
            limits,
            shape: Shape::of_schema(),
            ledger,
            cache: BoundedMap::new(CACHE_ENTRIES, CACHE_BYTES),
            plans: Plans::new(limits.query_plans),
            sizes: Arc::default(),
        }
    }

    /// The parsed document of `query` if it parses and passes the limits on fields, aliases
    /// and depth (from the cache when it was seen before).
    pub fn document(&self, query: &str) -> Result<Arc<ExecutableDocument>, ServerError> {
        if let Some(doc) = self.cache.get(query) {
            return Ok(doc);
        }
        let doc = async_graphql::parser::parse_query(query)?;
        check(&doc, self.limits)?;
        let doc = Arc::new(doc);
        if query.len() <= MAX_QUERY {
            self.cache
                .insert(Arc::from(query), doc.clone(), document_charge(query.len()));
        }
        Ok(doc)
    }

    /// Parses `request` (or takes its document from the cache) and checks the limits, its
    /// cost included; the request comes back with its parsed document and the defaults of
    /// the variables it does not give ([`apply_variable_defaults`]), ready to execute, with
    /// the order its responses must be put in ([`ResponseOrder::apply`]).
    pub fn prepare(&self, mut request: Request) -> Result<(Request, ResponseOrder), ServerError> {
        let doc = self.check(&request)?;
        apply_variable_defaults(&doc, &mut request);
        request.set_parsed_query((*doc).clone());
        let order = ResponseOrder::new(
            doc.clone(),
            request.operation_name.as_deref(),
            request.variables.clone(),
        );
        // One response per query or mutation; a subscription's events are capped one by one
        // when they are serialized.
        let wanted = request.operation_name.as_deref();
        let subscription = doc
            .operations
            .iter()
            .find(|(name, _)| wanted.is_none_or(|w| name.is_some_and(|n| n.as_str() == w)))
            .is_some_and(|(_, op)| op.node.ty == async_graphql::parser::types::OperationType::Subscription);
        if subscription {
            return Ok((request, order));
        }
        Ok((request.data(ResponseBytes::new(self.limits.max_response_bytes)), order))
    }

    /// The parsed document of `request` if it passes every limit, its cost included.
    pub fn check(&self, request: &Request) -> Result<Arc<ExecutableDocument>, ServerError> {
        let doc = self.document(&request.query)?;
        let (cost, bytes) = self.estimate(&doc, request);
        if cost > self.limits.max_cost {
            return Err(too_costly(cost, self.limits.max_cost));
        }
        let max_bytes = self.limits.max_response_bytes as u64;
        if bytes > max_bytes {
            return Err(too_large(bytes, max_bytes));
        }
        Ok(doc)
    }

    /// The worst-case number of objects `request` may return (its cost, as the limit counts
    /// it), if its text parses and passes the limits on fields, aliases and depth.
    pub fn cost(&self, request: &Request) -> Option<u64> {
        let doc = self.document(&request.query).ok()?;
        Some(self.estimate(&doc, request).0)
    }

    /// The cost and the estimated response bytes of `request`, whose document is `doc`.
    fn estimate(&self, doc: &ExecutableDocument, request: &Request) -> (u64, u64) {
        let (extents, text) = {
            let p = self.ledger.read();
            (p.extents(), self.sizes.text(&p))
        };
        self.sizes.refresh(&self.ledger, extents.events);
        let sizes = (self.sizes.event(&extents), text);
        let max_page = self.limits.max_page_size as u64;
        cost_and_bytes(doc, request, &self.shape, &extents, sizes, max_page)
    }

    /// Answers `request` on the fast path if a plan was learned for it and it passes the
    /// limits: the response body, or the refusal of one larger than `max_response_bytes`.
    /// `None` sends it to async-graphql.
    pub fn fast(&self, request: &Request, max_response_bytes: usize) -> Option<Result<Vec<u8>, ResponseTooLarge>> {
        self.check(request).ok()?;
        self.plans.run(request, &self.ledger, &self.limits, max_response_bytes)
    }

    /// True when async-graphql's clean answer to `request` should be learned from.
    pub fn wants_plan(&self, request: &Request) -> bool {
        self.plans.wants(request, MAX_QUERY)
    }

    /// Compiles a plan for a query async-graphql has just answered without an error.
    pub fn learn(&self, query: &str, operation: Option<&str>) {
        if let Some(doc) = self.cache.get(query) {
            self.plans.learn(query, operation, &doc);
        }
    }
}

/// Gives every variable of the operation to run that the request leaves out its default from
/// the operation's variable definitions, as the GraphQL specification's
/// CoerceVariableValues does (a variable sent as `null` stays `null`).
///
/// async-graphql applies a default where a resolver reads an argument, but not in `@skip` and
/// `@include`: it removes skipped selections before executing, reading only the variables
/// sent. So `query($inc: Boolean = true) { ... status @include(if: $inc) }` without variables
/// lost `status`, while the fast path ([`super::fast`]) kept it and answered the same request
/// differently once it had learned the query. With the defaults filled in here, for HTTP and
/// WebSocket alike, both agree with the specification.
pub fn apply_variable_defaults(doc: &ExecutableDocument, request: &mut Request) {
    let wanted = request.operation_name.as_deref();
    let mut operations = doc.operations.iter();
    let operation = match wanted {
        Some(wanted) => operations.find(|(name, _)| name.is_some_and(|n| n.as_str() == wanted)),
        // Without a name, only a document of one operation runs.
        None => operations.next().filter(|_| doc.operations.iter().count() == 1),
    };
    let Some((_, operation)) = operation else { return };
    for def in &operation.node.variable_definitions {
        let def = &def.node;
        if let Some(default) = def.default_value() {
            if !request.variables.contains_key(&def.name.node) {
                request.variables.insert(def.name.node.clone(), default.clone());
            }
        }
    }
}

/// Bytes charged to the document cache for the parsed document of a query of `len` bytes
/// and its key (see [`DOCUMENT_BYTES_PER_BYTE`]).
fn document_charge(len: usize) -> usize {
    len.saturating_mul(DOCUMENT_BYTES_PER_BYTE) + 256
}

fn too_costly(cost: u64, max: u64) -> ServerError {
    let mut e = exceeded(format!(
        "query may return up to {cost} objects; the limit is {max} (lists count at their page size, \
         `first` or the page-size cap, or at the ledger's largest list; ask for smaller pages)"
    ));
    let ext = e.extensions.get_or_insert_with(Default::default);
    ext.set("cost", cost);
    ext.set("maxCost", max);
    e
}

fn too_large(bytes: u64, max: u64) -> ServerError {
    let mut e = exceeded(format!(
        "the response may be up to {bytes} bytes; the limit is {max} bytes (texts count at the \
         log's largest, such as a whole event for `canonical`; ask for fewer or smaller pages, or \
         fewer fields)"
    ));
    let ext = e.extensions.get_or_insert_with(Default::default);
    ext.set("bytes", bytes);
    ext.set("maxResponseBytes", max);
    e
}

fn exceeded(message: String) -> ServerError {
    let mut e = ServerError::new(message, None);
    let mut ext = async_graphql::ErrorExtensionValues::default();
    ext.set("code", LIMIT_EXCEEDED);
    e.extensions = Some(ext);
    e
}

/// Levels allowed below a `__schema` or `__type` field, whatever `--max-depth` says: the
/// standard introspection query of graphql-js (GraphiQL, codegen, Apollo tooling) needs 12.
pub const INTROSPECTION_DEPTH: usize = 14;

struct Walk<'a> {
    doc: &'a ExecutableDocument,
    limits: Limits,
    fields: usize,
    aliases: usize,
    /// Selections visited, fragment spreads included: bounds the work of the walk itself.
    visits: usize,
    /// Fragments on the current path, to refuse cycles without looping.
    path: HashSet<&'a str>,
}

impl<'a> Walk<'a> {
    /// Walks `set` at `depth`; `max` is the deepest it may reach: `--max-depth`, or for the
    /// selections under `__schema` and `__type` [`INTROSPECTION_DEPTH`] more than their field.
    fn selection_set(&mut self, set: &'a SelectionSet, depth: usize, max: usize) -> Result<(), ServerError> {
        if depth > max {
            return Err(exceeded(if max == self.limits.max_depth {
                format!("query is nested deeper than the limit of {}", self.limits.max_depth)
            } else {
                format!("introspection is nested deeper than the limit of {INTROSPECTION_DEPTH} levels below `__schema` or `__type`")
            }));
        }
        for item in &set.items {
            self.visits += 1;
            if self.visits > self.limits.max_complexity.saturating_mul(4) {
                return Err(exceeded(format!(
                    "query expands to more than {} selections (fragments expanded)",
                    self.limits.max_complexity.saturating_mul(4)
                )));
            }
            match &item.node {
                Selection::Field(f) => {
                    self.fields += 1;
                    if self.fields > self.limits.max_complexity {
                        return Err(exceeded(format!(
                            "query selects more than the limit of {} fields (fragments expanded, `__typename` included)",
                            self.limits.max_complexity
                        )));
                    }
                    if f.node.alias.is_some() {
                        self.aliases += 1;
                        if self.aliases > self.limits.max_aliases {
                            return Err(exceeded(format!(
                                "query uses more than the limit of {} aliases",
                                self.limits.max_aliases
                            )));
                        }
                    }
                    if !f.node.selection_set.node.items.is_empty() {
                        let name = f.node.name.node.as_str();
                        // The schema is finite and small: its own nesting (type references
                        // wrapped in lists and non-nulls) is what the standard introspection
                        // query follows, 13 levels deep in all, and the cost model still
                        // counts every object it returns.
                        let max = if max == self.limits.max_depth && (name == "__schema" || name == "__type") {
                            max.max(depth + INTROSPECTION_DEPTH)
                        } else {
                            max
                        };
                        self.selection_set(&f.node.selection_set.node, depth + 1, max)?;
                    }
                }
                Selection::InlineFragment(i) => self.selection_set(&i.node.selection_set.node, depth, max)?,
                Selection::FragmentSpread(s) => {
                    let name: &Name = &s.node.fragment_name.node;
                    // Unknown fragments are reported by validation, which runs next.
                    let Some(def): Option<&Positioned<FragmentDefinition>> = self.doc.fragments.get(name) else {
                        continue;
                    };
                    if !self.path.insert(name.as_str()) {
                        // Validation names the cycle; stop walking it.
                        continue;
                    }
                    self.selection_set(&def.node.selection_set.node, depth, max)?;
                    self.path.remove(name.as_str());
                }
            }
        }
        Ok(())
    }
}

/// Checks one parsed document against the limits.
pub fn check(doc: &ExecutableDocument, limits: Limits) -> Result<(), ServerError> {
    let mut walk = Walk {
        doc,
        limits,
        fields: 0,
        aliases: 0,
        visits: 0,
        path: HashSet::new(),
    };
    for (_, op) in doc.operations.iter() {
        walk.selection_set(&op.node.selection_set.node, 1, limits.max_depth)?;
    }
    Ok(())
}

/// What the cost walk needs to know of one field: its named type and whether it is a list.
#[derive(Debug, Clone)]
struct FieldShape {
    ty: String,
    list: bool,
}

/// Sizes of the schema's own lists, for introspection.
#[derive(Debug, Clone, Copy, Default)]
struct SchemaSizes {
    types: u64,
    directives: u64,
    fields: u64,
    input_fields: u64,
    args: u64,
    enum_values: u64,
    interfaces: u64,
    possible_types: u64,
}

/// Field types of every object type, taken from the SDL, plus the introspection types.
#[derive(Debug, Clone)]
pub struct Shape {
    types: HashMap<String, HashMap<String, FieldShape>>,
    roots: [String; 3],
    sizes: SchemaSizes,
}

/// A field of an introspection type: name, named type, list or not.
type IntrospectionField = (&'static str, &'static str, bool);

/// The introspection types' list and object fields (their scalars cost nothing).
const INTROSPECTION: &[(&str, &[IntrospectionField])] = &[
    (
        "__Schema",
        &[
            ("types", "__Type", true),
            ("queryType", "__Type", false),
            ("mutationType", "__Type", false),
            ("subscriptionType", "__Type", false),
            ("directives", "__Directive", true),
        ],
    ),
    (
        "__Type",
        &[
            ("fields", "__Field", true),
            ("interfaces", "__Type", true),
            ("possibleTypes", "__Type", true),
            ("enumValues", "__EnumValue", true),
            ("inputFields", "__InputValue", true),
            ("ofType", "__Type", false),
        ],
    ),
    ("__Field", &[("args", "__InputValue", true), ("type", "__Type", false)]),
    ("__InputValue", &[("type", "__Type", false)]),
    ("__EnumValue", &[]),
    (
        "__Directive",
        &[
            ("args", "__InputValue", true),
            ("locations", "__DirectiveLocation", true),
        ],
    ),
];
/// Introspection and built-in types the SDL leaves out: 8 introspection types and 5 scalars.
const UNLISTED_TYPES: u64 = 13;
/// `@include`, `@skip`, `@deprecated`, `@specifiedBy`, `@oneOf`, with one to spare.
const BUILT_IN_DIRECTIVES: u64 = 6;
/// Fields of `__Type`, the introspection type with the most.
const INTROSPECTION_FIELDS: u64 = 11;
/// Values of `__DirectiveLocation`, the largest built-in enum.
const DIRECTIVE_LOCATIONS: u64 = 19;

fn shape_of(ty: &Type) -> FieldShape {
    match &ty.base {
        BaseType::Named(n) => FieldShape {
            ty: n.to_string(),
            list: false,
        },
        BaseType::List(inner) => FieldShape {
            list: true,
            ..shape_of(inner)
        },
    }
}

impl Shape {
    /// The shape of this server's schema.
    pub fn of_schema() -> Self {
        Shape::from_sdl(&super::sdl()).expect("the schema's own SDL parses")
    }

    fn from_sdl(sdl: &str) -> Result<Self, async_graphql::parser::Error> {
        let doc = async_graphql::parser::parse_schema(sdl)?;
        let mut types: HashMap<String, HashMap<String, FieldShape>> = HashMap::new();
        let mut roots = ["Query".to_owned(), "Mutation".to_owned(), "Subscription".to_owned()];
        let mut sizes = SchemaSizes {
            types: UNLISTED_TYPES,
            directives: BUILT_IN_DIRECTIVES,
            fields: INTROSPECTION_FIELDS,
            enum_values: DIRECTIVE_LOCATIONS,
            args: 1,
            ..SchemaSizes::default()
        };
        let mut implementors: HashMap<String, u64> = HashMap::new();
        for def in &doc.definitions {
            match def {
                TypeSystemDefinition::Schema(s) => {
                    for (i, name) in [&s.node.query, &s.node.mutation, &s.node.subscription]
                        .into_iter()
                        .enumerate()
                    {
                        if let Some(n) = name {
                            roots[i] = n.node.to_string();
                        }
                    }
                }
                TypeSystemDefinition::Directive(d) => {
                    sizes.directives += 1;
                    sizes.args = sizes.args.max(d.node.arguments.len() as u64);
                }
                TypeSystemDefinition::Type(t) => {
                    sizes.types += 1;
                    let name = t.node.name.node.to_string();
                    let fields = match &t.node.kind {
                        TypeKind::Object(o) => {
                            sizes.interfaces = sizes.interfaces.max(o.implements.len() as u64);
                            for i in &o.implements {
                                *implementors.entry(i.node.to_string()).or_default() += 1;
                            }
                            &o.fields
                        }
                        TypeKind::Interface(i) => &i.fields,
                        TypeKind::Union(u) => {
                            sizes.possible_types = sizes.possible_types.max(u.members.len() as u64);
                            continue;
                        }
                        TypeKind::Enum(e) => {
                            sizes.enum_values = sizes.enum_values.max(e.values.len() as u64);
                            continue;
                        }
                        TypeKind::InputObject(i) => {
                            sizes.input_fields = sizes.input_fields.max(i.fields.len() as u64);
                            continue;
                        }
                        TypeKind::Scalar => continue,
                    };
                    sizes.fields = sizes.fields.max(fields.len() as u64);
                    let map = types.entry(name).or_default();
                    for f in fields {
                        sizes.args = sizes.args.max(f.node.arguments.len() as u64);
                        map.insert(f.node.name.node.to_string(), shape_of(&f.node.ty.node));
                    }
                }
            }
        }
        sizes.possible_types = sizes
            .possible_types
            .max(implementors.values().copied().max().unwrap_or(0));
        for (ty, fields) in INTROSPECTION {
            let map = types.entry((*ty).to_owned()).or_default();
            for (name, ty, list) in *fields {
                map.insert(
                    (*name).to_owned(),
                    FieldShape {
                        ty: (*ty).to_owned(),
                        list: *list,
                    },
                );
            }
        }
        let query = types.entry(roots[0].clone()).or_default();
        query.insert(
            "__schema".into(),
            FieldShape {
                ty: "__Schema".into(),
                list: false,
            },
        );
        query.insert(
            "__type".into(),
            FieldShape {
                ty: "__Type".into(),
                list: false,
            },
        );
        Ok(Shape { types, roots, sizes })
    }

    fn field(&self, parent: &str, name: &str) -> Option<&FieldShape> {
        self.types.get(parent)?.get(name)
    }

    fn is_object(&self, ty: &str) -> bool {
        self.types.contains_key(ty)
    }
}

/// The worst-case number of objects the operation of `request` can return; see the module
/// docs. Without an operation name, the costliest operation of the document counts.
#[cfg(test)]
pub fn cost(doc: &ExecutableDocument, request: &Request, shape: &Shape, extents: &Extents, max_page: u64) -> u64 {
    cost_and_bytes(doc, request, shape, extents, (0, 0), max_page).0
}

/// The worst-case objects and bytes (estimated; see the module docs) of the operation of
/// `request`; `sizes` are the largest event and text of the log ([`LogSizes`]).
fn cost_and_bytes(
    doc: &ExecutableDocument,
    request: &Request,
    shape: &Shape,
    extents: &Extents,
    sizes: (u64, u64),
    max_page: u64,
) -> (u64, u64) {
    let wanted = request.operation_name.as_deref();
    doc.operations
        .iter()
        .filter(|(name, _)| wanted.is_none_or(|w| name.is_some_and(|n| n.as_str() == w)))
        .map(|(_, op)| {
            let root = match op.node.ty {
                async_graphql::parser::types::OperationType::Query => &shape.roots[0],
                async_graphql::parser::types::OperationType::Mutation => &shape.roots[1],
                async_graphql::parser::types::OperationType::Subscription => &shape.roots[2],
            };
            let mut walk = CostWalk {
                doc,
                shape,
                extents,
                max_page,
                op: &op.node,
                variables: &request.variables,
                path: HashSet::new(),
                sizes,
                bytes: 0,
            };
            let cost = walk.selection_set(root, &op.node.selection_set.node, 1, 0);
            if op.node.ty != async_graphql::parser::types::OperationType::Subscription {
                return (cost, walk.bytes);
            }
            // A subscription's event carries one of its root fields: the largest counts.
            let singles: Vec<SelectionSet> = op
                .node
                .selection_set
                .node
                .items
                .iter()
                .map(|item| SelectionSet {
                    items: vec![item.clone()],
                })
                .collect();
            let bytes = singles
                .iter()
                .map(|set| {
                    let mut walk = CostWalk {
                        doc,
                        shape,
                        extents,
                        max_page,
                        op: &op.node,
                        variables: &request.variables,
                        path: HashSet::new(),
                        sizes,
                        bytes: 0,
                    };
                    walk.selection_set(root, set, 1, 0);
                    walk.bytes
                })
                .max()
                .unwrap_or(0);
            (cost, bytes)
        })
        .fold((0, 0), |(c, b), (cost, bytes)| (c.max(cost), b.max(bytes)))
}

struct CostWalk<'a> {
    doc: &'a ExecutableDocument,
    shape: &'a Shape,
    extents: &'a Extents,
    max_page: u64,
    op: &'a OperationDefinition,
    variables: &'a Variables,
    /// Fragments on the current path, to walk a cycle (which validation refuses) only once.
    path: HashSet<&'a str>,
    /// The log's largest event and text, as JSON.
    sizes: (u64, u64),
    /// Estimated bytes so far.
    bytes: u64,
}

impl<'a> CostWalk<'a> {
    /// Objects `set` returns on `parent`, which is returned `times` times; `page` is the page
    /// size of the nearest connection above.
    fn selection_set(&mut self, parent: &'a str, set: &'a SelectionSet, times: u64, page: u64) -> u64 {
        let shape = self.shape;
        let mut total = 0u64;
        for item in &set.items {
            let cost = match &item.node {
                Selection::Field(f) => {
                    let f = &f.node;
                    let name = f.name.node.as_str();
                    let children = &f.selection_set.node;
                    // The key (`"name":` and a comma) wherever the field appears; its value
                    // below, as objects or scalars.
                    let key = f.alias.as_ref().map_or(name.len(), |a| a.node.len()) as u64 + 4;
                    // Introspection answers describe the schema, which is fixed and small (its
                    // whole description is some 100 KB): its lists are bounded by the object
                    // count above, and their texts are no ledger data. Multiplying the
                    // largest of each of its lists down the tree would refuse the standard
                    // introspection queries (GraphiQL's, codegen's) for their size.
                    if !(parent.starts_with("__") || name == "__schema" || name == "__type") {
                        self.add_bytes(times, key);
                        self.add_value_bytes(parent, name, times, page, children.items.is_empty());
                    }
                    match shape.field(parent, name) {
                        // Unknown here (validation refuses it next) or a scalar such as
                        // `__typename`.
                        None if children.items.is_empty() => 0,
                        None => times.saturating_add(self.selection_set("", children, times, page)),
                        Some(field) if field.ty.ends_with("Connection") && !field.list => {
                            let n = self.page(f).min(self.available(parent, name));
                            times.saturating_add(self.selection_set(&field.ty, children, times, n))
                        }
                        Some(field) if field.list => {
                            let n = times.saturating_mul(self.list_len(parent, name, page));
                            n.saturating_add(self.selection_set(&field.ty, children, n, page))
                        }
                        Some(field) if shape.is_object(&field.ty) => {
                            times.saturating_add(self.selection_set(&field.ty, children, times, page))
                        }
                        Some(_) => 0,
                    }
                }
                Selection::InlineFragment(i) => {
                    let ty = i
                        .node
                        .type_condition
                        .as_ref()
                        .map_or(parent, |c| c.node.on.node.as_str());
                    self.selection_set(ty, &i.node.selection_set.node, times, page)
                }
                Selection::FragmentSpread(s) => {
                    let name: &Name = &s.node.fragment_name.node;
                    let Some(def): Option<&Positioned<FragmentDefinition>> = self.doc.fragments.get(name) else {
                        continue;
                    };
                    if !self.path.insert(name.as_str()) {
                        continue;
                    }
                    let ty = def.node.type_condition.node.on.node.as_str();
                    let cost = self.selection_set(ty, &def.node.selection_set.node, times, page);
                    self.path.remove(name.as_str());
                    cost
                }
            };
            total = total.saturating_add(cost);
        }
        total
    }

    fn add_bytes(&mut self, times: u64, each: u64) {
        self.bytes = self.bytes.saturating_add(times.saturating_mul(each));
    }

    /// Adds the bytes of a scalar field's values (objects add theirs as they are walked:
    /// braces here, their fields' keys and values below).
    fn add_value_bytes(&mut self, parent: &str, name: &str, times: u64, page: u64, scalar: bool) {
        let Some(field) = self.shape.field(parent, name) else {
            // `__typename` and the like, or an unknown field (refused next).
            self.add_bytes(times, SCALAR_BYTES);
            return;
        };
        let count = if field.list {
            times.saturating_mul(self.list_len(parent, name, page))
        } else {
            times
        };
        if !scalar || self.shape.is_object(&field.ty) {
            self.add_bytes(count, 2);
            return;
        }
        let (event, text) = self.sizes;
        let each = match (parent, name) {
            ("Event" | "InclusionProof", "canonical") | ("InclusionProof", "entry") => event,
            ("Release", "title" | "source") | ("Dataset", "name" | "publisher" | "description") => text,
            _ => match field.ty.as_str() {
                "Int" | "Float" | "Boolean" => NUMBER_BYTES,
                _ => SCALAR_BYTES,
            },
        };
        self.add_bytes(count, each);
    }

    /// The page a connection field returns, from its `first` (or `last`) argument.
    fn page(&self, field: &Field) -> u64 {
        let default = DEFAULT_PAGE.min(self.max_page);
        let arguments = &field.arguments;
        let Some((_, value)) = arguments
            .iter()
            .find(|(n, _)| n.node == "first")
            .or_else(|| arguments.iter().find(|(n, _)| n.node == "last"))
        else {
            return default;
        };
        let resolved = value.node.clone().into_const_with(|var| self.variable(&var).ok_or(()));
        match resolved {
            Err(()) | Ok(Value::Null) => default,
            Ok(Value::Number(n)) => match n.as_i64() {
                Some(n) if n < 0 => 0,
                Some(n) => (n as u64).min(self.max_page),
                None => self.max_page,
            },
            // The resolver refuses it; count a full page meanwhile.
            Ok(_) => self.max_page,
        }
    }

    /// A variable's value: as sent, else its default.
    fn variable(&self, name: &Name) -> Option<Value> {
        self.variables.get(name).cloned().or_else(|| {
            self.op
                .variable_definitions
                .iter()
                .find(|d| d.node.name.node == *name)
                .and_then(|d| d.node.default_value.as_ref().map(|v| v.node.clone()))
        })
    }

    /// How many items a connection field has at most, whatever the page.
    fn available(&self, parent: &str, field: &str) -> u64 {
        let e = self.extents;
        match (parent, field) {
            ("Query", "releases") => e.releases,
            ("Query", "observations") => e.max_figures,
            ("Query", "events") => e.events,
            ("Query", "changes") => e.max_figures,
            _ => u64::MAX,
        }
    }

    /// The longest a list field can be.
    fn list_len(&self, parent: &str, field: &str, page: u64) -> u64 {
        let e = self.extents;
        let s = &self.shape.sizes;
        match (parent, field) {
            (p, "edges" | "nodes") if p.ends_with("Connection") => page,
            ("Query", "datasets") => e.datasets,
            ("Query", "history") | ("Observation", "versions") => e.max_versions,
            ("Breakdown", "items") | ("Dimension", "codes") => e.max_codes,
            ("RevisionSummary", "items") => e.max_figures.min(REVISION_ITEMS),
            ("Dataset" | "Observation" | "FigureChange", "dimensions") => e.max_dimensions,
            ("Dataset", "measures") => e.max_measures,
            ("Release", "observations") => e.max_release_observations,
            ("__Schema", "types") => s.types,
            ("__Schema", "directives") => s.directives,
            ("__Type", "fields") => s.fields,
            ("__Type", "inputFields") => s.input_fields,
            ("__Type", "enumValues") => s.enum_values,
            ("__Type", "interfaces") => s.interfaces,
            ("__Type", "possibleTypes") => s.possible_types,
            ("__Field" | "__Directive", "args") => s.args,
            ("__Directive", "locations") => DIRECTIVE_LOCATIONS,
            // A list this table does not know: a full page.
            _ => self.max_page,
        }
    }
}

/// A response that would be larger than the limit; nothing of it was sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ResponseTooLarge {
    pub limit: usize,
}

impl ResponseTooLarge {
    /// The error a client gets instead of the response.
    pub fn error(&self) -> ServerError {
        let mut e = exceeded(format!(
            "the response is larger than the limit of {} bytes; ask for fewer or smaller pages",
            self.limit
        ));
        e.extensions
            .get_or_insert_with(Default::default)
            .set("maxResponseBytes", self.limit as u64);
        e
    }
}

/// A writer that refuses to grow past its limit.
struct Capped {
    buf: Vec<u8>,
    limit: usize,
}

impl std::io::Write for Capped {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        if self.buf.len() + data.len() > self.limit {
            return Err(std::io::Error::other("response limit reached"));
        }
        self.buf.extend_from_slice(data);
        Ok(data.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Serializes `value` as JSON, stopping as soon as it would pass `limit` bytes.
pub fn to_json_capped<T: serde::Serialize + ?Sized>(value: &T, limit: usize) -> Result<Vec<u8>, ResponseTooLarge> {
    let mut w = Capped {
        buf: Vec::with_capacity(limit.min(4096)),
        limit,
    };
    match serde_json::to_writer(&mut w, value) {
        Ok(()) => Ok(w.buf),
        // The only writer error is the limit.
        Err(e) if e.is_io() => Err(ResponseTooLarge { limit }),
        Err(e) => panic!("responses serialize: {e}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use async_graphql::parser::parse_query;
    use serde_json::json;

    /// The document cache charges at least what the densest documents it keeps hold inline:
    /// a selection per two bytes of query (`{ a a a … }`, up to the field limit), and an
    /// object value per six (`[{a:1} {a:1} …]`, which the field limit does not bound), before
    /// counting their names, maps and the allocator's overhead. (Measured with a counting
    /// allocator, which this crate cannot have (`unsafe_code` is forbidden), the whole cost
    /// is about 115 and 88 bytes per byte; see [`DOCUMENT_BYTES_PER_BYTE`].)
    #[test]
    fn the_document_cache_charges_what_documents_hold() {
        use async_graphql::parser::types::Selection;
        let fields = format!("{{ {} }}", "a ".repeat(999));
        let objects = format!("{{ a(x: [{}]) }}", "{a:1} ".repeat((MAX_QUERY - 16) / 6));
        for q in [&fields, &objects] {
            assert!(q.len() <= MAX_QUERY);
            check(&parse_query(q).unwrap(), Limits::default()).expect("within the limits: cached");
        }
        let selection = std::mem::size_of::<Positioned<Selection>>();
        assert!(
            document_charge(fields.len()) >= 999 * selection,
            "{} bytes charged for 999 selections of {selection} bytes",
            document_charge(fields.len())
        );
        // Each object: a value in the list, a map with its hash table, one entry.
        let object = 2 * std::mem::size_of::<Value>() + std::mem::size_of::<Name>() + 3 * 8;
        let n = (MAX_QUERY - 16) / 6;
        assert!(
            document_charge(objects.len()) >= n * object,
            "{} bytes charged for {n} objects of at least {object} bytes",
            document_charge(objects.len())
        );
    }

    fn limits() -> Limits {
        Limits {
            max_depth: 4,
            max_complexity: 10,
            max_aliases: 3,
            ..Limits::default()
        }
    }

    fn run(q: &str) -> Result<(), String> {
        check(&parse_query(q).unwrap(), limits()).map_err(|e| e.message)
    }

    #[test]
    fn counts_typename_and_aliases() {
        assert!(run("{ a: __typename b: __typename c: __typename }").is_ok());
        assert!(run("{ a: __typename b: __typename c: __typename d: __typename }")
            .unwrap_err()
            .contains("aliases"));
        let many = format!("{{ {} }}", "__typename ".repeat(11));
        assert!(run(&many).unwrap_err().contains("fields"));
    }

    #[test]
    fn measures_depth_through_fragments() {
        assert!(run("{ a { b { c } } }").is_ok());
        assert!(run("{ a { b { c { d { e } } } } }").unwrap_err().contains("deeper"));
        assert!(run("query { a { ...F } } fragment F on T { b { c { d { e } } } }")
            .unwrap_err()
            .contains("deeper"));
    }

    #[test]
    fn fragment_bombs_stop_at_the_limit() {
        let mut q = String::from("{ ...F0 } fragment F30 on Q { __typename }");
        for i in 0..30 {
            q.push_str(&format!(" fragment F{i} on Q {{ ...F{n} ...F{n} }}", n = i + 1));
        }
        // 2^30 expansions if walked naively; refused after a bounded number of steps.
        assert!(run(&q).unwrap_err().contains("more than"));
    }

    #[test]
    fn fragment_cycles_do_not_loop() {
        assert!(run("{ ...A } fragment A on Q { ...B } fragment B on Q { ...A }").is_ok());
    }

    /// A ledger like the issue's: 2,000 releases of 100 observations, one dataset of 3
    /// dimensions with up to 20 codes, figures with up to 3 versions.
    fn extents() -> Extents {
        Extents {
            datasets: 1,
            releases: 2000,
            events: 2001,
            max_figures: 150_000,
            max_release_observations: 100,
            max_versions: 3,
            max_dimensions: 3,
            max_codes: 20,
            max_measures: 3,
        }
    }

    fn cost_of(query: &str, variables: serde_json::Value) -> u64 {
        let doc = parse_query(query).unwrap();
        let request = Request::new(query).variables(Variables::from_json(variables));
        cost(&doc, &request, &Shape::of_schema(), &extents(), 1000)
    }

    #[test]
    fn counts_objects_multiplied_down_lists() {
        // The connection, 1000 nodes, 100 observations each.
        let one = "{ releases(first: 1000, after: \"0\") { nodes { observations { key period measure value } } } }";
        assert_eq!(cost_of(one, json!({})), 1 + 1000 + 1000 * 100);
        let eight: String = (0..8)
            .map(|i| format!("a{i}: releases(first: 1000) {{ nodes {{ observations {{ value }} }} }} "))
            .collect();
        assert_eq!(cost_of(&format!("{{ {eight} }}"), json!({})), 8 * (1 + 1000 + 100_000));
        // Scalars cost nothing; objects count once per parent.
        assert_eq!(cost_of("{ ledger { revision hash } __typename }", json!({})), 1);
        // Without `first`, the default page of 100; never more items than there are.
        assert_eq!(cost_of("{ releases { nodes { title } } }", json!({})), 1 + 100);
        assert_eq!(
            cost_of("{ events(first: 1000) { nodes { hash } } }", json!({})),
            1 + 1000
        );
        let small = Extents {
            releases: 7,
            ..extents()
        };
        let doc = parse_query("{ releases(first: 1000) { nodes { title } } }").unwrap();
        let request = Request::new("");
        assert_eq!(cost(&doc, &request, &Shape::of_schema(), &small, 1000), 1 + 7);
        // Edges and their nodes are objects each.
        assert_eq!(
            cost_of("{ observations(dataset: \"D\", first: 10) { edges { node { value versions { value } } } pageInfo { hasNextPage } } }", json!({})),
            1 + 10 + 10 + 10 * 3 + 1
        );
    }

    #[test]
    fn counts_changes_by_their_page_and_the_largest_dataset() {
        let q = "{ changes(dataset: \"D\", from: { revision: 1 }, first: 1000) { nodes { key dimensions { code } release { title } } } }";
        // The connection, 1000 changes, each with its 3 dimensions and its release.
        assert_eq!(cost_of(q, json!({})), 1 + 1000 + 1000 * 3 + 1000);
        // Without `first`, the default page.
        let q = "{ changes(dataset: \"D\", from: { revision: 1 }) { nodes { key } } }";
        assert_eq!(cost_of(q, json!({})), 1 + 100);
    }

    #[test]
    fn reads_page_sizes_from_variables_and_their_defaults() {
        let q = "query($n: Int = 5) { releases(first: $n) { nodes { observations { value } } } }";
        assert_eq!(cost_of(q, json!({})), 1 + 5 + 5 * 100);
        assert_eq!(cost_of(q, json!({"n": 20})), 1 + 20 + 20 * 100);
        assert_eq!(cost_of(q, json!({"n": null})), 1 + 100 + 100 * 100);
        // Above the page-size cap (which the resolver refuses) or not a number: a full page.
        assert_eq!(cost_of(q, json!({"n": 5000})), 1 + 1000 + 1000 * 100);
        assert_eq!(cost_of(q, json!({"n": "x"})), 1 + 1000 + 1000 * 100);
        assert_eq!(cost_of(q, json!({"n": -3})), 1);
    }

    #[test]
    fn follows_fragments_and_the_chosen_operation() {
        let q = "query A { ...R } query B { ledger { revision } } fragment R on Query { releases(first: 10) { nodes { ... on Release { observations { value } } } } }";
        let doc = parse_query(q).unwrap();
        let shape = Shape::of_schema();
        let a = cost(&doc, &Request::new(q).operation_name("A"), &shape, &extents(), 1000);
        let b = cost(&doc, &Request::new(q).operation_name("B"), &shape, &extents(), 1000);
        assert_eq!((a, b), (1 + 10 + 10 * 100, 1));
        // Without a name, the costliest operation counts.
        assert_eq!(cost(&doc, &Request::new(q), &shape, &extents(), 1000), a);
    }

    #[test]
    fn sizes_other_lists_by_the_ledger() {
        let q = "{ datasets { dimensions { codes { code } } measures } history(dataset: \"D\", key: \"K\", period: \"2025\") { value release { title } } }";
        assert_eq!(cost_of(q, json!({})), 1 + 3 + 3 * 20 + 3 + 3 + 3);
        let q = "{ breakdown(dataset: \"D\", dimension: \"X\", period: \"2025\") { total { value } items { key dimensions { label } } } }";
        assert_eq!(cost_of(q, json!({})), 1 + 1 + 20 + 20 * 3);
        let q = "{ revisionSummary(dataset: \"D\") { items { key } } }";
        assert_eq!(cost_of(q, json!({})), 1 + 1000);
    }

    #[test]
    fn introspection_has_a_bounded_cost() {
        let q = include_str!("../../tests/abuse/introspection.graphql");
        let c = cost_of(q, json!({}));
        assert!(
            c > 1000 && c < Limits::default().max_cost,
            "GraphiQL's introspection query costs {c}"
        );
        // Nested `ofType`/`fields` cycles multiply like any other list.
        let deep = "{ __schema { types { fields { type { fields { type { fields { name } } } } } } } }";
        assert!(cost_of(deep, json!({})) > Limits::default().max_cost);
    }

    #[test]
    fn standard_introspection_queries_pass_the_default_limits() {
        for q in [
            include_str!("../../tests/abuse/introspection-graphql-js.graphql"),
            include_str!("../../tests/abuse/introspection-graphql-js-all-options.graphql"),
            include_str!("../../tests/abuse/introspection.graphql"),
        ] {
            let doc = async_graphql::parser::parse_query(q).unwrap();
            check(&doc, Limits::default()).unwrap();
            assert!(cost_of(q, json!({})) < Limits::default().max_cost);
        }
        // The depth limit still holds for data, and introspection has its own bound.
        let data = format!("{{ {}x{} }}", "a { ".repeat(12), " }".repeat(12));
        let e = check(&async_graphql::parser::parse_query(&data).unwrap(), Limits::default()).unwrap_err();
        assert!(e.message.contains("limit of 12"), "{}", e.message);
        let deep = format!(
            "{{ __schema {{ types {{ {}name{} }} }} }}",
            "ofType { ".repeat(14),
            " }".repeat(14)
        );
        let e = check(&async_graphql::parser::parse_query(&deep).unwrap(), Limits::default()).unwrap_err();
        assert!(e.message.contains("introspection"), "{}", e.message);
    }

    #[test]
    fn caps_the_serialized_response() {
        let value = json!({"data": {"a": "x".repeat(100)}});
        let full = serde_json::to_vec(&value).unwrap();
        assert_eq!(to_json_capped(&value, full.len()).unwrap(), full);
        assert_eq!(
            to_json_capped(&value, full.len() - 1),
            Err(ResponseTooLarge { limit: full.len() - 1 })
        );
        let e = ResponseTooLarge { limit: 10 }.error();
        assert!(e.message.contains("10 bytes"), "{}", e.message);
    }

    fn bytes_of(query: &str, sizes: (u64, u64)) -> u64 {
        let doc = parse_query(query).unwrap();
        let request = Request::new(query);
        cost_and_bytes(&doc, &request, &Shape::of_schema(), &extents(), sizes, 1000).1
    }

    #[test]
    fn bytes_count_large_texts_at_the_logs_largest() {
        let sizes = (750_000, 300);
        // A page of 1000 events' canonical texts: 1000 whole events.
        let canonical = bytes_of("{ events(first: 1000) { nodes { canonical } } }", sizes);
        assert!(canonical >= 1000 * 750_000, "{canonical}");
        assert!(canonical < 1000 * 750_000 + 100_000, "{canonical}");
        // The same through inclusion proofs of figures.
        let proofs = bytes_of(
            r#"{ observations(dataset: "D", first: 1000) { nodes { proof { canonical } } } }"#,
            sizes,
        );
        assert!(proofs >= 1000 * 750_000, "{proofs}");
        // Revisions alone are small; titles count at the longest title.
        let revisions = bytes_of("{ events(first: 1000) { nodes { revision } } }", sizes);
        assert!(revisions < 1000 * 64, "{revisions}");
        let titles = bytes_of("{ releases(first: 1000) { nodes { title } } }", sizes);
        assert!((1000 * 300..1000 * 400).contains(&titles), "{titles}");
        // Aliases multiply.
        let three = bytes_of(
            "{ a: events(first: 1000) { nodes { canonical } } b: events(first: 1000) { nodes { canonical } } c: events(first: 1000) { nodes { canonical } } }",
            sizes,
        );
        assert!(three >= 3 * canonical - 100, "{three} vs {canonical}");
    }

    #[test]
    fn a_subscription_counts_the_bytes_of_its_largest_root_field() {
        let sizes = (750_000, 300);
        let one = bytes_of("subscription { releasePublished { release { title } } }", sizes);
        let three = bytes_of(
            "subscription { a: releasePublished { release { title } } b: releasePublished { release { title } } c: releasePublished { revision } }",
            sizes,
        );
        assert!(one > 300 && three <= one + 16, "{one} {three}");
    }

    #[test]
    fn json_len_counts_escapes_and_quotes() {
        assert_eq!(json_len("abc"), 5);
        assert_eq!(json_len(r#"{"a":1}"#), 7 + 2 + 2);
        assert_eq!(json_len("\u{1}"), 6 + 2);
    }

    #[test]
    fn response_bytes_fail_once_past_the_limit() {
        let counter = ResponseBytes::new(100);
        assert!(counter.charge(60).is_ok());
        assert!(counter.charge(40).is_ok());
        let e = counter.charge(1).unwrap_err();
        assert!(e.message.contains("100 bytes"), "{}", e.message);
        assert!(counter.charge(0).is_err(), "every charge after fails");
    }
}
