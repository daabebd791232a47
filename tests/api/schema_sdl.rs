//! The committed SDL (`schema/tradeledger.graphql`) is exactly what the code builds, and it
//! carries every name DESIGN.md requires.

use std::collections::BTreeMap;
use std::path::Path;

const EXPORT: &str = "cargo run -- export-schema --out schema/tradeledger.graphql";

fn committed_sdl() -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("schema/tradeledger.graphql");
    std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}; create it with `{EXPORT}`", path.display()))
}

/// Compares the committed SDL with the generated one; the error says how to fix a mismatch.
fn check_sdl(committed: &str, generated: &str) -> Result<(), String> {
    if committed == generated {
        return Ok(());
    }
    let mut c = committed.lines();
    let mut g = generated.lines();
    let mut line = 1;
    let (file_line, code_line) = loop {
        match (c.next(), g.next()) {
            (Some(a), Some(b)) if a == b => line += 1,
            (None, None) => break ("(same lines; line endings or final newline differ)", ""),
            (a, b) => break (a.unwrap_or("<end of file>"), b.unwrap_or("<end of schema>")),
        }
    };
    Err(format!(
        "schema/tradeledger.graphql differs from the schema the code builds.\n\
         If the change to the API is intended, run\n\n    {EXPORT}\n\n\
         and commit the result. First difference at line {line}:\n  file: {file_line}\n  code: {code_line}"
    ))
}

/// Removes `"""` block strings (descriptions), which may contain any text.
fn strip_descriptions(sdl: &str) -> String {
    let mut out = String::with_capacity(sdl.len());
    let mut rest = sdl;
    while let Some(start) = rest.find("\"\"\"") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 3..];
        let end = after.find("\"\"\"").expect("unterminated description");
        rest = &after[end + 3..];
    }
    out.push_str(rest);
    out
}

/// Fields (with their argument names) of every `type`, `input` and `enum` definition.
#[derive(Debug, Default)]
struct Sdl {
    /// "type Query", "input AsOf", "enum ReleaseStatus" -> field -> argument names.
    blocks: BTreeMap<String, BTreeMap<String, Vec<String>>>,
    scalars: Vec<String>,
    /// `schema { query: X ... }`: operation -> type name.
    roots: BTreeMap<String, String>,
}

fn is_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

fn parse_fields(body: &str) -> BTreeMap<String, Vec<String>> {
    let mut fields = BTreeMap::new();
    let chars: Vec<char> = body.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        if !is_name_char(chars[i]) {
            i += 1;
            continue;
        }
        let start = i;
        while i < chars.len() && is_name_char(chars[i]) {
            i += 1;
        }
        let name: String = chars[start..i].iter().collect();
        while i < chars.len() && (chars[i] == ' ' || chars[i] == '\t') {
            i += 1;
        }
        let mut args = Vec::new();
        if i < chars.len() && chars[i] == '(' {
            let close = (i..chars.len()).find(|&j| chars[j] == ')').expect("unclosed arguments");
            let inner: String = chars[i + 1..close].iter().collect();
            for piece in inner.split([',', '\n']) {
                if let Some((arg, _)) = piece.split_once(':') {
                    let arg = arg.trim();
                    if !arg.is_empty() && arg.chars().all(is_name_char) {
                        args.push(arg.to_owned());
                    }
                }
            }
            i = close + 1;
        }
        // Skip the rest of the line: the field's type and default value (or nothing, for
        // an enum value).
        while i < chars.len() && chars[i] != '\n' {
            i += 1;
        }
        fields.insert(name, args);
    }
    fields
}

fn parse(sdl: &str) -> Sdl {
    let text = strip_descriptions(sdl);
    let mut out = Sdl::default();
    let mut rest = text.as_str();
    while let Some(line_end) = rest
        .find('\n')
        .or(if rest.is_empty() { None } else { Some(rest.len()) })
    {
        let line = rest[..line_end].trim();
        let next = &rest[(line_end + 1).min(rest.len())..];
        if let Some(name) = line.strip_prefix("scalar ") {
            // The name, without directives such as `@specifiedBy(...)`.
            out.scalars
                .push(name.split_whitespace().next().unwrap_or("").to_owned());
            rest = next;
            continue;
        }
        let header = ["type ", "input ", "enum ", "schema"]
            .iter()
            .find(|k| line.starts_with(**k));
        if let (Some(_), true) = (header, line.ends_with('{')) {
            let close = next
                .find("\n}")
                .map(|p| p + 1)
                .or_else(|| next.find('}'))
                .expect("unclosed block");
            let body = &next[..close];
            let head = line.trim_end_matches('{').trim();
            if head == "schema" {
                for l in body.lines() {
                    if let Some((op, ty)) = l.split_once(':') {
                        out.roots.insert(op.trim().to_owned(), ty.trim().to_owned());
                    }
                }
            } else {
                let head = head.split(" implements ").next().unwrap().trim().to_owned();
                out.blocks.insert(head, parse_fields(body));
            }
            rest = &next[(close + 1).min(next.len())..];
            continue;
        }
        rest = next;
    }
    // Without a schema definition, the roots are the types with the usual names (the
    // GraphQL spec, "Root Operation Types"), which is how graphql-js prints such a schema.
    if out.roots.is_empty() {
        for (op, ty) in [
            ("query", "Query"),
            ("mutation", "Mutation"),
            ("subscription", "Subscription"),
        ] {
            if out.blocks.contains_key(&format!("type {ty}")) {
                out.roots.insert(op.to_owned(), ty.to_owned());
            }
        }
    }
    out
}

impl Sdl {
    fn block(&self, head: &str) -> &BTreeMap<String, Vec<String>> {
        self.blocks.get(head).unwrap_or_else(|| {
            panic!(
                "the SDL has no `{head}`; it has {:?}",
                self.blocks.keys().collect::<Vec<_>>()
            )
        })
    }

    /// The type an operation's root resolves to.
    fn root(&self, operation: &str) -> String {
        format!("type {}", self.roots.get(operation).map_or(operation, String::as_str))
    }
}

fn assert_fields(sdl: &Sdl, head: &str, fields: &[&str]) {
    let block = sdl.block(head);
    let missing: Vec<&&str> = fields.iter().filter(|f| !block.contains_key(**f)).collect();
    assert!(
        missing.is_empty(),
        "`{head}` lacks {missing:?}; it has {:?}",
        block.keys().collect::<Vec<_>>()
    );
}

fn assert_args(sdl: &Sdl, head: &str, field: &str, args: &[&str]) {
    let got = &sdl.block(head)[field];
    let missing: Vec<&&str> = args.iter().filter(|a| !got.iter().any(|g| g == **a)).collect();
    assert!(
        missing.is_empty(),
        "`{head}.{field}` lacks arguments {missing:?}; it has {got:?}"
    );
}

/// `graphql::schema_file()` is byte for byte the committed `schema/tradeledger.graphql`.
#[test]
fn committed_sdl_matches_the_code() {
    if let Err(message) = check_sdl(&committed_sdl(), &tradeledger::graphql::schema_file()) {
        panic!("{message}");
    }
}

/// The mismatch message names the first differing line and the `export-schema` command.
#[test]
fn mismatch_message_tells_how_to_regenerate() {
    assert_eq!(check_sdl("type A {\n}\n", "type A {\n}\n"), Ok(()));
    let err = check_sdl("type A {\n\tx: Int!\n}\n", "type A {\n\ty: Int!\n}\n").unwrap_err();
    assert!(err.contains(EXPORT), "{err}");
    assert!(err.contains("line 2"), "{err}");
    assert!(err.contains("file: \tx: Int!"), "{err}");
    assert!(err.contains("code: \ty: Int!"), "{err}");
    let err = check_sdl("type A {\n}\n", "type A {\n}\nscalar B\n").unwrap_err();
    assert!(err.contains("<end of file>") && err.contains("scalar B"), "{err}");
}

/// The query root has every field and argument DESIGN.md requires.
#[test]
fn query_root_has_the_required_fields() {
    let sdl = parse(&tradeledger::graphql::schema_file());
    let query = sdl.root("query");
    assert_fields(
        &sdl,
        &query,
        &[
            "ledger",
            "datasets",
            "dataset",
            "releases",
            "release",
            "observations",
            "observation",
            "history",
            "breakdown",
            "revisionSummary",
            "events",
            "verifyLedger",
        ],
    );
    assert_args(&sdl, &query, "dataset", &["id"]);
    assert_args(&sdl, &query, "releases", &["dataset", "status", "first", "after"]);
    assert_args(&sdl, &query, "release", &["id"]);
    assert_args(
        &sdl,
        &query,
        "observations",
        &["dataset", "filter", "asOf", "first", "after"],
    );
    assert_args(
        &sdl,
        &query,
        "observation",
        &["dataset", "key", "period", "measure", "asOf"],
    );
    assert_args(&sdl, &query, "history", &["dataset", "key", "period", "measure"]);
    assert_args(
        &sdl,
        &query,
        "breakdown",
        &["dataset", "dimension", "period", "measure", "asOf"],
    );
    assert_args(&sdl, &query, "revisionSummary", &["dataset", "filter"]);
    assert_args(&sdl, &query, "events", &["after", "first"]);
}

/// The mutation and subscription roots have the required fields and arguments.
#[test]
fn mutation_and_subscription_roots_have_the_required_fields() {
    let sdl = parse(&tradeledger::graphql::schema_file());
    let mutation = sdl.root("mutation");
    assert_fields(&sdl, &mutation, &["defineDataset", "publishRelease"]);
    assert_args(&sdl, &mutation, "defineDataset", &["input"]);
    assert_args(&sdl, &mutation, "publishRelease", &["input", "expectedRevision"]);
    let subscription = sdl.root("subscription");
    assert_fields(&sdl, &subscription, &["releasePublished", "observationRevised"]);
    assert_args(&sdl, &subscription, "releasePublished", &["dataset", "afterRevision"]);
    assert_args(&sdl, &subscription, "observationRevised", &["dataset", "key"]);
}

/// The root operation types are named `Query`, `Mutation` and `Subscription` as in DESIGN.md.
#[test]
fn root_types_have_the_design_names() {
    let sdl = parse(&tradeledger::graphql::schema_file());
    let roots: Vec<(&str, &str)> = sdl.roots.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    assert_eq!(
        roots,
        [
            ("mutation", "Mutation"),
            ("query", "Query"),
            ("subscription", "Subscription")
        ]
    );
}

/// Every other type, input, enum and scalar DESIGN.md names is there with its fields.
#[test]
fn required_types_and_fields_are_present() {
    let sdl = parse(&tradeledger::graphql::schema_file());
    for scalar in ["Decimal", "DateTime", "UUID", "Period"] {
        assert!(
            sdl.scalars.iter().any(|s| s == scalar),
            "scalar {scalar} missing: {:?}",
            sdl.scalars
        );
    }
    assert_fields(&sdl, "type LedgerHead", &["revision", "hash", "eventCount"]);
    assert_fields(
        &sdl,
        "type ReleaseConnection",
        &["edges", "pageInfo", "nodes", "totalCount"],
    );
    assert_fields(&sdl, "type ObservationConnection", &["edges", "pageInfo"]);
    assert_fields(&sdl, "type EventConnection", &["edges", "pageInfo"]);
    assert_fields(
        &sdl,
        "type PageInfo",
        &["hasNextPage", "hasPreviousPage", "startCursor", "endCursor"],
    );
    assert_fields(&sdl, "type LedgerVerification", &["ok", "checked", "firstBadRevision"]);
    assert_fields(
        &sdl,
        "type PublishResult",
        &["release", "revision", "hash", "duplicate"],
    );
    assert_fields(&sdl, "type ReleaseEvent", &["revision", "release"]);
    assert_fields(&sdl, "type Breakdown", &["total", "items", "sumOfItems", "residual"]);
    assert_fields(
        &sdl,
        "type ObservationVersion",
        &["revision", "release", "status", "value", "delta", "publishedAt"],
    );
    assert_fields(
        &sdl,
        "type Observation",
        &[
            "key",
            "dimensions",
            "period",
            "measure",
            "value",
            "status",
            "revision",
            "release",
            "preliminaryValue",
            "versionCount",
            "revisedFrom",
        ],
    );
    assert_fields(
        &sdl,
        "type Release",
        &["id", "status", "title", "publishedAt", "source", "observations"],
    );
    assert_fields(
        &sdl,
        "type Dataset",
        &[
            "id",
            "name",
            "publisher",
            "unit",
            "unitMultiplier",
            "dimensions",
            "measures",
        ],
    );
    assert_fields(&sdl, "type RevisionSummary", &["meanRevision", "meanAbsoluteRevision"]);
    assert_fields(&sdl, "input AsOf", &["revision", "release", "publishedAt", "knownAt"]);
    assert_eq!(
        sdl.block("input AsOf").len(),
        4,
        "AsOf has exactly the three ways to name a point, and knownAt for the second time axis"
    );
    assert_fields(
        &sdl,
        "input ReleaseInput",
        &[
            "id",
            "dataset",
            "status",
            "title",
            "publishedAt",
            "source",
            "observations",
        ],
    );
    assert_fields(&sdl, "input ObservationInput", &["key", "period", "measure", "value"]);
    assert_fields(&sdl, "input DatasetInput", &["id"]);
    let statuses: Vec<&String> = sdl.block("enum ReleaseStatus").keys().collect();
    assert_eq!(statuses, ["FINAL", "PRELIMINARY", "REVISED"]);
}

/// Fields have the DESIGN.md types: `Decimal` values, `DateTime`, `UUID`, `Period`, `measure` default `BAL`.
#[test]
fn required_field_types() {
    let sdl = strip_descriptions(&tradeledger::graphql::schema_file());
    for needle in [
        "value: Decimal!",
        "sumOfItems: Decimal!",
        "residual: Decimal",
        "publishedAt: DateTime!",
        "release(id: UUID!): Release",
        "period: Period!",
        "measure: String! = \"BAL\"",
        "verifyLedger: LedgerVerification!",
        "ledger: LedgerHead!",
        "publishRelease(",
        "): PublishResult!",
        "): ReleaseEvent!",
        "): ObservationVersion!",
        "firstBadRevision: Int",
    ] {
        assert!(sdl.contains(needle), "the SDL lacks `{needle}`");
    }
}

/// The file reads like graphql-js's `printSchema`: two-space indentation and no tabs,
/// arguments with a description one per line, `@specifiedBy` on `DateTime` and `UUID` (as
/// introspection reports), and a description on every scalar.
#[test]
fn sdl_is_printed_like_graphql_js() {
    let sdl = tradeledger::graphql::schema_file();
    assert!(!sdl.contains('\t'), "the SDL has tabs");
    assert!(
        !sdl.contains("\nschema {"),
        "printSchema leaves out a schema block with the usual root names"
    );
    assert!(
        !sdl.contains("directive @"),
        "printSchema leaves out the built-in directives"
    );
    for (scalar, url) in [
        ("DateTime", "https://datatracker.ietf.org/doc/html/rfc3339"),
        ("UUID", "http://tools.ietf.org/html/rfc4122"),
    ] {
        let line = format!("\nscalar {scalar} @specifiedBy(url: \"{url}\")\n");
        assert!(sdl.contains(&line), "the SDL lacks `{}`", line.trim());
    }
    let scalars: Vec<&str> = sdl
        .lines()
        .filter_map(|l| l.strip_prefix("scalar "))
        .map(|l| l.split(' ').next().unwrap())
        .collect();
    assert_eq!(scalars, ["DateTime", "Decimal", "Period", "UUID"]);
    for scalar in scalars {
        let at = sdl.find(&format!("\nscalar {scalar}")).unwrap();
        assert!(sdl[..at].ends_with("\"\"\""), "scalar {scalar} has no description");
    }
    // An argument list with a description: one argument per line, indented four spaces,
    // a blank line before each described argument but the first.
    let observations = sdl
        .find("\n  observations(\n")
        .map(|at| &sdl[at + 1..])
        .expect("Query.observations has arguments on separate lines");
    let args = &observations[..observations.find("\n  ): ").expect("the argument list is closed")];
    assert!(args.contains("\n    dataset: ID!\n"), "{args}");
    assert!(
        args.contains("\n\n    \"\"\"Read as of this point (default: latest).\"\"\"\n    asOf: AsOf\n"),
        "{args}"
    );
    // Without any description, on one line.
    assert!(sdl.contains("\n  release(id: UUID!): Release\n"));
}

/// graphql-js itself prints the committed file unchanged (`buildSchema` then `printSchema`).
/// Needs node and the `graphql` npm package (16.15.0, pinned in tests/browser/package-lock.json
/// and installed by `.ci/setup`; `TRADELEDGER_GRAPHQL_JS` may name another copy of the
/// package's directory). Without it the test fails, unless `TRADELEDGER_SKIP_BROWSER=1`.
#[test]
fn graphql_js_prints_the_committed_sdl_unchanged() {
    let package = std::env::var_os("TRADELEDGER_GRAPHQL_JS").map_or_else(
        || Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/browser/node_modules/graphql"),
        std::path::PathBuf::from,
    );
    if !package.join("package.json").is_file() {
        if std::env::var_os("TRADELEDGER_SKIP_BROWSER").is_some_and(|v| v == "1") {
            eprintln!("TRADELEDGER_SKIP_BROWSER=1: graphql-js round trip not checked");
            return;
        }
        panic!(
            "graphql-js is not installed at {}: run `bash .ci/setup` (or set TRADELEDGER_SKIP_BROWSER=1)",
            package.display()
        );
    }
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("schema/tradeledger.graphql");
    let script = "const [pkg, file] = process.argv.slice(1);\n\
        const { buildSchema, printSchema } = require(pkg);\n\
        const text = require('fs').readFileSync(file, 'utf8');\n\
        process.stdout.write(printSchema(buildSchema(text)) + '\\n');";
    let out = std::process::Command::new("node")
        .arg("-e")
        .arg(script)
        .arg(&package)
        .arg(&path)
        .output()
        .expect("node runs");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let printed = String::from_utf8(out.stdout).unwrap();
    if let Err(message) = check_sdl(&committed_sdl(), &printed) {
        panic!("graphql-js prints the file differently:\n{message}");
    }
}
