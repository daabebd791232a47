//! GraphiQL, from the embedded production builds; `graphiql-start.js` mounts it with a
//! `graphql-ws` client for subscriptions (`/graphql/ws`, graphql-transport-ws).

use axum::http::HeaderMap;
use axum::response::Response;

use super::assets::url;

/// The GraphiQL page (`GET /graphql` with `Accept: text/html`).
pub fn page(headers: &HeaderMap) -> Response {
    let content = format!(
        r#"<div id="graphiql" data-endpoint="/graphql" data-subscription-endpoint="/graphql/ws">Loading GraphiQL…</div>
<script src="{react}"></script>
<script src="{react_dom}"></script>
<script src="{graphql_ws}"></script>
<script src="{graphiql}"></script>
<script src="{start}"></script>
"#,
        react = url("react.production.min.js"),
        react_dom = url("react-dom.production.min.js"),
        graphql_ws = url("graphql-ws.min.js"),
        graphiql = url("graphiql.min.js"),
        start = url("graphiql-start.js"),
    );
    let body = super::document(&[url("graphiql.min.css")], "graphiql-page", &content);
    super::html_page(headers, body)
}
