//! One WebSocket upgrade request for an ASGI app: hand the app its `websocket` scope (on the loop
//! thread), answer with what the app decided (101 with the accept key, 403, or the app's own
//! response), and start the session on the upgraded connection. The HTTP side of the handshake
//! is in `ws_handshake.rs`.
//!
//! The handshake is an ordinary request as far as the reload gate goes: it waits while a reload
//! runs, and counts as in flight until the app answers. An accepted socket then lives on its
//! own and never holds a reload up.

use std::sync::Arc;

use http::{Request, Response};
use hyper::body::Incoming;
use pyo3::prelude::*;
use tokio::sync::{mpsc, oneshot};

use super::bridge::AsgiBridge;
use super::jobs::Job;
use super::pending::PendingWebSocket;
use super::scope;
use super::ws_handshake::{Handshake, bad_request, handshake_key, switching_protocols};
use super::ws_protocol::WebSocketProtocol;
use super::ws_session::deflate_offer;
use super::ws_session::{self, Channels, CloseState, OUTBOX, WsConfig};
use crate::log::{self, Level};
use crate::server::conn_info::ConnInfo;
use crate::server::response::{self, ResponseBody, ResponseHead};

/// Serves one upgrade request: asks the app, answers the handshake, runs the session.
pub async fn handle(
    bridge: Arc<AsgiBridge>,
    config: WsConfig,
    mut req: Request<Incoming>,
    conn: Arc<ConnInfo>,
) -> Response<ResponseBody> {
    let key = match handshake_key(&req) {
        Ok(key) => key,
        Err(reason) => return bad_request(reason),
    };
    let deflate = config
        .per_message_deflate
        .then(|| deflate_offer::negotiate(req.headers()))
        .flatten();
    let on_upgrade = hyper::upgrade::on(&mut req);
    let (parts, _body) = req.into_parts();
    let (reply, answer) = oneshot::channel();
    let (inbox_tx, inbox) = mpsc::channel(config.max_queue.max(1));
    let (outbox, outbox_rx) = mpsc::channel(OUTBOX);
    let closed = Arc::new(CloseState::default());
    bridge.jobs.push(Job::WebSocket(Box::new(PendingWebSocket {
        parts,
        conn,
        reply,
        inbox,
        outbox,
        closed: closed.clone(),
    })));
    // Dropping this future (the client left) drops `inbox_tx` too: the app's `receive` then
    // reports `websocket.disconnect`.
    let (subprotocol, headers) = match answer.await {
        Ok(Handshake::Accept {
            subprotocol,
            headers,
        }) => (subprotocol, headers),
        Ok(Handshake::Respond(head)) => return head.into_response(None),
        Err(_) => return response::internal_error(),
    };
    let head = match switching_protocols(&key, subprotocol, deflate.as_ref(), headers) {
        Ok(head) => head,
        Err(reason) => {
            log::write(
                Level::Error,
                &format!("WebSocket handshake failed: {reason}"),
            );
            return response::internal_error();
        }
    };
    let shutdown = bridge.shutdown.clone();
    bridge.runtime.spawn(async move {
        match on_upgrade.await {
            Ok(io) => {
                let channels = Channels {
                    inbox: inbox_tx,
                    outbox: outbox_rx,
                    closed,
                };
                ws_session::run(io, config, deflate, channels, shutdown).await;
            }
            Err(err) => {
                closed.set(ws_session::code::ABNORMAL, "");
                log::write(Level::Debug, &format!("WebSocket upgrade failed: {err}"));
            }
        }
    });
    head.into_response(None)
}

/// Runs on the loop thread: builds the `websocket` scope and starts the app.
pub(super) fn start_app(
    bridge: &Arc<AsgiBridge>,
    py: Python<'_>,
    pending: PendingWebSocket,
) -> PyResult<()> {
    let state = bridge.state.as_ref().map(|s| s.bind(py));
    let scope =
        match scope::build_websocket(py, &pending.parts, &pending.conn, &bridge.root_path, state) {
            Ok(scope) => scope,
            Err(err) => {
                let _ = pending
                    .reply
                    .send(Handshake::Respond(ResponseHead::internal_error()));
                return Err(err);
            }
        };
    let protocol = Py::new(py, WebSocketProtocol::new(bridge.clone(), pending))?;
    bridge
        .dispatch
        .call1(py, (bridge.app.get(py), scope, protocol))?;
    Ok(())
}
