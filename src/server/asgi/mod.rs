//! ASGI 3 bridge: the `http` scope, the `receive`/`send` pair, and the hand-over of each request
//! to the asyncio loop running on the Python thread; WebSockets in `websocket` (handshake),
//! `ws_protocol` (receive/send) and `ws_session` (the socket). Lifespan runs in Python (`hmr_serve.lifespan`).

#[cfg(feature = "asgi-bridge-async-runtimes")]
mod async_runtimes;
mod awaitable;
mod jobs;
mod messages;
mod protocol;
mod scope;
mod serve;
mod websocket;
mod ws_protocol;
mod ws_session;

pub use awaitable::Ready;
pub use protocol::HttpProtocol;
pub use serve::AsgiBridge;
pub use ws_protocol::ClientDisconnected;
pub use ws_session::WsConfig;
