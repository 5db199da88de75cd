//! The WebSocket `receive` that had to wait: what it completes with, and where the message goes
//! when the app cancelled that `receive` meanwhile (the stash the next `receive` reads first).

use std::sync::{Arc, Mutex};

use pyo3::intern;
use pyo3::prelude::*;
use pyo3::types::PyDict;
use tokio::sync::{OwnedMutexGuard, mpsc};

use super::receive_messages;
use super::ws_session::Inbound;

/// What the app's next `receive` gets; a message whose `receive` was cancelled before it
/// arrived waits here for the next one instead of being lost.
pub enum WsEvent {
    Received(Inbound),
    Disconnect(u16, String),
}

/// A `receive` that waited for the socket, on its way to the loop thread to complete the app's
/// future.
pub struct Delivery {
    event: WsEvent,
    stash: Arc<Mutex<Option<Inbound>>>,
    /// Held until the message is delivered or stashed, so that a `receive` waiting behind this
    /// one looks at the stash only after it was filled.
    _inbox: OwnedMutexGuard<mpsc::Receiver<Inbound>>,
}

impl Delivery {
    pub fn new(
        event: WsEvent,
        stash: Arc<Mutex<Option<Inbound>>>,
        inbox: OwnedMutexGuard<mpsc::Receiver<Inbound>>,
    ) -> Self {
        Self {
            event,
            stash,
            _inbox: inbox,
        }
    }

    /// Runs on the loop thread: completes the app's `receive` future, or keeps the message for
    /// the next `receive` when this one was cancelled.
    pub fn complete(self, py: Python<'_>, resolve: &Py<PyAny>, future: Py<PyAny>) -> PyResult<()> {
        if future
            .bind(py)
            .call_method0(intern!(py, "done"))?
            .is_truthy()?
        {
            if let WsEvent::Received(message) = self.event {
                *self.stash.lock().unwrap_or_else(|e| e.into_inner()) = Some(message);
            }
            return Ok(());
        }
        let message = event_message(py, self.event)?;
        resolve.call1(py, (future, message, py.None()))?;
        Ok(())
    }
}

pub fn event_message(py: Python<'_>, event: WsEvent) -> PyResult<Bound<'_, PyDict>> {
    match event {
        WsEvent::Received(Inbound::Text(text)) => {
            receive_messages::websocket_text(py, text.as_str())
        }
        WsEvent::Received(Inbound::Binary(data)) => receive_messages::websocket_bytes(py, &data),
        WsEvent::Disconnect(close_code, reason) => {
            receive_messages::websocket_disconnect(py, close_code, &reason)
        }
    }
}
