//! `start_response` and the body it feeds. Headers go out with the first non-empty chunk (or at
//! the end), as PEP 3333 asks; a single-chunk response goes out whole, with a Content-Length.

use std::sync::Mutex;

use bytes::{Bytes, BytesMut};
use http::header::{HeaderName, HeaderValue};
use http::{HeaderMap, StatusCode};
use pyo3::exceptions::{PyRuntimeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyString, PyTuple};
use tokio::sync::mpsc::error::TrySendError;
use tokio::sync::{mpsc, oneshot};

use crate::server::response::{Aborted, BodySource, Chunk, ResponseHead, STREAM_BUFFER};

/// A 500 body bigger than this is not kept back for an error page.
const HOLD_LIMIT: usize = 256 * 1024;

enum Progress {
    /// Head not sent yet; status and headers once `start_response` was called.
    Unsent(
        oneshot::Sender<ResponseHead>,
        Option<(StatusCode, HeaderMap)>,
    ),
    Streaming(mpsc::Sender<Chunk>),
    /// A 500 kept back until the app call ended: it may become the error page.
    Held(
        oneshot::Sender<ResponseHead>,
        StatusCode,
        HeaderMap,
        BytesMut,
    ),
    Done,
}

#[pyclass(frozen, module = "hmr_serve._core")]
pub struct StartResponse {
    progress: Mutex<Progress>,
    hold_errors: bool,
}

fn latin1_bytes(text: &str) -> PyResult<Vec<u8>> {
    text.chars()
        .map(|c| u8::try_from(u32::from(c)).ok())
        .collect::<Option<Vec<u8>>>()
        .ok_or_else(|| PyValueError::new_err(format!("header {text:?} is not latin-1")))
}

fn parse_status(status: &str) -> PyResult<StatusCode> {
    status
        .get(..3)
        .and_then(|code| code.parse::<u16>().ok())
        .and_then(|code| StatusCode::from_u16(code).ok())
        .ok_or_else(|| PyValueError::new_err(format!("invalid WSGI status {status:?}")))
}

fn parse_headers(headers: &Bound<'_, PyAny>) -> PyResult<HeaderMap> {
    let mut map = HeaderMap::new();
    for pair in headers.try_iter()? {
        let pair = pair?;
        let name: String = pair.get_item(0)?.extract()?;
        let value: String = pair.get_item(1)?.extract()?;
        let name = HeaderName::from_bytes(name.as_bytes())
            .map_err(|_| PyValueError::new_err(format!("invalid header name {name:?}")))?;
        let value = HeaderValue::from_bytes(&latin1_bytes(&value)?)
            .map_err(|_| PyValueError::new_err(format!("invalid value for header {name}")))?;
        map.append(name, value);
    }
    Ok(map)
}

impl StartResponse {
    /// `hold_errors`: keep a whole 500 back until `release`, so an error page can replace it.
    pub fn new(head_tx: oneshot::Sender<ResponseHead>, hold_errors: bool) -> Self {
        Self {
            progress: Mutex::new(Progress::Unsent(head_tx, None)),
            hold_errors,
        }
    }

    fn progress(&self) -> std::sync::MutexGuard<'_, Progress> {
        self.progress.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Hands one chunk to the client; `last` ends the body.
    pub fn emit(&self, py: Python<'_>, data: Bytes, last: bool) -> PyResult<()> {
        let mut progress = self.progress();
        match std::mem::replace(&mut *progress, Progress::Done) {
            Progress::Unsent(head_tx, None) => {
                *progress = Progress::Unsent(head_tx, None);
                Err(PyRuntimeError::new_err(
                    "the WSGI application produced a body before calling start_response()",
                ))
            }
            Progress::Unsent(head_tx, Some((status, headers))) => {
                if self.hold_errors && status == StatusCode::INTERNAL_SERVER_ERROR {
                    *progress = Progress::Held(head_tx, status, headers, BytesMut::from(&data[..]));
                    return Ok(());
                }
                if last {
                    let _ = head_tx.send(ResponseHead {
                        status,
                        headers,
                        body: BodySource::Full(data),
                    });
                    return Ok(());
                }
                if data.is_empty() {
                    *progress = Progress::Unsent(head_tx, Some((status, headers)));
                    return Ok(());
                }
                let (tx, rx) = mpsc::channel(STREAM_BUFFER);
                let _ = tx.try_send(Ok(data));
                let _ = head_tx.send(ResponseHead {
                    status,
                    headers,
                    body: BodySource::Stream(rx),
                });
                *progress = Progress::Streaming(tx);
                Ok(())
            }
            Progress::Streaming(tx) => {
                if !last {
                    *progress = Progress::Streaming(tx.clone());
                }
                drop(progress);
                if !data.is_empty() {
                    if let Err(TrySendError::Full(chunk)) = tx.try_send(Ok(data)) {
                        // A closed channel is a client that left: the rest is discarded.
                        let _ = py.detach(|| tx.blocking_send(chunk));
                    }
                }
                Ok(())
            }
            Progress::Held(head_tx, status, headers, mut body) => {
                body.extend_from_slice(&data);
                if body.len() <= HOLD_LIMIT {
                    *progress = Progress::Held(head_tx, status, headers, body);
                    return Ok(());
                }
                // Too big for an error page to replace: the app's own 500 streams out.
                let (tx, rx) = mpsc::channel(STREAM_BUFFER);
                let _ = tx.try_send(Ok(body.freeze()));
                let _ = head_tx.send(ResponseHead {
                    status,
                    headers,
                    body: BodySource::Stream(rx),
                });
                if !last {
                    *progress = Progress::Streaming(tx);
                }
                Ok(())
            }
            Progress::Done => Ok(()),
        }
    }

    pub fn holds_error(&self) -> bool {
        matches!(*self.progress(), Progress::Held(..))
    }

    /// Sends the held 500, or `page` in its place.
    pub fn release(&self, page: Option<ResponseHead>) {
        let mut progress = self.progress();
        if let Progress::Held(head_tx, status, headers, body) =
            std::mem::replace(&mut *progress, Progress::Done)
        {
            let _ = head_tx.send(page.unwrap_or(ResponseHead {
                status,
                headers,
                body: BodySource::Full(body.freeze()),
            }));
        }
    }

    /// The app failed: a 500 (`page`, if given) if nothing was sent yet, otherwise the
    /// connection is cut.
    pub fn fail(&self, page: Option<ResponseHead>) {
        match std::mem::replace(&mut *self.progress(), Progress::Done) {
            Progress::Unsent(head_tx, _) | Progress::Held(head_tx, ..) => {
                let _ = head_tx.send(page.unwrap_or_else(ResponseHead::internal_error));
            }
            Progress::Streaming(tx) => {
                let _ = tx.try_send(Err(Aborted));
            }
            Progress::Done => {}
        }
    }
}

#[pymethods]
impl StartResponse {
    #[pyo3(signature = (status, headers, exc_info = None))]
    fn __call__<'py>(
        slf: &Bound<'py, Self>,
        status: &Bound<'py, PyString>,
        headers: &Bound<'py, PyAny>,
        exc_info: Option<&Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let exc_info = exc_info.filter(|info| !info.is_none());
        let status = parse_status(status.to_str()?)?;
        let headers = parse_headers(headers)?;
        let this = slf.get();
        let mut progress = this.progress();
        match &mut *progress {
            Progress::Unsent(_, started) => {
                if started.is_some() && exc_info.is_none() {
                    return Err(PyRuntimeError::new_err(
                        "start_response() called again without exc_info",
                    ));
                }
                *started = Some((status, headers));
            }
            _ => {
                drop(progress);
                // Headers are gone already: PEP 3333 says re-raise the app's exception.
                if let Some(info) = exc_info {
                    let info = info.cast::<PyTuple>()?;
                    return Err(PyErr::from_value(info.get_item(1)?));
                }
                return Err(PyRuntimeError::new_err(
                    "start_response() called after the response started",
                ));
            }
        }
        drop(progress);
        slf.getattr("write")
    }

    /// The legacy `write()` callable returned by `start_response`.
    fn write(&self, py: Python<'_>, data: Vec<u8>) -> PyResult<()> {
        self.emit(py, Bytes::from(data), false)
    }
}
