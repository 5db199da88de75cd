//! Everything that lets code change under a running server: the watcher and its filters, the
//! import graph and its closure, the static import pass, and the request gate.

pub mod content_hash;
pub mod debounce;
pub mod delivery;
pub mod engine;
pub mod filter;
pub mod gate;
pub mod graph;
pub mod project_map;
pub mod static_imports;
pub mod static_reads;
pub mod watchdog;
pub mod watcher;
