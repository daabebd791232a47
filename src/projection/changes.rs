//! What changed in a dataset between two points of history: the auditor's diff.
//!
//! Both points are bounds on the same version lists, so a figure's value at `from` and at
//! `to` are two binary searches in its list; the listing costs one pass over the dataset's
//! figures in key order, like `observations`, and a page stops as soon as it is full.

use super::{Bound, CellKey, DatasetView, Filter, ObservationAt, Projection, Version};

/// How a figure's value at `to` relates to its value at `from`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChangeKind {
    /// Nothing was published for the figure at `from`.
    New,
    /// Its value at `to` differs from its value at `from`.
    Revised,
    /// A release after `from` published it again with the same value.
    Republished,
}

/// One figure whose value (or publishing release) differs between two bounds.
#[derive(Debug, Clone)]
pub struct FigureChange<'a> {
    /// The figure as of `to`: its last version is the one that set the newer value.
    pub to: ObservationAt<'a>,
    /// Its version as of `from`, if it had one.
    pub from: Option<Version>,
    pub kind: ChangeKind,
}

impl Projection {
    /// Figures of `dataset` whose value at `to` differs from the one at `from` (new or
    /// revised), in key, period and measure order, after `after`; with
    /// `include_unchanged`, also those a release between the two points published again
    /// with the same value. `from` must not be after `to`.
    pub fn changes<'a>(
        &'a self,
        dataset: &'a DatasetView,
        filter: &'a Filter,
        from: Bound,
        to: Bound,
        include_unchanged: bool,
        after: Option<&CellKey>,
    ) -> impl Iterator<Item = FigureChange<'a>> + 'a {
        self.select(dataset, filter, to, after).filter_map(move |obs| {
            // What was visible at `from` is a part of what is visible at `to` (the bounds are
            // ordered on both axes), but with back-fills not always a prefix of it.
            let before = dataset.get(&obs.cell, from);
            let current = obs.current();
            let (from_version, kind) = match before.as_ref().map(|b| (b.current(), b.versions.len())) {
                None => (None, ChangeKind::New),
                Some((v, _)) if v.value != current.value => (Some(v), ChangeKind::Revised),
                // Published again after `from`, with the value it had there.
                Some((v, n)) if include_unchanged && n < obs.versions.len() => (Some(v), ChangeKind::Republished),
                Some(_) => return None,
            };
            Some(FigureChange {
                to: obs,
                from: from_version,
                kind,
            })
        })
    }
}
