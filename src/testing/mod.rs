//! What `hmr-serve test` (python/hmr_serve/testing/) needs from native code.

pub mod calls;
pub mod opens;
