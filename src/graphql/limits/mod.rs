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

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;

use async_graphql::parser::types::{
    BaseType, ExecutableDocument, Field, OperationDefinition, SelectionSet, Type, TypeKind, TypeSystemDefinition,
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

mod capping;
mod cost;
mod shape;
mod sizes;
#[cfg(test)]
mod tests;
mod walk;

pub use capping::*;
use cost::*;
pub use shape::*;
pub use sizes::*;
pub use walk::*;

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
