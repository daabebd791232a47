//! `import::parse_csv` on arbitrary bytes, then `ReleaseDraft::validate` of every release it
//! accepts against the fixture dataset: no panic anywhere.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    match tradeledger::import::parse_csv("fuzz.csv", data) {
        Ok(batch) => {
            assert!(batch.datasets.is_empty(), "CSV files hold releases only");
            tradeledger_fuzz::validate_all(batch);
        }
        Err(e) => assert!(!e.message.is_empty() && !e.at.is_empty()),
    }
});
