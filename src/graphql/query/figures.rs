//! Figures: listings, one figure, its history, breakdowns, revision statistics and changes.

use super::*;

/// Codes allowed in one dimension.
#[derive(InputObject, Clone, Debug)]
pub struct DimensionFilter {
    /// Dimension id, e.g. `SERVICE_TYPE`.
    pub dimension: String,
    /// Codes to keep, e.g. `["IPR", "ICT"]`.
    pub codes: Vec<String>,
}

/// Which figures to select. Every criterion given must hold.
#[derive(InputObject, Clone, Debug, Default)]
pub struct ObservationFilter {
    /// SDMX key pattern: one part per dimension, empty for any code, `+` for alternatives,
    /// e.g. `IPR+ICT.._T`.
    pub key: Option<String>,
    /// Codes allowed per dimension (combined with `key`).
    pub dimensions: Option<Vec<DimensionFilter>>,
    /// Exactly these periods, each of a frequency the dataset has figures of.
    pub periods: Option<Vec<Period>>,
    /// From this period on (inclusive; only periods of the same frequency match).
    pub period_from: Option<Period>,
    /// Up to this period (inclusive; only periods of the same frequency match).
    pub period_to: Option<Period>,
    /// Measures, e.g. `["BAL"]`.
    pub measures: Option<Vec<String>>,
    /// Status of the release that set the value (as of the requested point).
    pub status: Option<Vec<ReleaseStatus>>,
    /// Only figures whose value has changed at least once.
    pub revised_only: Option<bool>,
}

impl ObservationFilter {
    pub(crate) fn resolve(&self, ds: &DatasetView) -> Result<Filter> {
        let def = &ds.def;
        let mut key = match &self.key {
            Some(k) => {
                Some(KeyPattern::parse(def, k).map_err(|e| bad_argument("filter.key", format!("filter.key: {e}")))?)
            }
            None => None,
        };
        for d in self.dimensions.iter().flatten() {
            let (pos, dim) = def.dimension(&d.dimension).ok_or_else(|| {
                bad_argument(
                    "filter.dimensions",
                    format!(
                        "filter.dimensions: unknown dimension `{}`; dataset {} has {}",
                        d.dimension,
                        def.id,
                        def.dimensions
                            .iter()
                            .map(|d| d.id.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                )
            })?;
            let codes = d
                .codes
                .iter()
                .map(|c| {
                    dim.position(c).map(|p| p as u16).ok_or_else(|| {
                        bad_argument(
                            "filter.dimensions",
                            format!("filter.dimensions: unknown code `{c}` for dimension {}", dim.id),
                        )
                    })
                })
                .collect::<Result<Vec<_>>>()?;
            key.get_or_insert_with(|| KeyPattern(vec![None; def.dimensions.len()]))
                .restrict(pos, codes);
        }
        let measures = match &self.measures {
            Some(ms) => Some(
                ms.iter()
                    .map(|m| {
                        ds.measure(m).ok_or_else(|| {
                            bad_argument(
                                "filter.measures",
                                format!(
                                    "filter.measures: unknown measure `{m}`; dataset {} has {}",
                                    def.id,
                                    def.measures.join(", ")
                                ),
                            )
                        })
                    })
                    .collect::<Result<Vec<_>>>()?,
            ),
            None => None,
        };
        // Range bounds keep their documented meaning (only periods of the bound's frequency
        // match), which selects one frequency of a dataset that has several.
        for p in self.periods.iter().flatten() {
            check_period(ds, *p, "filter.periods")?;
        }
        Ok(Filter {
            key,
            periods: self.periods.clone(),
            period_from: self.period_from,
            period_to: self.period_to,
            measures,
            statuses: self.status.as_ref().map(|s| s.iter().map(|&x| x.into()).collect()),
            revised_only: self.revised_only.unwrap_or(false),
        })
    }
}

/// A dimension's items under a total, with their sum and what they leave unexplained.
#[derive(SimpleObject)]
pub struct Breakdown {
    pub dimension: String,
    pub period: Period,
    pub measure: String,
    /// The figure the items break down (all `_T` by default); null if none was published.
    pub total: Option<Observation>,
    /// The codes directly under the total's code in this dimension that have a figure.
    pub items: Vec<Tick<Observation>>,
    pub sum_of_items: Computed,
    /// `total - sumOfItems`: the part the listed items do not cover ("other").
    pub residual: Option<Computed>,
    pub as_of_revision: u64,
}

/// Preliminary versus latest for one figure.
#[derive(SimpleObject)]
pub struct RevisionStatItem {
    pub key: String,
    pub period: Period,
    pub measure: String,
    pub preliminary_value: Dec,
    pub latest_value: Dec,
    /// `latestValue - preliminaryValue`.
    pub revision: Computed,
    /// Number of times the value changed.
    pub revision_count: u32,
}

/// Revision statistics over a selection, following OECD / Eurostat revision analysis:
/// revision = latest - preliminary, averaged over all selected figures (unrevised ones count
/// as zero).
#[derive(SimpleObject)]
pub struct RevisionSummary {
    pub observation_count: u64,
    /// Figures whose value changed at least once.
    pub revised_count: u64,
    /// Total number of value changes.
    pub revision_count: u64,
    /// Mean revision: its sign shows whether preliminary figures tend to be too low (+) or
    /// too high (-). Null for an empty selection.
    pub mean_revision: Option<Computed>,
    /// Mean absolute revision: the typical size of a revision.
    pub mean_absolute_revision: Option<Computed>,
    pub max_absolute_revision: Option<Computed>,
    /// Per-figure statistics for revised figures, largest absolute revision first (at most 1000).
    pub items: Vec<Tick<RevisionStatItem>>,
    /// The value changes of the selection by the reason their releases gave (a change is
    /// counted under the release that set the newer value), most frequent first.
    pub by_reason: Vec<RevisionsByReason>,
}

/// The value changes of a selection whose releases gave one reason.
#[derive(SimpleObject)]
pub struct RevisionsByReason {
    /// Null for releases that gave no reason.
    pub reason: Option<crate::graphql::types::RevisionReasonKind>,
    /// Number of value changes.
    pub revision_count: u64,
    /// Mean of `|newer - older|` over those changes.
    pub mean_absolute_delta: Computed,
}

/// A figure of a revision summary: `None` for an empty selection, an error when the
/// summary overflowed.
pub(super) fn summary_figure(s: &Summary, figure: Option<Decimal>) -> Option<Computed> {
    match s.overflow {
        Some(e) => (s.observations > 0).then_some(Computed(Err(e))),
        None => figure.map(|f| Computed(Ok(f))),
    }
}

/// Additional fields of `ObservationConnection`, computed only when asked for.
pub struct ObservationTotals {
    pub(super) dataset: String,
    pub(super) filter: ObservationFilter,
    pub(super) bound: crate::projection::Bound,
}

#[Object]
impl ObservationTotals {
    /// Number of figures matching, over all pages. Costs one pass over the dataset's
    /// figures, so ask for it once, not on every page.
    async fn total_count(&self, ctx: &Context<'_>) -> Result<u64> {
        let ledger = ledger_of(ctx);
        let p = ledger.read();
        let ds = dataset_view(&p, &self.dataset)?;
        let filter = self.filter.resolve(ds)?;
        Ok(p.select(ds, &filter, self.bound, None).count() as u64)
    }
}

/// Figures: listings, one figure, its history, breakdowns and revision statistics.
#[derive(Default)]
pub struct FigureQuery;

#[Object]
impl FigureQuery {
    /// Figures of a dataset, in key, period and measure order, as of a point in history.
    async fn observations(
        &self,
        ctx: &Context<'_>,
        dataset: ID,
        filter: Option<ObservationFilter>,
        #[graphql(desc = "Read as of this point (default: latest).")] as_of: Option<AsOf>,
        #[graphql(desc = "Page size (default 100).")] first: Option<i32>,
        #[graphql(desc = "Cursor from a previous page's `pageInfo.endCursor`.")] after: Option<String>,
    ) -> Result<Connection<String, Tick<Observation>, ObservationTotals, EmptyFields>> {
        checkpoint().await;
        let limit = page_size(ctx, first)?;
        let spec = AsOf::to_spec(as_of.as_ref())?;
        let ledger = ledger_of(ctx);
        let p = ledger.read();
        let ds = dataset_view(&p, &dataset)?;
        let bound = p.bound(spec).map_err(as_of_error)?;
        let input = filter.unwrap_or_default();
        let filter = input.resolve(ds)?;
        let after_cell = after.as_deref().map(|c| decode_cursor(ds, c)).transpose()?;
        let mut it = p.select(ds, &filter, bound, after_cell.as_ref());
        let totals = ObservationTotals {
            dataset: dataset.0.clone(),
            filter: input,
            bound,
        };
        let mut conn = Connection::with_additional_fields(after.is_some(), false, totals);
        for obs in it.by_ref().take(limit) {
            conn.edges.push(Edge::new(
                encode_cursor(ds, &obs.cell),
                Tick(observation(&p, &obs, bound)),
            ));
        }
        conn.has_next_page = it.next().is_some();
        Ok(conn)
    }

    /// One figure, as of a point in history; null if nothing was published for it by then.
    async fn observation(
        &self,
        ctx: &Context<'_>,
        dataset: ID,
        #[graphql(desc = "Series key in dot notation, e.g. `IPR._T._T`.")] key: String,
        period: Period,
        #[graphql(default_with = "String::from(\"BAL\")")] measure: String,
        as_of: Option<AsOf>,
    ) -> Result<Option<Observation>> {
        let spec = AsOf::to_spec(as_of.as_ref())?;
        let ledger = ledger_of(ctx);
        let p = ledger.read();
        let ds = dataset_view(&p, &dataset)?;
        check_period(ds, period, "period")?;
        let cell = cell_key(ds, &key, period, &measure)?;
        let bound = p.bound(spec).map_err(as_of_error)?;
        Ok(ds.get(&cell, bound).map(|o| observation(&p, &o, bound)))
    }

    /// Every version of one figure, oldest (preliminary) first, with the change each made.
    async fn history(
        &self,
        ctx: &Context<'_>,
        dataset: ID,
        key: String,
        period: Period,
        #[graphql(default_with = "String::from(\"BAL\")")] measure: String,
        #[graphql(desc = "Only versions up to this point (default: all).")] as_of: Option<AsOf>,
    ) -> Result<Vec<Tick<ObservationVersion>>> {
        checkpoint().await;
        let spec = AsOf::to_spec(as_of.as_ref())?;
        let ledger = ledger_of(ctx);
        let p = ledger.read();
        let ds = dataset_view(&p, &dataset)?;
        check_period(ds, period, "period")?;
        let cell = cell_key(ds, &key, period, &measure)?;
        let bound = p.bound(spec).map_err(as_of_error)?;
        Ok(ticks(
            ds.get(&cell, bound).map(|o| versions(&p, &o)).unwrap_or_default(),
        ))
    }

    /// The items of one dimension under a total, with their sum and the residual
    /// `total - sum(items)`, as of a point in history.
    #[allow(clippy::too_many_arguments)] // one per GraphQL argument
    async fn breakdown(
        &self,
        ctx: &Context<'_>,
        dataset: ID,
        #[graphql(desc = "Dimension to break down, e.g. `SERVICE_TYPE`.")] dimension: String,
        period: Period,
        #[graphql(default_with = "String::from(\"BAL\")")] measure: String,
        #[graphql(desc = "Key of the total to break down (default: `_T` in every dimension).")] key: Option<String>,
        as_of: Option<AsOf>,
    ) -> Result<Breakdown> {
        checkpoint().await;
        let spec = AsOf::to_spec(as_of.as_ref())?;
        let ledger = ledger_of(ctx);
        let p = ledger.read();
        let ds = dataset_view(&p, &dataset)?;
        let (dim, _) = ds.def.dimension(&dimension).ok_or_else(|| {
            bad_argument(
                "dimension",
                format!(
                    "dimension: unknown dimension `{dimension}`; dataset {} has {}",
                    ds.def.id,
                    ds.def
                        .dimensions
                        .iter()
                        .map(|d| d.id.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            )
        })?;
        let base = match &key {
            Some(k) => ds
                .def
                .parse_key(k)
                .map_err(|e| bad_argument("key", format!("key: {e}")))?,
            None => ds.def.total_key(),
        };
        check_period(ds, period, "period")?;
        let measure_pos = cell_key(ds, &ds.def.format_key(&base), period, &measure)?.measure;
        let bound = p.bound(spec).map_err(as_of_error)?;
        let b = ds.breakdown(&base, dim, period, measure_pos, bound);
        Ok(Breakdown {
            dimension,
            period,
            measure,
            total: b.total.as_ref().map(|t| observation(&p, t, bound)),
            items: b.items.iter().map(|o| Tick(observation(&p, o, bound))).collect(),
            sum_of_items: Computed(match b.overflow {
                Some(e) => Err(e),
                None => Ok(b.sum_of_items),
            }),
            // A residual exists when the total does, whether or not it overflowed.
            residual: match b.overflow {
                Some(e) => b.total.is_some().then_some(Computed(Err(e))),
                None => b.residual.map(|r| Computed(Ok(r))),
            },
            as_of_revision: bound.revision,
        })
    }

    /// Revision statistics (preliminary versus latest) over a selection of figures.
    async fn revision_summary(
        &self,
        ctx: &Context<'_>,
        dataset: ID,
        filter: Option<ObservationFilter>,
        as_of: Option<AsOf>,
    ) -> Result<RevisionSummary> {
        checkpoint().await;
        let spec = AsOf::to_spec(as_of.as_ref())?;
        let ledger = ledger_of(ctx);
        let p = ledger.read();
        let ds = dataset_view(&p, &dataset)?;
        let bound = p.bound(spec).map_err(as_of_error)?;
        let filter = filter.unwrap_or_default().resolve(ds)?;
        // Each value change, by the reason of the release that made it: (count, sum of |delta|).
        let mut by_reason: std::collections::BTreeMap<
            Option<crate::domain::RevisionReasonKind>,
            (u64, Option<Decimal>),
        > = Default::default();
        let s = Summary::of(p.select(ds, &filter, bound, None).inspect(|o| {
            for w in o.versions.windows(2).filter(|w| w[0].value != w[1].value) {
                let reason = p.release_at(w[1].release).revision_reason.as_ref().map(|r| r.kind);
                let entry = by_reason.entry(reason).or_insert((0, Some(Decimal::ZERO)));
                entry.0 += 1;
                entry.1 = entry.1.and_then(|sum| {
                    w[1].value
                        .checked_sub(w[0].value)
                        .and_then(|d| sum.checked_add(d.abs()))
                });
            }
        }));
        let mut items: Vec<_> = p
            .select(ds, &filter, bound, None)
            .filter_map(|o| {
                let st = RevisionStat::of(&o);
                (st.revisions > 0).then(|| RevisionStatItem {
                    key: ds.def.format_key(&o.cell.key),
                    period: o.cell.period,
                    measure: ds.measure_id(o.cell.measure).to_owned(),
                    preliminary_value: Dec(st.preliminary),
                    latest_value: Dec(st.latest),
                    revision: Computed(match st.overflow {
                        Some(e) => Err(e),
                        None => Ok(st.revision),
                    }),
                    revision_count: st.revisions,
                })
            })
            .collect();
        // Overflowed revisions (the largest of all) first.
        items.sort_by_key(|item| std::cmp::Reverse(item.revision.0.map_or(Decimal::MAX, |r| r.abs())));
        items.truncate(1000);
        let items = ticks(items);
        Ok(RevisionSummary {
            observation_count: s.observations,
            revised_count: s.revised,
            revision_count: s.revisions,
            mean_revision: summary_figure(&s, s.mean_revision),
            mean_absolute_revision: summary_figure(&s, s.mean_absolute_revision),
            max_absolute_revision: summary_figure(&s, s.max_absolute_revision),
            items,
            by_reason: {
                let mut rows: Vec<_> = by_reason
                    .into_iter()
                    .map(|(reason, (count, sum))| RevisionsByReason {
                        reason: reason.map(Into::into),
                        revision_count: count,
                        mean_absolute_delta: Computed(
                            sum.map(|s| (s / Decimal::from(count)).round_dp(6).normalize()).ok_or(
                                crate::projection::Overflow {
                                    figure: "meanAbsoluteDelta",
                                },
                            ),
                        ),
                    })
                    .collect();
                rows.sort_by_key(|r| std::cmp::Reverse(r.revision_count));
                rows
            },
        })
    }
}

/// What changed between two points of history.
#[derive(Default)]
pub struct ChangeQuery;

#[Object]
impl ChangeQuery {
    /// What changed in a dataset between two points of history: every figure whose value at
    /// `to` differs from its value at `from` (new or revised), in key, period and measure
    /// order, with both values and the release that set the newer one.
    #[allow(clippy::too_many_arguments)] // one per GraphQL argument
    async fn changes(
        &self,
        ctx: &Context<'_>,
        dataset: ID,
        #[graphql(desc = "The older point.")] from: AsOf,
        #[graphql(desc = "The newer point (default: the head).")] to: Option<AsOf>,
        #[graphql(desc = "Only figures matching this (the status is the one at `to`).")] filter: Option<
            ObservationFilter,
        >,
        #[graphql(desc = "Page size (default 100).")] first: Option<i32>,
        #[graphql(desc = "Cursor from a previous page's `pageInfo.endCursor`.")] after: Option<String>,
        #[graphql(
            default_with = "Some(false)",
            desc = "Also list figures a release between the two points published again with the same value (`REPUBLISHED`)."
        )]
        include_unchanged: Option<bool>,
    ) -> Result<Connection<String, Tick<FigureChange>, EmptyFields, EmptyFields>> {
        checkpoint().await;
        let limit = page_size(ctx, first)?;
        let from_spec = AsOf::to_spec(Some(&from)).map_err(|e| bad_input(format!("from: {}", e.message)))?;
        let to_spec = AsOf::to_spec(to.as_ref()).map_err(|e| bad_input(format!("to: {}", e.message)))?;
        let ledger = ledger_of(ctx);
        let p = ledger.read();
        let ds = dataset_view(&p, &dataset)?;
        let from_bound = p.bound(from_spec).map_err(|e| bad_input(format!("from: {e}")))?;
        let to_bound = p.bound(to_spec).map_err(|e| bad_input(format!("to: {e}")))?;
        if from_bound.revision > to_bound.revision {
            return Err(bad_input(format!(
                "from (revision {}) is after to (revision {})",
                from_bound.revision, to_bound.revision
            )));
        }
        let filter = filter.unwrap_or_default().resolve(ds)?;
        let after_cell = after.as_deref().map(|c| decode_cursor(ds, c)).transpose()?;
        let include_unchanged = include_unchanged.unwrap_or(false);
        let mut it = p.changes(
            ds,
            &filter,
            from_bound,
            to_bound,
            include_unchanged,
            after_cell.as_ref(),
        );
        let mut conn = Connection::new(after.is_some(), false);
        for c in it.by_ref().take(limit) {
            conn.edges
                .push(Edge::new(encode_cursor(ds, &c.to.cell), Tick(FigureChange::of(&p, &c))));
        }
        conn.has_next_page = it.next().is_some();
        Ok(conn)
    }
}
