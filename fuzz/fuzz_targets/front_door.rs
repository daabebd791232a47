//! The front door (`graphql::guard`) on arbitrary UTF-8: it never panics, and whatever it
//! accepts at the default bounds, async-graphql's parser parses (or refuses) on a stack the
//! size of a tokio worker's (2 MiB) without overflowing it. When the input is JSON, the
//! same holds for the variables check and async-graphql's conversion of the variables.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tradeledger::graphql::{guard, Limits};

/// tokio's default stack size for worker threads, where requests are parsed.
const WORKER_STACK: usize = 2 * 1024 * 1024;

/// Runs `f` on a thread with a worker's stack; a stack overflow aborts the process, which
/// libFuzzer reports as a crash.
fn on_worker_stack(f: impl FnOnce() + Send + 'static) {
    std::thread::Builder::new()
        .stack_size(WORKER_STACK)
        .spawn(f)
        .expect("spawn a thread")
        .join()
        .expect("no panic");
}

fuzz_target!(|input: &str| {
    let limits = Limits::default();
    if let Ok(shape) = guard::check_query(input, &limits) {
        assert!(shape.bytes <= limits.max_query_bytes);
        assert!(shape.tokens <= limits.max_query_tokens);
        assert!(shape.nesting <= limits.max_query_nesting);
        let text = input.to_owned();
        on_worker_stack(move || {
            let _ = async_graphql::parser::parse_query(&text);
        });
    }
    if let Ok(value @ serde_json::Value::Object(_)) = serde_json::from_str::<serde_json::Value>(input) {
        if guard::check_json("variables", &value, &limits).is_ok() {
            on_worker_stack(move || {
                let _ = async_graphql::Variables::from_json(value);
            });
        }
    }
});
