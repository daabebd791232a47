//! The import graph of the crate, checked: every `crate::module` path in `src/**/*.rs` (outside
//! comments) must point down the layers, `http` → `graphql` → `ledger` → `projection` →
//! `store` → `domain`, so that no module cycle can come back (`server` and `ws` once imported
//! each other). Run `cargo test --lib layers` after moving code between modules.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// Each top-level module and its layer: a module may use only modules of a lower layer.
/// Layer 0 holds leaves that use nothing of the crate.
const LAYERS: &[(&str, u32)] = &[
    ("cli", 100),
    ("app", 90),
    ("snapshot", 85),
    ("testing", 95),
    ("http", 80),
    ("web", 75),
    ("sdmx", 72),
    ("auth", 70),
    ("graphql", 60),
    ("online", 58),
    ("export", 55),
    ("import", 55),
    ("ledger", 40),
    ("projection", 30),
    ("store", 20),
    ("tlog", 18),
    ("generate", 15),
    ("domain", 10),
    ("error_code", 5),
    ("logging", 5),
    ("bounded", 0),
    ("healthcheck", 0),
    ("pool", 45),
    ("settings", 0),
];

/// Upward imports tolerated, each with its reason; each must still occur, so the list only
/// shrinks. Empty: the graph has no exception, and any new upward import fails.
const KNOWN: &[(&str, &str)] = &[];

fn layer(module: &str) -> Option<u32> {
    LAYERS.iter().find(|(m, _)| *m == module).map(|&(_, l)| l)
}

/// `crate::x` paths in `text`, comments left out.
fn uses(text: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for line in text.lines() {
        let code = match line.find("//") {
            Some(i) => &line[..i],
            None => line,
        };
        let mut rest = code;
        while let Some(i) = rest.find("crate::") {
            rest = &rest[i + "crate::".len()..];
            let name: String = rest
                .chars()
                .take_while(|c| c.is_ascii_lowercase() || *c == '_')
                .collect();
            if !name.is_empty() {
                out.insert(name);
            }
        }
    }
    out
}

/// Every top-level module of `src` with the modules it uses.
fn graph(src: &Path) -> BTreeMap<String, BTreeSet<String>> {
    fn walk(dir: &Path, files: &mut Vec<std::path::PathBuf>) {
        for entry in std::fs::read_dir(dir).expect("read src") {
            let path = entry.expect("entry").path();
            if path.is_dir() {
                walk(&path, files);
            } else if path.extension().is_some_and(|e| e == "rs") {
                files.push(path);
            }
        }
    }
    let mut files = Vec::new();
    walk(src, &mut files);
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for file in files {
        let relative = file.strip_prefix(src).expect("under src");
        let first = relative.components().next().expect("a component");
        let module = Path::new(first.as_os_str())
            .file_stem()
            .expect("a name")
            .to_string_lossy()
            .into_owned();
        // Unit-test files may build fixtures with upper layers (`projection/tests.rs` folds
        // a log through the ledger).
        if module == "lib" || module == "main" || module == "layers" || file.ends_with("tests.rs") {
            continue;
        }
        let text = std::fs::read_to_string(&file).expect("read a source file");
        let used: Vec<String> = uses(&text).into_iter().filter(|m| *m != module).collect();
        graph.entry(module).or_default().extend(used);
    }
    graph
}

/// What breaks the layering in `graph`: unknown modules and imports that do not point down.
/// With the layers strictly ordered, an import graph without violations has no cycle.
fn violations(graph: &BTreeMap<String, BTreeSet<String>>) -> Vec<String> {
    let mut out = Vec::new();
    for (from, to) in KNOWN {
        if !graph.get(*from).is_some_and(|used| used.contains(*to)) {
            out.push(format!("`{from}` no longer uses `{to}`: remove it from KNOWN"));
        }
    }
    for (module, used) in graph {
        let Some(own) = layer(module) else {
            out.push(format!("`{module}` has no layer in src/layers.rs"));
            continue;
        };
        for u in used {
            match layer(u) {
                None => out.push(format!("`{module}` uses `{u}`, which has no layer")),
                Some(_) if KNOWN.contains(&(module.as_str(), u.as_str())) => {}
                Some(l) if l >= own => out.push(format!("`{module}` (layer {own}) uses `{u}` (layer {l})")),
                Some(_) => {}
            }
        }
    }
    out
}

#[test]
fn imports_point_down_the_layers() {
    let graph = graph(&Path::new(env!("CARGO_MANIFEST_DIR")).join("src"));
    assert!(graph.contains_key("http") && graph.contains_key("graphql"), "{graph:?}");
    let found = violations(&graph);
    assert!(found.is_empty(), "{}", found.join("\n"));
}

#[test]
fn an_upward_import_is_caught() {
    let mut graph = graph(&Path::new(env!("CARGO_MANIFEST_DIR")).join("src"));
    graph.get_mut("graphql").expect("graphql").insert("http".into());
    let found = violations(&graph);
    assert_eq!(found, ["`graphql` (layer 60) uses `http` (layer 80)"]);
}

#[test]
fn paths_in_comments_do_not_count() {
    let text = "use crate::ledger::Ledger;\n/// see [`crate::http`]\nlet x = crate::store::Head; // crate::cli\n";
    assert_eq!(uses(text), ["ledger".to_owned(), "store".to_owned()].into());
}
