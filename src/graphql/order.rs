//! Response maps in the order of the selection set.
//!
//! The GraphQL specification orders the fields of every response object as the query
//! selects them (CollectFields: first occurrence of each response key, fragments expanded in
//! place, `@skip`/`@include` applied). async-graphql resolves the fields of an object
//! concurrently and inserts each into the response map as it completes, so a field whose
//! resolver waits (a root field that takes the projection's lock, say) lands after fields
//! selected below it: `{ a: breakdown(..) b: breakdown(..) c: ledger { revision } }` came
//! back as `c, b, a`.
//!
//! [`ResponseOrder`] puts an executed response back in document order, walking the
//! operation's selection set alongside the response. The schema has no interfaces or
//! unions, so every fragment inside a selection on a type applies to that type, and the
//! order of an object's keys depends only on where it is in the response, not on its
//! runtime type: the keys are worked out once per position and shared by every object of a
//! list. Every execution by async-graphql goes through it (over HTTP, WebSocket and each
//! subscription event); the fast path ([`super::fast`]) writes in selection order itself,
//! and the response cache keeps what either wrote.

use std::cell::OnceCell;
use std::sync::Arc;

use async_graphql::parser::types::{Directive, ExecutableDocument, OperationDefinition, Selection, SelectionSet};
use async_graphql::parser::Positioned;
use async_graphql::{InputType, Name, Response, Value, Variables};

/// Fragments nest at most this deep here; validation refuses cycles, this bounds the walk
/// whatever reaches it.
const MAX_FRAGMENT_DEPTH: usize = 64;

/// What a response to one operation of a document is reordered by.
#[derive(Clone)]
pub struct ResponseOrder {
    doc: Arc<ExecutableDocument>,
    operation: Option<String>,
    /// The request's variables (defaults applied), which `@skip`/`@include` read.
    variables: Variables,
}

/// The fields of an object at one position of the response, in order: each response key
/// with the selection sets merged under it, and (worked out when first needed) the order of
/// the objects under it.
struct Collected<'a> {
    fields: Vec<CollectedField<'a>>,
}

struct CollectedField<'a> {
    key: &'a Name,
    sets: Vec<&'a SelectionSet>,
    inner: OnceCell<Collected<'a>>,
}

impl ResponseOrder {
    /// The order of responses to `operation` (or the document's only operation) of `doc`,
    /// under `variables`.
    pub fn new(doc: Arc<ExecutableDocument>, operation: Option<&str>, variables: Variables) -> Self {
        ResponseOrder {
            doc,
            operation: operation.map(str::to_owned),
            variables,
        }
    }

    fn operation(&self) -> Option<&OperationDefinition> {
        let mut operations = self.doc.operations.iter();
        let found = match &self.operation {
            Some(wanted) => operations.find(|(name, _)| name.is_some_and(|n| n.as_str() == wanted)),
            None => operations.next().filter(|_| self.doc.operations.iter().count() == 1),
        };
        found.map(|(_, op)| &op.node)
    }

    /// Puts the objects of `response.data` in the order of the operation's selection set.
    pub fn apply(&self, response: &mut Response) {
        let Some(op) = self.operation() else { return };
        let root = self.collect(&[&op.selection_set.node]);
        self.order(&mut response.data, &root);
    }

    /// Orders `value` (an object, a list of them, or anything else, left alone) by `fields`.
    fn order<'a>(&'a self, value: &mut Value, fields: &Collected<'a>) {
        match value {
            Value::List(items) => {
                for item in items {
                    self.order(item, fields);
                }
            }
            Value::Object(map) => {
                let in_order = map
                    .keys()
                    .zip(fields.fields.iter().filter(|f| map.contains_key(f.key)))
                    .all(|(have, want)| have == want.key);
                if !in_order {
                    let mut old = std::mem::take(map);
                    for f in &fields.fields {
                        if let Some((k, v)) = old.swap_remove_entry(f.key) {
                            map.insert(k, v);
                        }
                    }
                    // Nothing should be left; if something is, it is kept, after the rest.
                    map.extend(old);
                }
                for f in &fields.fields {
                    if f.sets.iter().all(|s| s.items.is_empty()) {
                        continue;
                    }
                    if let Some(v) = map.get_mut(f.key) {
                        let inner = f.inner.get_or_init(|| self.collect(&f.sets));
                        self.order(v, inner);
                    }
                }
            }
            _ => {}
        }
    }

    /// CollectFields over the selection sets merged at one position.
    fn collect<'a>(&'a self, sets: &[&'a SelectionSet]) -> Collected<'a> {
        let mut fields = Vec::new();
        for set in sets {
            self.collect_into(set, &mut fields, 0);
        }
        Collected { fields }
    }

    fn collect_into<'a>(&'a self, set: &'a SelectionSet, out: &mut Vec<CollectedField<'a>>, depth: usize) {
        if depth > MAX_FRAGMENT_DEPTH {
            return;
        }
        for item in &set.items {
            if self.skipped(item.node.directives()) {
                continue;
            }
            match &item.node {
                Selection::Field(f) => {
                    let key = &f.node.response_key().node;
                    let sub = &f.node.selection_set.node;
                    match out.iter_mut().find(|c| c.key == key) {
                        Some(c) => c.sets.push(sub),
                        None => out.push(CollectedField {
                            key,
                            sets: vec![sub],
                            inner: OnceCell::new(),
                        }),
                    }
                }
                Selection::InlineFragment(i) => self.collect_into(&i.node.selection_set.node, out, depth + 1),
                Selection::FragmentSpread(s) => {
                    if let Some(def) = self.doc.fragments.get(&s.node.fragment_name.node) {
                        self.collect_into(&def.node.selection_set.node, out, depth + 1);
                    }
                }
            }
        }
    }

    /// True when `@skip` or `@include` leaves the selection out, read as async-graphql reads
    /// them before it executes (a condition that is not a boolean counts as false).
    fn skipped(&self, directives: &[Positioned<Directive>]) -> bool {
        directives.iter().any(|d| {
            let include = match d.node.name.node.as_str() {
                "skip" => false,
                "include" => true,
                _ => return false,
            };
            let Some(condition) = d.node.get_argument("if") else {
                return false;
            };
            let value = condition
                .node
                .clone()
                .into_const_with(|name| self.variables.get(&name).cloned().ok_or(()))
                .unwrap_or_default();
            let value: bool = InputType::parse(Some(value)).unwrap_or_default();
            include != value
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use async_graphql::parser::parse_query;

    fn ordered(query: &str, variables: serde_json::Value, data: serde_json::Value) -> String {
        let doc = Arc::new(parse_query(query).unwrap());
        let order = ResponseOrder::new(doc, None, Variables::from_json(variables));
        let mut response = Response::new(Value::from_json(data).unwrap());
        order.apply(&mut response);
        serde_json::to_string(&response.data).unwrap()
    }

    /// Keys come back in the order of first occurrence, fragments expanded in place, merged
    /// fields ordered by their merged selections, lists ordered item by item.
    #[test]
    fn objects_follow_the_selection_set() {
        let q = "query { b a: x { z y } ...F c: x { w } a: x { q y } } fragment F on Query { d { ... { f e } } }";
        let data = serde_json::json!({
            "c": { "w": 1 },
            "d": [{ "e": 1, "f": 2 }, { "e": 3, "f": 4 }],
            "a": { "q": 1, "y": 2, "z": 3 },
            "b": 0,
        });
        assert_eq!(
            ordered(q, serde_json::json!({}), data),
            r#"{"b":0,"a":{"z":3,"y":2,"q":1},"d":[{"f":2,"e":1},{"f":4,"e":3}],"c":{"w":1}}"#
        );
    }

    /// A field left out by `@skip` or `@include` where it first occurs takes the place of its
    /// next occurrence.
    #[test]
    fn skipped_occurrences_do_not_count() {
        let q = "query($no: Boolean = false) { a @include(if: $no) b ... @skip(if: true) { c } c a }";
        let data = serde_json::json!({ "a": 1, "c": 3, "b": 2 });
        assert_eq!(
            ordered(q, serde_json::json!({ "no": false }), data),
            r#"{"b":2,"c":3,"a":1}"#
        );
    }
}
