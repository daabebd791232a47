//! What docs/operations.md and the guide say, checked against the server: the error table,
//! `serve --help`, compose, the inclusion example, scalars.

use super::*;

/// The rows of the error-code table in `docs/operations.md`: code and text.
fn documented_codes() -> Vec<(String, String)> {
    let doc = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/operations.md"))
        .expect("docs/operations.md");
    let start = doc
        .find("| code | when |")
        .expect("the error table in docs/operations.md");
    doc[start..]
        .lines()
        .skip(2)
        .take_while(|l| l.starts_with('|'))
        .map(|l| {
            let cells: Vec<&str> = l.trim_matches('|').splitn(2, '|').collect();
            (
                cells[0].trim().trim_matches('`').to_owned(),
                cells.get(1).unwrap_or(&"").trim().to_owned(),
            )
        })
        .collect()
}

/// The table lists every code the server has (`ErrorCode::ALL`) and no other, and what each
/// row says provokes its code does: the request is sent and the code it gets compared. Two
/// codes need a failing store or a stalled writer and are provoked by the abuse suite
/// (`UNAVAILABLE`: `tests/abuse/ledger/health.rs`; `OUTCOME_UNKNOWN`: `tests/abuse/round2.rs`).
#[tokio::test]
async fn the_error_table_matches_the_codes_the_server_sends() {
    let rows = documented_codes();
    let mut documented: Vec<&str> = rows.iter().map(|(c, _)| c.as_str()).collect();
    let mut real: Vec<String> = tradeledger::error_code::ErrorCode::ALL
        .iter()
        .map(|c| c.to_string())
        .collect();
    documented.sort_unstable();
    real.sort_unstable();
    assert_eq!(documented, real, "the table's codes are not the server's");

    let app = spawn_app_with(
        |c| c.tokens.read = vec![Token::parse("viewer:table-read-secret").unwrap()],
        true,
    )
    .await;
    let reader = Some("table-read-secret");
    let publish = |id: &str| json!({ "input": release_input(id, "IPR._T._T", "2031-S1", "1") });
    let aliases: String = (0..31).map(|i| format!("a{i}: ledger {{ revision }} ")).collect();
    let cases: Vec<(&str, &str, String, Value, Option<&str>)> = vec![
        (
            "BAD_USER_INPUT",
            "a bad argument",
            "{ observation(dataset: \"KR_KNOWLEDGE_SERVICES\", key: \"IPR._T._T\", period: \"2025-X9\") { value } }"
                .into(),
            json!({}),
            reader,
        ),
        (
            "GRAPHQL_PARSE_FAILED",
            "not GraphQL",
            "{ ledger {".into(),
            json!({}),
            reader,
        ),
        (
            "GRAPHQL_VALIDATION_FAILED",
            "an unknown field",
            "{ noSuchField }".into(),
            json!({}),
            reader,
        ),
        (
            "UNAUTHENTICATED",
            "a write without a token",
            PUBLISH.into(),
            publish("5b0c1d2e-0000-4000-8000-00000000e001"),
            None,
        ),
        (
            "UNAUTHENTICATED",
            "a token that is not one of the server's",
            "{ ledger { revision } }".into(),
            json!({}),
            Some("no-such-token-secret"),
        ),
        (
            "UNAUTHENTICATED",
            "a read without one",
            "{ ledger { revision } }".into(),
            json!({}),
            None,
        ),
        (
            "FORBIDDEN",
            "a write with a read token",
            PUBLISH.into(),
            publish("5b0c1d2e-0000-4000-8000-00000000e002"),
            reader,
        ),
        (
            "NOT_FOUND",
            "an unknown dataset",
            "{ observation(dataset: \"NO_SUCH\", key: \"IPR._T._T\", period: \"2025-S1\") { value } }".into(),
            json!({}),
            reader,
        ),
        (
            "CONFLICT",
            "an `expectedRevision` that is not the head",
            "mutation($input: ReleaseInput!) { publishRelease(input: $input, expectedRevision: 1) { revision } }"
                .into(),
            publish("5b0c1d2e-0000-4000-8000-00000000e003"),
            Some(WRITE_SECRET),
        ),
        (
            "LIMIT_EXCEEDED",
            "a limit of",
            format!("{{ {aliases} }}"),
            json!({}),
            reader,
        ),
        (
            "INTERNAL_SERVER_ERROR",
            "a fault of the server",
            // This test server was built without a checkpoint signing key.
            "{ verifierKey }".into(),
            json!({}),
            reader,
        ),
    ];
    for (code, claim, query, variables, token) in cases {
        let row = &rows.iter().find(|(c, _)| c == code).unwrap().1;
        assert!(row.contains(claim), "the {code} row does not say `{claim}`: {row}");
        let (_, body) = app.post(&query, variables, token).await;
        assert_eq!(body["errors"][0]["extensions"]["code"], code, "{claim}: {body}");
    }
    // METHOD_NOT_ALLOWED is an HTTP answer: a mutation over GET.
    let row = &rows.iter().find(|(c, _)| c == "METHOD_NOT_ALLOWED").unwrap().1;
    assert!(row.contains("a mutation sent over `GET`"), "{row}");
    let resp = app
        .client
        .get(format!("{}?query=mutation%20%7B%20__typename%20%7D", app.url))
        .bearer_auth(WRITE_SECRET)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 405);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["errors"][0]["extensions"]["code"], "METHOD_NOT_ALLOWED");
}

/// `serve --help` names the code a NATS timeout gives clients: a storage failure is
/// `UNAVAILABLE`, as the error table says.
#[test]
fn serve_help_names_the_real_codes() {
    use clap::CommandFactory;
    let mut cli = tradeledger::cli::Cli::command();
    let help = cli
        .find_subcommand_mut("serve")
        .expect("serve")
        .render_long_help()
        .to_string();
    let start = help.find("--nats-timeout-ms").expect("the flag");
    let end = help[start + 2..].find("\n  -").map_or(help.len(), |e| start + 2 + e);
    let nats = &help[start..end];
    assert!(nats.contains("UNAVAILABLE"), "{nats}");
    assert!(!nats.contains("INTERNAL_SERVER_ERROR"), "{nats}");
}

/// The compose file's NATS servers have no credentials, so their ports are not published to
/// the host; the Docker docs name the file the generated write token is kept in.
#[test]
fn compose_keeps_nats_off_the_host_and_the_docs_find_the_token() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let compose = std::fs::read_to_string(root.join("docker-compose.yml")).expect("docker-compose.yml");
    let mut service: Option<&str> = None;
    let mut nats_services = 0;
    for line in compose.lines() {
        // A service is a key indented by two spaces under `services:`.
        if let Some(name) = line.strip_prefix("  ").and_then(|l| l.strip_suffix(':')) {
            if !name.starts_with(' ') {
                service = Some(name);
                nats_services += usize::from(name.starts_with("nats"));
            }
        }
        if service.is_some_and(|s| s.starts_with("nats")) {
            assert!(!line.trim_start().starts_with("ports:"), "{service:?} publishes {line}");
        }
    }
    assert_eq!(nats_services, 3, "the three NATS services were not found");
    let ops = std::fs::read_to_string(root.join("docs/operations.md")).unwrap();
    let token_file = format!("/data/{}", tradeledger::auth::TOKEN_FILE);
    assert!(
        ops.contains(&token_file),
        "docs/operations.md does not say {token_file}"
    );
}

/// `examples/verify_inclusion.py` checks the proof of the docs' own `inclusionProof` query;
/// a proof without `treeSize` takes it from the checkpoint, and without either (or with
/// fields missing, or an error response) the script says what is missing instead of failing
/// with a traceback.
#[tokio::test]
async fn the_inclusion_example_runs_on_the_documented_query() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let docs = std::fs::read_to_string(root.join("docs/transparency.md")).unwrap();
    let query = docs
        .lines()
        .find(|l| l.starts_with("{ inclusionProof("))
        .expect("the documented inclusionProof query");
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"), &[]).await;
    let (_, response) = server.post(query, json!({}), None).await.unwrap();
    assert!(response.get("errors").is_none(), "{response}");
    let note = server.query("{ checkpoint(treeSize: 3) { note } }", json!({})).await["checkpoint"]["note"]
        .as_str()
        .unwrap()
        .to_owned();
    let script = root.join("examples/verify_inclusion.py");
    let run = |proof: &Value, with_note: bool| {
        let proof_path = dir.path().join("proof.json");
        std::fs::write(&proof_path, proof.to_string()).unwrap();
        let note_path = dir.path().join("checkpoint.txt");
        std::fs::write(&note_path, &note).unwrap();
        let mut cmd = Command::new("python3");
        cmd.arg(&script).arg(&proof_path);
        if with_note {
            cmd.arg(&note_path);
        }
        let out = cmd.output().expect("python3 runs");
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(!text.contains("Traceback"), "{text}");
        (out.status.code(), text)
    };
    let (code, out) = run(&response, true);
    assert_eq!(code, Some(0), "{out}");
    assert_eq!(
        run(&response, false).0,
        Some(0),
        "the documented query selects treeSize"
    );

    let mut bare = response["data"]["inclusionProof"].clone();
    bare.as_object_mut().unwrap().remove("treeSize");
    bare.as_object_mut().unwrap().remove("revision");
    let (code, out) = run(&bare, true);
    assert_eq!(code, Some(0), "tree size from the checkpoint: {out}");
    let (code, out) = run(&bare, false);
    assert_eq!(code, Some(2), "{out}");
    assert!(out.contains("treeSize"), "{out}");

    bare.as_object_mut().unwrap().remove("hashes");
    let (code, out) = run(&bare, true);
    assert_eq!(code, Some(2), "{out}");
    assert!(out.contains("hashes"), "{out}");
    let (code, out) = run(&json!({ "data": null, "errors": [{ "message": "no" }] }), true);
    assert_eq!(code, Some(2), "{out}");
}

/// The custom scalars' descriptions, which code generators copy into clients, name no Rust
/// type, and the guide maps every custom scalar of the schema for them.
#[tokio::test]
async fn scalars_are_described_for_clients_and_mapped_in_the_guide() {
    let app = spawn_app().await;
    let v = app
        .gql(
            "{ __schema { types { kind name description specifiedByURL } } }",
            json!({}),
        )
        .await;
    let builtin = ["String", "Int", "Float", "Boolean", "ID"];
    let scalars: Vec<&Value> = v["data"]["__schema"]["types"]
        .as_array()
        .expect("types")
        .iter()
        .filter(|t| t["kind"] == "SCALAR" && !builtin.contains(&t["name"].as_str().unwrap()))
        .collect();
    assert_eq!(scalars.len(), 4, "{scalars:?}");
    let guide = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/guide.md")).unwrap();
    for s in scalars {
        let name = s["name"].as_str().unwrap();
        let description = s["description"].as_str().unwrap_or("");
        assert!(!description.is_empty(), "{name} has no description");
        for rust in ["Implement the", "<Utc>", "::", "Rust"] {
            assert!(
                !description.contains(rust),
                "{name}'s description names Rust: {description}"
            );
        }
        assert!(
            guide.contains(&format!("| `{name}` |")),
            "docs/guide.md does not map {name}"
        );
        assert!(
            guide.contains(&format!("    {name}: string")),
            "no codegen mapping of {name}"
        );
    }
}

/// A subscription sent to `/graphql` is refused with a message that names both places
/// subscriptions are served (and `extensions.websocket`, `extensions.sse`), not as a
/// validation failure.
#[tokio::test]
async fn a_subscription_over_http_names_the_websocket_endpoint() {
    let app = spawn_app().await;
    let q = "subscription Feed { releasePublished { revision } }";
    for accept in ["application/graphql-response+json", "application/json"] {
        let resp = app
            .client
            .post(&app.url)
            .header("content-type", "application/json")
            .header("accept", accept)
            .json(&json!({ "query": q }))
            .send()
            .await
            .unwrap();
        let status = resp.status().as_u16();
        let body: Value = resp.json().await.unwrap();
        assert_eq!(status, if accept == "application/json" { 200 } else { 400 }, "{body}");
        let e = &body["errors"][0];
        assert_eq!(e["extensions"]["code"], "BAD_USER_INPUT", "{body}");
        assert_eq!(e["extensions"]["websocket"], "/graphql/ws", "{body}");
        assert_eq!(e["extensions"]["sse"], "/graphql/stream", "{body}");
        let message = e["message"].as_str().unwrap();
        assert!(
            message.contains("/graphql/ws") && message.contains("/graphql/stream"),
            "{body}"
        );
    }
    let get = app
        .client
        .get(format!(
            "{}?query=subscription%20%7B%20releasePublished%20%7B%20revision%20%7D%20%7D",
            app.url
        ))
        .send()
        .await
        .unwrap();
    let body: Value = get.json().await.unwrap();
    assert_eq!(body["errors"][0]["extensions"]["websocket"], "/graphql/ws", "{body}");
}
