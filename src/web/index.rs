//! The start page (`GET /`): what this server is and where its endpoints are. The web
//! interface of issue 15 is to replace it; nothing else depends on this module.

use axum::http::HeaderMap;
use axum::response::Response;

pub fn page(headers: &HeaderMap, graphiql: bool) -> Response {
    let graphiql_entry = if graphiql {
        r#"<dt><a href="/graphql">GraphiQL</a></dt>
<dd>Write and run queries, mutations and subscriptions in the browser; the Docs panel shows the schema.</dd>"#
    } else {
        r#"<dt>GraphiQL</dt>
<dd>Turned off on this server (<code>--no-graphiql</code>).</dd>"#
    };
    let content = format!(
        r#"<main>
<h1>tradeledger {version}</h1>
<p>A GraphQL server over an event-sourced ledger of official trade-statistics releases:
every figure with its preliminary value and revisions, as it was public at any moment, and
the hash-chained log of every release behind it.</p>
<dl>
{graphiql_entry}
<dt><code>POST /graphql</code>, <code>GET /graphql</code></dt>
<dd>The GraphQL endpoint (GraphQL over HTTP); subscriptions on <code>/graphql/ws</code> (graphql-transport-ws).</dd>
<dt><a href="/checkpoint">/checkpoint</a></dt>
<dd>The signed checkpoint of the transparency log, for witnesses and auditors.</dd>
<dt><a href="/healthz">/healthz</a>, <a href="/readyz">/readyz</a></dt>
<dd>Liveness and readiness, as JSON.</dd>
<dt><a href="/metrics">/metrics</a></dt>
<dd>Prometheus metrics.</dd>
</dl>
<p>The README that comes with the source describes the API (sections “A short tour”, “HTTP”
and “Transparency”), its limits (“Security defaults”) and the command line.</p>
</main>
"#,
        version = env!("CARGO_PKG_VERSION"),
    );
    let body = super::document(&[], "start-page", &content);
    super::html_page(headers, body)
}
