//! Selections of figures: by key pattern, period, measure and status.

use crate::domain::{Dataset, Period, ReleaseStatus, SeriesKey};

use super::{CellKey, Version};

/// An SDMX key pattern: one part per dimension; an empty part matches any code, and `+`
/// joins alternatives (`IPR+ICT.._T`). Each part holds code positions.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct KeyPattern(pub Vec<Option<Vec<u16>>>);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("key pattern `{pattern}`: {message}")]
pub struct PatternError {
    pub pattern: String,
    pub message: String,
}

impl KeyPattern {
    pub fn parse(dataset: &Dataset, pattern: &str) -> Result<Self, PatternError> {
        let fail = |message: String| PatternError {
            pattern: pattern.to_owned(),
            message,
        };
        let parts: Vec<&str> = pattern.split('.').collect();
        if parts.len() != dataset.dimensions.len() {
            return Err(fail(format!(
                "has {} parts but the dataset has {} dimensions",
                parts.len(),
                dataset.dimensions.len()
            )));
        }
        let mut out = Vec::with_capacity(parts.len());
        for (dim, part) in dataset.dimensions.iter().zip(parts) {
            if part.is_empty() {
                out.push(None);
                continue;
            }
            let mut codes = Vec::new();
            for code in part.split('+') {
                let pos = dim
                    .position(code)
                    .ok_or_else(|| fail(format!("unknown code `{code}` for dimension {}", dim.id)))?;
                codes.push(pos as u16);
            }
            out.push(Some(codes));
        }
        Ok(KeyPattern(out))
    }

    /// Narrows one dimension to `codes` (intersecting with what is already there).
    pub fn restrict(&mut self, dimension: usize, codes: Vec<u16>) {
        let slot = &mut self.0[dimension];
        *slot = Some(match slot.take() {
            None => codes,
            Some(existing) => existing.into_iter().filter(|c| codes.contains(c)).collect(),
        });
    }

    /// The smallest and largest keys of `dimensions` codes the pattern can match, from its
    /// leading parts: the codes of the first dimensions that name one code each, then the
    /// lowest and highest code of the next part; `None` when the first part is open. A
    /// listing walks only the keys between them.
    pub fn span(&self, dimensions: usize) -> Option<(SeriesKey, SeriesKey)> {
        let mut low = vec![0u16; dimensions];
        let mut high = vec![u16::MAX; dimensions];
        let mut fixed = 0;
        for (i, part) in self.0.iter().take(dimensions).enumerate() {
            let Some(codes) = part.as_ref().filter(|c| !c.is_empty()) else {
                break;
            };
            low[i] = *codes.iter().min()?;
            high[i] = *codes.iter().max()?;
            fixed += 1;
            if codes.len() > 1 {
                break;
            }
        }
        (fixed > 0).then(|| (SeriesKey::from_codes(&low), SeriesKey::from_codes(&high)))
    }

    pub fn matches(&self, key: &SeriesKey) -> bool {
        self.0
            .iter()
            .zip(key.codes())
            .all(|(part, code)| part.as_ref().is_none_or(|codes| codes.contains(&code)))
    }
}

/// What a query selects. Every present criterion must hold.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Filter {
    pub key: Option<KeyPattern>,
    pub periods: Option<Vec<Period>>,
    /// Inclusive range; only periods of the same frequency as the bound compare.
    pub period_from: Option<Period>,
    pub period_to: Option<Period>,
    pub measures: Option<Vec<u8>>,
    /// Status of the release that set the figure's value as of the bound.
    pub statuses: Option<Vec<ReleaseStatus>>,
    /// Only figures whose value changed at least once.
    pub revised_only: bool,
}

impl Filter {
    pub fn matches_cell(&self, cell: &CellKey) -> bool {
        self.key.as_ref().is_none_or(|k| k.matches(&cell.key)) && self.matches_point(cell.period, cell.measure)
    }

    /// The criteria on the period and the measure (all but the key).
    pub fn matches_point(&self, period: Period, measure: u8) -> bool {
        self.periods.as_ref().is_none_or(|ps| ps.contains(&period))
            && self
                .period_from
                .is_none_or(|p| p.frequency() == period.frequency() && period >= p)
            && self
                .period_to
                .is_none_or(|p| p.frequency() == period.frequency() && period <= p)
            && self.measures.as_ref().is_none_or(|ms| ms.contains(&measure))
    }

    /// The narrowest `(first, last)` periods a matching figure can have, in [`Period`]'s
    /// order, so a listing can skip the rest of each series.
    pub(super) fn period_span(&self) -> (Option<Period>, Option<Period>) {
        let listed = self.periods.as_ref();
        let first = [self.period_from, listed.and_then(|ps| ps.iter().min().copied())];
        let last = [self.period_to, listed.and_then(|ps| ps.iter().max().copied())];
        (first.into_iter().flatten().max(), last.into_iter().flatten().min())
    }

    /// Criteria that depend on the figure's versions, checked after the bound is applied.
    /// `status_of` gives the status of the release at a position.
    pub fn matches_versions(&self, versions: &[Version], status_of: impl Fn(u32) -> ReleaseStatus) -> bool {
        if self.revised_only && !versions.windows(2).any(|w| w[0].value != w[1].value) {
            return false;
        }
        match (&self.statuses, versions.last()) {
            (Some(statuses), Some(v)) => statuses.contains(&status_of(v.release)),
            _ => true,
        }
    }
}
