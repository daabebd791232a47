//! The GraphQL schema: query, mutation and subscription roots over the ledger.

mod calendar;
mod changes;
mod classify;
mod error;
mod fast;
mod fields;
mod fragments;
pub mod guard;
mod limits;
mod mutation;
mod order;
mod query;
mod request;
mod scalars;
mod sdl;
mod subscription;
mod tick;
mod transparency;
mod types;
mod verify_job;

use async_graphql::{Context, Schema};

pub use classify::{add_codes, is_request_error};
pub use error::{
    coded, outcome_unknown, BAD_USER_INPUT, FORBIDDEN, LIMIT_EXCEEDED, NOT_FOUND, OUTCOME_UNKNOWN, UNAUTHENTICATED,
    UNAVAILABLE,
};
pub use limits::{to_json_capped, QueryLimits, ResponseBytes, ResponseTooLarge, MAX_QUERY};
pub use mutation::MutationRoot;
pub use order::ResponseOrder;
pub use query::QueryRoot;
pub use request::{request_from_params, ParamError};
pub use scalars::Dec;
pub use subscription::{BuildTurn, SubscriptionRoot};

use crate::ledger::Ledger;
use crate::settings::LimitArgs;

pub type AppSchema = Schema<QueryRoot, MutationRoot, SubscriptionRoot>;

/// Who is calling, decided by the HTTP layer from the `Authorization` header (or the
/// WebSocket `connection_init` payload) and passed in as request data.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Caller {
    /// Name of the token presented, if it was valid.
    pub actor: Option<String>,
    pub can_write: bool,
}

/// Limits on what one request may ask for.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_depth: usize,
    pub max_complexity: usize,
    pub max_aliases: usize,
    pub max_directives: usize,
    pub max_page_size: usize,
    /// Most events one page of a filtered `events` examines.
    pub max_events_scanned: usize,
    /// Most objects a query may return in the worst case (see `limits`).
    pub max_cost: u64,
    pub introspection: bool,
    /// Front door ([`guard`]): longest query text, in bytes.
    pub max_query_bytes: usize,
    /// Front door: most lexical tokens in a query text.
    pub max_query_tokens: usize,
    /// Front door: deepest nesting of `{ [ (` in a query text.
    pub max_query_nesting: usize,
    /// Front door: deepest nesting of arrays and objects in `variables` and `extensions`.
    pub max_variables_depth: usize,
    /// Front door: most JSON values in `variables` (and, separately, in `extensions`).
    pub max_variables_nodes: usize,
    /// Query texts kept compiled for the fast path ([`fast`]); 0 turns it off.
    pub query_plans: usize,
    /// Largest response, in bytes: a query whose estimated size is larger is refused before
    /// it runs (see `limits`).
    pub max_response_bytes: usize,
    /// Longest a GraphQL operation may run (`--request-timeout-ms`): `verifyLedgerFull` hands
    /// its request back before it, leaving the verification running in the background.
    pub request_timeout: std::time::Duration,
}

impl From<&LimitArgs> for Limits {
    fn from(a: &LimitArgs) -> Self {
        Limits {
            max_depth: a.max_depth,
            max_complexity: a.max_complexity,
            max_aliases: a.max_aliases,
            max_directives: a.max_directives,
            max_page_size: a.max_page_size,
            max_events_scanned: a.max_events_scanned,
            max_cost: a.max_cost,
            introspection: true,
            max_query_bytes: a.max_query_bytes,
            max_query_tokens: a.max_query_tokens,
            max_query_nesting: a.max_query_nesting,
            max_variables_depth: a.max_variables_depth,
            max_variables_nodes: a.max_variables_nodes,
            query_plans: a.query_plans,
            max_response_bytes: a.max_response_bytes,
            request_timeout: std::time::Duration::from_millis(a.request_timeout_ms),
        }
    }
}

impl Default for Limits {
    /// The defaults of the `serve` flags ([`LimitArgs`]).
    fn default() -> Self {
        Limits::from(&LimitArgs::default())
    }
}

/// Builds the schema over `ledger`.
pub fn build_schema(ledger: Ledger, limits: Limits) -> AppSchema {
    let mut builder = scalars::describe(Schema::build(QueryRoot::default(), MutationRoot, SubscriptionRoot))
        .data(ledger)
        .data(limits)
        // Depth is checked by `QueryLimits::prepare` alone, which lets introspection follow
        // the schema's own nesting (async-graphql's check would refuse GraphiQL's query).
        .limit_complexity(limits.max_complexity)
        .limit_directives(limits.max_directives);
    if !limits.introspection {
        // Suggestions (`Did you mean "ledger"?`) would map the schema for anyone guessing.
        builder = builder.disable_introspection().disable_suggestions();
    }
    builder.finish()
}

/// The SDL of the schema as async-graphql exports it (what the query limits read).
pub fn sdl() -> String {
    scalars::describe(Schema::build(QueryRoot::default(), MutationRoot, SubscriptionRoot))
        .finish()
        .sdl()
}

/// The schema as kept in `schema/tradeledger.graphql`: printed like graphql-js's
/// `printSchema`, with `@specifiedBy` on the scalars that have it.
pub fn schema_file() -> String {
    let registry_sdl = scalars::describe(Schema::build(QueryRoot::default(), MutationRoot, SubscriptionRoot))
        .finish()
        .sdl_with_options(sdl::export_options());
    sdl::print(&registry_sdl).expect("async-graphql's SDL parses")
}

fn ledger_of<'a>(ctx: &Context<'a>) -> &'a Ledger {
    ctx.data_unchecked::<Ledger>()
}

fn limits_of<'a>(ctx: &Context<'a>) -> &'a Limits {
    ctx.data_unchecked::<Limits>()
}

fn caller_of<'a>(ctx: &Context<'a>) -> std::borrow::Cow<'a, Caller> {
    match ctx.data_opt::<Caller>() {
        Some(c) => std::borrow::Cow::Borrowed(c),
        None => std::borrow::Cow::Owned(Caller::default()),
    }
}
