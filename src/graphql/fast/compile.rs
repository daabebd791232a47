//! Compiling a valid document's operation into a [`Plan`], or `None` where the fast path
//! does not cover it.

use async_graphql::parser::types::{
    BaseType, Directive, ExecutableDocument, Field, FragmentSpread, OperationType, SelectionSet, Type,
};
use async_graphql::parser::Positioned;
use async_graphql::Name;
use async_graphql_value::Value as InputValue;

use crate::graphql::fields::Scalar;
use crate::graphql::fragments::{Expand, Expansion, Fragment, NotExpanded};
use crate::graphql::types::{DimensionValue, Observation, ObservationVersion, Release};

use super::plan::*;

/// Compiles the operation `name` of a valid document; `None` if the fast path does not cover it.
pub(super) fn compile(doc: &ExecutableDocument, name: Option<&str>) -> Option<Plan> {
    let op = doc
        .operations
        .iter()
        .find(|(n, _)| name.is_none_or(|wanted| n.is_some_and(|n| n.as_str() == wanted)))
        .map(|(_, op)| &op.node)?;
    if op.ty != OperationType::Query || !op.directives.is_empty() {
        return None;
    }
    let mut variables = Vec::new();
    for def in &op.variable_definitions {
        let def = &def.node;
        if !def.directives.is_empty() || !simple_type(&def.var_type.node, 0) {
            return None;
        }
        variables.push(VarDef {
            name: def.name.node.clone(),
            ty: def.var_type.node.clone(),
            default: def.default_value().cloned(),
            condition: false,
        });
    }
    let c = Compiler {
        doc,
        condition_variables: Default::default(),
    };
    let root = c.object(&op.selection_set.node, "Query", |c, f| {
        Some(match f.name.node.as_str() {
            "__typename" => RootField::Typename,
            "observations" => RootField::Observations(
                args(f, &["dataset", "filter", "asOf", "first", "after"])?,
                c.object(&f.selection_set.node, "ObservationConnection", Compiler::conn_field)?,
            ),
            "observation" => RootField::Observation(
                args(f, &["dataset", "key", "period", "measure", "asOf"])?,
                c.object(&f.selection_set.node, "Observation", Compiler::obs_field)?,
            ),
            "history" => RootField::History(
                args(f, &["dataset", "key", "period", "measure", "asOf"])?,
                c.object(&f.selection_set.node, "ObservationVersion", Compiler::version_field)?,
            ),
            "breakdown" => RootField::Breakdown(
                args(f, &["dataset", "dimension", "period", "measure", "key", "asOf"])?,
                c.object(&f.selection_set.node, "Breakdown", Compiler::breakdown_field)?,
            ),
            "revisionSummary" => RootField::RevisionSummary(
                args(f, &["dataset", "filter", "asOf"])?,
                c.object(&f.selection_set.node, "RevisionSummary", |_, f| {
                    leaf(
                        f,
                        match f.name.node.as_str() {
                            "__typename" => SummaryField::Typename,
                            "observationCount" => SummaryField::ObservationCount,
                            "revisedCount" => SummaryField::RevisedCount,
                            "revisionCount" => SummaryField::RevisionCount,
                            "meanRevision" => SummaryField::MeanRevision,
                            "meanAbsoluteRevision" => SummaryField::MeanAbsoluteRevision,
                            "maxAbsoluteRevision" => SummaryField::MaxAbsoluteRevision,
                            _ => return None,
                        },
                    )
                })?,
            ),
            _ => return None,
        })
    })?;
    let read = c.condition_variables.into_inner();
    for v in &mut variables {
        v.condition = read.contains(&v.name);
    }
    Some(Plan { variables, root })
}

pub(super) fn simple_type(ty: &Type, depth: usize) -> bool {
    match &ty.base {
        BaseType::Named(n) => VARIABLE_TYPES.contains(&n.as_str()) || depth == 0 && INPUT_OBJECTS.contains(&n.as_str()),
        BaseType::List(inner) => depth == 0 && simple_type(inner, depth + 1),
    }
}

/// The field's arguments, if all are among `known`.
pub(super) fn args(f: &Field, known: &[&str]) -> Option<Args> {
    f.arguments
        .iter()
        .map(|(n, v)| {
            known
                .contains(&n.node.as_str())
                .then(|| (n.node.clone(), v.node.clone()))
        })
        .collect()
}

/// A leaf: no arguments, no selection.
pub(super) fn leaf<F>(f: &Field, field: F) -> Option<F> {
    (f.arguments.is_empty() && f.selection_set.node.items.is_empty()).then_some(field)
}

pub(super) fn no_args(f: &Field) -> Option<()> {
    f.arguments.is_empty().then_some(())
}

pub(super) struct Compiler<'a> {
    doc: &'a ExecutableDocument,
    /// The variables `@skip`/`@include` conditions read.
    condition_variables: std::cell::RefCell<Vec<Name>>,
}

impl<'a> Compiler<'a> {
    /// [`push_conditions`], noting the variables the conditions read.
    fn conditions(&self, directives: &[Positioned<Directive>], out: &mut Vec<Condition>) -> Option<()> {
        let before = out.len();
        push_conditions(directives, out)?;
        for c in &out[before..] {
            let (Condition::Skip(v) | Condition::Include(v)) = c;
            if let InputValue::Variable(name) = v {
                self.condition_variables.borrow_mut().push(name.clone());
            }
        }
        Some(())
    }

    /// Flattens a selection set on `type_name` into its fields, in order, each compiled by
    /// `field`.
    fn object<F>(
        &self,
        set: &'a SelectionSet,
        type_name: &str,
        field: impl Fn(&Self, &'a Field) -> Option<F> + Copy,
    ) -> Option<Vec<Sel<F>>> {
        let mut flatten = Flatten {
            compiler: self,
            type_name,
            expansion: Expansion::new(self.doc, usize::MAX),
            out: Vec::new(),
        };
        flatten.expand(set, &(Vec::new(), 0)).ok()?;
        let flat = flatten.out;
        let mut out: Vec<Sel<F>> = Vec::with_capacity(flat.len());
        for (f, conditions) in flat {
            let key = f.response_key().node.clone();
            // Fields merged under one key would need async-graphql's merging rules.
            if out.iter().any(|s| s.key == key) {
                return None;
            }
            let mut key_json = serde_json::to_vec(key.as_str()).expect("strings serialize");
            key_json.push(b':');
            out.push(Sel {
                key,
                key_json: key_json.into(),
                conditions,
                field: field(self, f)?,
            });
        }
        Some(out)
    }

    fn conn_field(&self, f: &'a Field) -> Option<ConnField> {
        no_args(f)?;
        Some(match f.name.node.as_str() {
            "__typename" => leaf(f, ConnField::Typename)?,
            "totalCount" => leaf(f, ConnField::TotalCount)?,
            "nodes" => ConnField::Nodes(self.object(&f.selection_set.node, "Observation", Self::obs_field)?),
            "edges" => ConnField::Edges(self.object(&f.selection_set.node, "ObservationEdge", |c, f| {
                no_args(f)?;
                Some(match f.name.node.as_str() {
                    "__typename" => leaf(f, EdgeField::Typename)?,
                    "cursor" => leaf(f, EdgeField::Cursor)?,
                    "node" => EdgeField::Node(c.object(&f.selection_set.node, "Observation", Self::obs_field)?),
                    _ => return None,
                })
            })?),
            "pageInfo" => ConnField::PageInfo(self.object(&f.selection_set.node, "PageInfo", |_, f| {
                leaf(
                    f,
                    match f.name.node.as_str() {
                        "__typename" => PageInfoField::Typename,
                        "hasPreviousPage" => PageInfoField::HasPreviousPage,
                        "hasNextPage" => PageInfoField::HasNextPage,
                        "startCursor" => PageInfoField::StartCursor,
                        "endCursor" => PageInfoField::EndCursor,
                        _ => return None,
                    },
                )
            })?),
            _ => return None,
        })
    }

    fn obs_field(&self, f: &'a Field) -> Option<ObsField> {
        no_args(f)?;
        Some(match f.name.node.as_str() {
            "dimensions" => ObsField::Dimensions(self.object(&f.selection_set.node, "DimensionValue", |_, f| {
                leaf(
                    f,
                    match f.name.node.as_str() {
                        "__typename" => DimField::Typename,
                        name => DimField::Scalar(Scalar::find(DimensionValue::SCALARS, name)?),
                    },
                )
            })?),
            "release" => ObsField::Release(self.release(f)?),
            "__typename" => leaf(f, ObsField::Typename)?,
            name => leaf(f, ObsField::Scalar(Scalar::find(Observation::SCALARS, name)?))?,
        })
    }

    fn version_field(&self, f: &'a Field) -> Option<VersionField> {
        no_args(f)?;
        Some(match f.name.node.as_str() {
            "release" => VersionField::Release(self.release(f)?),
            "__typename" => leaf(f, VersionField::Typename)?,
            name => leaf(
                f,
                VersionField::Scalar(Scalar::find(ObservationVersion::SCALARS, name)?),
            )?,
        })
    }

    fn release(&self, f: &'a Field) -> Option<Vec<Sel<ReleaseField>>> {
        self.object(&f.selection_set.node, "Release", |_, f| {
            leaf(
                f,
                match f.name.node.as_str() {
                    "__typename" => ReleaseField::Typename,
                    name => ReleaseField::Scalar(Scalar::find(Release::SCALARS, name)?),
                },
            )
        })
    }

    fn breakdown_field(&self, f: &'a Field) -> Option<BreakdownField> {
        no_args(f)?;
        Some(match f.name.node.as_str() {
            "total" => BreakdownField::Total(self.object(&f.selection_set.node, "Observation", Self::obs_field)?),
            "items" => BreakdownField::Items(self.object(&f.selection_set.node, "Observation", Self::obs_field)?),
            name => leaf(
                f,
                match name {
                    "__typename" => BreakdownField::Typename,
                    "dimension" => BreakdownField::Dimension,
                    "period" => BreakdownField::Period,
                    "measure" => BreakdownField::Measure,
                    "sumOfItems" => BreakdownField::SumOfItems,
                    "residual" => BreakdownField::Residual,
                    "asOfRevision" => BreakdownField::AsOfRevision,
                    _ => return None,
                },
            )?,
        })
    }
}

/// The fields of one selection set on `type_name`, fragments flattened, each with the
/// conditions it is under; refuses (`Err(())`) a fragment on another type, a fragment with
/// directives other than `@skip` and `@include`, an unknown fragment, a cycle, and fragments
/// nested deeper than 16.
struct Flatten<'c, 'a> {
    compiler: &'c Compiler<'a>,
    type_name: &'c str,
    expansion: Expansion<'a>,
    out: Vec<(&'a Field, Vec<Condition>)>,
}

impl<'a> Flatten<'_, 'a> {
    /// The scope of a fragment's fields: the conditions so far and those of `directives`, one
    /// level deeper.
    fn inner(
        &self,
        (conditions, depth): &(Vec<Condition>, usize),
        directives: &[Positioned<Directive>],
    ) -> Result<(Vec<Condition>, usize), ()> {
        if depth + 1 > 16 {
            return Err(());
        }
        let mut inner = clone_conditions(conditions);
        self.compiler.conditions(directives, &mut inner).ok_or(())?;
        Ok((inner, depth + 1))
    }
}

impl<'a> Expand<'a> for Flatten<'_, 'a> {
    /// The conditions a field is under, and how many fragments deep it is.
    type Scope = (Vec<Condition>, usize);
    type Error = ();

    fn expansion(&mut self) -> &mut Expansion<'a> {
        &mut self.expansion
    }

    fn field(&mut self, (conditions, _): &(Vec<Condition>, usize), f: &'a Positioned<Field>) -> Result<(), ()> {
        let mut own = clone_conditions(conditions);
        self.compiler.conditions(&f.node.directives, &mut own).ok_or(())?;
        self.out.push((&f.node, own));
        Ok(())
    }

    fn fragment(
        &mut self,
        scope: &(Vec<Condition>, usize),
        fragment: Fragment<'a>,
    ) -> Result<(Vec<Condition>, usize), ()> {
        match fragment {
            Fragment::Inline(i) => {
                if i.type_condition
                    .as_ref()
                    .is_some_and(|t| t.node.on.node != self.type_name)
                {
                    return Err(());
                }
                self.inner(scope, &i.directives)
            }
            Fragment::Spread(s, def) => {
                if def.type_condition.node.on.node != self.type_name || !def.directives.is_empty() {
                    return Err(());
                }
                self.inner(scope, &s.directives)
            }
        }
    }

    fn not_expanded(&mut self, _: &'a FragmentSpread, _: NotExpanded) -> Result<(), ()> {
        Err(())
    }

    fn over_budget(&mut self, _: usize) -> Result<(), ()> {
        Err(())
    }
}

pub(super) fn clone_conditions(c: &[Condition]) -> Vec<Condition> {
    c.iter()
        .map(|c| match c {
            Condition::Skip(v) => Condition::Skip(v.clone()),
            Condition::Include(v) => Condition::Include(v.clone()),
        })
        .collect()
}

/// Adds `@skip`/`@include` of `directives`; `None` for any other directive.
pub(super) fn push_conditions(directives: &[Positioned<Directive>], out: &mut Vec<Condition>) -> Option<()> {
    for d in directives {
        let d = &d.node;
        let [(name, value)] = d.arguments.as_slice() else {
            return None;
        };
        if name.node != "if" {
            return None;
        }
        let value = value.node.clone();
        match d.name.node.as_str() {
            "skip" => out.push(Condition::Skip(value)),
            "include" => out.push(Condition::Include(value)),
            _ => return None,
        }
    }
    Some(())
}
