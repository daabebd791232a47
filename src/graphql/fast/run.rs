//! Running a plan: arguments coerced as async-graphql coerces them, the answer written into
//! one buffer in selection order.

use std::io::Write as _;

use async_graphql::parser::types::{BaseType, Type};
use async_graphql::{InputType, Name, Request, Value, ID};
use async_graphql_value::Value as InputValue;
use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use uuid::Uuid;

use crate::domain::Period;
use crate::graphql::fields::{json_string, Scalar};
use crate::graphql::query::{
    check_period, decode_cursor, encode_cursor, page_size_at_most as page_size, ObservationFilter,
};
use crate::graphql::types::{cell_key, observation, AsOf, DimensionValue};
use crate::graphql::Limits;
use crate::projection::{Bound, ObservationAt, Projection, ReleaseInfo, RevisionSummary};

use super::plan::*;

/// A declared variable's value: the request's, else the default; `None` when absent.
pub(super) type Resolved = Vec<(Name, Option<Value>)>;

impl Plan {
    /// The operation's variables, checked against their declared types as async-graphql's
    /// validation checks them; `None` when one does not coerce or a required one is missing
    /// (async-graphql then answers with the error).
    pub(super) fn variables(&self, request: &Request) -> Option<Resolved> {
        self.variables
            .iter()
            .map(|def| {
                let given = request.variables.get(&def.name);
                // An explicit null where a default exists is left to async-graphql: the
                // variable is null (not its default), and in a non-null position, such as
                // `@skip(if:)`, the whole request is an error even where no field is reached.
                if matches!(given, Some(Value::Null)) && def.default.is_some() {
                    return None;
                }
                let value = given.or(def.default.as_ref()).cloned();
                match &value {
                    None | Some(Value::Null) if !def.ty.nullable || def.condition => None,
                    None | Some(Value::Null) => Some((def.name.clone(), value)),
                    Some(v) => conforms(&def.ty, v).then(|| (def.name.clone(), value)),
                }
            })
            .collect()
    }
}

/// True when a non-null `value` coerces to `ty` (a scalar of [`VARIABLE_TYPES`] or a list
/// of one); a single value where a list is declared is left to async-graphql.
pub(super) fn conforms(ty: &Type, value: &Value) -> bool {
    match (&ty.base, value) {
        (BaseType::List(inner), Value::List(items)) => items.iter().all(|item| match item {
            Value::Null => inner.nullable,
            v => conforms(inner, v),
        }),
        (BaseType::List(_), _) => false,
        (BaseType::Named(name), v) => {
            let v = Some(v.clone());
            match name.as_str() {
                "String" => String::parse(v).is_ok(),
                "ID" => ID::parse(v).is_ok(),
                "Int" => i32::parse(v).is_ok(),
                "Boolean" => bool::parse(v).is_ok(),
                "Period" => <Period as InputType>::parse(v).is_ok(),
                "UUID" => Uuid::parse(v).is_ok(),
                "DateTime" => DateTime::<Utc>::parse(v).is_ok(),
                "AsOf" => known_fields(name, v.as_ref()) && AsOf::parse(v).is_ok(),
                "ObservationFilter" => known_fields(name, v.as_ref()) && ObservationFilter::parse(v).is_ok(),
                _ => false,
            }
        }
    }
}

/// True when `value` (of the input-object type `ty`) names only fields the type has, as
/// async-graphql's validation of variables requires (the types' own parsing ignores the rest).
pub(super) fn known_fields(ty: &str, value: Option<&Value>) -> bool {
    let Some((_, fields)) = INPUT_FIELDS.iter().find(|(t, _)| *t == ty) else {
        return false;
    };
    let Some(Value::Object(object)) = value else {
        // Not an object at all: the type's parsing refuses it.
        return true;
    };
    object.iter().all(|(name, v)| {
        let Some((_, inner)) = fields.iter().find(|(f, _)| *f == name.as_str()) else {
            return false;
        };
        // A field of an input-object type (a list of them, or one coerced to a list).
        let objects_ok = |v: &Value| match v {
            Value::Object(o) => o.keys().all(|k| inner.iter().any(|f| f == k.as_str())),
            _ => true,
        };
        inner.is_empty()
            || match v {
                Value::List(items) => items.iter().all(objects_ok),
                v => objects_ok(v),
            }
    })
}

pub(super) struct Run<'a> {
    pub(super) p: &'a Projection,
    pub(super) limits: &'a Limits,
    pub(super) vars: &'a Resolved,
    pub(super) out: Vec<u8>,
    pub(super) max: usize,
    /// The response passed `max`: what was written is dropped, and the rest is resolved (an
    /// error further on still hands the request to async-graphql) without being kept.
    pub(super) too_large: bool,
}

impl<'a> Run<'a> {
    /// Writes one root field of the operation's object (after a comma unless `first`):
    /// false when its conditions leave it out.
    pub(super) fn root_sel(&mut self, s: &Sel<RootField>, first: bool) -> Option<bool> {
        if !self.included(&s.conditions)? {
            return Some(false);
        }
        if !first {
            self.out.push(b',');
        }
        self.out.extend_from_slice(&s.key_json);
        self.root_field(&s.field)?;
        Some(true)
    }

    /// Resolves a value as written (with variables) to a constant; `None` for an undefined
    /// variable.
    fn constant(&self, value: &InputValue) -> Option<Value> {
        value
            .clone()
            .into_const_with(|name| {
                self.vars
                    .iter()
                    .find(|(n, _)| *n == name)
                    .and_then(|(_, v)| v.clone())
                    .ok_or(())
            })
            .ok()
    }

    /// An argument coerced by its schema type, as async-graphql coerces it; `default` is the
    /// argument's default in the schema.
    fn arg<T: InputType>(&self, args: &Args, name: &str, default: Option<fn() -> T>) -> Option<T> {
        match args.iter().find(|(n, _)| n.as_str() == name) {
            None => match default {
                Some(d) => Some(d()),
                None => T::parse(None).ok(),
            },
            Some((_, v)) => T::parse(Some(self.constant(v)?)).ok(),
        }
    }

    fn included(&self, conditions: &[Condition]) -> Option<bool> {
        for c in conditions {
            let (value, skip_when) = match c {
                Condition::Skip(v) => (v, true),
                Condition::Include(v) => (v, false),
            };
            let Value::Boolean(b) = self.constant(value)? else {
                return None;
            };
            if b == skip_when {
                return Some(false);
            }
        }
        Some(true)
    }

    /// Bounds what is kept of a response that passed the limit.
    fn check_size(&mut self) {
        if self.out.len() > self.max {
            self.too_large = true;
            self.out.clear();
        }
    }

    /// An object of the selected fields, in selection order; null when every field was
    /// skipped, as async-graphql answers it.
    fn object<F>(&mut self, sels: &[Sel<F>], mut field: impl FnMut(&mut Self, &F) -> Option<()>) -> Option<()> {
        let start = self.out.len();
        self.out.push(b'{');
        let mut first = true;
        for s in sels {
            if !self.included(&s.conditions)? {
                continue;
            }
            if !first {
                self.out.push(b',');
            }
            first = false;
            self.out.extend_from_slice(&s.key_json);
            field(self, &s.field)?;
        }
        if first {
            self.out.truncate(start);
            self.null();
            return Some(());
        }
        self.out.push(b'}');
        Some(())
    }

    fn list<T>(&mut self, items: &[T], mut item: impl FnMut(&mut Self, &T) -> Option<()>) -> Option<()> {
        self.out.push(b'[');
        for (i, x) in items.iter().enumerate() {
            if i > 0 {
                self.out.push(b',');
            }
            item(self, x)?;
            self.check_size();
        }
        self.out.push(b']');
        Some(())
    }

    fn string(&mut self, s: &str) {
        json_string(&mut self.out, s);
    }

    fn raw(&mut self, s: &str) {
        self.out.extend_from_slice(s.as_bytes());
    }

    fn null(&mut self) {
        self.raw("null");
    }

    fn boolean(&mut self, b: bool) {
        self.raw(if b { "true" } else { "false" });
    }

    fn number(&mut self, n: u64) {
        write!(self.out, "{n}").expect("a Vec takes every write");
    }

    /// A `Decimal` (its digits need no escaping), a `Period` or a `UUID`: a string by its
    /// `Display`.
    fn display(&mut self, d: impl std::fmt::Display) {
        write!(self.out, "\"{d}\"").expect("a Vec takes every write");
    }

    fn root_field(&mut self, f: &RootField) -> Option<()> {
        match f {
            RootField::Typename => self.string("Query"),
            RootField::Observations(args, sels) => self.observations(args, sels)?,
            RootField::Observation(args, sels) => self.single_observation(args, sels)?,
            RootField::History(args, sels) => self.history(args, sels)?,
            RootField::Breakdown(args, sels) => self.breakdown(args, sels)?,
            RootField::RevisionSummary(args, sels) => self.revision_summary(args, sels)?,
        }
        Some(())
    }

    /// `Query.observations`, as its resolver answers it.
    fn observations(&mut self, args: &Args, sels: &[Sel<ConnField>]) -> Option<()> {
        let dataset: ID = self.arg(args, "dataset", None)?;
        let filter: Option<ObservationFilter> = self.arg(args, "filter", None)?;
        let as_of: Option<AsOf> = self.arg(args, "asOf", None)?;
        let first: Option<i32> = self.arg(args, "first", None)?;
        let after: Option<String> = self.arg(args, "after", None)?;
        let limit = page_size(self.limits.max_page_size, first).ok()?;
        let spec = AsOf::to_spec(as_of.as_ref()).ok()?;
        let p = self.p;
        let ds = p.dataset(&dataset)?;
        let bound = p.bound(spec).ok()?;
        let filter = filter.unwrap_or_default().resolve(ds).ok()?;
        let after_cell = match &after {
            Some(c) => Some(decode_cursor(ds, c).ok()?),
            None => None,
        };
        let mut it = p.select(ds, &filter, bound, after_cell.as_ref());
        let page: Vec<ObservationAt<'_>> = it.by_ref().take(limit).collect();
        let has_next = it.next().is_some();
        self.object(sels, |run, f| {
            match f {
                ConnField::Typename => run.string("ObservationConnection"),
                ConnField::TotalCount => run.number(p.select(ds, &filter, bound, None).count() as u64),
                ConnField::Nodes(sels) => run.list(&page, |run, o| run.observation(o, bound, sels))?,
                ConnField::Edges(sels) => run.list(&page, |run, o| {
                    run.object(sels, |run, f| {
                        match f {
                            EdgeField::Typename => run.string("ObservationEdge"),
                            EdgeField::Cursor => run.string(&encode_cursor(ds, &o.cell)),
                            EdgeField::Node(sels) => run.observation(o, bound, sels)?,
                        }
                        Some(())
                    })
                })?,
                ConnField::PageInfo(sels) => run.object(sels, |run, f| {
                    let cursor = |o: Option<&ObservationAt<'_>>| o.map(|o| encode_cursor(ds, &o.cell));
                    match f {
                        PageInfoField::Typename => run.string("PageInfo"),
                        PageInfoField::HasPreviousPage => run.boolean(after.is_some()),
                        PageInfoField::HasNextPage => run.boolean(has_next),
                        PageInfoField::StartCursor => run.optional_string(cursor(page.first()).as_deref()),
                        PageInfoField::EndCursor => run.optional_string(cursor(page.last()).as_deref()),
                    }
                    Some(())
                })?,
            }
            Some(())
        })
    }

    fn optional_string(&mut self, s: Option<&str>) {
        match s {
            Some(s) => self.string(s),
            None => self.null(),
        }
    }

    /// `Query.observation`.
    fn single_observation(&mut self, args: &Args, sels: &[Sel<ObsField>]) -> Option<()> {
        let (ds, cell, bound) = self.figure(args)?;
        match ds.get(&cell, bound) {
            Some(o) => self.observation(&o, bound, sels),
            None => {
                self.null();
                Some(())
            }
        }
    }

    /// The figure `observation` and `history` name, and the point they read at.
    fn figure(
        &self,
        args: &Args,
    ) -> Option<(
        &'a crate::projection::DatasetView,
        crate::projection::CellKey,
        crate::projection::Bound,
    )> {
        let dataset: ID = self.arg(args, "dataset", None)?;
        let key: String = self.arg(args, "key", None)?;
        let period: Period = self.arg(args, "period", None)?;
        let measure: String = self.arg(args, "measure", Some(|| String::from("BAL")))?;
        let as_of: Option<AsOf> = self.arg(args, "asOf", None)?;
        let spec = AsOf::to_spec(as_of.as_ref()).ok()?;
        let ds = self.p.dataset(&dataset)?;
        check_period(ds, period, "period").ok()?;
        let cell = cell_key(ds, &key, period, &measure).ok()?;
        let bound = self.p.bound(spec).ok()?;
        Some((ds, cell, bound))
    }

    /// `Query.history`.
    fn history(&mut self, args: &Args, sels: &[Sel<VersionField>]) -> Option<()> {
        let (ds, cell, bound) = self.figure(args)?;
        let Some(obs) = ds.get(&cell, bound) else {
            self.raw("[]");
            return Some(());
        };
        let p = self.p;
        let versions = crate::graphql::types::versions(p, &obs);
        self.list(&versions, |run, v| {
            run.object(sels, |run, f| {
                match f {
                    VersionField::Typename => run.string("ObservationVersion"),
                    VersionField::Scalar(s) => run.scalar(s, v)?,
                    VersionField::Release(sels) => run.release(p.release_at(v.release_position), sels)?,
                }
                Some(())
            })
        })
    }

    /// `Query.revisionSummary`, its scalar fields.
    fn revision_summary(&mut self, args: &Args, sels: &[Sel<SummaryField>]) -> Option<()> {
        let dataset: ID = self.arg(args, "dataset", None)?;
        let filter: Option<ObservationFilter> = self.arg(args, "filter", None)?;
        let as_of: Option<AsOf> = self.arg(args, "asOf", None)?;
        let spec = AsOf::to_spec(as_of.as_ref()).ok()?;
        let p = self.p;
        let ds = p.dataset(&dataset)?;
        let bound = p.bound(spec).ok()?;
        let filter = filter.unwrap_or_default().resolve(ds).ok()?;
        let s = RevisionSummary::of(p.select(ds, &filter, bound, None));
        if s.overflow.is_some() {
            // The figures are then errors: async-graphql says which.
            return None;
        }
        self.object(sels, |run, f| {
            match f {
                SummaryField::Typename => run.string("RevisionSummary"),
                SummaryField::ObservationCount => run.number(s.observations),
                SummaryField::RevisedCount => run.number(s.revised),
                SummaryField::RevisionCount => run.number(s.revisions),
                SummaryField::MeanRevision => run.optional_decimal(s.mean_revision),
                SummaryField::MeanAbsoluteRevision => run.optional_decimal(s.mean_absolute_revision),
                SummaryField::MaxAbsoluteRevision => run.optional_decimal(s.max_absolute_revision),
            }
            Some(())
        })
    }

    fn optional_decimal(&mut self, d: Option<Decimal>) {
        match d {
            Some(d) => self.display(d),
            None => self.null(),
        }
    }

    /// `Query.breakdown`.
    fn breakdown(&mut self, args: &Args, sels: &[Sel<BreakdownField>]) -> Option<()> {
        let dataset: ID = self.arg(args, "dataset", None)?;
        let dimension: String = self.arg(args, "dimension", None)?;
        let period: Period = self.arg(args, "period", None)?;
        let measure: String = self.arg(args, "measure", Some(|| String::from("BAL")))?;
        let key: Option<String> = self.arg(args, "key", None)?;
        let as_of: Option<AsOf> = self.arg(args, "asOf", None)?;
        let spec = AsOf::to_spec(as_of.as_ref()).ok()?;
        let p = self.p;
        let ds = p.dataset(&dataset)?;
        let (dim, _) = ds.def.dimension(&dimension)?;
        let base = match &key {
            Some(k) => ds.def.parse_key(k).ok()?,
            None => ds.def.total_key(),
        };
        check_period(ds, period, "period").ok()?;
        let measure_pos = cell_key(ds, &ds.def.format_key(&base), period, &measure).ok()?.measure;
        let bound = p.bound(spec).ok()?;
        let b = ds.breakdown(&base, dim, period, measure_pos, bound);
        if b.overflow.is_some() {
            return None;
        }
        let as_of = bound.revision;
        self.object(sels, |run, f| {
            match f {
                BreakdownField::Typename => run.string("Breakdown"),
                BreakdownField::Dimension => run.string(&dimension),
                BreakdownField::Period => run.display(period),
                BreakdownField::Measure => run.string(&measure),
                BreakdownField::Total(sels) => match &b.total {
                    Some(t) => run.observation(t, bound, sels)?,
                    None => run.null(),
                },
                BreakdownField::Items(sels) => run.list(&b.items, |run, o| run.observation(o, bound, sels))?,
                BreakdownField::SumOfItems => run.display(b.sum_of_items),
                BreakdownField::Residual => run.optional_decimal(b.residual),
                BreakdownField::AsOfRevision => run.number(as_of),
            }
            Some(())
        })
    }

    /// One declared scalar field of `value`.
    fn scalar<T>(&mut self, s: &Scalar<T>, value: &T) -> Option<()> {
        #[cfg(test)]
        if super::tests::PERTURBED.with(|p| p.get() == Some(s.name)) {
            self.raw("\"perturbed\"");
            return Some(());
        }
        (s.write)(value, &mut self.out)
    }

    /// An `Observation` read at `bound`.
    fn observation(&mut self, obs: &ObservationAt<'_>, bound: Bound, sels: &[Sel<ObsField>]) -> Option<()> {
        let p = self.p;
        let o = observation(p, obs, bound);
        self.object(sels, |run, f| {
            match f {
                ObsField::Typename => run.string("Observation"),
                ObsField::Scalar(s) => run.scalar(s, &o)?,
                ObsField::Dimensions(sels) => {
                    let dims = DimensionValue::of_key(&obs.dataset.def, &obs.cell.key);
                    run.list(&dims, |run, d| {
                        run.object(sels, |run, f| {
                            match f {
                                DimField::Typename => run.string("DimensionValue"),
                                DimField::Scalar(s) => run.scalar(s, d)?,
                            }
                            Some(())
                        })
                    })?;
                }
                ObsField::Release(sels) => run.release(p.release_at(o.release_position()), sels)?,
            }
            Some(())
        })
    }

    fn release(&mut self, r: &ReleaseInfo, sels: &[Sel<ReleaseField>]) -> Option<()> {
        self.object(sels, |run, f| {
            match f {
                ReleaseField::Typename => run.string("Release"),
                ReleaseField::Scalar(s) => run.scalar(s, r)?,
            }
            Some(())
        })
    }
}
