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

use std::sync::Arc;

use async_graphql::parser::types::ExecutableDocument;
use async_graphql::Request;

use super::{Limits, ResponseTooLarge};
use crate::bounded::BoundedMap;
use crate::ledger::Ledger;

mod compile;
mod plan;
mod run;
#[cfg(test)]
mod tests;

use compile::compile;
use plan::*;
use run::Run;

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
