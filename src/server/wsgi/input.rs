//! `wsgi.input`: a file-like reader over the request body. Waiting for the network happens with
//! the GIL released, so other threads keep running Python meanwhile. A body that cannot be read
//! to its end (the client vanished or stalled, broken framing, past the size limit) raises
//! `OSError` (`TimeoutError` for a stall) rather than reading as a short body.

use std::sync::Mutex;

use bytes::{Buf, BytesMut};
use pyo3::exceptions::{PyOSError, PyTimeoutError};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyList};
use tokio::runtime::Handle;

use crate::server::request_body::{BodyError, RequestBody};

struct Reader {
    body: RequestBody,
    buffer: BytesMut,
    eof: bool,
    /// Why the body could not be read to its end: raised by every read that needs more.
    failed: Option<(bool, String)>,
}

impl Reader {
    /// Pulls one more chunk into the buffer; false at the end of the body.
    fn fill(&mut self, py: Python<'_>, runtime: &Handle) -> PyResult<bool> {
        if let Some((stalled, reason)) = &self.failed {
            return Err(if *stalled {
                PyTimeoutError::new_err(reason.clone())
            } else {
                PyOSError::new_err(reason.clone())
            });
        }
        if self.eof {
            return Ok(false);
        }
        let chunk = if let Some(data) = self.body.take_buffered() {
            Ok(Some(data))
        } else {
            let body = &mut self.body;
            py.detach(|| runtime.block_on(body.next_chunk()))
        };
        match chunk {
            Ok(Some(data)) => {
                self.buffer.extend_from_slice(&data);
                Ok(true)
            }
            Ok(None) => {
                self.eof = true;
                Ok(false)
            }
            Err(err) => {
                self.failed = Some((matches!(err, BodyError::Stalled), err.to_string()));
                self.fill(py, runtime)
            }
        }
    }

    fn read(
        &mut self,
        py: Python<'_>,
        runtime: &Handle,
        size: Option<usize>,
    ) -> PyResult<BytesMut> {
        while size.is_none_or(|n| self.buffer.len() < n) {
            if !self.fill(py, runtime)? {
                break;
            }
        }
        let take = size.map_or(self.buffer.len(), |n| n.min(self.buffer.len()));
        Ok(self.buffer.split_to(take))
    }

    fn readline(
        &mut self,
        py: Python<'_>,
        runtime: &Handle,
        size: Option<usize>,
    ) -> PyResult<BytesMut> {
        let mut scanned = 0;
        loop {
            if let Some(pos) = self.buffer[scanned..].iter().position(|&b| b == b'\n') {
                let end = scanned + pos + 1;
                return Ok(self.buffer.split_to(size.map_or(end, |n| n.min(end))));
            }
            if size.is_some_and(|n| self.buffer.len() >= n) {
                return Ok(self.buffer.split_to(size.unwrap_or(0)));
            }
            scanned = self.buffer.len();
            if !self.fill(py, runtime)? {
                let take = size.map_or(self.buffer.len(), |n| n.min(self.buffer.len()));
                return Ok(self.buffer.split_to(take));
            }
        }
    }
}

#[pyclass(frozen, module = "hmr_serve._core")]
pub struct WsgiInput {
    reader: Mutex<Reader>,
    runtime: Handle,
}

impl WsgiInput {
    pub fn new(body: RequestBody, runtime: Handle) -> Self {
        let reader = Reader {
            body,
            buffer: BytesMut::new(),
            eof: false,
            failed: None,
        };
        Self {
            reader: Mutex::new(reader),
            runtime,
        }
    }

    fn reader(&self) -> std::sync::MutexGuard<'_, Reader> {
        self.reader.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Python passes -1 or None for "no limit".
fn limit(size: Option<isize>) -> Option<usize> {
    size.and_then(|n| usize::try_from(n).ok())
}

#[pymethods]
impl WsgiInput {
    #[pyo3(signature = (size = None))]
    fn read<'py>(&self, py: Python<'py>, size: Option<isize>) -> PyResult<Bound<'py, PyBytes>> {
        let data = self.reader().read(py, &self.runtime, limit(size))?;
        Ok(PyBytes::new(py, data.chunk()))
    }

    #[pyo3(signature = (size = None))]
    fn readline<'py>(&self, py: Python<'py>, size: Option<isize>) -> PyResult<Bound<'py, PyBytes>> {
        let data = self.reader().readline(py, &self.runtime, limit(size))?;
        Ok(PyBytes::new(py, data.chunk()))
    }

    #[pyo3(signature = (hint = None))]
    fn readlines<'py>(&self, py: Python<'py>, hint: Option<isize>) -> PyResult<Bound<'py, PyList>> {
        let hint = limit(hint).filter(|&n| n > 0);
        let lines = PyList::empty(py);
        let mut total = 0;
        let mut reader = self.reader();
        loop {
            let line = reader.readline(py, &self.runtime, None)?;
            if line.is_empty() {
                break;
            }
            total += line.len();
            lines.append(PyBytes::new(py, line.chunk()))?;
            if hint.is_some_and(|n| total >= n) {
                break;
            }
        }
        Ok(lines)
    }

    fn __iter__(slf: Py<Self>) -> Py<Self> {
        slf
    }

    fn __next__<'py>(&self, py: Python<'py>) -> PyResult<Option<Bound<'py, PyBytes>>> {
        let line = self.reader().readline(py, &self.runtime, None)?;
        Ok((!line.is_empty()).then(|| PyBytes::new(py, line.chunk())))
    }
}
