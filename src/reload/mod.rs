//! Everything that lets code change under a running server. For now: the request gate.

pub mod gate;
