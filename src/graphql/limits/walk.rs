//! Depth, fields and aliases of a document, fragments expanded, stopping at the first limit
//! passed.

use super::*;
use crate::graphql::fragments::{Expand, Expansion, Fragment, NotExpanded};
use async_graphql::parser::types::FragmentSpread;

/// Levels allowed below a `__schema` or `__type` field, whatever `--max-depth` says: the
/// standard introspection query of graphql-js (GraphiQL, codegen, Apollo tooling) needs 12.
pub const INTROSPECTION_DEPTH: usize = 14;

pub(super) struct Walk<'a> {
    pub(super) limits: Limits,
    pub(super) fields: usize,
    pub(super) aliases: usize,
    /// Fragments expanded, with the cycle guard and the count of selections visited
    /// (fragment spreads included) that bounds the work of the walk itself.
    pub(super) expansion: Expansion<'a>,
}

impl<'a> Walk<'a> {
    /// Walks `set` at `depth`; `max` is the deepest it may reach: `--max-depth`, or for the
    /// selections under `__schema` and `__type` [`INTROSPECTION_DEPTH`] more than their field.
    pub(super) fn selection_set(&mut self, set: &'a SelectionSet, depth: usize, max: usize) -> Result<(), ServerError> {
        if depth > max {
            return Err(exceeded(if max == self.limits.max_depth {
                format!("query is nested deeper than the limit of {}", self.limits.max_depth)
            } else {
                format!("introspection is nested deeper than the limit of {INTROSPECTION_DEPTH} levels below `__schema` or `__type`")
            }));
        }
        // A fragment's selections are at the depth of the set it is in.
        self.expand(set, &(depth, max))
    }
}

impl<'a> Expand<'a> for Walk<'a> {
    /// The depth and the deepest allowed, as in [`Walk::selection_set`].
    type Scope = (usize, usize);
    type Error = ServerError;

    fn expansion(&mut self) -> &mut Expansion<'a> {
        &mut self.expansion
    }

    fn field(&mut self, &(depth, max): &(usize, usize), f: &'a Positioned<Field>) -> Result<(), ServerError> {
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
        Ok(())
    }

    fn fragment(&mut self, scope: &(usize, usize), _: Fragment<'a>) -> Result<(usize, usize), ServerError> {
        Ok(*scope)
    }

    fn not_expanded(&mut self, _: &'a FragmentSpread, _: NotExpanded) -> Result<(), ServerError> {
        // Validation, which runs next, reports unknown fragments and names cycles.
        Ok(())
    }

    fn over_budget(&mut self, budget: usize) -> Result<(), ServerError> {
        Err(exceeded(format!(
            "query expands to more than {budget} selections (fragments expanded)"
        )))
    }
}

/// Checks one parsed document against the limits.
pub fn check(doc: &ExecutableDocument, limits: Limits) -> Result<(), ServerError> {
    let mut walk = Walk {
        limits,
        fields: 0,
        aliases: 0,
        // Every selection visited counts, so that a fragment bomb costs no more than this.
        expansion: Expansion::new(doc, limits.max_complexity.saturating_mul(4)),
    };
    for (_, op) in doc.operations.iter() {
        walk.selection_set(&op.node.selection_set.node, 1, limits.max_depth)?;
    }
    Ok(())
}
