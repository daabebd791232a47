//! Commands decide, events apply.
//!
//! A [`Command`] is what a caller asks the ledger to record. Its [`Command::decide`] looks at
//! the projection (and, for an idempotent retry, at the recorded event) and returns a
//! [`Decision`]: the event to append, or an answer without writing (a duplicate of something
//! recorded, or a refusal). The writer commits the events without knowing their kinds, and
//! [`Projection::apply`] is the only place that interprets them.
//!
//! Adding an event kind takes one variant of [`Event`], one variant here with its `decide`
//! arm, one arm in the projection's `apply`, and the schema.

use crate::domain::{Dataset, Event, Release};
use crate::projection::Projection;
use crate::store::{decode, Hash, LogStore, StoredEvent};

use super::{Committed, LedgerError};

/// A write, validated against its own rules, waiting to be decided against the ledger.
/// Cloned to decide it again when another node appended first (a shared log).
#[derive(Debug, Clone)]
pub(super) enum Command {
    DefineDataset(Dataset),
    PublishRelease(Release),
    AmendDataset(Dataset),
}

/// What a command decided.
#[derive(Debug)]
pub(super) enum Decision {
    /// Answer now, writing nothing: an error, or a duplicate of something already durable.
    Answer(Result<Committed, LedgerError>),
    /// Append this event. The writer still checks it against the events of its group and the
    /// caller's expected revision.
    Append(Event),
}

/// What a command is decided against.
pub(super) struct Context<'a> {
    pub state: &'a Projection,
    pub store: &'a dyn LogStore,
}

impl Command {
    /// Decides against the ledger as it stands before the current group. Idempotency comes
    /// first: a retry of a write that succeeded gets its original answer even though the head
    /// has moved since (the writer checks the expected revision after).
    pub(super) fn decide(self, ctx: &Context<'_>) -> Decision {
        match self {
            Command::DefineDataset(d) => match ctx.state.dataset(&d.id) {
                Some(existing) if *existing.def == d => {
                    Decision::Answer(ctx.hash_of(existing.revision).map(|hash| Committed {
                        revision: existing.revision,
                        hash,
                        duplicate: true,
                        release: None,
                    }))
                }
                Some(existing) => Decision::Answer(Err(LedgerError::Conflict(format!(
                    "dataset `{}` is already defined (revision {}) with different content",
                    d.id, existing.revision
                )))),
                None => Decision::Append(Event::DatasetDefined { dataset: d }),
            },
            Command::PublishRelease(r) => {
                let Some((_, info)) = ctx.state.release(&r.id) else {
                    return Decision::Append(Event::ReleasePublished { release: r });
                };
                let revision = info.revision;
                Decision::Answer(ctx.recorded(revision).and_then(|original| {
                    if original.envelope.event.release() == Some(&r) {
                        Ok(Committed {
                            revision,
                            hash: original.hash,
                            duplicate: true,
                            release: Some(r.id),
                        })
                    } else {
                        Err(LedgerError::Conflict(format!(
                            "release {} was already recorded at revision {revision} with different content",
                            r.id
                        )))
                    }
                }))
            }
            Command::AmendDataset(d) => {
                let Some(existing) = ctx.state.dataset(&d.id) else {
                    return Decision::Answer(Err(LedgerError::NotFound(format!("dataset `{}` not found", d.id))));
                };
                if *existing.def == d {
                    // Nothing to change: a retry of an amendment already recorded.
                    return Decision::Answer(ctx.hash_of(existing.def_revision).map(|hash| Committed {
                        revision: existing.def_revision,
                        hash,
                        duplicate: true,
                        release: None,
                    }));
                }
                match d.check_amends(&existing.def) {
                    Ok(()) => Decision::Append(Event::DatasetAmended { dataset: d }),
                    Err(e) => Decision::Answer(Err(LedgerError::bad_input("input", e.to_string()))),
                }
            }
        }
    }
}

impl Context<'_> {
    /// The hash of the recorded event at `revision`.
    fn hash_of(&self, revision: u64) -> Result<Hash, LedgerError> {
        match self.store.get(revision) {
            Ok(Some(bytes)) if bytes.len() >= 32 => Ok(Hash(bytes[..32].try_into().expect("32 bytes"))),
            Ok(_) => Err(missing(revision)),
            Err(e) => Err(e.into()),
        }
    }

    /// The recorded event at `revision`, checked against the hash of the one before.
    fn recorded(&self, revision: u64) -> Result<StoredEvent, LedgerError> {
        let bytes = self
            .store
            .get(revision)
            .map_err(LedgerError::from)?
            .ok_or_else(|| missing(revision))?;
        let prev = if revision == 1 {
            Hash::GENESIS
        } else {
            self.hash_of(revision - 1)?
        };
        decode(revision, &bytes, &prev).map_err(|d| LedgerError::storage(d.to_string()))
    }
}

fn missing(revision: u64) -> LedgerError {
    LedgerError::storage(format!("revision {revision} is missing from the log"))
}
