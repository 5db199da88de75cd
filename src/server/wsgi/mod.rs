//! WSGI (PEP 3333) bridge: the environ, a streaming `wsgi.input`, `start_response`, and a bounded
//! pool of threads that hold the GIL only while Python runs.

mod environ;
mod input;
mod pool;
mod responder;
mod serve;

pub use input::WsgiInput;
pub use pool::WorkerPool;
pub use responder::StartResponse;
pub use serve::WsgiBridge;
