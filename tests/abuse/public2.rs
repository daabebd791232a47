//! "Face the public, round 2": one client holding every connection slot, subscriptions that
//! pin memory behind a client that does not read, bytes in the cost model, and the fast
//! path's hold on the projection lock.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio::time::timeout;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::header::SEC_WEBSOCKET_PROTOCOL;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{client_async, MaybeTlsStream, WebSocketStream};

use crate::proc_support::{generated_store, memory_kb, Server};
use crate::support::ws::{recv as ws_recv, send as ws_send};

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

mod cost_bytes;
mod lock;
mod peer;
mod slow_reader;

/// A TCP connection to `server` from the loopback address `from` (all of 127/8 is local).
async fn connect_from(from: &str, server: SocketAddr) -> TcpStream {
    let socket = TcpSocket::new_v4().unwrap();
    socket
        .bind(format!("{from}:0").parse().unwrap())
        .expect("bind the client socket");
    socket.connect(server).await.expect("connect")
}

/// Sends `GET path` and reads one response, whole (`content-length`) or up to the close.
async fn get(stream: &mut TcpStream, path: &str) -> String {
    let request = format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    read_response(stream).await
}

async fn read_response(stream: &mut TcpStream) -> String {
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    // The answers are immediate: the bound only guards against a hang, and says so.
    const HANG_GUARD: Duration = Duration::from_secs(20);
    let done = timeout(HANG_GUARD, async {
        loop {
            let n = match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => n,
            };
            got.extend_from_slice(&buf[..n]);
            let text = String::from_utf8_lossy(&got).to_string();
            if let Some(end) = text.find("\r\n\r\n") {
                let length = text[..end].lines().find_map(|l| {
                    l.to_ascii_lowercase()
                        .strip_prefix("content-length:")
                        .map(|v| v.trim().parse::<usize>().unwrap())
                });
                if length.is_some_and(|length| got.len() >= end + 4 + length) {
                    return;
                }
            }
        }
    })
    .await;
    let got = String::from_utf8_lossy(&got).into_owned();
    assert!(
        done.is_ok(),
        "no complete answer (head and Content-Length bytes of body) nor a close within {HANG_GUARD:?}; \
         received so far: {got:?}"
    );
    got
}

/// True once the server has closed `stream` within `wait`.
async fn closed_within(stream: &mut TcpStream, wait: Duration) -> bool {
    let mut buf = [0u8; 1024];
    timeout(wait, async {
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => continue,
            }
        }
    })
    .await
    .is_ok()
}

/// Upgrades `stream` to a graphql-transport-ws WebSocket with extra `headers`; the status
/// on refusal.
async fn ws_upgrade(stream: TcpStream, server: SocketAddr, headers: &[(&str, &str)]) -> Result<Ws, u16> {
    let mut request = format!("ws://{server}/graphql/ws").into_client_request().unwrap();
    request
        .headers_mut()
        .insert(SEC_WEBSOCKET_PROTOCOL, HeaderValue::from_static("graphql-transport-ws"));
    for (name, value) in headers {
        request.headers_mut().insert(
            tokio_tungstenite::tungstenite::http::HeaderName::from_bytes(name.as_bytes()).unwrap(),
            HeaderValue::from_str(value).unwrap(),
        );
    }
    match timeout(
        Duration::from_secs(10),
        client_async(request, MaybeTlsStream::Plain(stream)),
    )
    .await
    .expect("upgrade in time")
    {
        Ok((ws, _)) => Ok(ws),
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => Err(response.status().as_u16()),
        Err(e) => panic!("upgrade failed: {e}"),
    }
}

/// A WebSocket from `from`, initialised (`connection_ack` received).
async fn ws_open(from: &str, server: SocketAddr) -> Ws {
    let mut ws = ws_upgrade(connect_from(from, server).await, server, &[])
        .await
        .expect("upgrade");
    ws_send(&mut ws, json!({"type": "connection_init"})).await;
    assert_eq!(ws_recv(&mut ws).await["type"], "connection_ack");
    ws
}

/// Reads on until the close frame (within `wait`); the frame, and how many text messages
/// came before it.
async fn ws_close(ws: &mut Ws, wait: Duration) -> (Option<CloseFrame>, usize) {
    let mut texts = 0;
    let frame = timeout(wait, async {
        loop {
            match ws.next().await {
                Some(Ok(Message::Close(frame))) => return frame,
                Some(Ok(Message::Text(_))) => texts += 1,
                Some(Ok(_)) => {}
                other => panic!("the connection ended without a close frame: {other:?}"),
            }
        }
    })
    .await
    .expect("a close frame in time");
    (frame, texts)
}

/// Waits (bounded) until the server has logged `text`.
async fn logged(server: &Server, text: &str, wait: Duration) {
    let deadline = Instant::now() + wait;
    while !server.stderr().contains(text) {
        assert!(
            Instant::now() < deadline,
            "the server did not log {text:?} within {wait:?}; stderr:\n{}",
            server.stderr()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Releases and observations per release of the store of items 2 and 4.
const RELEASES: u32 = 20;

const PER_RELEASE: u32 = 5000;
