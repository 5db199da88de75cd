//! Placeholder until the analyser lands (same interface).
use std::collections::{BTreeMap, BTreeSet};

#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct NameReads {
    pub names: BTreeSet<String>,
    pub exposed: BTreeSet<String>,
    pub whole: bool,
    pub whole_exposed: bool,
}

#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ModuleReads {
    pub import_time: BTreeMap<String, NameReads>,
    pub call_time: BTreeMap<String, NameReads>,
    pub own_code_runs: bool,
    pub dynamic: bool,
}

pub fn parse_reads(
    _source: &str,
    _module_name: &str,
    _is_package: bool,
) -> Result<ModuleReads, String> {
    Err("not yet".into())
}
