//! Fragment expansion: the one walker over the fields of a selection set with its inline
//! fragments and fragment spreads expanded in place, in document order.
//!
//! Three walks use it: the limits' walk (depth, fields, aliases; `limits/walk.rs`), the cost
//! walk (`limits/cost.rs`) and the fast path's flattening (`fast/compile.rs`). What they
//! share lives here: looking a spread's fragment up, the guard that walks a fragment cycle
//! only once, and the count of selections visited against a budget, so that a "fragment
//! bomb" (each fragment spreading the next twice) costs no more than the budget. What each
//! decides on its own are the hooks of [`Expand`]: what a field does (and whether it walks
//! the field's own selection set, with the same [`Expansion`], so the cycle guard and the
//! count span the whole operation), what scope a fragment's selections are walked in (its
//! type, its conditions), or whether a fragment is refused.

use std::collections::HashSet;

use async_graphql::parser::types::{
    ExecutableDocument, Field, FragmentDefinition, FragmentSpread, InlineFragment, Selection, SelectionSet,
};
use async_graphql::parser::Positioned;

/// A fragment about to be expanded.
pub(super) enum Fragment<'a> {
    Inline(&'a InlineFragment),
    /// A spread and the definition it names.
    Spread(&'a FragmentSpread, &'a FragmentDefinition),
}

/// Why a fragment spread is not expanded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum NotExpanded {
    /// The document defines no fragment of that name (validation reports it).
    Unknown,
    /// The fragment is already being expanded further up: a cycle, which validation refuses.
    Cycle,
}

/// The state of one expansion: the document's fragments, the fragments on the current path
/// and the selections visited so far.
pub(super) struct Expansion<'a> {
    doc: &'a ExecutableDocument,
    /// Fragments being expanded, to walk a cycle only once instead of looping.
    path: HashSet<&'a str>,
    /// Selections visited, fields, inline fragments and spreads alike.
    visits: usize,
    /// Visits allowed before [`Expand::over_budget`] is asked what to do.
    budget: usize,
}

impl<'a> Expansion<'a> {
    /// An expansion of `doc`'s fragments that may visit `budget` selections.
    pub(super) fn new(doc: &'a ExecutableDocument, budget: usize) -> Self {
        Expansion {
            doc,
            path: HashSet::new(),
            visits: 0,
            budget,
        }
    }

    /// Selections visited so far, fields, inline fragments and spreads alike.
    #[cfg(test)]
    pub(super) fn visits(&self) -> usize {
        self.visits
    }
}

/// A walk over selection sets with their fragments expanded; see the module docs. An
/// implementation gives the hooks and its [`Expansion`]; [`Expand::expand`] walks.
pub(super) trait Expand<'a> {
    /// What a fragment's selections are walked in (a type, conditions), handed to the hooks.
    type Scope;
    /// What stops the walk.
    type Error;

    fn expansion(&mut self) -> &mut Expansion<'a>;

    /// A field of the set, fragments expanded, in order.
    fn field(&mut self, scope: &Self::Scope, field: &'a Positioned<Field>) -> Result<(), Self::Error>;

    /// The scope `fragment`'s selections are walked in, or an error to refuse it.
    fn fragment(&mut self, scope: &Self::Scope, fragment: Fragment<'a>) -> Result<Self::Scope, Self::Error>;

    /// A spread that is not expanded, and why: `Ok` walks on without it.
    fn not_expanded(&mut self, spread: &'a FragmentSpread, why: NotExpanded) -> Result<(), Self::Error>;

    /// More selections visited than the budget: `Ok` walks on (every further visit asks again).
    fn over_budget(&mut self, budget: usize) -> Result<(), Self::Error>;

    /// Walks `set` in `scope`: each selection counts as a visit, each field goes to
    /// [`Expand::field`], each fragment's selections are walked in the scope
    /// [`Expand::fragment`] gives, a spread whose fragment is unknown or already on the path
    /// goes to [`Expand::not_expanded`]. Stops at the first error of a hook.
    fn expand(&mut self, set: &'a SelectionSet, scope: &Self::Scope) -> Result<(), Self::Error> {
        for item in &set.items {
            let x = self.expansion();
            x.visits = x.visits.saturating_add(1);
            if x.visits > x.budget {
                let budget = x.budget;
                self.over_budget(budget)?;
            }
            match &item.node {
                Selection::Field(f) => self.field(scope, f)?,
                Selection::InlineFragment(i) => {
                    let inner = self.fragment(scope, Fragment::Inline(&i.node))?;
                    self.expand(&i.node.selection_set.node, &inner)?;
                }
                Selection::FragmentSpread(s) => {
                    let name = s.node.fragment_name.node.as_str();
                    let doc = self.expansion().doc;
                    let Some(def) = doc.fragments.get(&s.node.fragment_name.node) else {
                        self.not_expanded(&s.node, NotExpanded::Unknown)?;
                        continue;
                    };
                    if !self.expansion().path.insert(name) {
                        self.not_expanded(&s.node, NotExpanded::Cycle)?;
                        continue;
                    }
                    let inner = self.fragment(scope, Fragment::Spread(&s.node, &def.node))?;
                    self.expand(&def.node.selection_set.node, &inner)?;
                    self.expansion().path.remove(name);
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Records the fields met (by response key, with the fragment nesting they were met at)
    /// and the spreads not expanded; refuses fragments on `Refused` and stops over budget.
    struct Record<'a> {
        x: Expansion<'a>,
        fields: Vec<(String, usize)>,
        skipped: Vec<(String, NotExpanded)>,
    }

    impl<'a> Expand<'a> for Record<'a> {
        type Scope = usize;
        type Error = String;

        fn expansion(&mut self) -> &mut Expansion<'a> {
            &mut self.x
        }

        fn field(&mut self, scope: &usize, field: &'a Positioned<Field>) -> Result<(), String> {
            self.fields.push((field.node.response_key().node.to_string(), *scope));
            // Children share the expansion: its path and its count.
            self.expand(&field.node.selection_set.node, &0)
        }

        fn fragment(&mut self, scope: &usize, fragment: Fragment<'a>) -> Result<usize, String> {
            let on = match fragment {
                Fragment::Inline(i) => i.type_condition.as_ref().map(|t| t.node.on.node.to_string()),
                Fragment::Spread(_, def) => Some(def.type_condition.node.on.node.to_string()),
            };
            if on.as_deref() == Some("Refused") {
                return Err("refused".into());
            }
            Ok(scope + 1)
        }

        fn not_expanded(&mut self, spread: &'a FragmentSpread, why: NotExpanded) -> Result<(), String> {
            self.skipped.push((spread.fragment_name.node.to_string(), why));
            Ok(())
        }

        fn over_budget(&mut self, budget: usize) -> Result<(), String> {
            Err(format!("over {budget}"))
        }
    }

    fn walk(doc: &ExecutableDocument, budget: usize) -> (Record<'_>, Result<(), String>) {
        let mut r = Record {
            x: Expansion::new(doc, budget),
            fields: Vec::new(),
            skipped: Vec::new(),
        };
        let (_, op) = doc.operations.iter().next().expect("an operation");
        let result = r.expand(&op.node.selection_set.node, &0);
        (r, result)
    }

    fn parse(query: &str) -> ExecutableDocument {
        async_graphql::parser::parse_query(query).expect("parses")
    }

    fn names<'r>(r: &'r Record) -> Vec<(&'r str, usize)> {
        r.fields.iter().map(|(n, d)| (n.as_str(), *d)).collect()
    }

    #[test]
    fn fields_come_in_order_with_nested_spreads_and_inline_fragments_expanded() {
        let doc = parse(
            "{ a ...F b ... on Q { c ...G } d }
             fragment F on Q { e ...G }
             fragment G on Q { f: g }",
        );
        let (r, result) = walk(&doc, 100);
        assert_eq!(result, Ok(()));
        assert_eq!(
            names(&r),
            [("a", 0), ("e", 1), ("f", 2), ("b", 0), ("c", 1), ("f", 2), ("d", 0)]
        );
        // a F e G f b inline c G f d: every selection counts, spreads and fragments included.
        assert_eq!(r.x.visits(), 11);
        assert!(r.skipped.is_empty());
    }

    #[test]
    fn a_cycle_is_walked_once_and_reported() {
        // A spreads B spreads A, also through a field: each is expanded once on a path.
        let doc = parse(
            "{ ...A x { ...A } }
             fragment A on Q { a ...B }
             fragment B on Q { b ...A y { ...B } }",
        );
        let (r, result) = walk(&doc, 1000);
        assert_eq!(result, Ok(()));
        assert_eq!(
            names(&r),
            [("a", 1), ("b", 2), ("y", 2), ("x", 0), ("a", 1), ("b", 2), ("y", 2)]
        );
        let cycles = |name: &str| {
            r.skipped
                .iter()
                .filter(|(n, why)| n == name && *why == NotExpanded::Cycle)
                .count()
        };
        assert_eq!((cycles("A"), cycles("B")), (2, 2), "{:?}", r.skipped);
    }

    #[test]
    fn an_unknown_fragment_is_reported_and_a_refused_one_stops_the_walk() {
        let doc = parse("{ a ...Nowhere b }");
        let (r, result) = walk(&doc, 100);
        assert_eq!(result, Ok(()));
        assert_eq!(names(&r), [("a", 0), ("b", 0)]);
        assert_eq!(r.skipped, [("Nowhere".to_string(), NotExpanded::Unknown)]);

        let doc = parse("{ a ...R b } fragment R on Refused { c }");
        let (r, result) = walk(&doc, 100);
        assert_eq!(result, Err("refused".to_string()));
        assert_eq!(names(&r), [("a", 0)]);
    }

    #[test]
    fn a_fragment_bomb_stops_at_the_budget() {
        // Each fragment spreads the next twice: 2^20 fields once expanded.
        let mut query = String::from("{ ...F0 }\n");
        for i in 0..20 {
            let next = i + 1;
            query.push_str(&format!("fragment F{i} on Q {{ ...F{next} ...F{next} }}\n"));
        }
        query.push_str("fragment F20 on Q { leaf }\n");
        let doc = parse(&query);
        let (r, result) = walk(&doc, 500);
        assert_eq!(result, Err("over 500".to_string()));
        assert_eq!(r.x.visits(), 501, "the walk stops at the first visit over the budget");
        assert!(r.fields.len() < 500);

        // Within the budget, the same bomb of 4 levels expands fully: 16 leaves.
        let mut query = String::from("{ ...F0 }\n");
        for i in 0..4 {
            let next = i + 1;
            query.push_str(&format!("fragment F{i} on Q {{ ...F{next} ...F{next} }}\n"));
        }
        query.push_str("fragment F4 on Q { leaf }\n");
        let doc = parse(&query);
        let (r, result) = walk(&doc, 500);
        assert_eq!(result, Ok(()));
        assert_eq!(r.fields.len(), 16);
        assert_eq!(r.x.visits(), 1 + 2 + 4 + 8 + 16 + 16);
    }
}
