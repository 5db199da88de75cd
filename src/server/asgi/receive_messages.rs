//! The ASGI messages the app gets from `receive`, and `HttpReply`: what an HTTP `receive` or
//! `send` that had to wait for the network completes with. What the app passes to `send` is
//! read in `send_messages`.

use bytes::Bytes;
use pyo3::intern;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict};

/// What an HTTP `receive` or `send` that had to wait for the network completes with.
pub enum HttpReply {
    Request {
        body: Bytes,
        more_body: bool,
    },
    Disconnect,
    /// `send` found room for its chunk.
    Nothing,
}

impl HttpReply {
    pub fn into_value(self, py: Python<'_>) -> PyResult<Bound<'_, PyAny>> {
        Ok(match self {
            HttpReply::Request { body, more_body } => {
                http_request(py, &body, more_body)?.into_any()
            }
            HttpReply::Disconnect => http_disconnect(py)?.into_any(),
            HttpReply::Nothing => py.None().into_bound(py),
        })
    }
}

pub fn http_request<'py>(
    py: Python<'py>,
    body: &[u8],
    more_body: bool,
) -> PyResult<Bound<'py, PyDict>> {
    let message = PyDict::new(py);
    message.set_item(intern!(py, "type"), intern!(py, "http.request"))?;
    message.set_item(intern!(py, "body"), PyBytes::new(py, body))?;
    message.set_item(intern!(py, "more_body"), more_body)?;
    Ok(message)
}

pub fn http_disconnect(py: Python<'_>) -> PyResult<Bound<'_, PyDict>> {
    let message = PyDict::new(py);
    message.set_item(intern!(py, "type"), intern!(py, "http.disconnect"))?;
    Ok(message)
}

pub fn websocket_connect(py: Python<'_>) -> PyResult<Bound<'_, PyDict>> {
    let message = PyDict::new(py);
    message.set_item(intern!(py, "type"), intern!(py, "websocket.connect"))?;
    Ok(message)
}

pub fn websocket_text<'py>(py: Python<'py>, text: &str) -> PyResult<Bound<'py, PyDict>> {
    let message = PyDict::new(py);
    message.set_item(intern!(py, "type"), intern!(py, "websocket.receive"))?;
    message.set_item(intern!(py, "text"), text)?;
    Ok(message)
}

pub fn websocket_bytes<'py>(py: Python<'py>, data: &[u8]) -> PyResult<Bound<'py, PyDict>> {
    let message = PyDict::new(py);
    message.set_item(intern!(py, "type"), intern!(py, "websocket.receive"))?;
    message.set_item(intern!(py, "bytes"), PyBytes::new(py, data))?;
    Ok(message)
}

pub fn websocket_disconnect<'py>(
    py: Python<'py>,
    code: u16,
    reason: &str,
) -> PyResult<Bound<'py, PyDict>> {
    let message = PyDict::new(py);
    message.set_item(intern!(py, "type"), intern!(py, "websocket.disconnect"))?;
    message.set_item(intern!(py, "code"), code)?;
    message.set_item(intern!(py, "reason"), reason)?;
    Ok(message)
}
