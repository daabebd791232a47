//! "Face the public, round 2": the findings of an attacker's second run, each reproduced
//! against the real binary over real HTTP (or the real `import`), and the protection that
//! stops it.
//!
//! 1. Every distinct HTTP method became a `/metrics` label kept for ever (12,000 methods of
//!    60 KB made `/metrics` 600 MB): methods are labelled from a closed set (`OTHER` for the
//!    rest), and one longer than 32 bytes gets `400` before anything else.
//! 2. `defineDataset`'s parent-cycle check was O(N³): a deep chain of 20,000 codes would take
//!    hours. It is O(N) now, and a definition's size is bounded.
//! 3. `import` echoed the whole offending value (a 1 GB CSV line to stderr): quotes are cut
//!    at 200 bytes, and a CSV row or JSON string beyond a documented size is refused.
//! 4. A variable's default in `@include(if: $v)` was ignored by async-graphql and applied by
//!    the fast path: both apply it now.
//! 5. Writes answered "timed out" were recorded all the same: a write handed to the writer
//!    is waited for (`--write-timeout-ms`), or answered `OUTCOME_UNKNOWN` with its id.
//! 6. `100 Continue` was sent for a body announced over the limit.

use std::time::Duration;

use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::timeout;

use crate::proc_support::Server;

mod inputs;
mod methods;
mod outcomes;

const WRITER: &str = "writer:round2-secret";
const WRITE_SECRET: &str = "round2-secret";
