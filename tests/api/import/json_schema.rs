//! The JSON Schemas of release files (`schema/release.schema.json`, `schema/dataset.schema.json`)
//! against the parser: a small validator of the keywords the schemas use (and a check that
//! they use no other), so producers can trust a file the schema accepts.

use serde_json::{json, Value};

fn load(name: &str) -> Value {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("schema")
        .join(name);
    serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap_or_else(|e| panic!("{name}: {e}"))
}

const ANNOTATIONS: [&str; 5] = ["$schema", "$id", "title", "description", "$defs"];
const KEYWORDS: [&str; 9] = [
    "$ref",
    "oneOf",
    "type",
    "enum",
    "required",
    "additionalProperties",
    "properties",
    "items",
    "format",
];

/// Every keyword of every subschema is one this validator knows.
fn known_keywords_only(schema: &Value, at: &str) {
    let Value::Object(map) = schema else {
        panic!("{at}: a schema is an object")
    };
    for (k, v) in map {
        assert!(
            ANNOTATIONS.contains(&k.as_str()) || KEYWORDS.contains(&k.as_str()),
            "{at}: keyword `{k}` is not checked by this test"
        );
        match k.as_str() {
            "$defs" | "properties" => v
                .as_object()
                .unwrap()
                .iter()
                .for_each(|(n, s)| known_keywords_only(s, &format!("{at}/{k}/{n}"))),
            "items" => known_keywords_only(v, &format!("{at}/items")),
            "oneOf" => v
                .as_array()
                .unwrap()
                .iter()
                .for_each(|s| known_keywords_only(s, &format!("{at}/oneOf"))),
            _ => {}
        }
    }
}

fn type_matches(t: &str, v: &Value) -> bool {
    match t {
        "object" => v.is_object(),
        "array" => v.is_array(),
        "string" => v.is_string(),
        "integer" => v.is_i64() || v.is_u64(),
        "boolean" => v.is_boolean(),
        "null" => v.is_null(),
        other => panic!("type `{other}` not handled"),
    }
}

/// Errors of `v` against `schema` (JSON Schema 2020-12, for the keywords above).
fn validate(root: &Value, schema: &Value, v: &Value, at: &str) -> Vec<String> {
    let mut errors = Vec::new();
    if let Some(r) = schema.get("$ref").and_then(Value::as_str) {
        let name = r.strip_prefix("#/$defs/").expect("local references only");
        errors.extend(validate(root, &root["$defs"][name], v, at));
    }
    if let Some(options) = schema.get("oneOf").and_then(Value::as_array) {
        let passing = options.iter().filter(|s| validate(root, s, v, at).is_empty()).count();
        if passing != 1 {
            errors.push(format!("{at}: matches {passing} of the oneOf alternatives"));
        }
    }
    if let Some(t) = schema.get("type") {
        let types: Vec<&str> = match t {
            Value::String(s) => vec![s.as_str()],
            Value::Array(a) => a.iter().map(|s| s.as_str().unwrap()).collect(),
            _ => panic!("bad type"),
        };
        if !types.iter().any(|t| type_matches(t, v)) {
            errors.push(format!("{at}: not of type {types:?}"));
        }
    }
    if let Some(options) = schema.get("enum").and_then(Value::as_array) {
        if !options.contains(v) {
            errors.push(format!("{at}: not one of {options:?}"));
        }
    }
    if let (Some(format), Some(s)) = (schema.get("format").and_then(Value::as_str), v.as_str()) {
        let ok = match format {
            "uuid" => uuid::Uuid::parse_str(s).is_ok(),
            "date-time" => chrono::DateTime::parse_from_rfc3339(s).is_ok(),
            other => panic!("format `{other}` not handled"),
        };
        if !ok {
            errors.push(format!("{at}: not a {format}"));
        }
    }
    if let Value::Object(map) = v {
        for r in schema.get("required").and_then(Value::as_array).into_iter().flatten() {
            if !map.contains_key(r.as_str().unwrap()) {
                errors.push(format!("{at}: lacks {r}"));
            }
        }
        let props = schema.get("properties").and_then(Value::as_object);
        for (k, value) in map {
            match props.and_then(|p| p.get(k)) {
                Some(s) => errors.extend(validate(root, s, value, &format!("{at}.{k}"))),
                None if schema.get("additionalProperties") == Some(&Value::Bool(false)) => {
                    errors.push(format!("{at}: unknown property {k}"))
                }
                None => {}
            }
        }
    }
    if let (Some(items), Value::Array(values)) = (schema.get("items"), v) {
        for (i, item) in values.iter().enumerate() {
            errors.extend(validate(root, items, item, &format!("{at}[{i}]")));
        }
    }
    errors
}

fn schema_accepts(schema: &Value, doc: &Value) -> bool {
    validate(schema, schema, doc, "$").is_empty()
}

fn parser_accepts(doc: &Value) -> bool {
    tradeledger::import::parse_json("doc.json", doc.to_string().as_bytes()).is_ok()
}

fn fixture(name: &str) -> Value {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures")
        .join(name);
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// The object at `path` (member names and array positions) in `doc`.
fn members_at<'a>(doc: &'a mut Value, path: &[&str]) -> &'a mut serde_json::Map<String, Value> {
    let mut v = doc;
    for p in path {
        v = match p.parse::<usize>() {
            Ok(i) => &mut v[i],
            Err(_) => &mut v[*p],
        };
    }
    v.as_object_mut().expect("an object")
}

/// A dataset and a release with every optional member present.
fn samples() -> (Value, Value) {
    let dataset = fixture("00_dataset.json");
    let mut release = fixture("02_synthetic_2025_s1_revision.json");
    release["observations"][0]["measure"] = json!("BAL");
    release["backfill"] = json!(false);
    release["revisionReason"] = json!({"kind": "ROUTINE", "note": "SYNTHETIC"});
    assert!(dataset.get("frequency").is_some());
    assert!(release.get("source").is_some() && release.get("id").is_some());
    assert!(dataset.get("description").is_some());
    assert!(dataset["dimensions"][0]["codes"][1].get("parent").is_some());
    (dataset, release)
}

/// The schemas use only keywords the validator checks; every fixture is valid.
#[test]
fn fixtures_validate() {
    let (release_schema, dataset_schema) = (load("release.schema.json"), load("dataset.schema.json"));
    known_keywords_only(&release_schema, "release.schema.json");
    known_keywords_only(&dataset_schema, "dataset.schema.json");
    let dataset = fixture("00_dataset.json");
    assert!(
        schema_accepts(&dataset_schema, &dataset),
        "{:?}",
        validate(&dataset_schema, &dataset_schema, &dataset, "$")
    );
    assert!(schema_accepts(&dataset_schema, &json!([dataset])));
    for name in ["01_bok_2025_s1_preliminary.json", "02_synthetic_2025_s1_revision.json"] {
        let release = fixture(name);
        assert!(
            schema_accepts(&release_schema, &release),
            "{name}: {:?}",
            validate(&release_schema, &release_schema, &release, "$")
        );
        assert!(!schema_accepts(&dataset_schema, &release), "{name} is not a dataset");
    }
}

/// Member by member, removing it is refused by the parser exactly when the schema lists
/// it as required; an unknown member is refused by both; and the schema lists every member
/// the parser's types have.
#[test]
fn required_and_known_members_agree_with_the_parser() {
    let (dataset, release) = samples();
    let cases: [(&str, &str, Value, &[&str]); 5] = [
        ("release.schema.json", "release", release.clone(), &[]),
        (
            "release.schema.json",
            "observation",
            release.clone(),
            &["observations", "0"],
        ),
        ("dataset.schema.json", "dataset", dataset.clone(), &[]),
        (
            "dataset.schema.json",
            "dimension",
            dataset.clone(),
            &["dimensions", "0"],
        ),
        (
            "dataset.schema.json",
            "code",
            dataset.clone(),
            &["dimensions", "0", "codes", "1"],
        ),
    ];
    for (file, def, doc, path) in cases {
        let schema = load(file);
        let required: Vec<&str> = schema["$defs"][def]["required"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r.as_str().unwrap())
            .collect();
        let properties: Vec<String> = schema["$defs"][def]["properties"]
            .as_object()
            .unwrap()
            .keys()
            .filter(|k| *k != "$comment")
            .cloned()
            .collect();
        let mut sample = doc.clone();
        let members: Vec<String> = members_at(&mut sample, path)
            .keys()
            .filter(|k| *k != "$comment")
            .cloned()
            .collect();
        let mut sorted_members = members.clone();
        sorted_members.sort();
        let mut sorted_properties = properties.clone();
        sorted_properties.sort();
        assert_eq!(
            sorted_members, sorted_properties,
            "{file} {def}: the schema's members are the parser's"
        );
        assert!(
            parser_accepts(&doc) && schema_accepts(&schema, &doc),
            "{file} {def}: the sample is valid"
        );
        for m in &members {
            let mut without = doc.clone();
            members_at(&mut without, path).remove(m);
            let (parser, schema_ok) = (parser_accepts(&without), schema_accepts(&schema, &without));
            assert_eq!(
                parser, schema_ok,
                "{file} {def}: without `{m}` the parser says {parser}, the schema {schema_ok}"
            );
            assert_eq!(!parser, required.contains(&m.as_str()), "{file} {def}: `{m}` required?");
        }
        let mut unknown = doc.clone();
        members_at(&mut unknown, path).insert("colour".into(), json!("red"));
        assert!(
            !parser_accepts(&unknown),
            "{file} {def}: the parser takes an unknown member"
        );
        assert!(
            !schema_accepts(&schema, &unknown),
            "{file} {def}: the schema takes an unknown member"
        );
    }
}

/// Wrong types and values are refused by both the schema and the parser.
#[test]
fn invalid_files_are_refused_by_both() {
    let (dataset, release) = samples();
    let release_schema = load("release.schema.json");
    let dataset_schema = load("dataset.schema.json");
    let mut cases: Vec<(&str, &Value, Value)> = Vec::new();
    type Edit = (&'static str, fn(&mut Value));
    let edits: [Edit; 7] = [
        ("a float value", |r| r["observations"][0]["value"] = json!(1.5)),
        ("an unknown status", |r| r["status"] = json!("DRAFT")),
        ("a time that is not RFC 3339", |r| r["publishedAt"] = json!("yesterday")),
        ("an id that is not a UUID", |r| r["id"] = json!("release-1")),
        ("observations not a list", |r| r["observations"] = json!({})),
        ("a title that is a number", |r| r["title"] = json!(7)),
        ("a key that is null", |r| r["observations"][0]["key"] = Value::Null),
    ];
    for (what, edit) in edits {
        let mut r = release.clone();
        edit(&mut r);
        cases.push((what, &release_schema, r));
    }
    let mut d = dataset.clone();
    d["unit_multiplier"] = json!("6");
    cases.push(("a multiplier written as a string", &dataset_schema, d));
    let mut d = dataset.clone();
    d["dimensions"][0]["codes"] = json!("_T");
    cases.push(("codes not a list", &dataset_schema, d));
    for (what, schema, doc) in cases {
        assert!(!parser_accepts(&doc), "{what}: the parser takes it");
        assert!(!schema_accepts(schema, &doc), "{what}: the schema takes it");
    }
}
