//! The hostile requests of the corpus about what a request says: keys, codes and datasets,
//! control characters, authorization, documents and variables, pagination, and WebSocket
//! frames.

use super::*;

/// The input-level cases, by class.
pub(super) fn cases() -> Vec<Case> {
    let bad = Some("BAD_USER_INPUT");
    let unauthenticated = Some("UNAUTHENTICATED");
    let inline_time = "\"2026-01-15T00:00:00Z\"";
    vec![
        case(
            "invalid Period",
            "\"2025-S3\" as a query argument",
            observation("period: \"2025-S3\""),
            bad,
        ),
        case(
            "invalid Period",
            "\"2025-13\" inline in a release",
            publish_inline("\"1\"", "\"2025-13\"", inline_time),
            bad,
        ),
        case(
            "invalid UUID",
            "\"not-a-uuid\" as release(id:)",
            query(r#"{ release(id: "not-a-uuid") { id } }"#),
            bad,
        ),
        case(
            "invalid UUID",
            "\"not-a-uuid\" as a release id",
            publish(|i| i["id"] = json!("not-a-uuid")),
            bad,
        ),
        case(
            "invalid DateTime",
            "\"yesterday\" as publishedAt",
            publish(|i| i["publishedAt"] = json!("yesterday")),
            bad,
        ),
        case(
            "invalid DateTime",
            "\"yesterday\" inline",
            publish_inline("\"1\"", "\"2025-S2\"", "\"yesterday\""),
            bad,
        ),
        case(
            "invalid DateTime",
            "\"yesterday\" in asOf",
            observation("asOf: { publishedAt: \"yesterday\" }"),
            bad,
        ),
        // Keys, codes and datasets.
        case(
            "key arity",
            "2 parts in a release",
            publish(observation_field("key", json!("IPR._T"))),
            bad,
        ),
        case(
            "key arity",
            "4 parts in a release",
            publish(observation_field("key", json!("IPR._T._T._T"))),
            bad,
        ),
        case(
            "key arity",
            "1 part in observation(key:)",
            observation("key: \"IPR\""),
            bad,
        ),
        case(
            "unknown code",
            "XXX in a release",
            publish(observation_field("key", json!("IPR.XXX._T"))),
            bad,
        ),
        case(
            "unknown code",
            "lower-case code",
            publish(observation_field("key", json!("ipr._T._T"))),
            bad,
        ),
        case(
            "unknown code",
            "in an observations filter",
            observations("filter: { key: \"MARS.._T\" }"),
            None,
        ),
        case(
            "unknown code",
            "unknown measure",
            publish(observation_field("measure", json!("PROFIT"))),
            bad,
        ),
        case(
            "unknown code",
            "unknown dataset in a release",
            publish(|i| i["dataset"] = json!("NOPE")),
            bad,
        ),
        case(
            "unknown code",
            "unknown dimension in breakdown",
            query(&format!(
                r#"{{ breakdown(dataset: "{DATASET}", dimension: "COLOUR", period: "2025-S1") {{ sumOfItems }} }}"#
            )),
            None,
        ),
        // Control characters.
        case(
            "control characters",
            "NUL in a key",
            publish(observation_field("key", json!("IPR\u{0}._T._T"))),
            bad,
        ),
        case(
            "control characters",
            "BEL in a key",
            publish(observation_field("key", json!("IPR._T._T\u{7}"))),
            bad,
        ),
        case(
            "control characters",
            "RTL override in a key",
            publish(observation_field("key", json!("\u{202e}IPR._T._T"))),
            bad,
        ),
        case(
            "control characters",
            "NUL in a title",
            publish(|i| i["title"] = json!("SYNTHETIC\u{0} hostile")),
            bad,
        ),
        case(
            "control characters",
            "BEL in a title",
            publish(|i| i["title"] = json!("SYNTHETIC\u{7} hostile")),
            bad,
        ),
        case(
            "control characters",
            "ESC sequence in a source",
            publish(|i| i["source"] = json!("\u{1b}[31mred")),
            bad,
        ),
        case(
            "control characters",
            "title of only whitespace",
            publish(|i| i["title"] = json!(" \t ")),
            bad,
        ),
        case(
            "control characters",
            "NUL in a dataset argument",
            query("{ observations(dataset: \"KR\u{0}\") { totalCount } }"),
            None,
        ),
        // Authorization.
        case("auth", "mutation without a token", publish_as(None, 1), unauthenticated),
        case(
            "auth",
            "mutation with a wrong token",
            publish_as(Some(b"Bearer not-the-secret"), 2),
            unauthenticated,
        ),
        case(
            "auth",
            "Basic instead of Bearer",
            publish_as(Some(b"Basic dGVzdGVyOnRlc3Qtd3JpdGUtc2VjcmV0"), 3),
            unauthenticated,
        ),
        case(
            "auth",
            "Bearer without a token",
            publish_as(Some(b"Bearer"), 4),
            unauthenticated,
        ),
        case(
            "auth",
            "non-ASCII bytes in Authorization",
            publish_as(Some(b"Bearer \xfftest-write-secret"), 5),
            unauthenticated,
        ),
        case(
            "auth",
            "secret with the name prefix",
            publish_as(Some(b"Bearer tester:test-write-secret"), 6),
            unauthenticated,
        ),
        case("auth", "mutation over GET", Send::Get { query: get_mutation() }, None),
        // Documents and variables.
        case(
            "query",
            "unknown field",
            query("{ nope }"),
            Some("GRAPHQL_VALIDATION_FAILED"),
        ),
        case(
            "query",
            "unknown argument",
            query("{ ledger(colour: 1) { revision } }"),
            Some("GRAPHQL_VALIDATION_FAILED"),
        ),
        case(
            "query",
            "syntax error",
            query("{ ledger { revision "),
            Some("GRAPHQL_PARSE_FAILED"),
        ),
        case("query", "empty document", query(""), Some("GRAPHQL_PARSE_FAILED")),
        case(
            "query",
            "unknown operationName",
            json_body(r#"{"query": "query A { ledger { revision } }", "operationName": "B"}"#),
            None,
        ),
        case(
            "query",
            "undeclared variable",
            query("{ releases(first: $n) { totalCount } }"),
            None,
        ),
        case(
            "query",
            "string for an Int variable",
            gql(
                "query($n: Int) { releases(first: $n) { totalCount } }",
                json!({ "n": "ten" }),
                None,
            ),
            bad,
        ),
        case(
            "query",
            "missing required variable",
            gql("query($d: ID!) { dataset(id: $d) { id } }", json!({}), None),
            bad,
        ),
        case(
            "query",
            "object for a String variable",
            gql(
                &format!(
                    r#"query($k: String!) {{ observation(dataset: "{DATASET}", key: $k, period: "2025") {{ value }} }}"#
                ),
                json!({ "k": { "a": 1 } }),
                None,
            ),
            bad,
        ),
        case(
            "query",
            "unknown enum value",
            query("{ releases(status: DRAFT) { totalCount } }"),
            None,
        ),
        case(
            "query",
            "subscription over HTTP POST",
            query("subscription { releasePublished { revision } }"),
            None,
        ),
        // Pagination.
        case(
            "pagination",
            "first: -1",
            query("{ releases(first: -1) { totalCount } }"),
            bad,
        ),
        case(
            "pagination",
            "first: 2147483647",
            query("{ releases(first: 2147483647) { totalCount } }"),
            bad,
        ),
        case(
            "pagination",
            "first beyond Int",
            query("{ releases(first: 99999999999) { totalCount } }"),
            None,
        ),
        case("pagination", "observations first: -5", observations("first: -5"), bad),
        case(
            "pagination",
            "garbage after cursor",
            query(r#"{ releases(after: "garbage!") { totalCount } }"#),
            bad,
        ),
        case(
            "pagination",
            "garbage observations cursor",
            observations("after: \"////\""),
            bad,
        ),
        case(
            "pagination",
            "huge base64 cursor",
            observations(&format!("after: \"{}\"", "QUFB".repeat(10_000))),
            bad,
        ),
        case(
            "pagination",
            "events after: -5",
            query("{ events(after: -5) { totalCount } }"),
            bad,
        ),
        // WebSocket frames.
        case("websocket", "invalid JSON", ws_text(false, "{not json"), Some("4400")),
        case(
            "websocket",
            "invalid JSON after init",
            ws_text(true, "[1, 2"),
            Some("4400"),
        ),
        case(
            "websocket",
            "binary frame",
            ws_binary(false, b"\x00\x01\x02"),
            Some("4400"),
        ),
        case(
            "websocket",
            "binary frame after init",
            ws_binary(true, br#"{"type":"ping"}"#),
            Some("4400"),
        ),
        case(
            "websocket",
            "unknown message type",
            ws_text(true, r#"{"type":"hello"}"#),
            Some("4400"),
        ),
        case(
            "websocket",
            "subscribe before init",
            ws_text(
                false,
                r#"{"type":"subscribe","id":"1","payload":{"query":"subscription { releasePublished { revision } }"}}"#,
            ),
            Some("4401"),
        ),
        case(
            "websocket",
            "second connection_init",
            ws_text(true, r#"{"type":"connection_init"}"#),
            Some("4429"),
        ),
        case(
            "websocket",
            "connection_init payload is a string",
            ws_text(false, r#"{"type":"connection_init","payload":"x"}"#),
            Some("4400"),
        ),
        case(
            "websocket",
            "connection_init with a wrong token",
            ws_text(
                false,
                r#"{"type":"connection_init","payload":{"authorization":"Bearer nope"}}"#,
            ),
            Some("4403"),
        ),
    ]
}
