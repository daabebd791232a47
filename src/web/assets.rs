//! Static files embedded in the binary: GraphiQL's production builds (pinned in
//! `assets/graphiql/package-lock.json`, copied into `assets/graphiql/dist/` by
//! `assets/graphiql/build.sh`), the web interface's chart library (uPlot, the same way from
//! `assets/web/`), the audited cryptography the pages fall back to where the browser has no
//! WebCrypto (`@noble/hashes` and `@noble/ed25519`, the same way from `assets/noble/`) and
//! the server's own scripts and styles (`app/` is the web interface).
//!
//! Each file is served at `/assets/<stem>.<hash>.<ext>`, the hash being the first 16 hex
//! digits of its SHA-256: a URL names one content for ever, so responses carry a year-long
//! `immutable` cache lifetime, and a new build of a file gets a new URL. The ES modules of
//! a package import their neighbours by relative path, so they keep their directory:
//! `/assets/<dir>.<hash>/<file>`, the hash covering every file of the directory. Clients that accept
//! gzip get it (GraphiQL's script shrinks from 1,066 KB to 340 KB), compressed once, on first use.

use std::io::Write;
use std::sync::{LazyLock, OnceLock};

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
const TEXT: &str = "text/plain; charset=utf-8";

macro_rules! dist {
    ($name:literal, $ty:expr) => {
        dist!("graphiql", $name, $ty)
    };
    ($dir:literal, $name:literal, $ty:expr) => {
        Embedded {
            name: $name,
            content_type: $ty,
            bytes: include_bytes!(concat!("../../assets/", $dir, "/dist/", $name)),
            from_npm: true,
        }
    };
}

macro_rules! own {
    ($path:literal, $name:literal, $ty:expr) => {
        Embedded {
            name: $name,
            content_type: $ty,
            bytes: include_bytes!($path),
            from_npm: false,
        }
    };
}

static EMBEDDED: [Embedded; 18] = [
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
    dist!("web", "uplot.iife.min.js", JS),
    dist!("web", "uplot.min.css", CSS),
    own!("app/app.js", "app.js", JS),
    own!("app/app.css", "app.css", CSS),
    dist!("noble", "noble-hashes/sha2.js", JS),
    dist!("noble", "noble-hashes/_md.js", JS),
    dist!("noble", "noble-hashes/_u64.js", JS),
    dist!("noble", "noble-hashes/utils.js", JS),
    dist!("noble", "noble-hashes/LICENSE", TEXT),
    dist!("noble", "noble-ed25519/index.js", JS),
    dist!("noble", "noble-ed25519/LICENSE", TEXT),
];

/// An embedded file with its content-addressed URL.
struct Served {
    file: &'static Embedded,
    /// `<stem>.<hash>.<ext>`, the last segment of the URL, or `<dir>.<hash>/<file>` for a
    /// file in a directory.
    hashed_name: String,
    path: String,
    etag: HeaderValue,
    /// The same validator for the gzip representation (a different byte sequence).
    gzip_etag: HeaderValue,
    gzip: OnceLock<Vec<u8>>,
}

impl Served {
    fn gzipped(&self) -> &[u8] {
        self.gzip.get_or_init(|| {
            let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
            encoder
                .write_all(self.file.bytes)
                .and_then(|()| encoder.finish())
                .expect("gzip into memory cannot fail")
        })
    }
}

/// The first 16 hex digits of the SHA-256 over the names and contents of every embedded
/// file in `dir`.
fn directory_hash(dir: &str) -> String {
    let mut hasher = Sha256::new();
    for file in EMBEDDED
        .iter()
        .filter(|f| f.name.split_once('/').is_some_and(|(d, _)| d == dir))
    {
        hasher.update(file.name.as_bytes());
        hasher.update([0]);
        hasher.update(Sha256::digest(file.bytes));
    }
    hex::encode(hasher.finalize())[..16].to_owned()
}

static SERVED: LazyLock<Vec<Served>> = LazyLock::new(|| {
    EMBEDDED
        .iter()
        .map(|file| {
            let digest = hex::encode(Sha256::digest(file.bytes));
            let hashed_name = match file.name.split_once('/') {
                Some((dir, name)) => format!("{dir}.{}/{name}", directory_hash(dir)),
                None => {
                    let (stem, ext) = file.name.split_once('.').expect("embedded names have an extension");
                    format!("{stem}.{}.{ext}", &digest[..16])
                }
            };
            Served {
                file,
                path: format!("/assets/{hashed_name}"),
                hashed_name,
                etag: HeaderValue::from_str(&format!("\"{digest}\"")).expect("hex is a valid header"),
                gzip_etag: HeaderValue::from_str(&format!("\"{digest}.gz\"")).expect("hex is a valid header"),
                gzip: OnceLock::new(),
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

/// Whether `Accept-Encoding` allows gzip (`gzip` or `*` with a non-zero quality).
fn accepts_gzip(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::ACCEPT_ENCODING)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|item| {
            let mut parts = item.split(';');
            let coding = parts.next().unwrap_or("").trim();
            let refused = parts.any(|p| {
                p.trim()
                    .strip_prefix("q=")
                    .and_then(|q| q.trim().parse::<f32>().ok())
                    .is_some_and(|q| q <= 0.0)
            });
            (coding.eq_ignore_ascii_case("gzip") || coding == "*") && !refused
        })
}

/// `GET /assets/{file}`: an embedded file by its hashed name, gzipped when the client
/// accepts it, 304 when the client's `If-None-Match` already names it, 404 for anything else.
pub async fn get(Path(file): Path<String>, headers: HeaderMap) -> Response {
    serve(&file, &headers)
}

/// `GET /assets/{dir}/{file}`: an embedded file of a directory, as [`get`].
pub async fn get_in_directory(Path((dir, file)): Path<(String, String)>, headers: HeaderMap) -> Response {
    serve(&format!("{dir}/{file}"), &headers)
}

fn serve(hashed_name: &str, headers: &HeaderMap) -> Response {
    let Some(served) = SERVED.iter().find(|s| s.hashed_name == hashed_name) else {
        return (StatusCode::NOT_FOUND, "no such asset\n").into_response();
    };
    let gzip = accepts_gzip(headers);
    let etag = if gzip { &served.gzip_etag } else { &served.etag };
    let cache = [
        (header::ETAG, etag.clone()),
        (
            header::CACHE_CONTROL,
            HeaderValue::from_static("public, max-age=31536000, immutable"),
        ),
        (header::VARY, HeaderValue::from_static("accept-encoding")),
        (header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff")),
    ];
    let matches = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|tag| tag.trim() == etag || tag.trim() == "*"));
    if matches {
        return (StatusCode::NOT_MODIFIED, cache).into_response();
    }
    let content_type = (header::CONTENT_TYPE, HeaderValue::from_static(served.file.content_type));
    if gzip {
        let encoding = (header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
        (cache, [content_type, encoding], served.gzipped()).into_response()
    } else {
        (cache, [content_type], served.file.bytes).into_response()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each vendored directory: its MANIFEST and its package-lock.json.
    const VENDORED: [(&str, &str, &str); 3] = [
        (
            "graphiql",
            include_str!("../../assets/graphiql/MANIFEST"),
            include_str!("../../assets/graphiql/package-lock.json"),
        ),
        (
            "web",
            include_str!("../../assets/web/MANIFEST"),
            include_str!("../../assets/web/package-lock.json"),
        ),
        (
            "noble",
            include_str!("../../assets/noble/MANIFEST"),
            include_str!("../../assets/noble/package-lock.json"),
        ),
    ];

    /// Every file in `assets/graphiql/dist/` and `assets/web/dist/` is the one `build.sh`
    /// recorded, from the package version `package-lock.json` pins: a hand edit, a stale copy
    /// or a bumped lock without a rebuild fails here.
    #[test]
    fn embedded_npm_files_match_the_manifest_and_the_lock() {
        let mut checked = 0;
        for (dir, manifest, lock) in VENDORED {
            checked += check_vendored(dir, manifest, lock);
        }
        let from_npm = EMBEDDED.iter().filter(|e| e.from_npm).count();
        assert_eq!(checked, from_npm, "every file from npm is in a MANIFEST");
    }

    /// Checks one MANIFEST against the embedded files and the lock; the number of files.
    fn check_vendored(dir: &str, manifest: &str, lock: &str) -> usize {
        let lock: serde_json::Value = serde_json::from_str(lock).expect("package-lock.json is JSON");
        let mut checked = 0;
        for line in manifest.lines().filter(|l| !l.trim().is_empty()) {
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
                "{dir}/dist/{name} differs from the build recorded in MANIFEST; run assets/{dir}/build.sh"
            );
            let locked = lock["packages"][format!("node_modules/{package}")]["version"].as_str();
            assert_eq!(
                locked,
                Some(version),
                "{dir}/MANIFEST has {package} {version} but package-lock.json pins {locked:?}; run assets/{dir}/build.sh"
            );
            checked += 1;
        }
        checked
    }

    #[test]
    fn gzip_is_chosen_by_accept_encoding() {
        let with = |value: &str| {
            let mut h = HeaderMap::new();
            h.insert(header::ACCEPT_ENCODING, HeaderValue::from_str(value).unwrap());
            accepts_gzip(&h)
        };
        assert!(with("gzip, deflate, br"));
        assert!(with("br;q=1.0, GZIP;q=0.5"));
        assert!(with("*"));
        assert!(!with("gzip;q=0"));
        assert!(!with("br, deflate"));
        assert!(!with("gzipx"));
        assert!(!accepts_gzip(&HeaderMap::new()));
    }

    /// A file of a directory keeps its name, under a directory named by the hash of all its
    /// files, so that its relative imports resolve to the files of the same build.
    #[test]
    fn files_in_a_directory_share_one_hashed_directory() {
        let sha2 = url("noble-hashes/sha2.js");
        let md = url("noble-hashes/_md.js");
        let dir = format!("/assets/noble-hashes.{}/", directory_hash("noble-hashes"));
        assert_eq!(sha2, format!("{dir}sha2.js"));
        assert_eq!(md, format!("{dir}_md.js"));
        assert_ne!(directory_hash("noble-hashes"), directory_hash("noble-ed25519"));
    }

    #[test]
    fn urls_carry_the_content_hash() {
        let url = url("graphiql.min.js");
        let digest = hex::encode(Sha256::digest(EMBEDDED[3].bytes));
        assert_eq!(url, format!("/assets/graphiql.{}.min.js", &digest[..16]));
    }
}
