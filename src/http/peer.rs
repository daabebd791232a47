//! Who a client is, and how many connections one client may hold.
//!
//! A client is known by its address: the socket's peer address, or, for a connection from a
//! proxy named in `--trusted-proxies`, the right-most address of `X-Forwarded-For` that is
//! not itself a trusted proxy (the left part of the header is whatever the client wrote, so
//! only the hops our own proxies appended can be believed).
//!
//! - A connection from an untrusted address takes a slot of that address when it is
//!   accepted, held by the socket (so a WebSocket holds it for its whole life); beyond
//!   `--max-connections-per-peer` the connection gets a canned `429` and is closed.
//! - A connection from a trusted proxy carries many clients: each request takes a slot of
//!   its client while it runs (a WebSocket upgrade for the WebSocket's whole life), beyond the
//!   cap the request gets a `429` and the connection is closed.
//!
//! A few connections beyond `--max-connections` are kept for `/healthz`, `/readyz` and
//! `/metrics` ([`RESERVED_SLOTS`]): a connection accepted into one of them is answered on
//! those paths only, with `Connection: close`, and refused with `503` on every other path.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};

use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::AppState;
use crate::settings::Cidr;

/// Connections kept beyond `--max-connections` for the health and metrics endpoints.
pub const RESERVED_SLOTS: usize = 8;

/// Paths a connection in a reserved slot is answered on.
const RESERVED_PATHS: [&str; 3] = ["/healthz", "/readyz", "/metrics"];

/// What the accept loop knows of a connection, in every request's extensions.
#[derive(Debug, Clone, Copy)]
pub struct ConnInfo {
    /// The socket's peer.
    pub peer: SocketAddr,
    /// True for a connection in one of the [`RESERVED_SLOTS`].
    pub reserved: bool,
}

/// Slots per client address.
#[derive(Debug)]
pub struct Peers {
    max: usize,
    trusted: Vec<Cidr>,
    held: Mutex<HashMap<IpAddr, usize>>,
}

/// One slot of one client address, given back when the last clone is dropped.
#[derive(Clone)]
pub struct PeerSlot(#[allow(dead_code)] Arc<Held>);

struct Held {
    peers: Arc<Peers>,
    ip: IpAddr,
}

impl Drop for Held {
    fn drop(&mut self) {
        let mut held = self.peers.held.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(n) = held.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                held.remove(&self.ip);
            }
        }
    }
}

impl Peers {
    pub fn new(max: usize, trusted: Vec<Cidr>) -> Arc<Self> {
        Arc::new(Peers {
            max: max.max(1),
            trusted,
            held: Mutex::new(HashMap::new()),
        })
    }

    pub fn max(&self) -> usize {
        self.max
    }

    pub fn is_trusted(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        self.trusted.iter().any(|c| c.contains(ip))
    }

    /// A slot for `ip`, unless it already holds as many as it may.
    pub fn acquire(self: &Arc<Self>, ip: IpAddr) -> Option<PeerSlot> {
        let ip = ip.to_canonical();
        let mut held = self.held.lock().unwrap_or_else(|e| e.into_inner());
        let n = held.entry(ip).or_insert(0);
        if *n >= self.max {
            return None;
        }
        *n += 1;
        Some(PeerSlot(Arc::new(Held {
            peers: self.clone(),
            ip,
        })))
    }

    /// Addresses holding slots now (for tests and diagnostics).
    #[cfg(test)]
    fn holders(&self) -> usize {
        self.held.lock().unwrap().len()
    }

    /// The client behind a trusted proxy `peer`: the right-most address of
    /// `X-Forwarded-For` that is not a trusted proxy; the left-most one when every hop is
    /// trusted; `peer` itself without the header or at a hop that does not parse (which a
    /// proxy of ours would not have written).
    pub fn client_of(&self, peer: IpAddr, headers: &HeaderMap) -> IpAddr {
        let hops: Vec<&str> = headers
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .map(str::trim)
            .filter(|h| !h.is_empty())
            .collect();
        let mut client = peer.to_canonical();
        for hop in hops.iter().rev() {
            let Some(ip) = parse_hop(hop) else {
                return client;
            };
            client = ip.to_canonical();
            if !self.is_trusted(client) {
                return client;
            }
        }
        client
    }
}

/// An address as proxies write it in `X-Forwarded-For`: `1.2.3.4`, `1.2.3.4:5678`, `::1` or
/// `[::1]:5678`.
fn parse_hop(hop: &str) -> Option<IpAddr> {
    if let Ok(ip) = hop.parse::<IpAddr>() {
        return Some(ip);
    }
    hop.parse::<SocketAddr>().ok().map(|a| a.ip())
}

/// The canned answer to a connection or request over its address's cap.
pub fn per_peer_refusal(max: usize) -> Response {
    (
        StatusCode::TOO_MANY_REQUESTS,
        [
            (header::RETRY_AFTER, HeaderValue::from_static("1")),
            (header::CONNECTION, HeaderValue::from_static("close")),
        ],
        format!("too many open connections from your address (limit {max}); retry in a moment"),
    )
        .into_response()
}

/// Middleware: the reserved slots' path rule, and the cap per client behind a trusted proxy.
pub async fn admit(State(state): State<Arc<AppState>>, mut request: Request, next: Next) -> Response {
    let Some(info) = request.extensions().get::<ConnInfo>().copied() else {
        // Not through the accept loop (a test driving the router directly).
        return next.run(request).await;
    };
    if info.reserved && !RESERVED_PATHS.contains(&request.uri().path()) {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            [
                (header::RETRY_AFTER, HeaderValue::from_static("1")),
                (header::CONNECTION, HeaderValue::from_static("close")),
            ],
            "too many open connections; retry in a moment",
        )
            .into_response();
    }
    let peers = &state.peers;
    let slot = if peers.is_trusted(info.peer.ip()) {
        let client = peers.client_of(info.peer.ip(), request.headers());
        match peers.acquire(client) {
            Some(slot) => {
                // A WebSocket upgrade takes it along for the socket's life.
                request.extensions_mut().insert(slot.clone());
                Some(slot)
            }
            None => {
                tracing::debug!(%client, "request refused: too many connections from its address");
                return per_peer_refusal(peers.max());
            }
        }
    } else {
        None
    };
    let mut response = next.run(request).await;
    drop(slot);
    if info.reserved {
        response
            .headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cidrs(list: &str) -> Vec<Cidr> {
        list.split(',').map(|c| c.parse().unwrap()).collect()
    }

    fn xff(value: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert("x-forwarded-for", value.parse().unwrap());
        h
    }

    #[test]
    fn slots_per_address_are_capped_and_given_back() {
        let peers = Peers::new(2, vec![]);
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let b: IpAddr = "10.0.0.2".parse().unwrap();
        let one = peers.acquire(a).unwrap();
        let two = peers.acquire(a).unwrap();
        assert!(peers.acquire(a).is_none());
        assert!(peers.acquire(b).is_some());
        let clone = one.clone();
        drop(one);
        assert!(peers.acquire(a).is_none(), "a clone still holds the slot");
        drop(clone);
        let three = peers.acquire(a).unwrap();
        drop((two, three));
        assert_eq!(peers.holders(), 0);
    }

    #[test]
    fn the_client_is_the_right_most_untrusted_hop() {
        let peers = Peers::new(1, cidrs("10.0.0.0/8,192.168.1.7"));
        let proxy: IpAddr = "10.1.2.3".parse().unwrap();
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        assert_eq!(peers.client_of(proxy, &HeaderMap::new()), proxy);
        assert_eq!(peers.client_of(proxy, &xff("203.0.113.9")), ip("203.0.113.9"));
        // A client writing its own header cannot pick its address.
        assert_eq!(
            peers.client_of(proxy, &xff("1.1.1.1, 203.0.113.9, 192.168.1.7")),
            ip("203.0.113.9")
        );
        assert_eq!(peers.client_of(proxy, &xff("10.9.9.9, 10.0.0.5")), ip("10.9.9.9"));
        assert_eq!(peers.client_of(proxy, &xff("[2001:db8::1]:443")), ip("2001:db8::1"));
        assert_eq!(peers.client_of(proxy, &xff("garbage, 10.0.0.5")), ip("10.0.0.5"));
        assert_eq!(peers.client_of(proxy, &xff("::ffff:203.0.113.9")), ip("203.0.113.9"));
    }
}
