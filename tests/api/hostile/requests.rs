//! The hostile requests of the corpus about the request itself: malformed JSON, content
//! types, sizes, document shapes, batches, introspection floods, scalars.

use super::*;

/// The request-level cases, by class.
pub(super) fn cases() -> Vec<Case> {
    let ok_query = r#"{"query": "{ ledger { revision } }"}"#;
    let mut cases = vec![
        // Malformed JSON.
        case(
            "malformed JSON",
            "truncated",
            json_body(&ok_query[..20]),
            Some("BAD_USER_INPUT"),
        ),
        case(
            "malformed JSON",
            "trailing garbage",
            json_body(format!("{ok_query} }}garbage")),
            Some("BAD_USER_INPUT"),
        ),
        case(
            "malformed JSON",
            "invalid UTF-8",
            json_body(b"{\"query\": \"{ ledger \xff\xfe { revision } }\"}".to_vec()),
            Some("BAD_USER_INPUT"),
        ),
        case(
            "malformed JSON",
            "raw NUL byte in a string",
            json_body(b"{\"query\": \"{ ledger\x00 { revision } }\"}".to_vec()),
            Some("BAD_USER_INPUT"),
        ),
        case(
            "malformed JSON",
            "escaped NUL in the query",
            query("{ ledger\u{0} { revision } }"),
            Some("GRAPHQL_PARSE_FAILED"),
        ),
        case("malformed JSON", "empty body", json_body(""), Some("BAD_USER_INPUT")),
        case(
            "malformed JSON",
            "a number, not an object",
            json_body("42"),
            Some("BAD_USER_INPUT"),
        ),
        case(
            "malformed JSON",
            "query is not a string",
            json_body(r#"{"query": 5}"#),
            Some("BAD_USER_INPUT"),
        ),
        case(
            "malformed JSON",
            "variables is an array",
            json_body(r#"{"query": "{ ledger { revision } }", "variables": [1]}"#),
            Some("BAD_USER_INPUT"),
        ),
        // Content types.
        case(
            "wrong content type",
            "text/plain",
            raw(ok_query, Some("text/plain")),
            None,
        ),
        case(
            "wrong content type",
            "form-urlencoded",
            raw(
                "query=%7B+ledger+%7B+revision+%7D+%7D",
                Some("application/x-www-form-urlencoded"),
            ),
            None,
        ),
        case(
            "wrong content type",
            "multipart",
            raw(
                "--b\r\nContent-Disposition: form-data; name=\"operations\"\r\n\r\n{}\r\n--b--\r\n",
                Some("multipart/form-data; boundary=b"),
            ),
            None,
        ),
        case("wrong content type", "missing", raw(ok_query, None), None),
        case(
            "wrong content type",
            "application/graphql",
            raw("{ ledger { revision } }", Some("application/graphql")),
            None,
        ),
        // Sizes.
        case(
            "huge body",
            "3 MiB string",
            json_body(format!(
                r#"{{"query": "{{ ledger {{ revision }} }}", "extensions": {{"pad": "{}"}}}}"#,
                "x".repeat(3 << 20)
            )),
            Some("LIMIT_EXCEEDED"),
        ),
        case(
            "huge body",
            "3 MiB of whitespace",
            json_body(format!("{}{ok_query}", " ".repeat(3 << 20))),
            Some("LIMIT_EXCEEDED"),
        ),
        case(
            "huge body",
            "3 MiB chunked (no Content-Length)",
            Send::Tcp {
                request: chunked(&vec![b' '; 3 << 20], 64 << 10),
            },
            Some("LIMIT_EXCEEDED"),
        ),
        case(
            "malformed JSON",
            "chunked, truncated JSON",
            Send::Tcp {
                request: chunked(br#"{"query": "{ ledger"#, 4),
            },
            Some("BAD_USER_INPUT"),
        ),
        // Document shapes.
        case(
            "deep nesting",
            "depth 50 (introspection ofType)",
            query(&format!(
                "{{ __schema {{ types {{ fields {{ type {{ {} name {} }} }} }} }}",
                "ofType { ".repeat(46),
                "} ".repeat(46)
            )),
            None,
        ),
        case(
            "deep nesting",
            "depth 50 (unknown fields)",
            query(&format!("{}{}", "{ a ".repeat(50), "}".repeat(50))),
            Some("LIMIT_EXCEEDED"),
        ),
        case(
            "aliases",
            "500 aliases",
            query(&format!(
                "{{ {} }}",
                (0..500)
                    .map(|i| format!("a{i}: ledger {{ revision }}"))
                    .collect::<Vec<_>>()
                    .join(" ")
            )),
            Some("LIMIT_EXCEEDED"),
        ),
        case(
            "__typename flood",
            "5000 __typename",
            query(&format!("{{ {} }}", "__typename ".repeat(5000))),
            Some("LIMIT_EXCEEDED"),
        ),
        case(
            "__typename flood",
            "300 000 __typename (1.8 MiB)",
            query(&format!("{{ {} }}", "__typename ".repeat(180_000))),
            Some("LIMIT_EXCEEDED"),
        ),
        case(
            "fragments",
            "cycle",
            query("{ ...A } fragment A on Query { ledger { revision } ...B } fragment B on Query { ...A }"),
            None,
        ),
        case(
            "fragments",
            "self-spread",
            query("{ ...A } fragment A on Query { ...A }"),
            None,
        ),
        case(
            "fragments",
            "bomb (2^30 expansions)",
            query(&{
                let mut q = String::from("{ ...F0 } fragment F30 on Query { __typename }");
                for i in 0..30 {
                    q.push_str(&format!(" fragment F{i} on Query {{ ...F{n} ...F{n} }}", n = i + 1));
                }
                q
            }),
            Some("LIMIT_EXCEEDED"),
        ),
        case(
            "fragments",
            "unknown fragment",
            query("{ ...Nope }"),
            Some("GRAPHQL_VALIDATION_FAILED"),
        ),
        // Batches.
        case(
            "batch",
            "11 items",
            json_body(format!("[{}]", [ok_query; 11].join(","))),
            Some("LIMIT_EXCEEDED"),
        ),
        case(
            "batch",
            "1000 items",
            json_body(format!("[{}]", [ok_query; 1000].join(","))),
            Some("LIMIT_EXCEEDED"),
        ),
        case("batch", "empty", json_body("[]"), Some("BAD_USER_INPUT")),
        case(
            "batch",
            "item not an object",
            json_body(format!("[{ok_query}, 7]")),
            Some("BAD_USER_INPUT"),
        ),
        // Introspection floods.
        case(
            "introspection flood",
            "100 aliased __schema",
            query(&format!(
                "{{ {} }}",
                (0..100)
                    .map(|i| format!("s{i}: __schema {{ types {{ name fields {{ name args {{ name }} }} }} }}"))
                    .collect::<Vec<_>>()
                    .join(" ")
            )),
            Some("LIMIT_EXCEEDED"),
        ),
        case(
            "introspection flood",
            "__type with 200 aliased fields lists",
            query(&format!(
                "{{ {} }}",
                (0..200)
                    .map(|i| format!("t{i}: __type(name: \"Query\") {{ fields {{ name type {{ name }} }} }}"))
                    .collect::<Vec<_>>()
                    .join(" ")
            )),
            Some("LIMIT_EXCEEDED"),
        ),
        // Scalars.
        case(
            "invalid Decimal",
            "\"1e400\"",
            publish(observation_field("value", json!("1e400"))),
            Some("BAD_USER_INPUT"),
        ),
        case(
            "invalid Decimal",
            "\"NaN\"",
            publish(observation_field("value", json!("NaN"))),
            Some("BAD_USER_INPUT"),
        ),
        case(
            "invalid Decimal",
            "\"Infinity\"",
            publish(observation_field("value", json!("Infinity"))),
            Some("BAD_USER_INPUT"),
        ),
        case(
            "invalid Decimal",
            "1.5 as a JSON number",
            publish(observation_field("value", json!(1.5))),
            Some("BAD_USER_INPUT"),
        ),
        case(
            "invalid Decimal",
            "35 nines",
            publish(observation_field("value", json!("99999999999999999999999999999999999"))),
            Some("BAD_USER_INPUT"),
        ),
        case(
            "invalid Decimal",
            "1.5 inline literal",
            publish_inline("1.5", "\"2025-S2\"", "\"2026-01-15T00:00:00Z\""),
            Some("BAD_USER_INPUT"),
        ),
        case(
            "invalid Decimal",
            "\"1e400\" inline literal",
            publish_inline("\"1e400\"", "\"2025-S2\"", "\"2026-01-15T00:00:00Z\""),
            Some("BAD_USER_INPUT"),
        ),
        case(
            "invalid Decimal",
            "boolean",
            publish(observation_field("value", json!(true))),
            Some("BAD_USER_INPUT"),
        ),
    ];
    for p in ["2025-S0", "2025-S3", "2025-13", "0000", ""] {
        cases.push(case(
            "invalid Period",
            format!("{p:?} in a release"),
            publish(observation_field("period", json!(p))),
            Some("BAD_USER_INPUT"),
        ));
    }
    cases
}
