//! Cost: the objects and bytes a query can return at worst (see the module docs above).

use std::convert::Infallible;

use async_graphql::parser::types::FragmentSpread;

use super::*;
use crate::graphql::fragments::{Expand, Expansion, Fragment, NotExpanded};

/// The worst-case number of objects the operation of `request` can return; see the module
/// docs. Without an operation name, the costliest operation of the document counts.
#[cfg(test)]
pub fn cost(doc: &ExecutableDocument, request: &Request, shape: &Shape, extents: &Extents, max_page: u64) -> u64 {
    cost_and_bytes(doc, request, shape, extents, (0, 0), max_page).0
}

/// The worst-case objects and bytes (estimated; see the module docs) of the operation of
/// `request`; `sizes` are the largest event and text of the log ([`LogSizes`]).
pub(super) fn cost_and_bytes(
    doc: &ExecutableDocument,
    request: &Request,
    shape: &Shape,
    extents: &Extents,
    sizes: (u64, u64),
    max_page: u64,
) -> (u64, u64) {
    let wanted = request.operation_name.as_deref();
    doc.operations
        .iter()
        .filter(|(name, _)| wanted.is_none_or(|w| name.is_some_and(|n| n.as_str() == w)))
        .map(|(_, op)| {
            let root = match op.node.ty {
                async_graphql::parser::types::OperationType::Query => &shape.roots[0],
                async_graphql::parser::types::OperationType::Mutation => &shape.roots[1],
                async_graphql::parser::types::OperationType::Subscription => &shape.roots[2],
            };
            let mut walk = CostWalk {
                shape,
                extents,
                max_page,
                op: &op.node,
                variables: &request.variables,
                expansion: Expansion::new(doc, usize::MAX),
                sizes,
                bytes: 0,
                total: 0,
            };
            let cost = walk.selection_set(root, &op.node.selection_set.node, 1, 0);
            if op.node.ty != async_graphql::parser::types::OperationType::Subscription {
                return (cost, walk.bytes);
            }
            // A subscription's event carries one of its root fields: the largest counts.
            let singles: Vec<SelectionSet> = op
                .node
                .selection_set
                .node
                .items
                .iter()
                .map(|item| SelectionSet {
                    items: vec![item.clone()],
                })
                .collect();
            let bytes = singles
                .iter()
                .map(|set| {
                    let mut walk = CostWalk {
                        shape,
                        extents,
                        max_page,
                        op: &op.node,
                        variables: &request.variables,
                        expansion: Expansion::new(doc, usize::MAX),
                        sizes,
                        bytes: 0,
                        total: 0,
                    };
                    walk.selection_set(root, set, 1, 0);
                    walk.bytes
                })
                .max()
                .unwrap_or(0);
            (cost, bytes)
        })
        .fold((0, 0), |(c, b), (cost, bytes)| (c.max(cost), b.max(bytes)))
}

pub(super) struct CostWalk<'a> {
    pub(super) shape: &'a Shape,
    pub(super) extents: &'a Extents,
    pub(super) max_page: u64,
    pub(super) op: &'a OperationDefinition,
    pub(super) variables: &'a Variables,
    /// Fragments expanded, a cycle (which validation refuses) walked only once. The walk has
    /// no budget of its own: it runs on documents that passed the limits' walk, whose
    /// budget bounds the same expansion.
    pub(super) expansion: Expansion<'a>,
    /// The log's largest event and text, as JSON.
    pub(super) sizes: (u64, u64),
    /// Estimated bytes so far.
    pub(super) bytes: u64,
    /// Objects of the selection set being walked so far.
    pub(super) total: u64,
}

/// Where [`CostWalk`] walks a selection set: the type of its parent, which is returned
/// `times` times; `page` is the page size of the nearest connection above.
#[derive(Clone, Copy)]
pub(super) struct CostScope<'a> {
    parent: &'a str,
    times: u64,
    page: u64,
}

impl<'a> CostWalk<'a> {
    /// Objects `set` returns on `parent`, which is returned `times` times; `page` is the page
    /// size of the nearest connection above.
    pub(super) fn selection_set(&mut self, parent: &'a str, set: &'a SelectionSet, times: u64, page: u64) -> u64 {
        let outer = std::mem::take(&mut self.total);
        let Ok(()) = self.expand(set, &CostScope { parent, times, page });
        // The objects are counts, so saturating sums do not depend on how the fields of
        // fragments are grouped.
        std::mem::replace(&mut self.total, outer)
    }

    /// Objects the field `f` of `parent` returns, with those of its selections.
    fn field_cost(&mut self, CostScope { parent, times, page }: CostScope<'a>, f: &'a Field) -> u64 {
        let shape = self.shape;
        let name = f.name.node.as_str();
        let children = &f.selection_set.node;
        // The key (`"name":` and a comma) wherever the field appears; its value
        // below, as objects or scalars.
        let key = f.alias.as_ref().map_or(name.len(), |a| a.node.len()) as u64 + 4;
        // Introspection answers describe the schema, which is fixed and small (its
        // whole description is some 100 KB): its lists are bounded by the object
        // count above, and their texts are no ledger data. Multiplying the
        // largest of each of its lists down the tree would refuse the standard
        // introspection queries (GraphiQL's, codegen's) for their size.
        if !(parent.starts_with("__") || name == "__schema" || name == "__type") {
            self.add_bytes(times, key);
            self.add_value_bytes(parent, name, times, page, children.items.is_empty());
        }
        match shape.field(parent, name) {
            // Unknown here (validation refuses it next) or a scalar such as
            // `__typename`.
            None if children.items.is_empty() => 0,
            None => times.saturating_add(self.selection_set("", children, times, page)),
            Some(field) if field.ty.ends_with("Connection") && !field.list => {
                let n = self.page(f).min(self.available(parent, name));
                times.saturating_add(self.selection_set(&field.ty, children, times, n))
            }
            Some(field) if field.list => {
                let n = times.saturating_mul(self.list_len(parent, name, page));
                n.saturating_add(self.selection_set(&field.ty, children, n, page))
            }
            Some(field) if shape.is_object(&field.ty) => {
                times.saturating_add(self.selection_set(&field.ty, children, times, page))
            }
            Some(_) => 0,
        }
    }

    pub(super) fn add_bytes(&mut self, times: u64, each: u64) {
        self.bytes = self.bytes.saturating_add(times.saturating_mul(each));
    }

    /// Adds the bytes of a scalar field's values (objects add theirs as they are walked:
    /// braces here, their fields' keys and values below).
    pub(super) fn add_value_bytes(&mut self, parent: &str, name: &str, times: u64, page: u64, scalar: bool) {
        let Some(field) = self.shape.field(parent, name) else {
            // `__typename` and the like, or an unknown field (refused next).
            self.add_bytes(times, SCALAR_BYTES);
            return;
        };
        let count = if field.list {
            times.saturating_mul(self.list_len(parent, name, page))
        } else {
            times
        };
        if !scalar || self.shape.is_object(&field.ty) {
            self.add_bytes(count, 2);
            return;
        }
        let (event, text) = self.sizes;
        let each = match (parent, name) {
            ("Event" | "InclusionProof", "canonical") | ("InclusionProof", "entry") => event,
            ("Release", "title" | "source") | ("Dataset", "name" | "publisher" | "description") => text,
            _ => match field.ty.as_str() {
                "Int" | "Float" | "Boolean" => NUMBER_BYTES,
                _ => SCALAR_BYTES,
            },
        };
        self.add_bytes(count, each);
    }

    /// The page a connection field returns, from its `first` (or `last`) argument.
    pub(super) fn page(&self, field: &Field) -> u64 {
        let default = DEFAULT_PAGE.min(self.max_page);
        let arguments = &field.arguments;
        let Some((_, value)) = arguments
            .iter()
            .find(|(n, _)| n.node == "first")
            .or_else(|| arguments.iter().find(|(n, _)| n.node == "last"))
        else {
            return default;
        };
        let resolved = value.node.clone().into_const_with(|var| self.variable(&var).ok_or(()));
        match resolved {
            Err(()) | Ok(Value::Null) => default,
            Ok(Value::Number(n)) => match n.as_i64() {
                Some(n) if n < 0 => 0,
                Some(n) => (n as u64).min(self.max_page),
                None => self.max_page,
            },
            // The resolver refuses it; count a full page meanwhile.
            Ok(_) => self.max_page,
        }
    }

    /// A variable's value: as sent, else its default.
    pub(super) fn variable(&self, name: &Name) -> Option<Value> {
        self.variables.get(name).cloned().or_else(|| {
            self.op
                .variable_definitions
                .iter()
                .find(|d| d.node.name.node == *name)
                .and_then(|d| d.node.default_value.as_ref().map(|v| v.node.clone()))
        })
    }

    /// How many items a connection field has at most, whatever the page.
    pub(super) fn available(&self, parent: &str, field: &str) -> u64 {
        let e = self.extents;
        match (parent, field) {
            ("Query", "releases") => e.releases,
            ("Query", "observations") => e.max_figures,
            ("Query", "events") => e.events,
            ("Query", "changes") => e.max_figures,
            _ => u64::MAX,
        }
    }

    /// The longest a list field can be.
    pub(super) fn list_len(&self, parent: &str, field: &str, page: u64) -> u64 {
        let e = self.extents;
        let s = &self.shape.sizes;
        match (parent, field) {
            (p, "edges" | "nodes") if p.ends_with("Connection") => page,
            ("Query", "datasets") => e.datasets,
            ("Query", "history") | ("Observation", "versions") => e.max_versions,
            ("Breakdown", "items") | ("Dimension", "codes") => e.max_codes,
            ("RevisionSummary", "items") => e.max_figures.min(REVISION_ITEMS),
            ("Dataset" | "Observation" | "FigureChange", "dimensions") => e.max_dimensions,
            ("Dataset", "measures") => e.max_measures,
            ("Release", "observations") => e.max_release_observations,
            ("__Schema", "types") => s.types,
            ("__Schema", "directives") => s.directives,
            ("__Type", "fields") => s.fields,
            ("__Type", "inputFields") => s.input_fields,
            ("__Type", "enumValues") => s.enum_values,
            ("__Type", "interfaces") => s.interfaces,
            ("__Type", "possibleTypes") => s.possible_types,
            ("__Field" | "__Directive", "args") => s.args,
            // A list this table does not know: a full page.
            _ => self.max_page,
        }
    }
}

impl<'a> Expand<'a> for CostWalk<'a> {
    type Scope = CostScope<'a>;
    type Error = Infallible;

    fn expansion(&mut self) -> &mut Expansion<'a> {
        &mut self.expansion
    }

    fn field(&mut self, scope: &CostScope<'a>, f: &'a Positioned<Field>) -> Result<(), Infallible> {
        let cost = self.field_cost(*scope, &f.node);
        self.total = self.total.saturating_add(cost);
        Ok(())
    }

    /// A fragment's fields are walked on the type of its condition.
    fn fragment(&mut self, scope: &CostScope<'a>, fragment: Fragment<'a>) -> Result<CostScope<'a>, Infallible> {
        let parent = match fragment {
            Fragment::Inline(i) => i
                .type_condition
                .as_ref()
                .map_or(scope.parent, |c| c.node.on.node.as_str()),
            Fragment::Spread(_, def) => def.type_condition.node.on.node.as_str(),
        };
        Ok(CostScope { parent, ..*scope })
    }

    fn not_expanded(&mut self, _: &'a FragmentSpread, _: NotExpanded) -> Result<(), Infallible> {
        Ok(())
    }

    /// Never reached (the budget is `usize::MAX`, and visits saturate there).
    fn over_budget(&mut self, _: usize) -> Result<(), Infallible> {
        Ok(())
    }
}
