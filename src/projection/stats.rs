//! Revision statistics in the OECD / Eurostat sense: how far later estimates moved from
//! the preliminary one.

use rust_decimal::Decimal;

use super::{ObservationAt, Overflow};

/// Preliminary versus latest for one figure.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RevisionStat {
    pub preliminary: Decimal,
    pub latest: Decimal,
    /// `latest - preliminary`.
    pub revision: Decimal,
    /// Number of times the value changed.
    pub revisions: u32,
    /// Set when `latest - preliminary` overflowed; `revision` is then zero and must not be
    /// shown.
    pub overflow: Option<Overflow>,
}

impl RevisionStat {
    pub fn of(obs: &ObservationAt<'_>) -> Self {
        let preliminary = obs.preliminary().value;
        let latest = obs.current().value;
        let revisions = obs.versions.windows(2).filter(|w| w[0].value != w[1].value).count() as u32;
        let revision = latest.checked_sub(preliminary);
        RevisionStat {
            preliminary,
            latest,
            revision: revision.unwrap_or_default(),
            revisions,
            overflow: revision.is_none().then_some(Overflow { figure: "revision" }),
        }
    }
}

/// Statistics over a selection of figures.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RevisionSummary {
    /// Figures in the selection.
    pub observations: u64,
    /// Figures whose value changed at least once.
    pub revised: u64,
    /// Total number of value changes.
    pub revisions: u64,
    /// Mean of `latest - preliminary` over all figures (unrevised ones count as 0); the sign
    /// shows a bias of preliminary estimates. `None` for an empty selection.
    pub mean_revision: Option<Decimal>,
    /// Mean of `|latest - preliminary|`: the typical size of a revision.
    pub mean_absolute_revision: Option<Decimal>,
    pub max_absolute_revision: Option<Decimal>,
    /// Set when a figure's revision or a sum of them overflowed; the means and the maximum
    /// are then `None` and must not be shown.
    pub overflow: Option<Overflow>,
}

/// Digits kept in the means; the rest is rounded half to even (banker's rounding).
const MEAN_SCALE: u32 = 6;

impl RevisionSummary {
    pub fn of<'a>(observations: impl Iterator<Item = ObservationAt<'a>>) -> Self {
        let mut n = 0u64;
        let mut revised = 0u64;
        let mut revisions = 0u64;
        let mut sum = Decimal::ZERO;
        let mut sum_abs = Decimal::ZERO;
        let mut max_abs: Option<Decimal> = None;
        let mut overflow = None;
        for obs in observations {
            let s = RevisionStat::of(&obs);
            n += 1;
            if s.revisions > 0 {
                revised += 1;
            }
            revisions += u64::from(s.revisions);
            if overflow.is_some() {
                continue;
            }
            overflow = s.overflow;
            match (sum.checked_add(s.revision), sum_abs.checked_add(s.revision.abs())) {
                (Some(a), Some(b)) => (sum, sum_abs) = (a, b),
                (None, _) => overflow = Some(Overflow { figure: "meanRevision" }),
                (_, None) => {
                    overflow = Some(Overflow {
                        figure: "meanAbsoluteRevision",
                    })
                }
            }
            max_abs = Some(max_abs.map_or(s.revision.abs(), |m| m.max(s.revision.abs())));
        }
        // Dividing by a count of at least one cannot overflow.
        let mean = |total: Decimal| {
            (n > 0 && overflow.is_none()).then(|| (total / Decimal::from(n)).round_dp(MEAN_SCALE).normalize())
        };
        RevisionSummary {
            observations: n,
            revised,
            revisions,
            mean_revision: mean(sum),
            mean_absolute_revision: mean(sum_abs),
            max_absolute_revision: max_abs.filter(|_| overflow.is_none()),
            overflow,
        }
    }
}
