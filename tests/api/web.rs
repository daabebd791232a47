//! The browser side and the logs, through the real `tradeledger` binary started on port 0
//! over a temp data directory: GraphiQL and the start page in headless Chromium, the
//! embedded assets and their headers over HTTP, and what `serve` writes on stderr.
//!
//! One binary with a module per subject, so that it links once.

mod browser;
mod logs;
mod pages;
