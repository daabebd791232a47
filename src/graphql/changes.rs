//! Types of `changes`: what changed in a dataset between two points of history.

use async_graphql::{ComplexObject, Context, Enum, SimpleObject, ID};

use super::scalars::{Computed, Dec};
use super::types::{DimensionValue, Release, ReleaseStatus};
use crate::domain::Period;
use crate::projection::{self, Projection};

/// How a figure's newer value relates to its older one.
#[derive(Enum, Copy, Clone, Eq, PartialEq, Debug)]
#[graphql(remote = "crate::projection::ChangeKind")]
pub enum ChangeKind {
    /// Nothing was published for the figure at `from`.
    New,
    /// Its value at `to` differs from its value at `from`.
    Revised,
    /// A release between the two points published it again with the same value (listed
    /// only with `includeUnchanged: true`).
    Republished,
}

/// A figure whose value differs between two points of history (or, if asked for, that was
/// published again between them).
#[derive(SimpleObject)]
#[graphql(complex)]
pub struct FigureChange {
    pub dataset: ID,
    /// Series key in SDMX dot notation, e.g. `IPR._T._T`.
    pub key: String,
    /// The key spelled out: code and label per dimension.
    pub dimensions: Vec<DimensionValue>,
    pub period: Period,
    pub measure: String,
    pub kind: ChangeKind,
    /// The value at `from`; null for a figure new since then.
    pub from_value: Option<Dec>,
    /// The value at `to`.
    pub to_value: Dec,
    /// `toValue - fromValue`; null for a new figure.
    pub delta: Option<Computed>,
    /// Status of the release that set the value at `to`.
    pub status: ReleaseStatus,
    /// Ledger revision of the release that set the value at `to`.
    pub revision: u64,
    #[graphql(skip)]
    release_position: u32,
}

#[ComplexObject]
impl FigureChange {
    /// The release that set the value at `to`.
    async fn release(&self, ctx: &Context<'_>) -> Release {
        Release::at(ctx, self.release_position)
    }
}

impl FigureChange {
    pub fn of(p: &Projection, c: &projection::FigureChange<'_>) -> Self {
        let ds = c.to.dataset;
        let def = &ds.def;
        let current = c.to.current();
        let release = p.release_at(current.release);
        FigureChange {
            dataset: ID(def.id.clone()),
            key: def.format_key(&c.to.cell.key),
            dimensions: DimensionValue::of_key(def, &c.to.cell.key),
            period: c.to.cell.period,
            measure: ds.measure_id(c.to.cell.measure).to_owned(),
            kind: c.kind.into(),
            from_value: c.from.map(|v| Dec(v.value)),
            to_value: Dec(current.value),
            delta: c.from.map(|v| Computed::difference(current.value, v.value, "delta")),
            status: release.status.into(),
            revision: release.revision,
            release_position: current.release,
        }
    }
}
