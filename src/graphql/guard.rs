//! The front door: bounds on a request's raw text and JSON, checked before async-graphql
//! parses anything.
//!
//! async-graphql's parser (pest) and its value conversions recurse once per level of
//! nesting. A list literal nested 2,000 deep (about 3 KB of `[`) overflowed the 2 MiB stack
//! of a runtime thread and aborted the whole process, and parsing happens before any token
//! check. So every request (GET, POST, each batch item, each WebSocket `subscribe`) is
//! scanned here first, in one linear pass without recursion: the length of the query text in
//! bytes, its number of lexical tokens, and how deep its brackets `{ [ (` nest (selection
//! sets, list and object literals, arguments), skipping what is inside strings, block
//! strings and comments. Bracket nesting is the only way the GraphQL grammar recurses, so
//! bounding it bounds the parser's stack.
//!
//! Variables and extensions arrive as JSON that serde_json has already parsed (with its own
//! recursion limit of 128 levels, so the body itself cannot blow the stack; the body size
//! limit bounds its memory). They are walked here with an explicit stack, bounding their
//! depth and number of nodes before async-graphql converts and coerces them (recursively).
//!
//! The scan is deliberately conservative where it cannot know what the parser would do: an
//! unterminated string ends at the end of its line, and brackets that close nothing are
//! ignored. It may count a little more than the parser would ever see, never less.

use serde_json::Value;

use super::Limits;

/// A request beyond one of the front door's bounds; the message names the bound and its
/// value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct Exceeded {
    /// The bound, by its `serve` flag (e.g. `--max-query-nesting`).
    pub bound: &'static str,
    pub limit: usize,
    pub message: String,
}

/// What the scan of a query text found (up to where it stopped).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct QueryShape {
    pub bytes: usize,
    pub tokens: usize,
    /// Deepest bracket nesting.
    pub nesting: usize,
}

/// Checks a query text against the bounds, in one pass over its bytes.
pub fn check_query(text: &str, limits: &Limits) -> Result<QueryShape, Exceeded> {
    let b = text.as_bytes();
    if b.len() > limits.max_query_bytes {
        return Err(Exceeded {
            bound: "--max-query-bytes",
            limit: limits.max_query_bytes,
            message: format!(
                "the query text is {} bytes long; the limit is {} bytes",
                b.len(),
                limits.max_query_bytes
            ),
        });
    }
    let mut shape = QueryShape {
        bytes: b.len(),
        ..QueryShape::default()
    };
    let mut depth = 0usize;
    let mut i = 0usize;
    while i < b.len() {
        let c = b[i];
        // Ignored tokens: whitespace, line terminators, commas, the byte-order mark, comments.
        match c {
            b' ' | b'\t' | b'\n' | b'\r' | b',' => {
                i += 1;
                continue;
            }
            0xEF if b[i..].starts_with("\u{FEFF}".as_bytes()) => {
                i += 3;
                continue;
            }
            b'#' => {
                while i < b.len() && b[i] != b'\n' && b[i] != b'\r' {
                    i += 1;
                }
                continue;
            }
            _ => {}
        }
        shape.tokens += 1;
        if shape.tokens > limits.max_query_tokens {
            return Err(Exceeded {
                bound: "--max-query-tokens",
                limit: limits.max_query_tokens,
                message: format!(
                    "the query text has more than {} tokens, the limit",
                    limits.max_query_tokens
                ),
            });
        }
        match c {
            b'"' if b[i..].starts_with(b"\"\"\"") => i = skip_block_string(b, i + 3),
            b'"' => i = skip_string(b, i + 1),
            b'{' | b'[' | b'(' => {
                depth += 1;
                shape.nesting = shape.nesting.max(depth);
                if depth > limits.max_query_nesting {
                    return Err(Exceeded {
                        bound: "--max-query-nesting",
                        limit: limits.max_query_nesting,
                        message: format!(
                            "the query text nests brackets (selection sets, lists, objects, arguments) deeper than the limit of {}",
                            limits.max_query_nesting
                        ),
                    });
                }
                i += 1;
            }
            b'}' | b']' | b')' => {
                depth = depth.saturating_sub(1);
                i += 1;
            }
            b'.' if b[i..].starts_with(b"...") => i += 3,
            // Names, numbers (with fraction and exponent), and keywords: one token each.
            c if c.is_ascii_alphanumeric() || c == b'_' || c == b'-' => {
                i += 1;
                while i < b.len() && (b[i].is_ascii_alphanumeric() || matches!(b[i], b'_' | b'.' | b'+' | b'-')) {
                    if b[i] == b'.' && b[i..].starts_with(b"...") {
                        break;
                    }
                    i += 1;
                }
            }
            // Other punctuators, and anything the parser will refuse: one token per byte.
            _ => i += 1,
        }
    }
    Ok(shape)
}

/// The index after a string whose opening quote ends before `i`. An unterminated string ends
/// at its line's end, where the parser stops too.
fn skip_string(b: &[u8], mut i: usize) -> usize {
    while i < b.len() {
        match b[i] {
            b'\\' => i += 2,
            b'"' => return i + 1,
            b'\n' | b'\r' => return i,
            _ => i += 1,
        }
    }
    b.len()
}

/// The index after a block string whose opening `"""` ends before `i`; `\"""` is escaped.
fn skip_block_string(b: &[u8], mut i: usize) -> usize {
    while i < b.len() {
        if b[i] == b'\\' && b[i + 1..].starts_with(b"\"\"\"") {
            i += 4;
        } else if b[i..].starts_with(b"\"\"\"") {
            return i + 3;
        } else {
            i += 1;
        }
    }
    b.len()
}

/// Checks one JSON parameter (`variables` or `extensions`): its nesting depth (the parameter
/// itself is level 1) and its number of values, walked with an explicit stack.
pub fn check_json(what: &str, value: &Value, limits: &Limits) -> Result<(), Exceeded> {
    let mut stack: Vec<(&Value, usize)> = vec![(value, 1)];
    let mut nodes = 0usize;
    while let Some((v, depth)) = stack.pop() {
        nodes += 1;
        if nodes > limits.max_variables_nodes {
            return Err(Exceeded {
                bound: "--max-variables-nodes",
                limit: limits.max_variables_nodes,
                message: format!(
                    "`{what}` has more than {} JSON values, the limit",
                    limits.max_variables_nodes
                ),
            });
        }
        let children: Box<dyn Iterator<Item = &Value>> = match v {
            Value::Array(items) => Box::new(items.iter()),
            Value::Object(map) => Box::new(map.values()),
            _ => continue,
        };
        if depth > limits.max_variables_depth {
            return Err(Exceeded {
                bound: "--max-variables-depth",
                limit: limits.max_variables_depth,
                message: format!(
                    "`{what}` nests arrays and objects deeper than the limit of {}",
                    limits.max_variables_depth
                ),
            });
        }
        stack.extend(children.map(|c| (c, depth + 1)));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> Limits {
        Limits {
            max_query_bytes: 1000,
            max_query_tokens: 50,
            max_query_nesting: 4,
            max_variables_depth: 3,
            max_variables_nodes: 10,
            ..Limits::default()
        }
    }

    fn shape(q: &str) -> QueryShape {
        check_query(q, &limits()).unwrap_or_else(|e| panic!("{q}: {e}"))
    }

    fn bound(q: &str) -> &'static str {
        check_query(q, &limits()).unwrap_err().bound
    }

    #[test]
    fn counts_tokens_and_nesting() {
        let s = shape("{ ledger { revision } }");
        assert_eq!((s.tokens, s.nesting), (6, 2));
        let s = shape("query Q($x: [Int!]) { a(x: [[1.5e+3, -2]]) { ...F } }");
        assert_eq!(s.nesting, 4);
        // query Q ( $ x : [ Int ! ] ) { a ( x : [ [ 1.5e+3 -2 ] ] ) { ... F } }
        assert_eq!(s.tokens, 28);
        assert_eq!(shape("").tokens, 0);
    }

    #[test]
    fn skips_strings_block_strings_and_comments() {
        let s =
            shape("# {{{{{{ [[[[[[\n{ a(x: \"[[[[[[ \\\" {{{{{\", y: \"\"\"{{{{{{ \\\"\"\" [[[[[[\"\"\") }\u{FEFF}");
        assert_eq!(s.nesting, 2);
        // { a ( x : "..." y : """...""" ) }
        assert_eq!(s.tokens, 11);
        // Only the byte-order mark is ignored, not every character that starts with its
        // first byte (U+FF21 is EF BC A1 in UTF-8, three bytes the parser will refuse).
        assert_eq!(shape("\u{FEFF}{ a }").tokens, 3);
        assert_eq!(shape("\u{FF21}{ a }").tokens, 6);
        // A spread is one token, also right after a name; a lone `.` is one byte, and what
        // follows it still counts.
        assert_eq!(shape("{ a...F }").tokens, 5);
        // A punctuator is one token before a name; a negative number is one token.
        assert_eq!(shape("query($x: Int) { a }").tokens, 10);
        assert_eq!(shape("{ a(x: -2) }").tokens, 8);
        assert_eq!(bound(".[[[[["), "--max-query-nesting");
        // A comment may end the text, without a line terminator.
        assert_eq!(shape("{ a } # [[[[[[").tokens, 3);
        // An unterminated string stops at its line's end; the next line counts.
        assert_eq!(bound("{ a(x: \"[[[[[[\n[[[[[[ ) }"), "--max-query-nesting");
        // An unterminated block string runs to the end.
        assert_eq!(shape("{ a(x: \"\"\"[[[[[[\n[[[[[[ ) }").nesting, 2);
        // A string may end the text unterminated, also right after a backslash: the scan
        // stops at the end and does not read past it.
        assert_eq!(shape("{ a(x: \"[[[").tokens, 6);
        assert_eq!(shape("{ a(x: \"[[[\\").tokens, 6);
    }

    #[test]
    fn refuses_beyond_each_bound() {
        assert_eq!(bound(&"x".repeat(1001)), "--max-query-bytes");
        // The limit itself is allowed, and the shape reports the bytes scanned.
        assert_eq!(shape(&format!("{{{}}}", " ".repeat(998))).bytes, 1000);
        assert_eq!(shape("{ a }").bytes, 5);
        assert_eq!(bound(&"a ".repeat(51)), "--max-query-tokens");
        assert!(check_query(&"a ".repeat(50), &limits()).is_ok());
        assert_eq!(bound("{ a(x: [[[1]]]) }"), "--max-query-nesting");
        assert!(check_query("{ a(x: [[1]]) }", &limits()).is_ok());
        assert_eq!(bound("{a:{a:{a:{a:{a:1}}}}}"), "--max-query-nesting");
        // Closers that close nothing do not make room.
        assert_eq!(bound("] ] ] ] [[[[[ "), "--max-query-nesting");
        let e = check_query("[[[[[[[[[[", &limits()).unwrap_err();
        assert!(e.message.contains("deeper than the limit of 4"), "{e}");
    }

    #[test]
    fn a_deep_literal_is_refused_after_a_bounded_scan() {
        let q = format!("{{ ledger(x: {}) {{ revision }} }}", "[".repeat(100_000));
        let big = Limits {
            max_query_bytes: 1 << 20,
            ..Limits::default()
        };
        assert_eq!(check_query(&q, &big).unwrap_err().bound, "--max-query-nesting");
    }

    #[test]
    fn bounds_json_depth_and_size() {
        let l = limits();
        assert!(check_json("variables", &serde_json::json!({"a": {"b": 1}}), &l).is_ok());
        assert!(check_json("variables", &serde_json::json!({"a": {"b": [1]}}), &l).is_ok());
        let e = check_json("variables", &serde_json::json!({"a": {"b": [[1]]}}), &l).unwrap_err();
        assert_eq!(e.bound, "--max-variables-depth");
        assert!(e.message.contains("`variables`"), "{e}");
        let e = check_json(
            "extensions",
            &serde_json::json!({"a": [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]}),
            &l,
        )
        .unwrap_err();
        assert_eq!(e.bound, "--max-variables-nodes");
        // Exactly `--max-variables-nodes` values (the object, its array and 8 numbers) pass.
        let at = serde_json::json!({"a": [1, 2, 3, 4, 5, 6, 7, 8]});
        assert!(check_json("variables", &at, &l).is_ok());
        let past = serde_json::json!({"a": [1, 2, 3, 4, 5, 6, 7, 8, 9]});
        assert_eq!(
            check_json("variables", &past, &l).unwrap_err().bound,
            "--max-variables-nodes"
        );
        // Scalars at the depth limit are fine; only containers beyond it are refused.
        assert!(check_json("variables", &serde_json::json!({"a": {"b": "x"}}), &l).is_ok());
    }

    /// The standard introspection query of graphql-js (what GraphiQL sends) passes at defaults.
    #[test]
    fn introspection_query_passes_at_defaults() {
        let s = check_query(INTROSPECTION, &Limits::default()).unwrap();
        assert!(s.nesting < 16, "{s:?}");
        assert!(async_graphql::parser::parse_query(INTROSPECTION).is_ok());
    }

    pub const INTROSPECTION: &str = include_str!("../../fuzz/corpus/front_door/introspection.graphql");

    /// Parses on a thread with the stack of a tokio worker (2 MiB), as the server does.
    fn parses_on_a_worker_stack(text: String) {
        std::thread::Builder::new()
            .stack_size(2 * 1024 * 1024)
            .spawn(move || drop(async_graphql::parser::parse_query(&text)))
            .unwrap()
            .join()
            .expect("the parser does not panic");
    }

    /// What the fuzz target `front_door` checks, on its committed corpus and at the bounds:
    /// whatever passes the guard parses without overflowing a worker's stack.
    #[test]
    fn what_passes_parses_on_a_worker_stack() {
        let limits = Limits::default();
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus/front_door");
        let mut inputs: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| std::fs::read_to_string(e.unwrap().path()).unwrap())
            .collect();
        let n = limits.max_query_nesting - 2;
        inputs.push(format!(
            "{{ ledger(x: {}{}) {{ revision }} }}",
            "[".repeat(n),
            "]".repeat(n)
        ));
        inputs.push(format!(
            "{{ ledger(x: {}1{}) {{ revision }} }}",
            "{a: ".repeat(n),
            "}".repeat(n)
        ));
        inputs.push(format!("{}{}", "{ a ".repeat(n + 2), "}".repeat(n + 2)));
        inputs.push("[".repeat(n + 2));
        assert!(inputs.len() >= 8);
        for text in inputs {
            if check_query(&text, &limits).is_ok() {
                parses_on_a_worker_stack(text);
            }
        }
    }
}
