//! Static files embedded in the binary: GraphiQL's production builds (pinned in
//! `assets/graphiql/package-lock.json`, copied into `assets/graphiql/dist/` by
//! `assets/graphiql/build.sh`) and the server's own scripts and style.
//!
//! Each file is served at `/assets/<stem>.<hash>.<ext>`, the hash being the first 16 hex
//! digits of its SHA-256: a URL names one content for ever, so responses carry a year-long
//! `immutable` cache lifetime, and a new build of a file gets a new URL.

use std::sync::LazyLock;

use axum::extract::Path;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};

/// One embedded file, by its plain name.
struct Embedded {
    name: &'static str,
    content_type: &'static str,
    bytes: &'static [u8],
    /// Copied from an npm package by `build.sh`, and recorded in its MANIFEST (read by the
    /// test that checks them).
    #[cfg_attr(not(test), allow(dead_code))]
    from_npm: bool,
}

const JS: &str = "text/javascript; charset=utf-8";
const CSS: &str = "text/css; charset=utf-8";

macro_rules! dist {
    ($name:literal, $ty:expr) => {
        Embedded {
            name: $name,
            content_type: $ty,
            bytes: include_bytes!(concat!("../../assets/graphiql/dist/", $name)),
            from_npm: true,
        }
    };
}

static EMBEDDED: [Embedded; 7] = [
    dist!("react.production.min.js", JS),
    dist!("react-dom.production.min.js", JS),
    dist!("graphql-ws.min.js", JS),
    dist!("graphiql.min.js", JS),
    dist!("graphiql.min.css", CSS),
    Embedded {
        name: "graphiql-start.js",
        content_type: JS,
        bytes: include_bytes!("graphiql-start.js"),
        from_npm: false,
    },
    Embedded {
        name: "site.css",
        content_type: CSS,
        bytes: include_bytes!("site.css"),
        from_npm: false,
    },
];

/// An embedded file with its content-addressed URL.
struct Served {
    file: &'static Embedded,
    /// `<stem>.<hash>.<ext>`, the last segment of the URL.
    hashed_name: String,
    path: String,
    etag: HeaderValue,
}

static SERVED: LazyLock<Vec<Served>> = LazyLock::new(|| {
    EMBEDDED
        .iter()
        .map(|file| {
            let digest = hex::encode(Sha256::digest(file.bytes));
            let hash = &digest[..16];
            let (stem, ext) = file.name.split_once('.').expect("embedded names have an extension");
            let hashed_name = format!("{stem}.{hash}.{ext}");
            Served {
                file,
                path: format!("/assets/{hashed_name}"),
                hashed_name,
                etag: HeaderValue::from_str(&format!("\"{digest}\"")).expect("hex is a valid header"),
            }
        })
        .collect()
});

/// The URL of the embedded file `name` (its plain name, e.g. `graphiql.min.js`).
///
/// # Panics
/// If no file of that name is embedded: the names are fixed in this module.
pub fn url(name: &str) -> &'static str {
    SERVED
        .iter()
        .find(|s| s.file.name == name)
        .map(|s| s.path.as_str())
        .unwrap_or_else(|| panic!("no embedded asset named {name}"))
}

/// `GET /assets/{file}`: an embedded file by its hashed name, 304 when the client's
/// `If-None-Match` already names it, 404 for anything else.
pub async fn get(Path(file): Path<String>, headers: HeaderMap) -> Response {
    let Some(served) = SERVED.iter().find(|s| s.hashed_name == file) else {
        return (StatusCode::NOT_FOUND, "no such asset\n").into_response();
    };
    let cache = [
        (header::ETAG, served.etag.clone()),
        (
            header::CACHE_CONTROL,
            HeaderValue::from_static("public, max-age=31536000, immutable"),
        ),
        (header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff")),
    ];
    let matches = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|tag| tag.trim() == served.etag || tag.trim() == "*"));
    if matches {
        return (StatusCode::NOT_MODIFIED, cache).into_response();
    }
    (
        cache,
        [(header::CONTENT_TYPE, HeaderValue::from_static(served.file.content_type))],
        served.file.bytes,
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    const MANIFEST: &str = include_str!("../../assets/graphiql/MANIFEST");
    const LOCK: &str = include_str!("../../assets/graphiql/package-lock.json");

    /// Every file in `assets/graphiql/dist/` is the one `build.sh` recorded, from the package
    /// version `package-lock.json` pins: a hand edit, a stale copy or a bumped lock without a
    /// rebuild fails here.
    #[test]
    fn embedded_graphiql_files_match_the_manifest_and_the_lock() {
        let lock: serde_json::Value = serde_json::from_str(LOCK).expect("package-lock.json is JSON");
        let mut checked = 0;
        for line in MANIFEST.lines().filter(|l| !l.trim().is_empty()) {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let [name, package, version, sha256] = fields[..] else {
                panic!("MANIFEST line {line:?} is not `file package version sha256`");
            };
            let file = EMBEDDED
                .iter()
                .find(|e| e.name == name)
                .unwrap_or_else(|| panic!("MANIFEST names {name}, which is not embedded"));
            assert_eq!(
                hex::encode(Sha256::digest(file.bytes)),
                sha256,
                "dist/{name} differs from the build recorded in MANIFEST; run assets/graphiql/build.sh"
            );
            let locked = lock["packages"][format!("node_modules/{package}")]["version"].as_str();
            assert_eq!(
                locked,
                Some(version),
                "MANIFEST has {package} {version} but package-lock.json pins {locked:?}; run assets/graphiql/build.sh"
            );
            checked += 1;
        }
        let from_npm = EMBEDDED.iter().filter(|e| e.from_npm).count();
        assert_eq!(checked, from_npm, "every file from npm is in MANIFEST");
    }

    #[test]
    fn urls_carry_the_content_hash() {
        let url = url("graphiql.min.js");
        let digest = hex::encode(Sha256::digest(EMBEDDED[3].bytes));
        assert_eq!(url, format!("/assets/graphiql.{}.min.js", &digest[..16]));
    }
}
