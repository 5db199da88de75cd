//! `receive` and `send` for one ASGI `http` request.
//!
//! Both run on the asyncio thread. What can be answered at once is answered with a completed
//! awaitable (`AsgiBridge::ready`); what has to wait for the network becomes a future that a
//! tokio task completes (`AsgiBridge::later`). Which kind of awaitable and future depends on the
//! bridge: the custom one or pyo3-async-runtimes (`async_runtimes.rs`); `bridge.rs` picks.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http::{HeaderMap, StatusCode};
use pyo3::exceptions::{PyRuntimeError, PyValueError};
use pyo3::intern;
use pyo3::prelude::*;
use pyo3::types::PyString;
use tokio::sync::mpsc::error::TrySendError;
use tokio::sync::{Mutex as AsyncMutex, mpsc, oneshot};

use super::bridge::AsgiBridge;
use super::pending::PendingRequest;
use super::receive_messages::{self, HttpReply};
use super::send_messages::{body_bytes, optional_item, parse_headers};
use crate::server::disconnect::Disconnect;
use crate::server::request_body::RequestBody;
use crate::server::response::{Aborted, BodySource, Chunk, ResponseHead, STREAM_BUFFER};

enum ResponseState {
    Pending(oneshot::Sender<ResponseHead>),
    Started(oneshot::Sender<ResponseHead>, StatusCode, HeaderMap),
    Streaming(mpsc::Sender<Chunk>),
    Done,
}

#[pyclass(frozen, module = "hmr_serve._core")]
pub struct HttpProtocol {
    bridge: Arc<AsgiBridge>,
    body: Arc<AsyncMutex<RequestBody>>,
    body_done: Arc<AtomicBool>,
    disconnect: Arc<Disconnect>,
    response: Mutex<ResponseState>,
}

impl HttpProtocol {
    pub fn new(bridge: Arc<AsgiBridge>, request: PendingRequest) -> Self {
        Self {
            bridge,
            body: Arc::new(AsyncMutex::new(request.body)),
            body_done: Arc::new(AtomicBool::new(false)),
            disconnect: request.disconnect,
            response: Mutex::new(ResponseState::Pending(request.head_tx)),
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, ResponseState> {
        self.response.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[pymethods]
impl HttpProtocol {
    fn receive(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        if !self.body_done.load(Ordering::Acquire) {
            if let Ok(mut body) = self.body.try_lock() {
                if let Some(data) = body.take_buffered() {
                    self.body_done.store(true, Ordering::Release);
                    let message = receive_messages::http_request(py, &data, false)?;
                    return self.bridge.ready(py, Some(message.into_any().unbind()));
                }
            }
            let body = self.body.clone();
            let body_done = self.body_done.clone();
            return self.bridge.later(py, async move {
                let mut body = body.lock().await;
                let chunk = body.next_chunk().await;
                let more_body = !body.is_end();
                drop(body);
                let reply = match chunk {
                    Ok(Some(data)) => HttpReply::Request {
                        body: data,
                        more_body,
                    },
                    Ok(None) => HttpReply::Request {
                        body: Bytes::new(),
                        more_body: false,
                    },
                    Err(_) => HttpReply::Disconnect,
                };
                if !matches!(
                    reply,
                    HttpReply::Request {
                        more_body: true,
                        ..
                    }
                ) {
                    body_done.store(true, Ordering::Release);
                }
                reply
            });
        }
        if self.disconnect.is_gone() {
            let message = receive_messages::http_disconnect(py)?;
            return self.bridge.ready(py, Some(message.into_any().unbind()));
        }
        let disconnect = self.disconnect.clone();
        self.bridge.later(py, async move {
            disconnect.wait().await;
            HttpReply::Disconnect
        })
    }

    fn send(&self, py: Python<'_>, message: Bound<'_, PyAny>) -> PyResult<Py<PyAny>> {
        let kind = message.get_item(intern!(py, "type"))?;
        let kind = kind.cast::<PyString>()?.to_str()?;
        match kind {
            "http.response.start" => {
                let status: u16 = message.get_item(intern!(py, "status"))?.extract()?;
                let status = StatusCode::from_u16(status)
                    .map_err(|_| PyValueError::new_err(format!("invalid HTTP status {status}")))?;
                let headers = parse_headers(optional_item(&message, intern!(py, "headers"))?)?;
                let mut state = self.state();
                match std::mem::replace(&mut *state, ResponseState::Done) {
                    ResponseState::Pending(head_tx) => {
                        *state = ResponseState::Started(head_tx, status, headers);
                        self.bridge.ready(py, None)
                    }
                    other => {
                        *state = other;
                        Err(PyRuntimeError::new_err(
                            "Unexpected ASGI message 'http.response.start' sent, after response already started.",
                        ))
                    }
                }
            }
            "http.response.body" => {
                let body = body_bytes(optional_item(&message, intern!(py, "body"))?)?;
                let more_body = match optional_item(&message, intern!(py, "more_body"))? {
                    Some(value) => value.is_truthy()?,
                    None => false,
                };
                self.send_body(py, body, more_body)
            }
            "http.response.trailers" => self.bridge.ready(py, None),
            other => Err(PyRuntimeError::new_err(format!(
                "Unexpected ASGI message '{other}' sent for an http connection."
            ))),
        }
    }

    /// Called by the Python runner when the app returns or raises. Returns the complaint to log
    /// when the app returned cleanly but left the response unfinished.
    fn complete(&self, failed: bool) -> Option<&'static str> {
        let previous = std::mem::replace(&mut *self.state(), ResponseState::Done);
        match previous {
            ResponseState::Pending(head_tx) | ResponseState::Started(head_tx, _, _) => {
                let _ = head_tx.send(ResponseHead::internal_error());
                (!failed).then_some("ASGI callable returned without starting response.")
            }
            ResponseState::Streaming(tx) => {
                if tx.try_send(Err(Aborted)).is_err() {
                    self.bridge.runtime.spawn(async move {
                        let _ = tx.send(Err(Aborted)).await;
                    });
                }
                (!failed).then_some("ASGI callable returned without completing response.")
            }
            ResponseState::Done => None,
        }
    }
}

impl HttpProtocol {
    fn send_body(&self, py: Python<'_>, body: Bytes, more_body: bool) -> PyResult<Py<PyAny>> {
        let mut state = self.state();
        match std::mem::replace(&mut *state, ResponseState::Done) {
            ResponseState::Started(head_tx, status, headers) => {
                let source = if more_body {
                    let (tx, rx) = mpsc::channel(STREAM_BUFFER);
                    if !body.is_empty() {
                        // The channel is new and empty: this cannot fail for lack of room.
                        let _ = tx.try_send(Ok(body));
                    }
                    *state = ResponseState::Streaming(tx);
                    BodySource::Stream(rx)
                } else {
                    BodySource::Full(body)
                };
                let _ = head_tx.send(ResponseHead {
                    status,
                    headers,
                    body: source,
                });
                self.bridge.ready(py, None)
            }
            ResponseState::Streaming(tx) => {
                if more_body {
                    *state = ResponseState::Streaming(tx.clone());
                }
                drop(state);
                if body.is_empty() {
                    return self.bridge.ready(py, None);
                }
                match tx.try_send(Ok(body)) {
                    // A closed channel means the client left; the app learns it from `receive`.
                    Ok(()) | Err(TrySendError::Closed(_)) => self.bridge.ready(py, None),
                    Err(TrySendError::Full(chunk)) => self.bridge.later(py, async move {
                        let _ = tx.send(chunk).await;
                        HttpReply::Nothing
                    }),
                }
            }
            ResponseState::Pending(head_tx) => {
                *state = ResponseState::Pending(head_tx);
                Err(PyRuntimeError::new_err(
                    "Unexpected ASGI message 'http.response.body' sent, before 'http.response.start'.",
                ))
            }
            ResponseState::Done => {
                if self.disconnect.is_gone() {
                    self.bridge.ready(py, None)
                } else {
                    Err(PyRuntimeError::new_err(
                        "Unexpected ASGI message 'http.response.body' sent, after response already completed.",
                    ))
                }
            }
        }
    }
}
