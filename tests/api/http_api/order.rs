//! Response maps follow the selection set's order, on every path: async-graphql's, the fast
//! path's and the response cache's, over HTTP and WebSocket. Queries are generated from a
//! seed over the root fields and their objects, with aliases, repeated (merged) response keys,
//! inline and named fragments, and `@skip`/`@include`; each response's keys are compared with
//! the order the generator wrote them in.

use std::fmt::Write as _;

use futures_util::StreamExt;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use serde::de::{Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::json;
use tokio_tungstenite::tungstenite::Message;

use super::support::ws::{self, RECV};
use super::support::*;

/// A JSON value with its objects' keys in the order they were written (serde_json's `Value`
/// sorts them unless its `preserve_order` feature is on, which this crate does not turn on).
#[derive(Debug)]
enum Ordered {
    Other,
    List(Vec<Ordered>),
    Object(Vec<(String, Ordered)>),
}

impl<'de> Deserialize<'de> for Ordered {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Ordered;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("JSON")
            }
            fn visit_bool<E>(self, _: bool) -> Result<Ordered, E> {
                Ok(Ordered::Other)
            }
            fn visit_i64<E>(self, _: i64) -> Result<Ordered, E> {
                Ok(Ordered::Other)
            }
            fn visit_u64<E>(self, _: u64) -> Result<Ordered, E> {
                Ok(Ordered::Other)
            }
            fn visit_f64<E>(self, _: f64) -> Result<Ordered, E> {
                Ok(Ordered::Other)
            }
            fn visit_str<E>(self, _: &str) -> Result<Ordered, E> {
                Ok(Ordered::Other)
            }
            fn visit_unit<E>(self) -> Result<Ordered, E> {
                Ok(Ordered::Other)
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Ordered, A::Error> {
                let mut items = Vec::new();
                while let Some(item) = seq.next_element()? {
                    items.push(item);
                }
                Ok(Ordered::List(items))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Ordered, A::Error> {
                let mut entries = Vec::new();
                while let Some(entry) = map.next_entry::<String, Ordered>()? {
                    entries.push(entry);
                }
                Ok(Ordered::Object(entries))
            }
        }
        d.deserialize_any(V)
    }
}

/// What the generator expects of a response: an object's keys in order (a list holds such
/// objects item by item), or a leaf.
#[derive(Debug, Clone)]
enum Shape {
    Leaf,
    Object(Vec<(String, Shape)>),
}

impl Shape {
    /// Adds the fields of `other` (selected under the same response key) as GraphQL merges
    /// them: a key keeps its first place, its sub-selections are merged.
    fn merge(&mut self, other: Shape) {
        let (Shape::Object(mine), Shape::Object(theirs)) = (self, other) else {
            return;
        };
        for (key, shape) in theirs {
            match mine.iter_mut().find(|(k, _)| *k == key) {
                Some((_, s)) => s.merge(shape),
                None => mine.push((key, shape)),
            }
        }
    }
}

/// Checks `got` against `want` (null answers an object too); the path names the place.
fn check(got: &Ordered, want: &Shape, path: &str) -> Result<(), String> {
    match (got, want) {
        (Ordered::List(items), _) => {
            for (i, item) in items.iter().enumerate() {
                check(item, want, &format!("{path}[{i}]"))?;
            }
            Ok(())
        }
        (Ordered::Object(entries), Shape::Object(fields)) => {
            let have: Vec<&str> = entries.iter().map(|(k, _)| k.as_str()).collect();
            let wanted: Vec<&str> = fields.iter().map(|(k, _)| k.as_str()).collect();
            if have != wanted {
                return Err(format!("at {path}: keys {have:?}, the selection set orders {wanted:?}"));
            }
            for ((k, v), (_, s)) in entries.iter().zip(fields) {
                check(v, s, &format!("{path}.{k}"))?;
            }
            Ok(())
        }
        (Ordered::Other, _) => Ok(()),
        (Ordered::Object(_), Shape::Leaf) => Err(format!("at {path}: an object where a leaf was selected")),
    }
}

/// A field the generator may select: its name, arguments and the type of its object (if it
/// has one).
struct FieldDef {
    name: &'static str,
    args: &'static [&'static str],
    object: Option<&'static str>,
}

const fn f(name: &'static str, args: &'static [&'static str], object: Option<&'static str>) -> FieldDef {
    FieldDef { name, args, object }
}

/// The root fields the fast path covers, then the others.
const FAST_ROOTS: &[FieldDef] = &[
    f(
        "observations",
        &[
            "dataset: \"KR_KNOWLEDGE_SERVICES\", first: 40",
            "dataset: \"KR_KNOWLEDGE_SERVICES\", first: 7",
        ],
        Some("ObservationConnection"),
    ),
    f(
        "breakdown",
        &[
            "dataset: \"KR_KNOWLEDGE_SERVICES\", dimension: \"SERVICE_TYPE\", period: \"2025-S1\"",
            "dataset: \"KR_KNOWLEDGE_SERVICES\", dimension: \"INDUSTRY\", period: \"2025-S1\"",
            "dataset: \"KR_KNOWLEDGE_SERVICES\", dimension: \"COUNTERPART\", period: \"2025-S1\", asOf: { revision: 2 }",
        ],
        Some("Breakdown"),
    ),
    f(
        "observation",
        &["dataset: \"KR_KNOWLEDGE_SERVICES\", key: \"IPR._T._T\", period: \"2025-S1\""],
        Some("Observation"),
    ),
    f(
        "history",
        &["dataset: \"KR_KNOWLEDGE_SERVICES\", key: \"_T._T._T\", period: \"2025-S1\""],
        Some("ObservationVersion"),
    ),
    f("__typename", &[""], None),
];

const OTHER_ROOTS: &[FieldDef] = &[
    f("ledger", &[""], Some("LedgerHead")),
    f("dataset", &["id: \"KR_KNOWLEDGE_SERVICES\""], Some("Dataset")),
    f("datasets", &[""], Some("Dataset")),
];

/// The fields of each object type the generator selects from.
fn fields_of(ty: &str) -> &'static [FieldDef] {
    const OBSERVATION: &[FieldDef] = &[
        f("key", &[""], None),
        f("value", &[""], None),
        f("period", &[""], None),
        f("status", &[""], None),
        f("revision", &[""], None),
        f("versionCount", &[""], None),
        f("dimensions", &[""], Some("DimensionValue")),
        f("release", &[""], Some("Release")),
    ];
    const OBSERVATION_CONNECTION: &[FieldDef] = &[
        f("totalCount", &[""], None),
        f("nodes", &[""], Some("Observation")),
        f("edges", &[""], Some("ObservationEdge")),
        f("pageInfo", &[""], Some("PageInfo")),
    ];
    const OBSERVATION_EDGE: &[FieldDef] = &[f("cursor", &[""], None), f("node", &[""], Some("Observation"))];
    const PAGE_INFO: &[FieldDef] = &[f("hasNextPage", &[""], None), f("endCursor", &[""], None)];
    const BREAKDOWN: &[FieldDef] = &[
        f("sumOfItems", &[""], None),
        f("residual", &[""], None),
        f("dimension", &[""], None),
        f("asOfRevision", &[""], None),
        f("items", &[""], Some("Observation")),
        f("total", &[""], Some("Observation")),
    ];
    const OBSERVATION_VERSION: &[FieldDef] = &[
        f("revision", &[""], None),
        f("value", &[""], None),
        f("delta", &[""], None),
        f("status", &[""], None),
        f("release", &[""], Some("Release")),
    ];
    const DIMENSION_VALUE: &[FieldDef] = &[
        f("dimension", &[""], None),
        f("code", &[""], None),
        f("label", &[""], None),
    ];
    const RELEASE: &[FieldDef] = &[f("title", &[""], None), f("actor", &[""], None), f("id", &[""], None)];
    const LEDGER_HEAD: &[FieldDef] = &[
        f("revision", &[""], None),
        f("hash", &[""], None),
        f("eventCount", &[""], None),
    ];
    const DATASET: &[FieldDef] = &[f("id", &[""], None), f("name", &[""], None), f("unit", &[""], None)];
    match ty {
        "ObservationConnection" => OBSERVATION_CONNECTION,
        "ObservationEdge" => OBSERVATION_EDGE,
        "PageInfo" => PAGE_INFO,
        "Breakdown" => BREAKDOWN,
        "Observation" => OBSERVATION,
        "ObservationVersion" => OBSERVATION_VERSION,
        "DimensionValue" => DIMENSION_VALUE,
        "Release" => RELEASE,
        "LedgerHead" => LEDGER_HEAD,
        "Dataset" => DATASET,
        other => panic!("no fields listed for {other}"),
    }
}

const ALIASES: &[&str] = &["a", "b", "c", "d", "m", "zz", "z9", "x_1", "value", "key"];

/// Generates one query: its text and the shape of its answer.
struct Gen {
    rng: StdRng,
    /// Named fragments, written after the operation.
    fragments: String,
    next_fragment: usize,
    /// Only fields (and no merges) the fast path compiles.
    fast: bool,
}

/// A selection written so far at one level: its response key and field (name and
/// arguments), so that a repeat of the key is a valid merge.
struct Written {
    key: String,
    name: &'static str,
    args: &'static str,
}

impl Gen {
    fn query(&mut self) -> (String, Shape) {
        self.fragments.clear();
        let roots: Vec<&FieldDef> = if self.fast {
            FAST_ROOTS.iter().collect()
        } else {
            FAST_ROOTS.iter().chain(OTHER_ROOTS).collect()
        };
        let (body, shape) = self.selection(&roots, "Query", 0);
        let mut text = format!("query Ordered {{ {body} }}");
        text.push_str(&self.fragments);
        (text, shape)
    }

    /// A selection set on `ty` from `fields`: its text and the shape of its answer.
    fn selection(&mut self, fields: &[&FieldDef], ty: &str, depth: usize) -> (String, Shape) {
        let count = self.rng.gen_range(1..=if depth == 0 { 5 } else { 3 });
        // Within the default limits on aliases, depth and cost: objects three deep at most.
        let leaves: Vec<&FieldDef> = fields.iter().copied().filter(|d| d.object.is_none()).collect();
        let fields = if depth >= 2 { &leaves[..] } else { fields };
        let mut parts: Vec<(String, Option<Shape>)> = Vec::new();
        let mut written: Vec<Written> = Vec::new();
        for _ in 0..count {
            let def = *fields.choose(&mut self.rng).unwrap();
            let args = *def.args.choose(&mut self.rng).unwrap();
            // A repeat of an earlier key with the same field merges; any other key is new.
            let repeat = (!self.fast && self.rng.gen_bool(0.2))
                .then(|| written.iter().find(|w| w.name == def.name && w.args == args))
                .flatten();
            let key = match repeat {
                Some(w) => w.key.clone(),
                None => {
                    let mut key = def.name.to_owned();
                    if def.name != "__typename" && self.rng.gen_bool(0.4) {
                        key = (*ALIASES.choose(&mut self.rng).unwrap()).to_owned();
                    }
                    if written.iter().any(|w| w.key == key) {
                        // Taken by another field: a fresh alias, unique by construction.
                        key = format!("{}{}", def.name.trim_start_matches('_'), written.len());
                    }
                    written.push(Written {
                        key: key.clone(),
                        name: def.name,
                        args,
                    });
                    key
                }
            };
            let mut text = if key == def.name {
                def.name.to_owned()
            } else {
                format!("{key}: {}", def.name)
            };
            if !args.is_empty() {
                write!(text, "({args})").unwrap();
            }
            // Some selections are left out by a condition, which must not leave a trace.
            let included = match self.rng.gen_range(0..10) {
                0 => {
                    text.push_str(" @skip(if: true)");
                    false
                }
                1 => {
                    text.push_str(" @include(if: false)");
                    false
                }
                2 => {
                    text.push_str(" @include(if: true)");
                    true
                }
                _ => true,
            };
            let shape = match def.object {
                Some(object) => {
                    let inner: Vec<&FieldDef> = fields_of(object).iter().collect();
                    let (sub, shape) = self.selection(&inner, object, depth + 1);
                    write!(text, " {{ {sub} }}").unwrap();
                    shape
                }
                None => Shape::Leaf,
            };
            parts.push((text, included.then_some(Shape::Object(vec![(key, shape)]))));
        }
        // Wrap runs of selections in fragments: expanded in place, they change no order.
        let mut out = String::new();
        let mut shape = Shape::Object(Vec::new());
        let mut i = 0;
        while i < parts.len() {
            let run = self.rng.gen_range(1..=parts.len() - i);
            let texts: Vec<&str> = parts[i..i + run].iter().map(|(t, _)| t.as_str()).collect();
            let inner = texts.join(" ");
            match self.rng.gen_range(0..6) {
                0 => write!(out, " ... {{ {inner} }}").unwrap(),
                1 => write!(out, " ... on {ty} {{ {inner} }}").unwrap(),
                2 => {
                    let name = format!("F{}", self.next_fragment);
                    self.next_fragment += 1;
                    write!(self.fragments, " fragment {name} on {ty} {{ {inner} }}").unwrap();
                    write!(out, " ...{name}").unwrap();
                }
                _ => write!(out, " {inner}").unwrap(),
            }
            for (_, s) in &parts[i..i + run] {
                if let Some(s) = s {
                    shape.merge(s.clone());
                }
            }
            i += run;
        }
        if matches!(&shape, Shape::Object(fields) if fields.is_empty()) {
            // Everything was left out: add one plain field so the object is not empty.
            let def = fields.iter().find(|d| d.object.is_none()).expect("a leaf field");
            let args = def.args[0];
            let key = format!("{}_kept", def.name.trim_start_matches('_'));
            if args.is_empty() {
                write!(out, " {key}: {}", def.name).unwrap();
            } else {
                write!(out, " {key}: {}({args})", def.name).unwrap();
            }
            shape.merge(Shape::Object(vec![(key, Shape::Leaf)]));
        }
        (out, shape)
    }
}

/// The body of a POST of `query`, and its keys checked against `want`.
async fn post_checked(app: &TestApp, query: &str, want: &Shape, what: &str) {
    let body = app
        .client
        .post(&app.url)
        .header("content-type", "application/json")
        .json(&json!({ "query": query }))
        .send()
        .await
        .expect("request")
        .text()
        .await
        .expect("body");
    assert!(!body.contains("\"errors\""), "{what}: errors for {query}: {body}");
    let got: Ordered = serde_json::from_str(&body).expect("JSON");
    let Ordered::Object(top) = &got else {
        panic!("{what}: not an object: {body}")
    };
    let data = &top.iter().find(|(k, _)| k == "data").expect("data").1;
    if let Err(e) = check(data, want, "data") {
        panic!("{what}: {e}\nquery: {query}\nresponse: {body}");
    }
}

/// The value of a counter (`name` with its `_total` sample) in `/metrics`.
async fn counter(app: &TestApp, name: &str) -> f64 {
    let text = app.metrics().await;
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{name}_total ")))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {name}_total in {text}"))
}

const QUERIES: usize = 40;

fn generator(seed: u64, fast: bool) -> Gen {
    Gen {
        rng: StdRng::seed_from_u64(seed),
        fragments: String::new(),
        next_fragment: 0,
        fast,
    }
}

/// Every generated query, sent twice to a server with `configure`: the first answer comes
/// from async-graphql, the second from the fast path or the cache when they are on.
async fn every_answer_is_ordered(configure: impl FnOnce(&mut tradeledger::http::ServerConfig), what: &str) -> TestApp {
    let app = spawn_app_with(configure, true).await;
    for (seed, fast) in [(0x5e1ec7, false), (0x0dde4, true)] {
        let mut g = generator(seed, fast);
        for n in 0..QUERIES {
            let (query, want) = g.query();
            post_checked(&app, &query, &want, &format!("{what}, seed {seed:#x} query {n}, first")).await;
            post_checked(&app, &query, &want, &format!("{what}, seed {seed:#x} query {n}, again")).await;
        }
    }
    app
}

/// async-graphql alone (no fast path, no cache) answers in the selection set's order.
#[tokio::test]
async fn responses_follow_the_selection_set_without_fast_path_or_cache() {
    every_answer_is_ordered(
        |c| {
            c.limits.query_plans = 0;
            c.response_cache_entries = 0;
        },
        "async-graphql",
    )
    .await;
}

/// The fast path (the second answer to a query it covers) answers in the same order.
#[tokio::test]
async fn responses_follow_the_selection_set_on_the_fast_path() {
    let app = every_answer_is_ordered(|c| c.response_cache_entries = 0, "fast path").await;
    assert!(
        counter(&app, "tradeledger_graphql_fast_path_answers").await >= 10.0,
        "the fast path answered the repeats"
    );
}

/// The response cache (warm for every second answer) keeps the order.
#[tokio::test]
async fn responses_follow_the_selection_set_from_the_cache() {
    let app = every_answer_is_ordered(|c| c.limits.query_plans = 0, "cache").await;
    assert!(
        counter(&app, "tradeledger_response_cache_hits").await >= QUERIES as f64,
        "the cache answered the repeats"
    );
}

/// Over WebSocket, a query's `next` payload and a subscription's events are ordered too.
#[tokio::test]
async fn websocket_results_follow_the_selection_set() {
    let app = spawn_app_with(|c| c.limits.query_plans = 0, true).await;
    let mut socket = ws::connect(&app).await;
    ws::send(&mut socket, json!({ "type": "connection_init" })).await;
    assert_eq!(ws::recv(&mut socket).await["type"], "connection_ack");
    let mut g = generator(0x3e55, false);
    let mut operations: Vec<(String, Shape)> = (0..QUERIES / 2).map(|_| g.query()).collect();
    operations.push((
        "subscription { releasePublished(afterRevision: 0) { zz: revision release { title id status } a: revision } }"
            .to_owned(),
        Shape::Object(vec![(
            "releasePublished".into(),
            Shape::Object(vec![
                ("zz".into(), Shape::Leaf),
                (
                    "release".into(),
                    Shape::Object(vec![
                        ("title".into(), Shape::Leaf),
                        ("id".into(), Shape::Leaf),
                        ("status".into(), Shape::Leaf),
                    ]),
                ),
                ("a".into(), Shape::Leaf),
            ]),
        )]),
    ));
    for (n, (query, want)) in operations.iter().enumerate() {
        let id = n.to_string();
        let events = if query.starts_with("subscription") { 2 } else { 1 };
        ws::send(
            &mut socket,
            json!({ "id": id, "type": "subscribe", "payload": { "query": query } }),
        )
        .await;
        for _ in 0..events {
            let text = loop {
                let frame = tokio::time::timeout(RECV, socket.next())
                    .await
                    .expect("a frame in time")
                    .expect("open")
                    .expect("a frame");
                if let Message::Text(t) = frame {
                    let v: serde_json::Value = serde_json::from_str(t.as_str()).unwrap();
                    if !ws::is_keepalive(&v) {
                        break t.to_string();
                    }
                }
            };
            assert!(
                text.contains("\"type\":\"next\""),
                "operation {n}: {text}\nquery: {query}"
            );
            assert!(!text.contains("\"errors\""), "operation {n}: {text}\nquery: {query}");
            let Ordered::Object(message) = serde_json::from_str(&text).unwrap() else {
                unreachable!()
            };
            let Some((_, Ordered::Object(payload))) = message.iter().find(|(k, _)| k == "payload") else {
                panic!("no payload in {text}")
            };
            let data = &payload.iter().find(|(k, _)| k == "data").expect("data").1;
            if let Err(e) = check(data, want, "data") {
                panic!("operation {n}: {e}\nquery: {query}\nmessage: {text}");
            }
        }
        if events > 1 {
            ws::send(&mut socket, json!({ "id": id, "type": "complete" })).await;
        } else {
            let done = ws::recv(&mut socket).await;
            assert_eq!(done["type"], "complete", "{done}");
        }
    }
}
