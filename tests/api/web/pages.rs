//! The web pages over plain HTTP: the pages, the GraphiQL page and the
//! embedded files they load: only the server's own paths, a content security policy of
//! `'self'`, content-addressed URLs with long cache lifetimes, and revalidation by ETag.

use reqwest::header::{
    ACCEPT, ACCEPT_ENCODING, CACHE_CONTROL, CONTENT_ENCODING, CONTENT_SECURITY_POLICY, CONTENT_TYPE, ETAG,
    IF_NONE_MATCH, VARY,
};
use reqwest::Response;

use crate::proc_support::Server;

fn header(resp: &Response, name: reqwest::header::HeaderName) -> String {
    resp.headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned()
}

/// The values of every `src="..."` and `href="..."` in `html`.
fn links(html: &str) -> Vec<String> {
    let mut found = Vec::new();
    for attr in ["src=\"", "href=\""] {
        let mut rest = html;
        while let Some(at) = rest.find(attr) {
            rest = &rest[at + attr.len()..];
            let end = rest.find('"').expect("a closing quote");
            found.push(rest[..end].to_owned());
            rest = &rest[end..];
        }
    }
    found
}

fn assert_policy(resp: &Response, host: &str) {
    let csp = header(resp, CONTENT_SECURITY_POLICY);
    assert!(csp.starts_with("default-src 'self';"), "CSP of {}: {csp:?}", resp.url());
    assert!(
        csp.contains(&format!("connect-src 'self' ws://{host} wss://{host};")),
        "{csp}"
    );
    assert!(!csp.contains("unsafe"), "{csp}");
}

/// `GET /` says what the server is and links GraphiQL, the checkpoint, health and metrics.
#[tokio::test(flavor = "multi_thread")]
async fn the_start_page_links_the_endpoints() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]).await;
    let resp = server
        .client
        .get(format!("http://{}/", server.addr))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert!(header(&resp, CONTENT_TYPE).starts_with("text/html"));
    assert_policy(&resp, &server.addr.to_string());
    let html = resp.text().await.unwrap();
    assert!(html.contains("event-sourced ledger"), "{html}");
    let links = links(&html);
    for wanted in ["/graphql", "/checkpoint", "/healthz", "/metrics"] {
        assert!(links.iter().any(|l| l == wanted), "no link to {wanted} in {links:?}");
    }
}

/// The GraphiQL page loads only files of the server itself, each under a URL that names
/// its content, cacheable for a year, revalidated by ETag; other asset names are 404.
#[tokio::test(flavor = "multi_thread")]
async fn graphiql_loads_only_embedded_assets() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]).await;
    let resp = server
        .client
        .get(&server.url)
        .header(ACCEPT, "text/html")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_policy(&resp, &server.addr.to_string());
    let html = resp.text().await.unwrap();
    let assets: Vec<String> = links(&html).into_iter().filter(|l| l != "data:,").collect();
    assert_eq!(
        assets.len(),
        7,
        "React, ReactDOM, graphql-ws, GraphiQL, its CSS, ours: {assets:?}"
    );
    for path in &assets {
        assert!(
            path.starts_with("/assets/"),
            "{path} is not one of the server's own files"
        );
        let url = format!("http://{}{path}", server.addr);
        let resp = server.client.get(&url).send().await.unwrap();
        assert_eq!(resp.status(), 200, "{path}");
        let ty = header(&resp, CONTENT_TYPE);
        let expected = if path.ends_with(".js") {
            "text/javascript"
        } else {
            "text/css"
        };
        assert!(ty.starts_with(expected), "{path}: {ty}");
        assert!(header(&resp, CACHE_CONTROL).contains("immutable"), "{path}");
        let etag = header(&resp, ETAG);
        // The name carries the first 16 hex digits of the SHA-256 the ETag carries.
        assert!(path.contains(&etag.trim_matches('"')[..16]), "{path} vs {etag}");
        assert!(!resp.bytes().await.unwrap().is_empty());
        let again = server
            .client
            .get(&url)
            .header(IF_NONE_MATCH, &etag)
            .send()
            .await
            .unwrap();
        assert_eq!(again.status(), 304, "{path} revalidated");
        assert!(again.bytes().await.unwrap().is_empty());
    }
    for bad in [
        "/assets/graphiql.0000000000000000.min.js",
        "/assets/graphiql.min.js",
        "/assets/..%2fCargo.toml",
    ] {
        let resp = server
            .client
            .get(format!("http://{}{bad}", server.addr))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 404, "{bad}");
    }
}

/// A client that accepts gzip gets the same bytes in a third of the size or less; one
/// that does not gets them as they are.
#[tokio::test(flavor = "multi_thread")]
async fn assets_are_gzipped_for_clients_that_accept_it() {
    use std::io::Read;

    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]).await;
    let html = server
        .client
        .get(&server.url)
        .header(ACCEPT, "text/html")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let path = links(&html)
        .into_iter()
        .find(|l| l.starts_with("/assets/graphiql.") && l.ends_with(".min.js"))
        .expect("GraphiQL's script");
    let url = format!("http://{}{path}", server.addr);
    let plain = server.client.get(&url).send().await.unwrap();
    assert!(plain.headers().get(CONTENT_ENCODING).is_none());
    let plain = plain.bytes().await.unwrap();
    let gzipped = server
        .client
        .get(&url)
        .header(ACCEPT_ENCODING, "gzip, deflate, br")
        .send()
        .await
        .unwrap();
    assert_eq!(header(&gzipped, CONTENT_ENCODING), "gzip");
    assert_eq!(header(&gzipped, VARY), "accept-encoding");
    let gzipped = gzipped.bytes().await.unwrap();
    assert!(
        gzipped.len() * 3 < plain.len(),
        "{} gzipped vs {} plain",
        gzipped.len(),
        plain.len()
    );
    let mut decoded = Vec::new();
    flate2::read::GzDecoder::new(&gzipped[..])
        .read_to_end(&mut decoded)
        .unwrap();
    assert!(decoded == plain, "gzip decodes to the same file");
}

/// Every page of the web interface is the shell for its script, with the policy
/// and a `<noscript>` explanation, and loads only the server's own files, whose JavaScript
/// weighs under 300 KB gzipped; a path outside them is 404.
#[tokio::test(flavor = "multi_thread")]
async fn web_pages_are_self_contained_shells() {
    use std::io::Write;

    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]).await;
    let pages = [
        ("/", "home"),
        ("/datasets/KR_KNOWLEDGE_SERVICES?period=2025-S1&asOf=2", "dataset"),
        ("/datasets/KR_KNOWLEDGE_SERVICES/figures/_T._T._T/2025-S1", "figure"),
        (
            "/datasets/KR_KNOWLEDGE_SERVICES/revisions?from=2024-S2&to=2025-S1",
            "revisions",
        ),
        ("/releases/6b1f0c2e-4d3a-4e51-9a57-2025a0000002", "release"),
        ("/audit?kind=RELEASE_PUBLISHED", "audit"),
        // Unknown ids get the shell too; the page says "not found".
        ("/datasets/NO_SUCH_DATASET", "dataset"),
    ];
    let mut scripts = std::collections::BTreeSet::new();
    for (path, page) in pages {
        let resp = server
            .client
            .get(format!("http://{}{path}", server.addr))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200, "{path}");
        assert!(header(&resp, CONTENT_TYPE).starts_with("text/html"), "{path}");
        assert_policy(&resp, &server.addr.to_string());
        let html = resp.text().await.unwrap();
        assert!(html.contains(&format!("data-page=\"{page}\"")), "{path}: {html}");
        assert!(html.contains("<noscript>"), "{path}");
        for link in links(&html) {
            assert!(
                link.starts_with('/') && !link.starts_with("//") || link == "data:,",
                "{path} links {link}, not a path of this server"
            );
            if link.starts_with("/assets/") && link.ends_with(".js") {
                scripts.insert(link);
            }
        }
    }
    // The chart library, graphql-ws and the app: every script any page loads.
    assert_eq!(scripts.len(), 3, "{scripts:?}");
    let mut total = 0;
    for path in &scripts {
        let body = server
            .client
            .get(format!("http://{}{path}", server.addr))
            .send()
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap();
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        gz.write_all(&body).unwrap();
        total += gz.finish().unwrap().len();
    }
    eprintln!("web interface JavaScript: {total} bytes gzipped");
    assert!(total < 300 * 1024, "{total} bytes of JavaScript gzipped");
    for bad in ["/datasets", "/datasets/X/figures/_T._T._T", "/releases", "/audit/x"] {
        let resp = server
            .client
            .get(format!("http://{}{bad}", server.addr))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 404, "{bad}");
    }
}
