//! The browser side of the server: GraphiQL (`GET /graphql` asking for HTML), the web
//! interface (`GET /` and the pages of [`pages`]) and the files they load (`/assets/...`), all
//! embedded in the binary so that a browser needs no other host. Every page is sent with a content security policy that
//! allows only the server's own origin.

pub mod assets;
mod graphiql;
mod pages;

use axum::http::{header, HeaderMap, HeaderValue};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use axum::Router;

pub use graphiql::page as graphiql_page;

/// The routes of this module; `graphiql` says whether GraphiQL is served (`--no-graphiql`),
/// which the pages mention.
pub fn routes<S: Clone + Send + Sync + 'static>(graphiql: bool) -> Router<S> {
    pages::routes(graphiql)
        .route("/assets/{file}", get(assets::get))
        .route("/assets/{dir}/{file}", get(assets::get_in_directory))
}

/// The content security policy of every page: scripts, styles, images and connections only
/// from the server's own origin. `connect-src` also names the WebSocket origin of the
/// `Host` the browser used, because not every browser lets `'self'` cover `ws:`/`wss:`; a
/// `Host` that is not a plain host name (and port) is left out rather than echoed.
/// GraphiQL's stylesheet carries its fonts and icons as `data:` URLs, which are allowed for
/// fonts and images only.
pub fn content_security_policy(headers: &HeaderMap) -> HeaderValue {
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .filter(|h| is_plain_host(h));
    let ws = host.map(|h| format!(" ws://{h} wss://{h}")).unwrap_or_default();
    let policy = format!(
        "default-src 'self'; connect-src 'self'{ws}; img-src 'self' data:; font-src 'self' data:; \
         object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
    );
    HeaderValue::from_str(&policy).expect("the policy is built from header-safe characters")
}

/// A host name, IPv4 or bracketed IPv6 address, optionally with a port: nothing that could
/// end a CSP source or start a new directive.
fn is_plain_host(host: &str) -> bool {
    !host.is_empty()
        && host.len() <= 255
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b':' | b'[' | b']'))
}

/// The document every page shares: the head (charset, viewport, title, no favicon request,
/// the site's stylesheet after `stylesheets`) around `content` in a body of class
/// `body_class`.
fn document(stylesheets: &[&str], body_class: &str, content: &str) -> String {
    let mut links = String::new();
    for href in stylesheets.iter().chain(&[assets::url("site.css")]) {
        links.push_str(&format!("<link rel=\"stylesheet\" href=\"{href}\">\n"));
    }
    format!(
        "<!doctype html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <title>tradeledger</title>\n<link rel=\"icon\" href=\"data:,\">\n{links}</head>\n\
         <body class=\"{body_class}\">\n{content}</body>\n</html>\n"
    )
}

/// An HTML page with the policy and the headers every page carries.
fn html_page(headers: &HeaderMap, body: String) -> Response {
    let mut response = Html(body).into_response();
    let h = response.headers_mut();
    h.insert(header::CONTENT_SECURITY_POLICY, content_security_policy(headers));
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy_for(host: &str) -> String {
        let mut headers = HeaderMap::new();
        headers.insert(header::HOST, HeaderValue::from_str(host).unwrap());
        content_security_policy(&headers).to_str().unwrap().to_owned()
    }

    #[test]
    fn the_policy_names_the_websocket_origin_of_a_plain_host() {
        let p = policy_for("127.0.0.1:8000");
        assert!(p.starts_with("default-src 'self';"), "{p}");
        assert!(
            p.contains("connect-src 'self' ws://127.0.0.1:8000 wss://127.0.0.1:8000;"),
            "{p}"
        );
        assert!(policy_for("[::1]:80").contains("ws://[::1]:80"));
    }

    /// A hostile `Host` cannot add sources or directives to the policy.
    #[test]
    fn a_hostile_host_is_not_echoed() {
        for host in ["evil.example; script-src *", "a b", "x'unsafe-inline'", ""] {
            let p = policy_for(host);
            assert!(p.contains("connect-src 'self';"), "{host:?} gave {p}");
            assert!(!p.contains("evil") && !p.contains("unsafe"), "{host:?} gave {p}");
        }
    }
}
