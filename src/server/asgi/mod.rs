//! ASGI 3 bridge: the `http` scope, the `receive`/`send` pair, and the hand-over of each request
//! to the asyncio loop running on the Python thread. Lifespan runs in Python (`hmr_serve.lifespan`).

mod awaitable;
mod jobs;
mod messages;
mod protocol;
mod scope;
mod serve;

pub use awaitable::Ready;
pub use protocol::HttpProtocol;
pub use serve::AsgiBridge;
