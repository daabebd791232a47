use super::*;
use async_graphql::parser::parse_query;
use serde_json::json;

/// The document cache charges at least what the densest documents it keeps hold inline:
/// a selection per two bytes of query (`{ a a a … }`, up to the field limit), and an
/// object value per six (`[{a:1} {a:1} …]`, which the field limit does not bound), before
/// counting their names, maps and the allocator's overhead. (Measured with a counting
/// allocator, which this crate cannot have (`unsafe_code` is forbidden), the whole cost
/// is about 115 and 88 bytes per byte; see [`DOCUMENT_BYTES_PER_BYTE`].)
#[test]
fn the_document_cache_charges_what_documents_hold() {
    use async_graphql::parser::types::Selection;
    let fields = format!("{{ {} }}", "a ".repeat(999));
    let objects = format!("{{ a(x: [{}]) }}", "{a:1} ".repeat((MAX_QUERY - 16) / 6));
    for q in [&fields, &objects] {
        assert!(q.len() <= MAX_QUERY);
        check(&parse_query(q).unwrap(), Limits::default()).expect("within the limits: cached");
    }
    let selection = std::mem::size_of::<Positioned<Selection>>();
    assert!(
        document_charge(fields.len()) >= 999 * selection,
        "{} bytes charged for 999 selections of {selection} bytes",
        document_charge(fields.len())
    );
    // Each object: a value in the list, a map with its hash table, one entry.
    let object = 2 * std::mem::size_of::<Value>() + std::mem::size_of::<Name>() + 3 * 8;
    let n = (MAX_QUERY - 16) / 6;
    assert!(
        document_charge(objects.len()) >= n * object,
        "{} bytes charged for {n} objects of at least {object} bytes",
        document_charge(objects.len())
    );
}

fn limits() -> Limits {
    Limits {
        max_depth: 4,
        max_complexity: 10,
        max_aliases: 3,
        ..Limits::default()
    }
}

fn run(q: &str) -> Result<(), String> {
    check(&parse_query(q).unwrap(), limits()).map_err(|e| e.message)
}

#[test]
fn counts_typename_and_aliases() {
    assert!(run("{ a: __typename b: __typename c: __typename }").is_ok());
    assert!(run("{ a: __typename b: __typename c: __typename d: __typename }")
        .unwrap_err()
        .contains("aliases"));
    let many = format!("{{ {} }}", "__typename ".repeat(11));
    assert!(run(&many).unwrap_err().contains("fields"));
    // Exactly `--max-complexity` fields pass.
    assert_eq!(run(&format!("{{ {} }}", "__typename ".repeat(10))), Ok(()));
    // Selections count too, up to four per allowed field: seven fields in five inline
    // fragments each are 42 selections, over 40.
    let wrapped = "... { ... { ... { ... { ... { __typename } } } } } ";
    let e = run(&format!("{{ {} }}", wrapped.repeat(7))).unwrap_err();
    assert!(e.contains("expands to more than 40 selections"), "{e}");
    assert_eq!(run(&format!("{{ {} }}", wrapped.repeat(6))), Ok(()));
}

#[test]
fn measures_depth_through_fragments() {
    assert!(run("{ a { b { c } } }").is_ok());
    assert!(run("{ a { b { c { d { e } } } } }").unwrap_err().contains("deeper"));
    assert!(run("query { a { ...F } } fragment F on T { b { c { d { e } } } }")
        .unwrap_err()
        .contains("deeper"));
}

#[test]
fn fragment_bombs_stop_at_the_limit() {
    let mut q = String::from("{ ...F0 } fragment F30 on Q { __typename }");
    for i in 0..30 {
        q.push_str(&format!(" fragment F{i} on Q {{ ...F{n} ...F{n} }}", n = i + 1));
    }
    // 2^30 expansions if walked naively; refused after a bounded number of steps.
    assert!(run(&q).unwrap_err().contains("more than"));
}

#[test]
fn fragment_cycles_do_not_loop() {
    assert!(run("{ ...A } fragment A on Q { ...B } fragment B on Q { ...A }").is_ok());
}

/// A ledger like the issue's: 2,000 releases of 100 observations, one dataset of 3
/// dimensions with up to 20 codes, figures with up to 3 versions.
fn extents() -> Extents {
    Extents {
        datasets: 1,
        releases: 2000,
        events: 2001,
        max_figures: 150_000,
        max_release_observations: 100,
        max_versions: 3,
        max_dimensions: 3,
        max_codes: 20,
        max_measures: 3,
    }
}

fn cost_of(query: &str, variables: serde_json::Value) -> u64 {
    let doc = parse_query(query).unwrap();
    let request = Request::new(query).variables(Variables::from_json(variables));
    cost(&doc, &request, &Shape::of_schema(), &extents(), 1000)
}

#[test]
fn counts_objects_multiplied_down_lists() {
    // The connection, 1000 nodes, 100 observations each.
    let one = "{ releases(first: 1000, after: \"0\") { nodes { observations { key period measure value } } } }";
    assert_eq!(cost_of(one, json!({})), 1 + 1000 + 1000 * 100);
    let eight: String = (0..8)
        .map(|i| format!("a{i}: releases(first: 1000) {{ nodes {{ observations {{ value }} }} }} "))
        .collect();
    assert_eq!(cost_of(&format!("{{ {eight} }}"), json!({})), 8 * (1 + 1000 + 100_000));
    // Scalars cost nothing; objects count once per parent.
    assert_eq!(cost_of("{ ledger { revision hash } __typename }", json!({})), 1);
    // Without `first`, the default page of 100; never more items than there are.
    assert_eq!(cost_of("{ releases { nodes { title } } }", json!({})), 1 + 100);
    assert_eq!(
        cost_of("{ events(first: 1000) { nodes { hash } } }", json!({})),
        1 + 1000
    );
    let small = Extents {
        releases: 7,
        ..extents()
    };
    let doc = parse_query("{ releases(first: 1000) { nodes { title } } }").unwrap();
    let request = Request::new("");
    assert_eq!(cost(&doc, &request, &Shape::of_schema(), &small, 1000), 1 + 7);
    // Edges and their nodes are objects each.
    assert_eq!(
        cost_of("{ observations(dataset: \"D\", first: 10) { edges { node { value versions { value } } } pageInfo { hasNextPage } } }", json!({})),
        1 + 10 + 10 + 10 * 3 + 1
    );
}

#[test]
fn counts_changes_by_their_page_and_the_largest_dataset() {
    let q = "{ changes(dataset: \"D\", from: { revision: 1 }, first: 1000) { nodes { key dimensions { code } release { title } } } }";
    // The connection, 1000 changes, each with its 3 dimensions and its release.
    assert_eq!(cost_of(q, json!({})), 1 + 1000 + 1000 * 3 + 1000);
    // Without `first`, the default page.
    let q = "{ changes(dataset: \"D\", from: { revision: 1 }) { nodes { key } } }";
    assert_eq!(cost_of(q, json!({})), 1 + 100);
}

#[test]
fn reads_page_sizes_from_variables_and_their_defaults() {
    let q = "query($n: Int = 5) { releases(first: $n) { nodes { observations { value } } } }";
    assert_eq!(cost_of(q, json!({})), 1 + 5 + 5 * 100);
    assert_eq!(cost_of(q, json!({"n": 20})), 1 + 20 + 20 * 100);
    assert_eq!(cost_of(q, json!({"n": null})), 1 + 100 + 100 * 100);
    // Above the page-size cap (which the resolver refuses) or not a number: a full page.
    assert_eq!(cost_of(q, json!({"n": 5000})), 1 + 1000 + 1000 * 100);
    assert_eq!(cost_of(q, json!({"n": "x"})), 1 + 1000 + 1000 * 100);
    assert_eq!(cost_of(q, json!({"n": -3})), 1);
}

#[test]
fn follows_fragments_and_the_chosen_operation() {
    let q = "query A { ...R } query B { ledger { revision } } fragment R on Query { releases(first: 10) { nodes { ... on Release { observations { value } } } } }";
    let doc = parse_query(q).unwrap();
    let shape = Shape::of_schema();
    let a = cost(&doc, &Request::new(q).operation_name("A"), &shape, &extents(), 1000);
    let b = cost(&doc, &Request::new(q).operation_name("B"), &shape, &extents(), 1000);
    assert_eq!((a, b), (1 + 10 + 10 * 100, 1));
    // Without a name, the costliest operation counts.
    assert_eq!(cost(&doc, &Request::new(q), &shape, &extents(), 1000), a);
}

#[test]
fn sizes_other_lists_by_the_ledger() {
    let q = "{ datasets { dimensions { codes { code } } measures } history(dataset: \"D\", key: \"K\", period: \"2025\") { value release { title } } }";
    assert_eq!(cost_of(q, json!({})), 1 + 3 + 3 * 20 + 3 + 3 + 3);
    let q = "{ breakdown(dataset: \"D\", dimension: \"X\", period: \"2025\") { total { value } items { key dimensions { label } } } }";
    assert_eq!(cost_of(q, json!({})), 1 + 1 + 20 + 20 * 3);
    let q = "{ revisionSummary(dataset: \"D\") { items { key } } }";
    assert_eq!(cost_of(q, json!({})), 1 + 1000);
}

/// No connection has more items than the ledger holds: a page of 1000 asked of a ledger of
/// 7 figures and 5 events counts 7 or 5 items, and so does the revision summary.
#[test]
fn pages_count_no_more_items_than_the_ledger_holds() {
    let small = Extents {
        max_figures: 7,
        events: 5,
        ..extents()
    };
    let cost_in = |q: &str| {
        cost(
            &parse_query(q).unwrap(),
            &Request::new(q),
            &Shape::of_schema(),
            &small,
            1000,
        )
    };
    for (q, items) in [
        ("{ observations(dataset: \"D\", first: 1000) { nodes { value } } }", 7),
        ("{ events(first: 1000) { nodes { hash } } }", 5),
        (
            "{ changes(dataset: \"D\", from: { revision: 1 }, first: 1000) { nodes { key } } }",
            7,
        ),
        ("{ revisionSummary(dataset: \"D\") { items { key } } }", 7),
    ] {
        assert_eq!(cost_in(q), 1 + items, "{q}");
    }
}

#[test]
fn introspection_has_a_bounded_cost() {
    let q = include_str!("../../../tests/abuse/introspection.graphql");
    let c = cost_of(q, json!({}));
    assert!(
        c > 1000 && c < Limits::default().max_cost,
        "GraphiQL's introspection query costs {c}"
    );
    // Nested `ofType`/`fields` cycles multiply like any other list.
    let deep = "{ __schema { types { fields { type { fields { type { fields { name } } } } } } } }";
    assert!(cost_of(deep, json!({})) > Limits::default().max_cost);
}

#[test]
fn standard_introspection_queries_pass_the_default_limits() {
    for q in [
        include_str!("../../../tests/abuse/introspection-graphql-js.graphql"),
        include_str!("../../../tests/abuse/introspection-graphql-js-all-options.graphql"),
        include_str!("../../../tests/abuse/introspection.graphql"),
    ] {
        let doc = async_graphql::parser::parse_query(q).unwrap();
        check(&doc, Limits::default()).unwrap();
        assert!(cost_of(q, json!({})) < Limits::default().max_cost);
    }
    // The depth limit still holds for data, and introspection has its own bound.
    let data = format!("{{ {}x{} }}", "a { ".repeat(12), " }".repeat(12));
    let e = check(&async_graphql::parser::parse_query(&data).unwrap(), Limits::default()).unwrap_err();
    assert!(e.message.contains("limit of 12"), "{}", e.message);
    let deep = format!(
        "{{ __schema {{ types {{ {}name{} }} }} }}",
        "ofType { ".repeat(14),
        " }".repeat(14)
    );
    let e = check(&async_graphql::parser::parse_query(&deep).unwrap(), Limits::default()).unwrap_err();
    assert!(e.message.contains("introspection"), "{}", e.message);
}

#[test]
fn caps_the_serialized_response() {
    let value = json!({"data": {"a": "x".repeat(100)}});
    let full = serde_json::to_vec(&value).unwrap();
    assert_eq!(to_json_capped(&value, full.len()).unwrap(), full);
    assert_eq!(
        to_json_capped(&value, full.len() - 1),
        Err(ResponseTooLarge { limit: full.len() - 1 })
    );
    let e = ResponseTooLarge { limit: 10 }.error();
    assert!(e.message.contains("10 bytes"), "{}", e.message);
}

fn bytes_of(query: &str, sizes: (u64, u64)) -> u64 {
    let doc = parse_query(query).unwrap();
    let request = Request::new(query);
    cost_and_bytes(&doc, &request, &Shape::of_schema(), &extents(), sizes, 1000).1
}

#[test]
fn bytes_count_large_texts_at_the_logs_largest() {
    let sizes = (750_000, 300);
    // A page of 1000 events' canonical texts: 1000 whole events.
    let canonical = bytes_of("{ events(first: 1000) { nodes { canonical } } }", sizes);
    assert!(canonical >= 1000 * 750_000, "{canonical}");
    assert!(canonical < 1000 * 750_000 + 100_000, "{canonical}");
    // The same through inclusion proofs of figures.
    let proofs = bytes_of(
        r#"{ observations(dataset: "D", first: 1000) { nodes { proof { canonical } } } }"#,
        sizes,
    );
    assert!(proofs >= 1000 * 750_000, "{proofs}");
    // Revisions alone are small; titles count at the longest title.
    let revisions = bytes_of("{ events(first: 1000) { nodes { revision } } }", sizes);
    assert!(revisions < 1000 * 64, "{revisions}");
    let titles = bytes_of("{ releases(first: 1000) { nodes { title } } }", sizes);
    assert!((1000 * 300..1000 * 400).contains(&titles), "{titles}");
    // Aliases multiply.
    let three = bytes_of(
        "{ a: events(first: 1000) { nodes { canonical } } b: events(first: 1000) { nodes { canonical } } c: events(first: 1000) { nodes { canonical } } }",
        sizes,
    );
    assert!(three >= 3 * canonical - 100, "{three} vs {canonical}");
}

#[test]
fn a_subscription_counts_the_bytes_of_its_largest_root_field() {
    let sizes = (750_000, 300);
    let one = bytes_of("subscription { releasePublished { release { title } } }", sizes);
    let three = bytes_of(
        "subscription { a: releasePublished { release { title } } b: releasePublished { release { title } } c: releasePublished { revision } }",
        sizes,
    );
    assert!(one > 300 && three <= one + 16, "{one} {three}");
}

#[test]
fn json_len_counts_escapes_and_quotes() {
    assert_eq!(json_len("abc"), 5);
    assert_eq!(json_len(r#"{"a":1}"#), 7 + 2 + 2);
    assert_eq!(json_len("\u{1}"), 6 + 2);
}

#[test]
fn response_bytes_fail_once_past_the_limit() {
    let counter = ResponseBytes::new(100);
    assert!(counter.charge(60).is_ok());
    assert!(counter.charge(40).is_ok());
    let e = counter.charge(1).unwrap_err();
    assert!(e.message.contains("100 bytes"), "{}", e.message);
    assert!(counter.charge(0).is_err(), "every charge after fails");
}

#[test]
fn variable_defaults_fill_only_the_operation_that_runs() {
    let defaults = |query: &str, operation: Option<&str>, sent: serde_json::Value| {
        let doc = parse_query(query).unwrap();
        let mut request = Request::new(query).variables(async_graphql::Variables::from_json(sent));
        if let Some(op) = operation {
            request = request.operation_name(op);
        }
        apply_variable_defaults(&doc, &mut request);
        request.variables.into_value().into_json().unwrap()
    };
    let one = "query($inc: Boolean = true, $n: Int = 3) { __typename }";
    assert_eq!(defaults(one, None, json!({})), json!({"inc": true, "n": 3}));
    // A variable sent, even as null, keeps its value.
    assert_eq!(defaults(one, None, json!({"inc": null})), json!({"inc": null, "n": 3}));
    let two = "query A($a: Int = 1) { __typename } query B($b: Int = 2) { __typename }";
    assert_eq!(defaults(two, Some("B"), json!({})), json!({"b": 2}));
    assert_eq!(defaults(two, Some("C"), json!({})), json!({}));
    // Without a name, a document of several operations does not run: nothing is filled in.
    assert_eq!(defaults(two, None, json!({})), json!({}));
}

/// The byte budget is for the dense, hostile documents: a full cache of queries of ordinary
/// size (a few hundred bytes, as a frontend sends) stays within it, so the entry limit binds
/// first; and each entry is charged for its key and its place in the map besides the
/// document.
#[test]
fn ordinary_queries_fill_the_cache_by_count_not_by_bytes() {
    assert!(CACHE_ENTRIES * document_charge(256) <= CACHE_BYTES);
    assert!(
        CACHE_ENTRIES * document_charge(512) > CACHE_BYTES,
        "the budget is not idle"
    );
    let entry = std::mem::size_of::<Arc<str>>() + std::mem::size_of::<Arc<ExecutableDocument>>() + 64;
    for len in [3, 100, MAX_QUERY] {
        assert!(document_charge(len) >= len * DOCUMENT_BYTES_PER_BYTE + entry, "{len}");
    }
}

/// A ledger with no release, in memory.
fn empty_ledger() -> Ledger {
    use crate::ledger::OpenOptions;
    use crate::store::{LogStore, MemoryStore};
    let store = Arc::new(MemoryStore::new()) as Arc<dyn LogStore>;
    Ledger::open(store, OpenOptions::default()).expect("ledger opens").0
}

/// A request exactly at `--max-cost` or `--max-response-bytes` runs; one unit less refuses it,
/// naming the bound it passed.
#[tokio::test]
async fn check_allows_a_request_at_the_limits_themselves() {
    let ledger = empty_ledger();
    let request = Request::new("{ ledger { revision } releases(first: 5) { nodes { id } } }");
    let probe = QueryLimits::new(Limits::default(), ledger.clone());
    let (cost, bytes) = probe.estimate(&probe.document(&request.query).unwrap(), &request);
    assert!(cost > 1 && bytes > 1, "{cost} {bytes}");
    let at = |max_cost: u64, max_bytes: u64| {
        let limits = Limits {
            max_cost,
            max_response_bytes: max_bytes as usize,
            ..Limits::default()
        };
        let checked = QueryLimits::new(limits, ledger.clone()).check(&request);
        checked.map(|_| ()).map_err(|e| e.message)
    };
    assert_eq!(at(cost, bytes), Ok(()));
    let e = at(cost - 1, bytes).unwrap_err();
    assert!(e.contains(&format!("up to {cost} objects")), "{e}");
    let e = at(cost, bytes - 1).unwrap_err();
    assert!(e.contains(&format!("up to {bytes} bytes")), "{e}");
}

/// `prepare` gives a query or a mutation one response budget, and leaves a subscription's
/// events to be capped one by one: by the operation that runs, when a document has several.
#[tokio::test]
async fn prepare_budgets_every_operation_but_a_subscription() {
    let ledger = empty_ledger();
    let queries = QueryLimits::new(Limits::default(), ledger);
    let budgeted = |query: &str, operation: Option<&str>| {
        let mut request = Request::new(query);
        if let Some(op) = operation {
            request = request.operation_name(op);
        }
        let (request, _) = queries
            .prepare(request)
            .unwrap_or_else(|e| panic!("{query}: {}", e.message));
        request.data.contains_key(&std::any::TypeId::of::<ResponseBytes>())
    };
    assert!(budgeted("{ ledger { revision } }", None));
    assert!(!budgeted("subscription { releasePublished { revision } }", None));
    let both = "query Q { ledger { revision } } subscription S { releasePublished { revision } }";
    assert!(budgeted(both, Some("Q")));
    assert!(!budgeted(both, Some("S")));
}

/// Until the scan reaches the head, an event counts as the largest release's figures at 160
/// bytes each plus 64 KiB; once it has, as the largest event it found.
#[test]
fn events_not_yet_scanned_count_at_a_guess_from_the_largest_release() {
    let sizes = LogSizes::default();
    let extents = extents();
    sizes.event.store(1_000, Ordering::Release);
    assert_eq!(sizes.event(&extents), 100 * 160 + 64 * 1024);
    sizes.through.store(extents.events, Ordering::Release);
    assert_eq!(sizes.event(&extents), 1_000);
}

/// The document cache keeps queries up to `MAX_QUERY` bytes, and parses longer ones each time.
#[tokio::test]
async fn the_document_cache_keeps_only_queries_it_can_key() {
    let queries = QueryLimits::new(Limits::default(), empty_ledger());
    let short = "{ ledger { revision } }";
    let same = |query: &str| Arc::ptr_eq(&queries.document(query).unwrap(), &queries.document(query).unwrap());
    assert!(same(short));
    let long = format!("{short}{}", " ".repeat(MAX_QUERY - short.len()));
    assert!(same(&long));
    assert!(!same(&format!("{long} ")));
}

/// A key counts its name or alias and four bytes (quotes, colon, comma); introspection
/// counts no bytes at all (its size is bounded by the object count).
#[test]
fn keys_count_their_length_and_introspection_counts_no_bytes() {
    let sizes = (1_000, 100);
    let base = bytes_of("{ ledger { revision } }", sizes);
    assert_eq!(bytes_of("{ ledger { r: revision } }", sizes), base - 7);
    assert_eq!(bytes_of("{ ledger { rr: revision } }", sizes), base - 6);
    // A number counts 20 bytes, a text without a size of its own 48 (keys: 12 and 14).
    assert_eq!(bytes_of("{ ledger { __typename } }", sizes), base - 12 - 20 + 14 + 48);
    for introspection in [
        "{ ledger { revision } __schema { types { name fields { name } } } }",
        r#"{ ledger { revision } __type(name: "Query") { name fields { name } } }"#,
    ] {
        assert_eq!(bytes_of(introspection, sizes), base, "{introspection}");
    }
}

/// Introspection lists are sized with what the SDL leaves out: the introspection types and
/// built-in scalars, the built-in directives, `__Type`'s fields and `__DirectiveLocation`'s
/// values; past those, by the SDL's largest.
#[test]
fn introspection_lists_count_the_built_ins_the_sdl_leaves_out() {
    let small = Shape::from_sdl("type Query { a: Int }").unwrap().sizes;
    assert_eq!(
        (
            small.types,
            small.directives,
            small.fields,
            small.enum_values,
            small.args
        ),
        (1 + 13, 6, 11, 19, 1)
    );
    let fields: String = (0..12).map(|i| format!("f{i}: Int ")).collect();
    let values: String = (0..20).map(|i| format!("V{i} ")).collect();
    let sdl = format!("directive @d(a: Int, b: Int) on FIELD type Query {{ {fields} }} enum E {{ {values} }}");
    let large = Shape::from_sdl(&sdl).unwrap().sizes;
    assert_eq!(
        (
            large.types,
            large.directives,
            large.fields,
            large.enum_values,
            large.args
        ),
        (2 + 13, 7, 12, 20, 2)
    );
    let sdl = "interface I { x: Int } type A implements I { x: Int } type B implements I { x: Int } \
               type Query implements I { x: Int }";
    let implemented = Shape::from_sdl(sdl).unwrap().sizes;
    assert_eq!((implemented.interfaces, implemented.possible_types), (1, 3));
}

/// A ledger in memory with a dataset and `n` releases, titled with 400, 401, … `t`s.
async fn published_ledger(n: usize) -> Ledger {
    let ledger = empty_ledger();
    ledger
        .define_dataset(crate::generate::dataset(), "test")
        .await
        .expect("dataset defined");
    for (i, mut draft) in crate::generate::Generator::new(n, 20, 1).enumerate() {
        draft.title = "t".repeat(400 + i);
        ledger.publish(draft, None, "test").await.expect("release published");
    }
    ledger
}

/// Once events are recorded, a refresh scans the log on a thread of its own: the estimate then
/// counts an event at the largest event recorded, and a text at the longest title, source or
/// dataset text, releases included. It starts no scan while one runs, nor once the scan has
/// reached the head.
#[tokio::test]
async fn a_refresh_scans_once_at_a_time_and_learns_the_logs_largest_event_and_longest_text() {
    let ledger = published_ledger(3).await;
    let head = ledger.read().head().revision;
    let sizes = Arc::new(LogSizes::default());
    let scans = || sizes.scans.load(Ordering::Relaxed);
    sizes.scanning.store(true, Ordering::Release);
    sizes.refresh(&ledger, head);
    assert_eq!(scans(), 0, "a second scan started while one runs");
    sizes.scanning.store(false, Ordering::Release);
    sizes.refresh(&ledger, head);
    assert_eq!(scans(), 1);
    // The deadline only guards against a scan that never ends.
    for _ in 0..6000 {
        if sizes.through.load(Ordering::Acquire) >= head && !sizes.scanning.load(Ordering::Acquire) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert_eq!(sizes.through.load(Ordering::Acquire), head);
    sizes.refresh(&ledger, head);
    assert_eq!(scans(), 1, "a scan started at the head");
    assert!(!sizes.scanning.load(Ordering::Acquire));
    let events = ledger.audit_events(0, 100).expect("events read");
    let largest = events.iter().map(|a| json_len(&a.canonical)).max().unwrap();
    let p = ledger.read();
    assert_eq!(sizes.event(&p.extents()), largest);
    assert_eq!(sizes.text(&p), json_len(&"t".repeat(402)));
}

/// The resolvers of large texts charge them to the request's `ResponseBytes`: events'
/// `canonical` texts pass a budget of exactly their JSON size, and fail one byte under it,
/// naming the limit.
#[tokio::test]
async fn large_texts_are_charged_to_the_response_budget_as_they_resolve() {
    let ledger = published_ledger(2).await;
    let events = ledger.audit_events(0, 100).expect("events read");
    let total: u64 = events.iter().map(|a| json_len(&a.canonical)).sum();
    let schema = crate::graphql::build_schema(ledger, Limits::default());
    let query = "{ events(first: 100) { edges { node { canonical } } } }";
    let run = |budget: u64| {
        let request = Request::new(query).data(ResponseBytes::new(budget as usize));
        schema.execute(request)
    };
    let within = run(total).await;
    assert!(within.errors.is_empty(), "{:?}", within.errors);
    let past = run(total - 1).await;
    let e = past.errors.first().expect("an error one byte under the texts' size");
    assert!(e.message.contains(&format!("{} bytes", total - 1)), "{}", e.message);
}
