//! `import::parse_json` on arbitrary bytes, then `ReleaseDraft::validate` of every release
//! it accepts against the fixture dataset (and `Dataset::validate` of every dataset): no
//! panic anywhere; a validated release survives the event encoding.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    match tradeledger::import::parse_json("fuzz.json", data) {
        Ok(batch) => {
            for ds in &batch.datasets {
                if ds.validate().is_ok() {
                    // A valid dataset's total key formats and parses back.
                    let total = ds.total_key();
                    assert_eq!(ds.parse_key(&ds.format_key(&total)).as_ref(), Ok(&total));
                }
            }
            tradeledger_fuzz::validate_all(batch);
        }
        Err(e) => assert!(!e.message.is_empty()),
    }
});
