//! The query root.

use async_graphql::connection::{Connection, Edge, EmptyFields, PageInfo};
use async_graphql::{Context, Enum, ErrorExtensions, InputObject, Object, Result, SimpleObject, ID};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use uuid::Uuid;

use super::changes::FigureChange;
use super::error::{self, at_field, bad_argument, bad_input, coded, ErrorCode};
use super::scalars::{Computed, Dec};
use super::tick::{checkpoint, ticks, Tick};
use super::transparency::{Checkpoint, ConsistencyProof, InclusionProof};
use super::types::{
    cell_key, observation, versions, AsOf, Dataset, LedgerHead, Observation, ObservationVersion, Release, ReleaseStatus,
};
use super::{ledger_of, limits_of};
use crate::domain::{Event, Frequency, Period};
use crate::projection::{CellKey, DatasetView, Filter, KeyPattern, RevisionStat, RevisionSummary as Summary};

mod catalog;
mod events;
mod figures;
mod verification;

use catalog::*;
pub use events::*;
pub use figures::*;
pub use verification::*;

// The query root: the fields of each part, in this order (the schema lists them so).
#[derive(async_graphql::MergedObject, Default)]
#[graphql(name = "Query")]
pub struct QueryRoot(CatalogQuery, FigureQuery, EventQuery, ChangeQuery, VerificationQuery);

fn page_size(ctx: &Context<'_>, first: Option<i32>) -> Result<usize> {
    page_size_at_most(limits_of(ctx).max_page_size, first)
}

/// The page `first` asks for, checked against the page-size cap `max`.
pub(super) fn page_size_at_most(max: usize, first: Option<i32>) -> Result<usize> {
    match first {
        None => Ok(max.min(100)),
        Some(n) if n < 0 => Err(bad_argument("first", format!("first must not be negative (got {n})"))),
        Some(n) if n as usize > max => Err(bad_argument("first", format!("first must be at most {max} (got {n})"))),
        Some(n) => Ok(n as usize),
    }
}

fn dataset_view<'a>(p: &'a crate::projection::Projection, id: &str) -> Result<&'a DatasetView> {
    p.dataset(id).ok_or_else(|| {
        at_field(
            coded(ErrorCode::NotFound, format!("dataset `{id}` not found")),
            "dataset",
        )
    })
}

/// How a frequency reads in an error message.
fn frequency_name(f: Frequency) -> &'static str {
    match f {
        Frequency::Annual => "annual",
        Frequency::HalfYear => "half-yearly",
        Frequency::Quarter => "quarterly",
        Frequency::Month => "monthly",
    }
}

/// Refuses a period of a frequency the dataset has no figures of, which could only ever
/// find nothing (a quarter asked of half-year statistics). A dataset without figures yet
/// takes any period.
pub(super) fn check_period(ds: &DatasetView, period: Period, field: &str) -> Result<()> {
    let have = ds.frequencies();
    if have.is_empty() || have.contains(&period.frequency()) {
        return Ok(());
    }
    let have: Vec<String> = have
        .iter()
        .map(|&f| format!("{} ({})", frequency_name(f), f.code()))
        .collect();
    Err(bad_argument(
        field,
        format!(
            "{field}: `{period}` is a {} ({}) period; dataset {} has {} periods only",
            frequency_name(period.frequency()),
            period.frequency().code(),
            ds.def.id,
            have.join(" and ")
        ),
    ))
}

/// An `asOf` the projection cannot resolve (a revision beyond the head, an unknown
/// release), naming the argument.
fn as_of_error(e: crate::projection::ProjectionError) -> async_graphql::Error {
    at_field(error::projection(e), "asOf")
}

pub(super) fn encode_cursor(ds: &DatasetView, cell: &CellKey) -> String {
    URL_SAFE_NO_PAD.encode(format!(
        "{}|{}|{}",
        ds.def.format_key(&cell.key),
        cell.period,
        ds.measure_id(cell.measure)
    ))
}

pub(super) fn decode_cursor(ds: &DatasetView, cursor: &str) -> Result<CellKey> {
    let invalid = || {
        bad_argument(
            "after",
            format!("after: `{cursor}` is not a cursor of this dataset's observations"),
        )
    };
    let raw = URL_SAFE_NO_PAD.decode(cursor).map_err(|_| invalid())?;
    let text = String::from_utf8(raw).map_err(|_| invalid())?;
    let mut parts = text.split('|');
    let (Some(key), Some(period), Some(measure), None) = (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(invalid());
    };
    let period = Period::parse(period).map_err(|_| invalid())?;
    cell_key(ds, key, period, measure).map_err(|_| invalid())
}

fn revision_cursor(after: Option<&str>) -> Result<u64> {
    match after {
        None => Ok(0),
        Some(s) => s
            .parse()
            .map_err(|_| bad_argument("after", format!("after: `{s}` is not a cursor of this list"))),
    }
}

/// The answer of a verification: the chain's, and the transparency log's damage if the
/// chain is intact.
pub(super) fn verification(
    v: crate::ledger::Verification,
    tree_damage: Option<crate::store::Damage>,
    root: crate::tlog::Node,
) -> LedgerVerification {
    let damage = v.damage.or(tree_damage);
    LedgerVerification {
        ok: damage.is_none(),
        checked: v.checked,
        first_bad_revision: damage.as_ref().map(|d| d.revision),
        reason: damage.map(|d| d.reason),
        root_hash: hex::encode(root),
    }
}
