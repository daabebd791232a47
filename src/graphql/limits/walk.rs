//! Depth, fields and aliases of a document, fragments expanded, stopping at the first limit
//! passed.

use super::*;

/// Levels allowed below a `__schema` or `__type` field, whatever `--max-depth` says: the
/// standard introspection query of graphql-js (GraphiQL, codegen, Apollo tooling) needs 12.
pub const INTROSPECTION_DEPTH: usize = 14;

pub(super) struct Walk<'a> {
    pub(super) doc: &'a ExecutableDocument,
    pub(super) limits: Limits,
    pub(super) fields: usize,
    pub(super) aliases: usize,
    /// Selections visited, fragment spreads included: bounds the work of the walk itself.
    pub(super) visits: usize,
    /// Fragments on the current path, to refuse cycles without looping.
    pub(super) path: HashSet<&'a str>,
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
