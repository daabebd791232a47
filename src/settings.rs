//! Every limit of `serve`, with its flag, environment variable, help text and default, in
//! one place: [`graphql::Limits`](crate::graphql::Limits), the HTTP layer's
//! [`ServerConfig`](crate::http::ServerConfig) and their `Default`s are all built from
//! [`LimitArgs`], so a default is written once, here.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

use clap::{Args, CommandFactory, FromArgMatches, Parser};

/// The limits of `serve` (flattened into its flags).
#[derive(Args, Debug, Clone, PartialEq, Eq)]
pub struct LimitArgs {
    /// Deepest nesting of fields in a query (introspection has its own, fixed bound).
    #[arg(long, env = "TRADELEDGER_MAX_DEPTH", default_value_t = 12)]
    pub max_depth: usize,
    /// Most fields one query may select (fragments expanded, `__typename` included).
    #[arg(long, env = "TRADELEDGER_MAX_COMPLEXITY", default_value_t = 1000)]
    pub max_complexity: usize,
    /// Most aliased fields in one query.
    #[arg(long, env = "TRADELEDGER_MAX_ALIASES", default_value_t = 30)]
    pub max_aliases: usize,
    /// Most directives on one field.
    #[arg(long, env = "TRADELEDGER_MAX_DIRECTIVES", default_value_t = 20)]
    pub max_directives: usize,
    /// Most operations in one batched POST (a JSON array of requests).
    #[arg(long, env = "TRADELEDGER_MAX_BATCH", default_value_t = 10)]
    pub max_batch: usize,
    /// Largest page (`first`) a connection returns.
    #[arg(long, env = "TRADELEDGER_MAX_PAGE_SIZE", default_value_t = 1000)]
    pub max_page_size: usize,
    /// Most events one page of a filtered `events` query examines; a page that reaches it
    /// ends early with `hasNextPage` and an `endCursor` to continue from. Releases are
    /// matched in memory, so examining the default costs a few milliseconds.
    #[arg(long, env = "TRADELEDGER_MAX_EVENTS_SCANNED", default_value_t = 100_000, value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..))]
    pub max_events_scanned: usize,
    /// Most objects one query may return in the worst case, computed before it runs: list
    /// sizes (`first`, the page-size cap, the ledger's largest lists) multiplied down the tree.
    /// GitHub allows 500,000 nodes; here 8 x 10^5 objects made 58 MB of JSON and took 840 MB
    /// while they were built (about 1 KB per object), so the default is lower: a query at
    /// the limit may take about 200 MB.
    #[arg(long, env = "TRADELEDGER_MAX_COST", default_value_t = 200_000)]
    pub max_cost: u64,
    /// Largest response body (and WebSocket `next` payload), in bytes; checked while it is
    /// written.
    #[arg(long, env = "TRADELEDGER_MAX_RESPONSE_BYTES", default_value_t = 16 * 1024 * 1024)]
    pub max_response_bytes: usize,
    /// Most observations one SDMX data answer may hold (with `includeHistory`, versions),
    /// counted before anything is sent. Time-series and flat answers stream page by page, so
    /// their memory does not grow with this (a cross-sectional view is regrouped in memory);
    /// it bounds the time and bandwidth one request may take.
    #[arg(long, env = "TRADELEDGER_SDMX_MAX_OBSERVATIONS", default_value_t = 2_000_000)]
    pub sdmx_max_observations: u64,
    /// Longest GraphQL query text, in bytes; checked before parsing (the standard
    /// introspection query is about 1.3 KB).
    #[arg(long, env = "TRADELEDGER_MAX_QUERY_BYTES", default_value_t = 64 * 1024)]
    pub max_query_bytes: usize,
    /// Most lexical tokens (names, punctuators, values) in a query text; checked before
    /// parsing.
    #[arg(long, env = "TRADELEDGER_MAX_QUERY_TOKENS", default_value_t = 15_000)]
    pub max_query_tokens: usize,
    /// Deepest nesting of brackets `{ [ (` (selection sets, list and object literals,
    /// arguments) in a query text; checked before parsing, so that the parser cannot run out
    /// of stack. Keep it above --max-depth.
    #[arg(long, env = "TRADELEDGER_MAX_QUERY_NESTING", default_value_t = 64)]
    pub max_query_nesting: usize,
    /// Deepest nesting of arrays and objects in `variables` and `extensions` (the object
    /// itself is level 1).
    #[arg(long, env = "TRADELEDGER_MAX_VARIABLES_DEPTH", default_value_t = 32)]
    pub max_variables_depth: usize,
    /// Most JSON values in `variables` (and in `extensions`); larger releases go through
    /// `tradeledger import`.
    #[arg(long, env = "TRADELEDGER_MAX_VARIABLES_NODES", default_value_t = 100_000)]
    pub max_variables_nodes: usize,
    /// Largest request body (and WebSocket message), in bytes.
    #[arg(long, env = "TRADELEDGER_MAX_BODY_BYTES", default_value_t = 2 * 1024 * 1024)]
    pub max_body_bytes: usize,
    /// Longest a GraphQL operation may run (HTTP, and WebSocket queries and mutations), in
    /// milliseconds; beyond, 503 with `Retry-After` (an `error` message over WebSocket).
    #[arg(long, env = "TRADELEDGER_REQUEST_TIMEOUT_MS", default_value_t = 30_000)]
    pub request_timeout_ms: u64,
    /// Longest a request waits for the outcome of a write it handed to the ledger's writer,
    /// in milliseconds, counted from the request's start. A write that reached the writer
    /// before the request timeout passed is waited for until then rather than answered as
    /// timed out (it would be recorded all the same); beyond, the request gets
    /// `OUTCOME_UNKNOWN` with the id to retry the write with (`extensions.releaseId` or
    /// `extensions.datasetId`), whose retry answers as a duplicate if the write was recorded.
    /// Values below --request-timeout-ms act as --request-timeout-ms.
    #[arg(long, env = "TRADELEDGER_WRITE_TIMEOUT_MS", default_value_t = 30_000)]
    pub write_timeout_ms: u64,
    /// Open WebSocket connections; beyond, the upgrade is refused with 503.
    #[arg(long, env = "TRADELEDGER_MAX_WS_CONNECTIONS", default_value_t = 20_000)]
    pub max_ws_connections: usize,
    /// Time a WebSocket client has to send `connection_init`, in milliseconds; beyond, the
    /// connection is closed with 4408.
    #[arg(long, env = "TRADELEDGER_WS_INIT_TIMEOUT_MS", default_value_t = 10_000)]
    pub ws_init_timeout_ms: u64,
    /// Interval of keep-alive pings on idle WebSocket connections, in milliseconds.
    #[arg(long, env = "TRADELEDGER_WS_KEEPALIVE_MS", default_value_t = 30_000)]
    pub ws_keepalive_ms: u64,
    /// Longest a WebSocket client may take to accept a frame, in milliseconds; a client
    /// that takes longer is closed with 4504 (it did not read in time).
    #[arg(long, env = "TRADELEDGER_WS_SEND_TIMEOUT_MS", default_value_t = 30_000, value_parser = clap::value_parser!(u64).range(1..))]
    pub ws_send_timeout_ms: u64,
    /// Bytes of subscription results one WebSocket may have waiting to be sent. A
    /// subscription that would go beyond waits (it reads on from the ledger when the client
    /// catches up), so a client that stops reading holds this much and about one result
    /// being built (subscriptions of one connection take turns), and is closed with 4504
    /// after the send timeout. A single result larger than this is still sent, alone.
    #[arg(long, env = "TRADELEDGER_WS_MAX_BUFFERED_BYTES", default_value_t = 16 * 1024 * 1024, value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..))]
    pub ws_max_buffered_bytes: usize,
    /// Responses to read-only queries kept per ledger revision (0 turns the cache off).
    #[arg(long, env = "TRADELEDGER_RESPONSE_CACHE_ENTRIES", default_value_t = 1024)]
    pub response_cache_entries: usize,
    /// Bytes the response cache may hold, keys and overhead included (0 turns it off).
    #[arg(long, env = "TRADELEDGER_RESPONSE_CACHE_BYTES", default_value_t = 64 * 1024 * 1024)]
    pub response_cache_bytes: usize,
    /// Query texts kept compiled for the fast path, which answers the common read queries
    /// (observations, observation, history, breakdown) straight from the ledger rather than
    /// through async-graphql; the oldest go first. 0 turns the fast path off.
    #[arg(long, env = "TRADELEDGER_QUERY_PLANS", default_value_t = 1024)]
    pub query_plans: usize,
    /// Threads that execute GraphQL operations, apart from the threads serving connections
    /// (0: one per core).
    #[arg(long, env = "TRADELEDGER_QUERY_THREADS", default_value_t = 0)]
    pub query_threads: usize,
    /// GraphQL operations executing at once (HTTP and WebSocket queries and mutations).
    #[arg(long, env = "TRADELEDGER_MAX_CONCURRENT_QUERIES", default_value_t = 32, value_parser = clap::value_parser!(u32).range(1..))]
    pub max_concurrent_queries: u32,
    /// Operations waiting for an execution slot; beyond, 503 with Retry-After.
    #[arg(long, env = "TRADELEDGER_MAX_QUEUED_QUERIES", default_value_t = 256)]
    pub max_queued_queries: usize,
    /// Operations (subscriptions included) open at once on one WebSocket; beyond, an `error`
    /// message with code LIMIT_EXCEEDED for the new one.
    #[arg(long, env = "TRADELEDGER_MAX_SUBSCRIPTIONS_PER_CONNECTION", default_value_t = 100)]
    pub max_subscriptions_per_connection: usize,
    /// Time a client has to send a request's headers (also the longest a keep-alive
    /// connection may wait for its next request); 0 turns it off.
    #[arg(long, env = "TRADELEDGER_HEADER_READ_TIMEOUT_MS", default_value_t = 10_000)]
    pub header_read_timeout_ms: u64,
    /// A connection on which no byte moves either way for this long is closed (keep it
    /// above the request timeout); 0 turns it off.
    #[arg(long, env = "TRADELEDGER_IDLE_TIMEOUT_MS", default_value_t = 60_000)]
    pub idle_timeout_ms: u64,
    /// Open connections (WebSockets included); beyond, a 503 with Retry-After and the
    /// connection is closed. Keep it below the open-files limit (`ulimit -n`).
    #[arg(long, env = "TRADELEDGER_MAX_CONNECTIONS", default_value_t = 10_000, value_parser = clap::value_parser!(u32).range(1..))]
    pub max_connections: u32,
    /// Open connections (WebSockets included) from one client address; beyond, a 429 with
    /// Retry-After and the connection is closed. A browser opens up to 6 connections to a
    /// host and a page a few WebSockets, so 64 leaves room for a dozen people behind one
    /// NAT, while filling the default 10,000 slots takes 157 addresses. The client is the
    /// socket's peer, or behind a proxy named in --trusted-proxies, the address that proxy
    /// saw (X-Forwarded-For).
    #[arg(long, env = "TRADELEDGER_MAX_CONNECTIONS_PER_PEER", default_value_t = 64, value_parser = clap::value_parser!(u32).range(1..))]
    pub max_connections_per_peer: u32,
    /// Reverse proxies whose X-Forwarded-For is believed, as comma-separated addresses or
    /// CIDR blocks (`10.0.0.0/8,192.168.1.7`). Behind one, a client is the right-most
    /// address of X-Forwarded-For that is not a trusted proxy; without any, the header is
    /// ignored.
    #[arg(long, env = "TRADELEDGER_TRUSTED_PROXIES", value_delimiter = ',')]
    pub trusted_proxies: Vec<Cidr>,
    /// On SIGTERM or Ctrl-C: how long in-flight requests and WebSockets get to finish
    /// before every connection is closed and the process exits.
    #[arg(long, env = "TRADELEDGER_SHUTDOWN_GRACE_MS", default_value_t = 10_000)]
    pub shutdown_grace_ms: u64,
}

/// An address block, `10.0.0.0/8` or a single address (`192.168.1.7`, `::1`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    network: IpAddr,
    prefix: u8,
}

impl Cidr {
    /// True when `ip` is in the block (an IPv4-mapped IPv6 address counts as IPv4).
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.network, ip.to_canonical()) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = u32::MAX.checked_shl(32 - u32::from(self.prefix)).unwrap_or(0);
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = u128::MAX.checked_shl(128 - u32::from(self.prefix)).unwrap_or(0);
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

impl FromStr for Cidr {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let s = s.trim();
        let (addr, prefix) = match s.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s, None),
        };
        let network: IpAddr = addr
            .parse()
            .map_err(|_| format!("`{s}` is not an address or CIDR block"))?;
        let network = network.to_canonical();
        let max = if network.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => max,
            Some(p) => p
                .parse::<u8>()
                .ok()
                .filter(|p| *p <= max)
                .ok_or_else(|| format!("`{s}`: the prefix length must be 0 to {max}"))?,
        };
        Ok(Cidr { network, prefix })
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.network, self.prefix)
    }
}

#[derive(Parser)]
struct Only {
    #[command(flatten)]
    limits: LimitArgs,
}

impl Default for LimitArgs {
    /// The defaults of the flags, whatever the environment says.
    fn default() -> Self {
        let command = Only::command().mut_args(|a| a.env(None));
        let matches = command.get_matches_from(["tradeledger"]);
        LimitArgs::from_arg_matches(&matches).expect("the flags' defaults parse")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_ignore_the_environment() {
        std::env::set_var("TRADELEDGER_MAX_ALIASES", "3");
        let defaults = LimitArgs::default();
        std::env::remove_var("TRADELEDGER_MAX_ALIASES");
        assert_eq!(defaults.max_aliases, 30);
        assert_eq!(defaults.max_depth, 12);
    }

    #[test]
    fn cidr_blocks_parse_and_match() {
        let block: Cidr = "10.0.0.0/8".parse().unwrap();
        assert!(block.contains("10.200.3.4".parse().unwrap()));
        assert!(block.contains("::ffff:10.1.1.1".parse().unwrap()));
        assert!(!block.contains("11.0.0.1".parse().unwrap()));
        let one: Cidr = "192.168.1.7".parse().unwrap();
        assert!(one.contains("192.168.1.7".parse().unwrap()));
        assert!(!one.contains("192.168.1.8".parse().unwrap()));
        let all: Cidr = "0.0.0.0/0".parse().unwrap();
        assert!(all.contains("8.8.8.8".parse().unwrap()));
        let v6: Cidr = "2001:db8::/32".parse().unwrap();
        assert!(v6.contains("2001:db8:1::5".parse().unwrap()));
        assert!(!v6.contains("2001:db9::5".parse().unwrap()));
        assert!("10.0.0.0/33".parse::<Cidr>().is_err());
        assert!("not-an-ip".parse::<Cidr>().is_err());
    }
}
