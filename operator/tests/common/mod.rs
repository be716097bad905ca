//! Shared by the operator's integration tests: a scripted mock API server
//! (tower-test), fixtures, and a real `sluice-broker` process.
#![allow(dead_code)]

pub mod aws;
pub mod broker;
pub mod feed;
pub mod kafka;
pub mod mock;

use std::path::PathBuf;

/// `operator/tests/fixtures/<rel>`.
pub fn fixture_path(rel: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(rel)
}

/// A fixture parsed from YAML.
pub fn fixture<T: serde::de::DeserializeOwned>(rel: &str) -> T {
    let path = fixture_path(rel);
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    serde_yaml::from_str(&text).unwrap_or_else(|e| panic!("parsing {}: {e}", path.display()))
}
