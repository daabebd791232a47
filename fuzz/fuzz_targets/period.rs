//! `Period::parse` on arbitrary UTF-8: never panics, and whatever parses prints in a
//! canonical form that parses back to the same period (and prints the same again).
#![no_main]

use libfuzzer_sys::fuzz_target;
use tradeledger::domain::Period;

fuzz_target!(|input: &str| {
    match Period::parse(input) {
        Ok(p) => {
            let canonical = p.to_string();
            let back = Period::parse(&canonical).unwrap_or_else(|e| panic!("{canonical:?} does not parse back: {e}"));
            assert_eq!(back, p, "{input:?} -> {canonical:?}");
            assert_eq!(back.to_string(), canonical);
            assert!((Period::MIN_YEAR..=Period::MAX_YEAR).contains(&p.year()));
            // Neighbours stay in the frequency and order.
            if let Some(n) = p.next() {
                assert!(n > p && n.frequency() == p.frequency());
                assert_eq!(n.previous(), Some(p));
            }
            // Serde goes through the same canonical form.
            let json = serde_json::to_string(&p).expect("serializes");
            assert_eq!(serde_json::from_str::<Period>(&json).expect("deserializes"), p);
        }
        Err(e) => {
            assert_eq!(e.input, input);
            assert!(!e.reason.is_empty());
        }
    }
});
