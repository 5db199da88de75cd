//! ASGI 3 bridge: the `http` scope, the `receive`/`send` pair, and the hand-over of each request
//! to the asyncio loop running on the Python thread; WebSockets in `websocket` (one upgrade),
//! `ws_handshake` (its HTTP side), `ws_protocol` (receive/send) and `ws_session` (the socket).
//! Lifespan runs in Python (`hmr_serve.lifespan`).
//!
//! Dependencies run one way, from the entry points down: `serve` → `{http_start, websocket}` →
//! the protocols (`http_protocol`, `ws_protocol`) → `bridge` → `{jobs, async_runtimes}` → what
//! the queue carries (`pending`, `ws_delivery`, `receive_messages`) → `{ws_handshake,
//! ws_session}`. `scope` (→ `ws_handshake`, for the offered subprotocols), `send_messages` and
//! `awaitable` are leaves used from above.

#[cfg(feature = "asgi-bridge-async-runtimes")]
mod async_runtimes;
mod awaitable;
mod bridge;
mod http_protocol;
mod http_start;
mod jobs;
mod pending;
mod receive_messages;
mod scope;
mod send_messages;
mod serve;
mod websocket;
mod ws_delivery;
mod ws_handshake;
mod ws_protocol;
mod ws_session;

pub use awaitable::Ready;
pub use bridge::AsgiBridge;
pub use http_protocol::HttpProtocol;
pub use ws_protocol::ClientDisconnected;
pub use ws_session::WsConfig;
