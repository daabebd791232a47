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

use std::collections::HashSet;

use async_graphql::parser::types::{ExecutableDocument, FragmentDefinition, Selection, SelectionSet};
use async_graphql::parser::Positioned;
use async_graphql::{Name, Request, ServerError};

use super::{Limits, LIMIT_EXCEEDED};
use crate::cache::{BoundedMap, MAX_QUERY};

/// Documents kept; when full, the cache starts over (cheap, and a steady workload refills it
/// with its few queries at once).
const CACHE_ENTRIES: usize = 1024;

/// The limits, and the documents that passed them, by query text; see the module docs.
pub struct QueryLimits {
    limits: Limits,
    cache: BoundedMap<String, ExecutableDocument>,
}

impl QueryLimits {
    pub fn new(limits: Limits) -> Self {
        QueryLimits {
            limits,
            cache: BoundedMap::new(CACHE_ENTRIES),
        }
    }

    /// Parses `request` (or takes its document from the cache) and checks the limits; the
    /// request comes back with its parsed document, ready to execute.
    pub fn prepare(&self, mut request: Request) -> Result<Request, ServerError> {
        match self.cache.get(&request.query) {
            Some(doc) => request.set_parsed_query(doc),
            None => {
                let cacheable = request.query.len() <= MAX_QUERY;
                let doc = request.parsed_query()?;
                check(doc, self.limits)?;
                if cacheable {
                    let doc = doc.clone();
                    self.cache.insert(request.query.clone(), doc);
                }
            }
        }
        Ok(request)
    }
}

fn exceeded(message: String) -> ServerError {
    let mut e = ServerError::new(message, None);
    let mut ext = async_graphql::ErrorExtensionValues::default();
    ext.set("code", LIMIT_EXCEEDED);
    e.extensions = Some(ext);
    e
}

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
    fn selection_set(&mut self, set: &'a SelectionSet, depth: usize) -> Result<(), ServerError> {
        if depth > self.limits.max_depth {
            return Err(exceeded(format!(
                "query is nested deeper than the limit of {}",
                self.limits.max_depth
            )));
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
                        self.selection_set(&f.node.selection_set.node, depth + 1)?;
                    }
                }
                Selection::InlineFragment(i) => self.selection_set(&i.node.selection_set.node, depth)?,
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
                    self.selection_set(&def.node.selection_set.node, depth)?;
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
        walk.selection_set(&op.node.selection_set.node, 1)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use async_graphql::parser::parse_query;

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
}
