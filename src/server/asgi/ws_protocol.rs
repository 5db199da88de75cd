//! `receive` and `send` for one ASGI `websocket` connection, on the asyncio thread.
//!
//! Before the handshake is answered, `send` decides it (accept, close → 403, or a denial
//! response); after it, messages travel through the session's bounded channels (see
//! `ws_session`). What can be answered at once gets a completed awaitable; what has to wait for
//! the network becomes an asyncio future that a tokio task completes through the job queue.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use bytes::{Bytes, BytesMut};
use http::header::{CONNECTION, CONTENT_TYPE, HeaderValue};
use http::{HeaderMap, StatusCode};
use pyo3::exceptions::{PyOSError, PyRuntimeError, PyValueError};
use pyo3::intern;
use pyo3::prelude::*;
use pyo3::types::PyString;
use tokio::sync::mpsc::error::{TryRecvError, TrySendError};
use tokio::sync::{Mutex as AsyncMutex, mpsc, oneshot};
use tokio_tungstenite::tungstenite::Message;

use super::awaitable::Ready;
use super::bridge::AsgiBridge;
use super::jobs::Completion;
use super::pending::PendingWebSocket;
use super::receive_messages::{self, HttpReply};
use super::send_messages::{body_bytes, optional_item, parse_headers};
use super::ws_delivery::{Delivery, WsEvent, event_message};
use super::ws_handshake::Handshake;
use super::ws_session::{CloseState, Inbound, Outbound, code};
use crate::server::response::{BodySource, ResponseHead};

pyo3::create_exception!(
    hmr_serve._core,
    ClientDisconnected,
    PyOSError,
    "The WebSocket client went away: nothing can be sent on this connection any more."
);

enum Phase {
    /// The handshake waits for the app's answer.
    Connecting(oneshot::Sender<Handshake>),
    /// The app answers the handshake with an HTTP response (`websocket.http.response.*`).
    Denying {
        reply: oneshot::Sender<Handshake>,
        status: StatusCode,
        headers: HeaderMap,
        body: BytesMut,
    },
    Open,
    /// The app sent `websocket.close`, or the handshake was refused.
    Closed,
}

#[pyclass(frozen, module = "hmr_serve._core")]
pub struct WebSocketProtocol {
    bridge: Arc<AsgiBridge>,
    connect_delivered: AtomicBool,
    inbox: Arc<AsyncMutex<mpsc::Receiver<Inbound>>>,
    stash: Arc<Mutex<Option<Inbound>>>,
    outbox: mpsc::Sender<Outbound>,
    closed: Arc<CloseState>,
    phase: Mutex<Phase>,
}

impl WebSocketProtocol {
    pub fn new(bridge: Arc<AsgiBridge>, pending: PendingWebSocket) -> Self {
        Self {
            bridge,
            connect_delivered: AtomicBool::new(false),
            inbox: Arc::new(AsyncMutex::new(pending.inbox)),
            stash: Arc::new(Mutex::new(None)),
            outbox: pending.outbox,
            closed: pending.closed,
            phase: Mutex::new(Phase::Connecting(pending.reply)),
        }
    }

    fn phase(&self) -> std::sync::MutexGuard<'_, Phase> {
        self.phase.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn disconnect_now(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        let (close_code, reason) = self.closed.get();
        let message = receive_messages::websocket_disconnect(py, close_code, &reason)?;
        Ready::awaitable(py, Some(message.into_any().unbind()))
    }

    /// Queues a message for the socket; waits only when the app is ahead of the socket.
    fn push(&self, py: Python<'_>, item: Outbound) -> PyResult<Py<PyAny>> {
        match self.outbox.try_send(item) {
            Ok(()) => Ready::awaitable(py, None),
            Err(TrySendError::Full(item)) => {
                let future = self.bridge.create_future(py)?;
                let result = future.clone_ref(py);
                let outbox = self.outbox.clone();
                let bridge = self.bridge.clone();
                self.bridge.runtime.spawn(async move {
                    // A session that ended meanwhile: the app's next send raises.
                    let _ = outbox.send(item).await;
                    bridge.resolve_later(future, Completion::Http(HttpReply::Nothing));
                });
                Ok(result)
            }
            Err(TrySendError::Closed(_)) => Err(ClientDisconnected::new_err(
                "the WebSocket client disconnected",
            )),
        }
    }

    /// Hands the handshake's answer to the connection; false when the client already left.
    fn answer(reply: oneshot::Sender<Handshake>, handshake: Handshake) -> bool {
        reply.send(handshake).is_ok()
    }
}

fn text_or_bytes(message: &Bound<'_, PyAny>) -> PyResult<Message> {
    let py = message.py();
    if let Some(data) = optional_item(message, intern!(py, "bytes"))? {
        return Ok(Message::Binary(body_bytes(Some(data))?));
    }
    if let Some(text) = optional_item(message, intern!(py, "text"))? {
        let text = text.cast::<PyString>().map_err(|_| {
            PyValueError::new_err("ASGI message 'websocket.send' field 'text' must be str")
        })?;
        return Ok(Message::text(text.to_str()?.to_owned()));
    }
    Err(PyValueError::new_err(
        "ASGI message 'websocket.send' needs 'bytes' or 'text'",
    ))
}

fn close_fields(message: &Bound<'_, PyAny>) -> PyResult<(u16, String)> {
    let py = message.py();
    let close_code = match optional_item(message, intern!(py, "code"))? {
        Some(value) => value.extract::<u16>()?,
        None => code::NORMAL,
    };
    let reason = match optional_item(message, intern!(py, "reason"))? {
        Some(value) => value.extract::<String>()?,
        None => String::new(),
    };
    Ok((close_code, reason))
}

/// The denial response as uvicorn sends it: plain text unless the app says otherwise, and the
/// connection closes after it.
fn denial_head(status: StatusCode, mut headers: HeaderMap, body: Bytes) -> ResponseHead {
    if !headers.contains_key(CONTENT_TYPE) {
        headers.insert(
            CONTENT_TYPE,
            HeaderValue::from_static("text/plain; charset=utf-8"),
        );
    }
    if !headers.contains_key(CONNECTION) {
        headers.insert(CONNECTION, HeaderValue::from_static("close"));
    }
    ResponseHead {
        status,
        headers,
        body: BodySource::Full(body),
    }
}

#[pymethods]
impl WebSocketProtocol {
    fn receive(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        if !self.connect_delivered.swap(true, Ordering::AcqRel) {
            let message = receive_messages::websocket_connect(py)?;
            return Ready::awaitable(py, Some(message.into_any().unbind()));
        }
        if let Some(message) = self.stash.lock().unwrap_or_else(|e| e.into_inner()).take() {
            let message = event_message(py, WsEvent::Received(message))?;
            return Ready::awaitable(py, Some(message.into_any().unbind()));
        }
        if let Ok(mut inbox) = self.inbox.try_lock() {
            match inbox.try_recv() {
                Ok(message) => {
                    let message = event_message(py, WsEvent::Received(message))?;
                    return Ready::awaitable(py, Some(message.into_any().unbind()));
                }
                Err(TryRecvError::Disconnected) => return self.disconnect_now(py),
                Err(TryRecvError::Empty) => {}
            }
        }
        let future = self.bridge.create_future(py)?;
        let result = future.clone_ref(py);
        let inbox = self.inbox.clone();
        let closed = self.closed.clone();
        let stash = self.stash.clone();
        let bridge = self.bridge.clone();
        self.bridge.runtime.spawn(async move {
            let mut inbox = inbox.lock_owned().await;
            let stashed = stash.lock().unwrap_or_else(|e| e.into_inner()).take();
            let event = match stashed {
                Some(message) => WsEvent::Received(message),
                None => match inbox.recv().await {
                    Some(message) => WsEvent::Received(message),
                    None => {
                        let (close_code, reason) = closed.get();
                        WsEvent::Disconnect(close_code, reason)
                    }
                },
            };
            let delivery = Delivery::new(event, stash, inbox);
            bridge.resolve_later(future, Completion::WebSocket(Box::new(delivery)));
        });
        Ok(result)
    }

    fn send(&self, py: Python<'_>, message: Bound<'_, PyAny>) -> PyResult<Py<PyAny>> {
        let kind = message.get_item(intern!(py, "type"))?;
        let kind = kind.cast::<PyString>()?.to_str()?;
        let mut phase = self.phase();
        match (std::mem::replace(&mut *phase, Phase::Closed), kind) {
            (Phase::Connecting(reply), "websocket.accept") => {
                let subprotocol = match optional_item(&message, intern!(py, "subprotocol"))? {
                    Some(value) => Some(value.extract::<String>()?),
                    None => None,
                };
                let headers = parse_headers(optional_item(&message, intern!(py, "headers"))?)?;
                if !Self::answer(
                    reply,
                    Handshake::Accept {
                        subprotocol,
                        headers,
                    },
                ) {
                    return Err(ClientDisconnected::new_err(
                        "the WebSocket client disconnected before the handshake was answered",
                    ));
                }
                *phase = Phase::Open;
                Ready::awaitable(py, None)
            }
            (Phase::Connecting(reply), "websocket.close") => {
                self.closed.set(code::ABNORMAL, "");
                Self::answer(
                    reply,
                    Handshake::Respond(ResponseHead::plain(StatusCode::FORBIDDEN, "")),
                );
                Ready::awaitable(py, None)
            }
            (Phase::Connecting(reply), "websocket.http.response.start") => {
                let status: u16 = message.get_item(intern!(py, "status"))?.extract()?;
                let status = StatusCode::from_u16(status)
                    .ok()
                    .filter(|s| !s.is_informational())
                    .ok_or_else(|| {
                        PyRuntimeError::new_err(format!(
                            "Invalid HTTP status code '{status}' in response."
                        ))
                    });
                let status = match status {
                    Ok(status) => status,
                    Err(err) => {
                        *phase = Phase::Connecting(reply);
                        return Err(err);
                    }
                };
                let headers = match parse_headers(optional_item(&message, intern!(py, "headers"))?)
                {
                    Ok(headers) => headers,
                    Err(err) => {
                        *phase = Phase::Connecting(reply);
                        return Err(err);
                    }
                };
                *phase = Phase::Denying {
                    reply,
                    status,
                    headers,
                    body: BytesMut::new(),
                };
                Ready::awaitable(py, None)
            }
            (Phase::Connecting(reply), other) => {
                *phase = Phase::Connecting(reply);
                Err(PyRuntimeError::new_err(format!(
                    "Expected ASGI message 'websocket.accept', 'websocket.close' or \
                     'websocket.http.response.start' but got '{other}'."
                )))
            }
            (
                Phase::Denying {
                    reply,
                    status,
                    headers,
                    mut body,
                },
                "websocket.http.response.body",
            ) => {
                body.extend_from_slice(&body_bytes(optional_item(&message, intern!(py, "body"))?)?);
                let more_body = match optional_item(&message, intern!(py, "more_body"))? {
                    Some(value) => value.is_truthy()?,
                    None => false,
                };
                if more_body {
                    *phase = Phase::Denying {
                        reply,
                        status,
                        headers,
                        body,
                    };
                } else {
                    self.closed.set(code::ABNORMAL, "");
                    Self::answer(
                        reply,
                        Handshake::Respond(denial_head(status, headers, body.freeze())),
                    );
                }
                Ready::awaitable(py, None)
            }
            (denying @ Phase::Denying { .. }, other) => {
                *phase = denying;
                Err(PyRuntimeError::new_err(format!(
                    "Expected ASGI message 'websocket.http.response.body' but got '{other}'."
                )))
            }
            (Phase::Open, "websocket.send") => {
                *phase = Phase::Open;
                drop(phase);
                let outgoing = text_or_bytes(&message)?;
                self.push(py, Outbound::Message(outgoing))
            }
            (Phase::Open, "websocket.close") => {
                let (close_code, reason) = match close_fields(&message) {
                    Ok(fields) => fields,
                    Err(err) => {
                        *phase = Phase::Open;
                        return Err(err);
                    }
                };
                drop(phase);
                self.closed.set(close_code, &reason);
                self.push(py, Outbound::Close(close_code, reason))
            }
            (Phase::Open, other) => {
                *phase = Phase::Open;
                Err(PyRuntimeError::new_err(format!(
                    "Expected ASGI message 'websocket.send' or 'websocket.close', but got '{other}'."
                )))
            }
            (Phase::Closed, other) => Err(PyRuntimeError::new_err(format!(
                "Unexpected ASGI message '{other}', after sending 'websocket.close'."
            ))),
        }
    }

    /// Called by the Python runner when the app returns or raises. Returns the complaint to log
    /// when the app returned cleanly but left the handshake unanswered.
    fn complete(&self, failed: bool) -> Option<&'static str> {
        let previous = std::mem::replace(&mut *self.phase(), Phase::Closed);
        match previous {
            Phase::Connecting(reply) | Phase::Denying { reply, .. } => {
                self.closed.set(code::ABNORMAL, "");
                Self::answer(reply, Handshake::Respond(ResponseHead::internal_error()));
                (!failed).then_some("ASGI callable returned without completing handshake.")
            }
            Phase::Open => {
                let close_code = if failed {
                    code::INTERNAL_ERROR
                } else {
                    code::NORMAL
                };
                self.closed.set(close_code, "");
                let close = Outbound::Close(close_code, String::new());
                if let Err(TrySendError::Full(close)) = self.outbox.try_send(close) {
                    let outbox = self.outbox.clone();
                    self.bridge.runtime.spawn(async move {
                        let _ = outbox.send(close).await;
                    });
                }
                None
            }
            Phase::Closed => None,
        }
    }
}
