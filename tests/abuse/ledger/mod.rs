//! The ledger and its store: start-up over and over, `verifyLedger` that costs
//! nothing at a head already verified (item 7), and health that tells the truth about
//! writes, which resume by themselves after a storage failure (item 10).

use crate::support::common;
mod health;
mod startup;
mod verify;

use crate::proc_support::generate_into as generated_store;
