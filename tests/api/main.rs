//! Every integration test but the abuse suite, as one binary with a module per subject, so
//! that the crate links once. In-process tests start the server on port 0 over a temp sled
//! store (`support`); process tests drive the real binary (`support::proc_support`).

mod cluster;
mod crash;
mod evolution;
/// The fuzz crate's shared harness (`fuzz/src/lib.rs`), replayed by `hostile`.
#[allow(dead_code)]
#[path = "../../fuzz/src/lib.rs"]
mod fuzz_harness;
mod hostile;
mod http_api;
mod http_cache;
mod http_protocol;
mod import;
mod ledger;
mod online;
mod operations;
mod scheduled;
mod schema_sdl;
mod sdmx;
mod sdmx_import;
mod store;
#[path = "../support/mod.rs"]
mod support;
mod tamper;
mod time_model;
mod tlog;
mod tls;
mod varnish;
mod web;
mod websocket;
mod witnessing;

use support::{common, proc_support};
