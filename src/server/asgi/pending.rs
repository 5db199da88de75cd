//! What a tokio thread hands over for the loop thread to start the app with: an HTTP request or
//! a WebSocket handshake, whose scope and protocol object are built there with the GIL.

use std::sync::Arc;

use tokio::sync::{mpsc, oneshot};

use super::ws_handshake::Handshake;
use super::ws_session::{CloseState, Inbound, Outbound};
use crate::server::conn_info::ConnInfo;
use crate::server::disconnect::Disconnect;
use crate::server::request_body::RequestBody;
use crate::server::response::ResponseHead;

/// A request on its way to the loop thread, where its scope and protocol are built.
pub struct PendingRequest {
    pub parts: http::request::Parts,
    pub conn: Arc<ConnInfo>,
    pub body: RequestBody,
    pub disconnect: Arc<Disconnect>,
    pub head_tx: oneshot::Sender<ResponseHead>,
}

/// A handshake on its way to the loop thread, where its scope and protocol are built.
pub struct PendingWebSocket {
    pub parts: http::request::Parts,
    pub conn: Arc<ConnInfo>,
    pub reply: oneshot::Sender<Handshake>,
    pub inbox: mpsc::Receiver<Inbound>,
    pub outbox: mpsc::Sender<Outbound>,
    pub closed: Arc<CloseState>,
}
