//! The GraphQL schema: query, mutation and subscription roots over the ledger.

mod error;
mod limits;
mod mutation;
mod query;
mod scalars;
mod subscription;
mod tick;
mod types;

use async_graphql::{Context, Schema};

pub use error::{coded, BAD_USER_INPUT, FORBIDDEN, LIMIT_EXCEEDED, NOT_FOUND, UNAUTHENTICATED};
pub use limits::QueryLimits;
pub use mutation::MutationRoot;
pub use query::QueryRoot;
pub use scalars::Dec;
pub use subscription::SubscriptionRoot;

use crate::ledger::Ledger;

pub type AppSchema = Schema<QueryRoot, MutationRoot, SubscriptionRoot>;

/// Who is calling, decided by the HTTP layer from the `Authorization` header (or the
/// WebSocket `connection_init` payload) and passed in as request data.
#[derive(Debug, Clone, Default)]
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
    pub introspection: bool,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_depth: 12,
            max_complexity: 1000,
            max_aliases: 30,
            max_directives: 20,
            max_page_size: 1000,
            introspection: true,
        }
    }
}

/// Builds the schema over `ledger`.
pub fn build_schema(ledger: Ledger, limits: Limits) -> AppSchema {
    let mut builder = Schema::build(QueryRoot, MutationRoot, SubscriptionRoot)
        .data(ledger)
        .data(limits)
        .limit_depth(limits.max_depth)
        .limit_complexity(limits.max_complexity)
        .limit_directives(limits.max_directives);
    if !limits.introspection {
        builder = builder.disable_introspection();
    }
    builder.finish()
}

/// The SDL of the schema, as kept in `schema/tradeledger.graphql`.
pub fn sdl() -> String {
    Schema::build(QueryRoot, MutationRoot, SubscriptionRoot).finish().sdl()
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
