//! The differential property test: random queries over the schema subset the plan
//! covers (and a little beyond), both executors, byte-identical answers.

use std::sync::Arc;

use async_graphql::{Request, Variables};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use serde_json::{json, Value as Json};

use super::Plans;
use crate::graphql::fields::{graphql_name, Scalar};
use crate::graphql::types::{DimensionValue, Observation, ObservationVersion, Release};

thread_local! {
    /// The declared field (Rust name) the fast path writes wrong on this thread, to show
    /// that the differential test catches it.
    pub(super) static PERTURBED: std::cell::Cell<Option<&'static str>> = const { std::cell::Cell::new(None) };
}
use crate::graphql::{add_codes, build_schema, to_json_capped, AppSchema, Limits, QueryLimits};
use crate::ledger::{Ledger, OpenOptions};
use crate::store::{LogStore, MemoryStore};

struct Env {
    ledger: Ledger,
    schema: AppSchema,
    queries: QueryLimits,
    limits: Limits,
    releases: Vec<String>,
    head: u64,
}

async fn env() -> Env {
    let store = Arc::new(MemoryStore::new()) as Arc<dyn LogStore>;
    let (ledger, _) = Ledger::open(store, OpenOptions::default()).expect("ledger opens");
    ledger
        .define_dataset(crate::generate::dataset(), "test")
        .await
        .expect("dataset defined");
    for draft in crate::generate::Generator::new(14, 60, 7) {
        ledger.publish(draft, None, "test").await.expect("release published");
    }
    let limits = Limits {
        max_page_size: 50,
        ..Limits::default()
    };
    let p = ledger.read();
    let releases = p.releases().iter().map(|r| r.id.to_string()).collect();
    let head = p.head().revision;
    drop(p);
    Env {
        schema: build_schema(ledger.clone(), limits),
        queries: QueryLimits::new(limits, ledger.clone()),
        ledger,
        limits,
        releases,
        head,
    }
}

/// What builds a field's sub-selection, if it has one.
type Sub<G> = Option<fn(&mut G) -> String>;

/// A variable of the generated operation.
struct Var {
    name: String,
    ty: &'static str,
    /// What `variables` holds for it; `None` leaves it out.
    sent: Option<Json>,
    /// The value intended (none left out or null).
    intended: Json,
    /// The default in its definition (a literal), if any.
    default: Option<String>,
}

/// Builds one random query text and its variables.
struct Gen<'a> {
    rng: StdRng,
    env: &'a Env,
    vars: Vec<Var>,
    fragments: Vec<String>,
    aliases: usize,
}

impl Gen<'_> {
    fn chance(&mut self, p: f64) -> bool {
        self.rng.gen_bool(p)
    }

    fn pick<T: Clone>(&mut self, xs: &[T]) -> T {
        xs[self.rng.gen_range(0..xs.len())].clone()
    }

    /// A literal, or (sometimes) a variable of type `ty` holding `value`.
    fn value(&mut self, ty: &'static str, literal: String, value: Json) -> String {
        if self.chance(0.35) {
            let default = self.chance(0.3);
            self.variable(ty, literal, value, default)
        } else {
            literal
        }
    }

    /// A variable of type `ty` holding `value` (`literal` in GraphQL), with `literal` as
    /// its default if `default` (and then mostly left out of `variables`, so that the
    /// default applies); now and then null, or missing.
    fn variable(&mut self, ty: &'static str, literal: String, value: Json, default: bool) -> String {
        let name = format!("v{}", self.vars.len());
        let default = default.then_some(literal);
        let sent = match self.rng.gen_range(0..30) {
            0 => Some(Json::Null),
            1 => None,
            2..=17 if default.is_some() => None,
            _ => Some(value.clone()),
        };
        self.vars.push(Var {
            name: name.clone(),
            ty,
            sent,
            intended: value,
            default,
        });
        format!("${name}")
    }

    fn string(&mut self, ty: &'static str, s: &str) -> String {
        let literal = serde_json::to_string(s).expect("strings serialize");
        self.value(ty, literal, json!(s))
    }

    fn int(&mut self, ty: &'static str, n: i64) -> String {
        self.value(ty, n.to_string(), json!(n))
    }

    fn period(&mut self) -> String {
        let p = match self.rng.gen_range(0..40) {
            0 => "1990".to_owned(),
            1 => "1990-13".to_owned(),
            2 => "junk".to_owned(),
            _ => crate::generate::period(self.rng.gen_range(0..16)).to_string(),
        };
        self.string("Period!", &p)
    }

    fn key_text(&mut self) -> String {
        match self.rng.gen_range(0..24) {
            0 => "ZZ._T._T".to_owned(),
            1 => "_T._T".to_owned(),
            _ => {
                let keys = crate::generate::keys(&crate::generate::dataset());
                let i = self.rng.gen_range(0..25);
                keys[i].clone()
            }
        }
    }

    fn dataset(&mut self) -> String {
        let id = if self.chance(0.02) { "NOPE" } else { "SYNTHETIC_TRADE" };
        self.string("ID!", id)
    }

    fn measure(&mut self) -> Option<String> {
        match self.rng.gen_range(0..20) {
            0..=11 => None,
            12..=16 => Some(self.string("String!", "BAL")),
            17 | 18 => Some(self.string("String!", "CRE")),
            _ => Some(self.string("String!", "XXX")),
        }
    }

    /// A whole input object as one variable of type `ty` (nullable): its JSON value, now
    /// and then with a field the type does not have.
    fn object_variable(&mut self, ty: &'static str, mut value: Json) -> String {
        if self.chance(0.08) {
            value["nope"] = json!(1);
        }
        let name = format!("v{}", self.vars.len());
        let sent = match self.rng.gen_range(0..20) {
            0 => Some(Json::Null),
            1 => None,
            _ => Some(value.clone()),
        };
        self.vars.push(Var {
            name: name.clone(),
            ty,
            sent,
            intended: value,
            default: None,
        });
        format!("${name}")
    }

    fn as_of(&mut self) -> Option<String> {
        if self.chance(0.25) {
            let value = match self.rng.gen_range(0..12) {
                0..=3 => json!({"revision": self.rng.gen_range(-1..self.env.head as i64 + 3)}),
                4..=6 => {
                    let releases = self.env.releases.clone();
                    json!({"release": self.pick(&releases)})
                }
                7 | 8 => json!({"publishedAt": self.pick(&["1990-01-01T00:00:00Z", "1990-06-20T12:00:00+02:00"])}),
                9 => json!({"revision": "three"}),
                10 => json!({"revision": 3_000_000_000i64}),
                11 if self.chance(0.5) => {
                    json!({"knownAt": self.pick(&["1990-01-01T00:00:00Z", "2100-01-01T00:00:00Z"]),
                           "publishedAt": self.pick(&["1990-01-01T00:00:00Z", "1990-06-20T12:00:00+02:00"])})
                }
                _ => json!({"revision": 2, "publishedAt": "1990-01-01T00:00:00Z"}),
            };
            return Some(self.object_variable("AsOf", value));
        }
        Some(match self.rng.gen_range(0..10) {
            0..=4 => return None,
            5 | 6 => {
                let r = self.rng.gen_range(-1..self.env.head as i64 + 3);
                format!("{{revision: {}}}", self.int("Int", r))
            }
            7 => {
                let id = if self.chance(0.9) {
                    let releases = self.env.releases.clone();
                    self.pick(&releases)
                } else {
                    "00000000-0000-0000-0000-000000000001".to_owned()
                };
                format!("{{release: {}}}", self.string("UUID", &id))
            }
            8 => {
                let t = self.pick(&[
                    "1990-01-01T00:00:00Z",
                    "1990-06-20T12:00:00+02:00",
                    "2030-01-01T00:00:00Z",
                ]);
                if self.chance(0.3) {
                    let k = self.pick(&["1990-01-01T00:00:00Z", "2100-01-01T00:00:00Z"]);
                    format!(
                        "{{publishedAt: {}, knownAt: {}}}",
                        self.string("DateTime", t),
                        self.string("DateTime", k)
                    )
                } else {
                    format!("{{publishedAt: {}}}", self.string("DateTime", t))
                }
            }
            _ => "{revision: 1, release: \"00000000-0000-0000-0000-000000000001\"}".to_owned(),
        })
    }

    fn cursor(&mut self) -> String {
        let raw = if self.chance(0.8) {
            let key = self.key_text();
            let p = crate::generate::period(self.rng.gen_range(0..16));
            URL_SAFE_NO_PAD.encode(format!("{key}|{p}|BAL"))
        } else {
            "not-a-cursor".to_owned()
        };
        self.string("String", &raw)
    }

    /// A filter as one variable, as the mixed workload sends it.
    fn filter_variable(&mut self) -> String {
        let mut f = serde_json::Map::new();
        let period = |g: &mut Self| match g.rng.gen_range(0..20) {
            0 => json!("junk"),
            1 => json!(1990),
            _ => json!(crate::generate::period(g.rng.gen_range(0..16)).to_string()),
        };
        if self.chance(0.7) {
            let k = self.pick(&[
                "S01+S02..",
                "._T.",
                "..G01",
                "_T._T._T",
                "_T.P01.",
                "_T..G02",
                "Q..",
                "S01.P01+P02._T",
            ]);
            f.insert("key".into(), json!(k));
        }
        match self.rng.gen_range(0..5) {
            0 | 1 => {
                let ps: Vec<Json> = (0..self.rng.gen_range(0..3)).map(|_| period(self)).collect();
                f.insert("periods".into(), Json::Array(ps));
            }
            // One value where a list is declared: coerced to a list of one.
            2 => {
                f.insert("periods".into(), period(self));
            }
            3 => {
                f.insert("periodFrom".into(), period(self));
                f.insert("periodTo".into(), period(self));
            }
            _ => {}
        }
        if self.chance(0.2) {
            let m = self.pick(&["BAL", "CRE", "XXX"]);
            f.insert("measures".into(), json!([m]));
        }
        if self.chance(0.1) {
            let st = self.pick(&["REVISED", "FINAL", "BOGUS"]);
            f.insert("status".into(), json!([st]));
        }
        if self.chance(0.1) {
            f.insert("revisedOnly".into(), json!(self.chance(0.5)));
        }
        if self.chance(0.08) {
            let d = if self.chance(0.8) {
                json!({"dimension": "SECTOR", "codes": ["S01", "S03"]})
            } else {
                json!({"dimension": "SECTOR", "codes": ["S01"], "nope": true})
            };
            f.insert("dimensions".into(), if self.chance(0.5) { json!([d]) } else { d });
        }
        self.object_variable("ObservationFilter", Json::Object(f))
    }

    fn filter(&mut self) -> String {
        if self.chance(0.3) {
            return self.filter_variable();
        }
        let mut parts = Vec::new();
        if self.chance(0.5) {
            let k = self.pick(&["S01+S02..", "._T.", "..G01", "_T._T._T", "Q..", "S01.P01+P02._T"]);
            parts.push(format!("key: {}", self.string("String", k)));
        }
        if self.chance(0.4) {
            let a = self.period();
            let b = self.period();
            parts.push(format!("periods: [{a}, {b}]"));
        }
        if self.chance(0.2) {
            parts.push(format!("periodFrom: {}", self.period()));
        }
        if self.chance(0.3) {
            let m = self.pick(&["BAL", "CRE", "XXX"]);
            parts.push(format!("measures: [{}]", self.string("String!", m)));
        }
        if self.chance(0.15) {
            parts.push("status: [REVISED]".to_owned());
        }
        if self.chance(0.15) {
            parts.push("revisedOnly: true".to_owned());
        }
        if self.chance(0.1) {
            parts.push("dimensions: [{dimension: \"SECTOR\", codes: [\"S01\", \"S03\"]}]".to_owned());
        }
        format!("{{{}}}", parts.join(", "))
    }

    fn args(&mut self, parts: Vec<Option<String>>, names: &[&str]) -> String {
        let list: Vec<String> = names
            .iter()
            .zip(parts)
            .filter_map(|(n, v)| v.map(|v| format!("{n}: {v}")))
            .collect();
        if list.is_empty() {
            String::new()
        } else {
            format!("({})", list.join(", "))
        }
    }

    /// A directive now and then.
    fn directive(&mut self) -> String {
        match self.rng.gen_range(0..40) {
            0 => " @include(if: true)".to_owned(),
            1 => " @include(if: false)".to_owned(),
            2 => " @skip(if: true)".to_owned(),
            3 | 5 => {
                let b = self.chance(0.5);
                let v = self.value("Boolean!", b.to_string(), json!(b));
                let which = if self.chance(0.5) { "skip" } else { "include" };
                format!(" @{which}(if: {v})")
            }
            // A nullable variable, as clients write it: `$v: Boolean = true`, usually
            // left out of `variables` so that its default decides.
            6 | 7 => {
                let b = self.chance(0.5);
                let v = self.variable("Boolean", b.to_string(), json!(b), true);
                let which = if self.chance(0.5) { "skip" } else { "include" };
                format!(" @{which}(if: {v})")
            }
            4 => " @deprecated".to_owned(),
            _ => String::new(),
        }
    }

    /// A selection of `fields` (name, sub-selection maker) on `type_name`.
    fn selection<S: AsRef<str> + Clone>(&mut self, type_name: &str, fields: &[(S, Sub<Self>)]) -> String {
        let n = self.rng.gen_range(1..=fields.len().min(6));
        let mut fields = fields.to_vec();
        fields.shuffle(&mut self.rng);
        let mut items = Vec::new();
        for (name, sub) in &fields[..n] {
            let (name, sub) = (name.as_ref(), *sub);
            let alias = if self.chance(0.2) && self.aliases < 25 {
                self.aliases += 1;
                format!("a{}: ", self.aliases)
            } else {
                String::new()
            };
            let sub = sub.map(|f| f(self)).unwrap_or_default();
            let directive = self.directive();
            items.push(format!("{alias}{name}{directive}{sub}"));
        }
        // Some of it through fragments.
        if items.len() > 1 && self.chance(0.3) {
            let inner: Vec<String> = items.drain(..items.len() / 2).collect();
            if self.chance(0.5) {
                let on = if self.chance(0.5) {
                    format!(" on {type_name}")
                } else {
                    String::new()
                };
                items.push(format!("...{on}{} {{ {} }}", self.directive(), inner.join(" ")));
            } else {
                let name = format!("F{}", self.fragments.len());
                self.fragments
                    .push(format!("fragment {name} on {type_name} {{ {} }}", inner.join(" ")));
                items.insert(0, format!("...{name}"));
            }
        }
        format!(" {{ {} }}", items.join(" "))
    }

    /// `__typename`, the declared scalars of `table`, then `more`.
    fn fields<T>(table: &[Scalar<T>], more: &[(&str, Sub<Self>)]) -> Vec<(String, Sub<Self>)> {
        std::iter::once(("__typename".to_owned(), None))
            .chain(table.iter().map(|s| (graphql_name(s.name), None)))
            .chain(more.iter().map(|(name, sub)| ((*name).to_owned(), *sub)))
            .collect()
    }

    fn release(&mut self) -> String {
        self.selection("Release", &Self::fields(Release::SCALARS, &[]))
    }

    fn observation(&mut self) -> String {
        let fields = Self::fields(
            Observation::SCALARS,
            &[
                (
                    "dimensions",
                    Some(|g: &mut Self| g.selection("DimensionValue", &Self::fields(DimensionValue::SCALARS, &[]))),
                ),
                ("release", Some(Self::release)),
                // Not compiled: the plan leaves the query to async-graphql.
                ("versions", Some(|_: &mut Self| " { value }".to_owned())),
                // The most used fields, twice as likely.
                ("key", None),
                ("value", None),
                ("period", None),
            ],
        );
        self.selection("Observation", &fields)
    }

    fn version(&mut self) -> String {
        let fields = Self::fields(ObservationVersion::SCALARS, &[("release", Some(Self::release))]);
        self.selection("ObservationVersion", &fields)
    }

    fn connection(&mut self) -> String {
        self.selection(
            "ObservationConnection",
            &[
                ("__typename", None),
                ("nodes", Some(Self::observation)),
                (
                    "edges",
                    Some(|g: &mut Self| {
                        g.selection(
                            "ObservationEdge",
                            &[
                                ("__typename", None),
                                ("cursor", None),
                                ("node", Some(Self::observation)),
                            ],
                        )
                    }),
                ),
                (
                    "pageInfo",
                    Some(|g: &mut Self| {
                        g.selection(
                            "PageInfo",
                            &[
                                ("__typename", None),
                                ("hasPreviousPage", None),
                                ("hasNextPage", None),
                                ("startCursor", None),
                                ("endCursor", None),
                            ],
                        )
                    }),
                ),
                ("totalCount", None),
            ],
        )
    }

    fn breakdown_selection(&mut self) -> String {
        self.selection(
            "Breakdown",
            &[
                ("__typename", None),
                ("dimension", None),
                ("period", None),
                ("measure", None),
                ("total", Some(Self::observation)),
                ("items", Some(Self::observation)),
                ("sumOfItems", None),
                ("residual", None),
                ("asOfRevision", None),
            ],
        )
    }

    fn root_field(&mut self) -> String {
        match self.rng.gen_range(0..10) {
            0 => "__typename".to_owned(),
            9 => {
                let dataset = Some(self.dataset());
                let filter = self.chance(0.8).then(|| self.filter());
                let as_of = self.as_of();
                let args = self.args(vec![dataset, filter, as_of], &["dataset", "filter", "asOf"]);
                let selection = self.selection(
                    "RevisionSummary",
                    &[
                        ("__typename", None),
                        ("observationCount", None),
                        ("revisedCount", None),
                        ("revisionCount", None),
                        ("meanRevision", None),
                        ("meanAbsoluteRevision", None),
                        ("maxAbsoluteRevision", None),
                        ("items", Some(|_: &mut Self| " { key revision }".to_owned())),
                    ],
                );
                format!("revisionSummary{args}{selection}")
            }
            1 | 2 => {
                let dataset = Some(self.dataset());
                let filter = self.chance(0.7).then(|| self.filter());
                let as_of = self.as_of();
                let first = match self.rng.gen_range(0..10) {
                    0..=3 => None,
                    4 => Some(self.int("Int", -1)),
                    5 => Some(self.int("Int", 100_000)),
                    _ => {
                        let n = self.rng.gen_range(0..6);
                        Some(self.int("Int", n))
                    }
                };
                let after = self.chance(0.2).then(|| self.cursor());
                let args = self.args(
                    vec![dataset, filter, as_of, first, after],
                    &["dataset", "filter", "asOf", "first", "after"],
                );
                format!("observations{args}{}", self.connection())
            }
            3 | 4 => {
                let parts = vec![
                    Some(self.dataset()),
                    Some({
                        let k = self.key_text();
                        self.string("String!", &k)
                    }),
                    Some(self.period()),
                    self.measure(),
                    self.as_of(),
                ];
                let args = self.args(parts, &["dataset", "key", "period", "measure", "asOf"]);
                if self.chance(0.5) {
                    format!("history{args}{}", self.version())
                } else {
                    format!("observation{args}{}", self.observation())
                }
            }
            _ => {
                let dimension = self.pick(&["SECTOR", "PARTNER", "PRODUCT", "PARTNER", "NOPE"]);
                let key = self.chance(0.2).then(|| {
                    let k = self.pick(&["S01._T._T", "_T._T._T", "S02.P03._T", "XX"]);
                    self.string("String", k)
                });
                let parts = vec![
                    Some(self.dataset()),
                    Some(self.string("String!", dimension)),
                    Some(self.period()),
                    self.measure(),
                    key,
                    self.as_of(),
                ];
                let args = self.args(parts, &["dataset", "dimension", "period", "measure", "key", "asOf"]);
                format!("breakdown{args}{}", self.breakdown_selection())
            }
        }
    }

    /// The query text, its variables, and the variables as intended (none left out or null).
    fn query(mut self) -> (String, Json, Json) {
        let n = self.rng.gen_range(1..=2);
        let mut roots = Vec::new();
        for i in 0..n {
            let field = self.root_field();
            let directive = self.directive();
            let (name, rest) = field.split_at(field.find([' ', '(']).unwrap_or(field.len()));
            roots.push(format!("r{i}: {name}{directive}{rest}"));
        }
        let decls: Vec<String> = self
            .vars
            .iter()
            .map(|v| match &v.default {
                Some(d) => format!("${}: {} = {d}", v.name, v.ty),
                None => format!("${}: {}", v.name, v.ty),
            })
            .collect();
        let head = if decls.is_empty() {
            "query Q".to_owned()
        } else {
            format!("query Q({})", decls.join(", "))
        };
        let text = format!("{head} {{ {} }} {}", roots.join(" "), self.fragments.join(" "));
        let vars: serde_json::Map<String, Json> = self
            .vars
            .iter()
            .filter_map(|v| v.sent.clone().map(|s| (v.name.clone(), s)))
            .collect();
        let intended: serde_json::Map<String, Json> =
            self.vars.iter().map(|v| (v.name.clone(), v.intended.clone())).collect();
        (text, Json::Object(vars), Json::Object(intended))
    }
}

/// True when async-graphql finds nothing wrong with the document itself (it may still
/// fail while executing): the server learns plans of such documents only, from their
/// first clean answer.
fn valid(env: &Env, rt: &tokio::runtime::Runtime, request: Request) -> bool {
    let (body, _) = slow(env, rt, request, usize::MAX);
    let body = String::from_utf8(body).expect("JSON is UTF-8");
    !body.contains("GRAPHQL_VALIDATION_FAILED") && !body.contains("GRAPHQL_PARSE_FAILED")
}

/// What the HTTP handler sends for a response executed by async-graphql.
fn slow(env: &Env, rt: &tokio::runtime::Runtime, request: Request, max_bytes: usize) -> (Vec<u8>, bool) {
    let mut response = match env.queries.prepare(request) {
        // async-graphql orders an object's fields by when they finish; the order of the
        // selection set is restored as the servers restore it.
        Ok((r, order)) => {
            let mut response = rt.block_on(env.schema.execute(r));
            order.apply(&mut response);
            response
        }
        Err(e) => async_graphql::Response::from_errors(vec![e]),
    };
    add_codes(&mut response.errors);
    let clean = response.errors.is_empty();
    match to_json_capped(&response, max_bytes) {
        Ok(body) => (body, clean),
        Err(too_large) => {
            let refused = async_graphql::Response::from_errors(vec![too_large.error()]);
            (serde_json::to_vec(&refused).expect("responses serialize"), false)
        }
    }
}

/// Answers of both executors for random queries (the number of fast answers and of
/// fallbacks); [`PERTURBED`] checks that it can fail.
///
/// `fixed` draws the same queries on every run, for a test whose outcome must not depend on
/// whether random queries happened to select a given field.
fn differential(cases: u32, fixed: bool) -> Result<(u32, u32), String> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let env = rt.block_on(env());
    let plans = Plans::new(1024);
    let fast_answers = std::cell::Cell::new(0u32);
    let fallbacks = std::cell::Cell::new(0u32);
    let config = Config {
        cases,
        failure_persistence: None,
        // A smaller seed is not a simpler query: shrinking would only take time.
        max_shrink_iters: 0,
        ..Config::default()
    };
    let mut runner = if fixed {
        let rng = proptest::test_runner::TestRng::deterministic_rng(config.rng_algorithm);
        TestRunner::new_with_rng(config, rng)
    } else {
        TestRunner::new(config)
    };
    let result = runner.run(&(any::<u64>(), 0..4usize), |(seed, size)| {
        let gen = Gen {
            rng: StdRng::seed_from_u64(seed),
            env: &env,
            vars: Vec::new(),
            fragments: Vec::new(),
            aliases: 0,
        };
        let (text, vars, intended) = gen.query();
        let max_bytes = [16 * 1024 * 1024, 3000, 800, 200][size];
        let request = || Request::new(text.clone()).variables(Variables::from_json(vars.clone()));
        let (slow_body, slow_clean) = slow(&env, &rt, request(), max_bytes);
        // The server learns a plan from a clean answer, so only of a valid document;
        // here of every valid one, whether or not this request's answer is clean.
        let Ok(doc) = env.queries.check(&request()) else {
            prop_assert!(!slow_clean);
            return Ok(());
        };
        if !valid(
            &env,
            &rt,
            Request::new(text.clone()).variables(Variables::from_json(intended)),
        ) {
            return Ok(());
        }
        plans.learn(&text, Some("Q"), &doc);
        let fast = plans.run(&request().operation_name("Q"), &env.ledger, &env.limits, max_bytes);
        let fast_body = match fast {
            None => {
                fallbacks.set(fallbacks.get() + 1);
                return Ok(());
            }
            Some(Ok(body)) => body,
            Some(Err(too_large)) => {
                let refused = async_graphql::Response::from_errors(vec![too_large.error()]);
                serde_json::to_vec(&refused).expect("responses serialize")
            }
        };
        fast_answers.set(fast_answers.get() + 1);
        prop_assert_eq!(
            String::from_utf8_lossy(&fast_body),
            String::from_utf8_lossy(&slow_body),
            "query {} variables {}",
            text,
            vars
        );
        Ok(())
    });
    result.map_err(|e| e.to_string())?;
    Ok((fast_answers.get(), fallbacks.get()))
}

/// The plans kept are bounded by `--query-plans`, the oldest going first.
#[test]
fn keeps_at_most_the_plans_it_is_allowed() {
    let plans = Plans::new(2);
    let texts: Vec<String> = (0..3).map(|i| format!("{{ a{i}: __typename }}")).collect();
    for t in &texts {
        let doc = async_graphql::parser::parse_query(t).unwrap();
        plans.learn(t, None, &doc);
    }
    assert!(plans.get(&Request::new(texts[0].clone())).is_none());
    assert!(plans.get(&Request::new(texts[2].clone())).is_some());
    assert!(!plans.wants(&Request::new(texts[2].clone()), 1000));
    let off = Plans::new(0);
    assert!(!off.wants(&Request::new(texts[0].clone()), 1000));
}

/// The differential test fails when the fast path writes one declared field wrong: one
/// field of each read type in turn.
#[test]
fn the_differential_test_catches_a_field_written_wrong() {
    for field in ["value", "title", "label", "published_at"] {
        PERTURBED.with(|p| p.set(Some(field)));
        let result = differential(1500, true);
        PERTURBED.with(|p| p.set(None));
        let error = result.expect_err(field);
        assert!(error.contains("perturbed"), "{field}: {error}");
    }
}

/// Random queries over the covered schema give byte-identical answers on both paths.
#[test]
fn fast_path_answers_exactly_as_async_graphql() {
    let (fast, fallbacks) = differential(1400, false).unwrap();
    // The test must exercise the fast path, not only its fallbacks.
    assert!(fast > 250, "only {fast} fast answers ({fallbacks} fallbacks)");
}
