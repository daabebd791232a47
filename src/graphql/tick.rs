//! Yield points for long lists.
//!
//! async-graphql resolves the items of a list concurrently, but nothing in a resolver over the
//! in-memory projection ever waits, so a query of thousands of objects runs in one poll: it
//! cannot be interrupted, and it holds its thread. [`Tick`] wraps a list item and passes a
//! [`checkpoint`] before resolving it, so a long list hands its thread back every couple of
//! milliseconds: other operations on the query pool get their turn, and a task aborted at its
//! deadline stops at the next item instead of running to the end. Resolvers that build long
//! lists pass a checkpoint first too. The wrapper is invisible in the schema (same type name
//! and type info).

use std::borrow::Cow;
use std::cell::Cell;
use std::time::{Duration, Instant};

use async_graphql::parser::types::Field;
use async_graphql::registry::Registry;
use async_graphql::{ContextSelectionSet, OutputType, Positioned, ServerResult, Value};
use tokio::task::coop::{consume_budget, has_budget_remaining};

/// Longest run of work between two yields, when the work reaches a [`checkpoint`] often.
/// tokio's budget alone counts items (128 per poll), whatever each costs: 128 releases with
/// their hashes read from the log is tens of milliseconds in a debug build.
const SLICE: Duration = Duration::from_millis(2);

thread_local! {
    /// When the current slice of work on this thread began.
    static SLICE_START: Cell<Option<Instant>> = const { Cell::new(None) };
}

/// A list item that passes a [`checkpoint`] before it resolves; see the module docs.
#[derive(Clone)]
pub struct Tick<T>(pub T);

impl<T: OutputType> OutputType for Tick<T> {
    fn type_name() -> Cow<'static, str> {
        T::type_name()
    }

    fn qualified_type_name() -> String {
        T::qualified_type_name()
    }

    fn create_type_info(registry: &mut Registry) -> String {
        T::create_type_info(registry)
    }

    async fn resolve(&self, ctx: &ContextSelectionSet<'_>, field: &Positioned<Field>) -> ServerResult<Value> {
        checkpoint().await;
        self.0.resolve(ctx, field).await
    }
}

/// Wraps every item of a list.
pub fn ticks<T>(items: impl IntoIterator<Item = T>) -> Vec<Tick<T>> {
    items.into_iter().map(Tick).collect()
}

/// A yield point: returns at once unless the task has run for a whole [`SLICE`] (or spent
/// tokio's budget) since it last yielded on this thread; then it yields, and so does every
/// other checkpoint reached in the same poll.
pub async fn checkpoint() {
    let now = Instant::now();
    let start = SLICE_START.with(|s| {
        let start = s.get().unwrap_or(now);
        s.set(Some(start));
        start
    });
    if now.duration_since(start) >= SLICE || !has_budget_remaining() {
        SLICE_START.with(|s| s.set(None));
        // Spend the rest of the budget, so that every checkpoint after this one in the same
        // poll yields too; the scheduler refills it when it polls the task again. Bounded,
        // because outside a runtime (or in `unconstrained`) the budget never runs out.
        for _ in 0..=128 {
            if !has_budget_remaining() {
                break;
            }
            consume_budget().await;
        }
    }
    consume_budget().await;
}
