//! The fixtures every test shares: the dataset id, the two release ids of `fixtures/`, where
//! the fixture files are, and the publish mutation. One definition each.

use std::path::{Path, PathBuf};

pub const DATASET: &str = "KR_KNOWLEDGE_SERVICES";
pub const PRELIMINARY_ID: &str = "6b1f0c2e-4d3a-4e51-9a57-2025a0000001";
pub const REVISION_ID: &str = "6b1f0c2e-4d3a-4e51-9a57-2025a0000002";

pub fn fixtures_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures")
}

pub const PUBLISH: &str = "mutation($input: ReleaseInput!, $expected: Int) {
  publishRelease(input: $input, expectedRevision: $expected) { revision hash duplicate release { id status } }
}";
