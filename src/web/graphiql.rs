//! GraphiQL, from the embedded production builds; `graphiql-start.js` mounts it with a
//! `graphql-ws` client for subscriptions (`/graphql/ws`, graphql-transport-ws).

use axum::http::HeaderMap;
use axum::response::Response;

use super::assets::url;

/// The GraphiQL page (`GET /graphql` with `Accept: text/html`).
pub fn page(headers: &HeaderMap) -> Response {
    let body = format!(
        r#"<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>tradeledger</title>
<link rel="stylesheet" href="{css}">
<link rel="icon" href="data:,">
<link rel="stylesheet" href="{site}">
</head>
<body class="graphiql-page">
<div id="graphiql" data-endpoint="/graphql" data-subscription-endpoint="/graphql/ws">Loading GraphiQL…</div>
<script src="{react}"></script>
<script src="{react_dom}"></script>
<script src="{graphql_ws}"></script>
<script src="{graphiql}"></script>
<script src="{start}"></script>
</body>
</html>
"#,
        css = url("graphiql.min.css"),
        site = url("site.css"),
        react = url("react.production.min.js"),
        react_dom = url("react-dom.production.min.js"),
        graphql_ws = url("graphql-ws.min.js"),
        graphiql = url("graphiql.min.js"),
        start = url("graphiql-start.js"),
    );
    super::html_page(headers, body)
}
