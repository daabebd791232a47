//! `Dataset::parse_key` and `KeyPattern::parse` against the fixture dataset on arbitrary
//! UTF-8: never panic; a parsed key formats back to the same text and parses to the same
//! key; a key that parses is also a pattern that matches exactly that key.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tradeledger::projection::KeyPattern;
use tradeledger_fuzz::dataset;

fuzz_target!(|input: &str| {
    let ds = dataset();
    let key = ds.parse_key(input);
    let pattern = KeyPattern::parse(ds, input);
    match &key {
        Ok(k) => {
            assert_eq!(k.len(), ds.dimensions.len());
            assert_eq!(k.codes().count(), ds.dimensions.len());
            let text = ds.format_key(k);
            assert_eq!(text, input, "codes are matched exactly, so formatting gives the input back");
            assert_eq!(ds.parse_key(&text).as_ref(), Ok(k));
            let p = pattern.as_ref().expect("a valid key is a valid pattern");
            assert!(p.matches(k));
            // It matches no other key differing in one dimension.
            for (d, dim) in ds.dimensions.iter().enumerate() {
                for c in 0..dim.codes.len() as u16 {
                    if c != k.code(d) {
                        assert!(!p.matches(&k.with(d, c)));
                    }
                }
            }
        }
        Err(e) => assert!(!e.to_string().is_empty()),
    }
    if let Ok(p) = &pattern {
        assert_eq!(p.0.len(), ds.dimensions.len());
        for (part, dim) in p.0.iter().zip(&ds.dimensions) {
            if let Some(codes) = part {
                assert!(!codes.is_empty());
                assert!(codes.iter().all(|&c| (c as usize) < dim.codes.len()));
            }
        }
        // The total key matches a pattern iff every restricted part names `_T`.
        let total = ds.total_key();
        let expected = p
            .0
            .iter()
            .zip(total.codes())
            .all(|(part, t)| part.as_ref().is_none_or(|cs| cs.contains(&t)));
        assert_eq!(p.matches(&total), expected);
    }
});
