//! The web interface: every page is the same shell, rendered in the browser by
//! `app/app.js` from the GraphQL API of the page's own origin. The server does not look the
//! dataset or release up: an unknown one gets the shell (200) and the page says "not found".
//! The URLs are relied on outside the code base:
//!
//! | path | page |
//! |---|---|
//! | `/` | datasets and a live feed of the latest releases |
//! | `/datasets/{id}?period=P&asOf=A` | the breakdowns of one period |
//! | `/datasets/{id}/figures/{key}/{period}?asOf=A` | one figure's versions, chart and inclusion proof |
//! | `/datasets/{id}/revisions?key=K&from=P1&to=P2` | the vintage triangle and revision statistics |
//! | `/releases/{id}` | what one release published and changed |
//! | `/audit` | the event log, the checkpoint and how to run the witness |

use axum::http::HeaderMap;
use axum::response::Response;
use axum::routing::get;
use axum::Router;

use super::assets::url;

/// Which script a page is rendered by, in `data-page`.
#[derive(Clone, Copy)]
enum Page {
    Home,
    Dataset,
    Figure,
    Revisions,
    Release,
    Audit,
}

impl Page {
    fn name(self) -> &'static str {
        match self {
            Page::Home => "home",
            Page::Dataset => "dataset",
            Page::Figure => "figure",
            Page::Revisions => "revisions",
            Page::Release => "release",
            Page::Audit => "audit",
        }
    }
}

/// The routes of the web interface; `graphiql` says whether GraphiQL is served.
pub fn routes<S: Clone + Send + Sync + 'static>(graphiql: bool) -> Router<S> {
    let page = move |p: Page| move |headers: HeaderMap| async move { shell(&headers, p, graphiql) };
    Router::new()
        .route("/", get(page(Page::Home)))
        .route("/datasets/{id}", get(page(Page::Dataset)))
        .route("/datasets/{id}/figures/{key}/{period}", get(page(Page::Figure)))
        .route("/datasets/{id}/revisions", get(page(Page::Revisions)))
        .route("/releases/{id}", get(page(Page::Release)))
        .route("/audit", get(page(Page::Audit)))
}

/// The shell of every page: header, the element the script renders into, a `<noscript>`
/// explanation, the links to the API and the scripts (the chart library only where a chart is).
fn shell(headers: &HeaderMap, page: Page, graphiql: bool) -> Response {
    let graphiql_link = if graphiql {
        r#"<a href="/graphql">GraphiQL</a>"#
    } else {
        r#"<span title="turned off on this server (--no-graphiql)">the GraphQL API (GraphiQL is off)</span>"#
    };
    let intro = match page {
        Page::Home => {
            "<p class=\"intro\">A GraphQL server over an event-sourced ledger of official \
             trade-statistics releases: every figure with its preliminary value and revisions, \
             as it was public at any moment, and the hash-chained log of every release behind it.</p>\n"
        }
        _ => "",
    };
    let mut scripts = vec![url("graphql-ws.min.js")];
    let mut styles = vec![url("app.css")];
    if matches!(page, Page::Figure) {
        scripts.insert(0, url("uplot.iife.min.js"));
        styles.insert(0, url("uplot.min.css"));
    }
    scripts.push(url("app.js"));
    let scripts: String = scripts
        .iter()
        .map(|s| format!("<script src=\"{s}\" defer></script>\n"))
        .collect();
    let content = format!(
        r#"<header class="site"><a class="brand" href="/">tradeledger</a>
<nav aria-label="Site"><a href="/">Datasets</a> <a href="/audit">Audit log</a></nav></header>
{intro}<main id="app" data-page="{name}" data-noble-hashes="{noble_hashes}" data-noble-ed25519="{noble_ed25519}" tabindex="-1"><p class="loading">Loading…</p></main>
<noscript><p class="noscript">This page is drawn by JavaScript from the server's GraphQL API,
and needs it turned on. Without it, the same data is at <code>/graphql</code> (GraphQL over
HTTP) and the signed checkpoint at <a href="/checkpoint">/checkpoint</a>.</p></noscript>
<footer class="site"><nav aria-label="API">{graphiql_link} ·
<a href="/checkpoint">/checkpoint</a> · <a href="/healthz">/healthz</a> ·
<a href="/readyz">/readyz</a> · <a href="/metrics">/metrics</a></nav>
<p>tradeledger {version}. Every file of this page comes from this server; it only reads.</p></footer>
{scripts}"#,
        name = page.name(),
        noble_hashes = url("noble-hashes/sha2.js"),
        noble_ed25519 = url("noble-ed25519/index.js"),
        version = env!("CARGO_PKG_VERSION"),
    );
    let body = super::document(&styles, "web-app", &content);
    super::html_page(headers, body)
}
