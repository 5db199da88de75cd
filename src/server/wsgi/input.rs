//! `wsgi.input`: a file-like reader over the request body. Waiting for the network happens with
//! the GIL released, so other threads keep running Python meanwhile.

use std::sync::Mutex;

use bytes::{Buf, BytesMut};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyList};
use tokio::runtime::Handle;

use crate::server::request_body::RequestBody;

struct Reader {
    body: RequestBody,
    buffer: BytesMut,
    eof: bool,
}

impl Reader {
    /// Pulls one more chunk into the buffer; false at the end of the body.
    fn fill(&mut self, py: Python<'_>, runtime: &Handle) -> bool {
        if self.eof {
            return false;
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
                true
            }
            // A client that vanished mid-body reads as end of input, as with a closed socket.
            Ok(None) | Err(_) => {
                self.eof = true;
                false
            }
        }
    }

    fn read(&mut self, py: Python<'_>, runtime: &Handle, size: Option<usize>) -> BytesMut {
        while size.is_none_or(|n| self.buffer.len() < n) {
            if !self.fill(py, runtime) {
                break;
            }
        }
        let take = size.map_or(self.buffer.len(), |n| n.min(self.buffer.len()));
        self.buffer.split_to(take)
    }

    fn readline(&mut self, py: Python<'_>, runtime: &Handle, size: Option<usize>) -> BytesMut {
        let mut scanned = 0;
        loop {
            if let Some(pos) = self.buffer[scanned..].iter().position(|&b| b == b'\n') {
                let end = scanned + pos + 1;
                return self.buffer.split_to(size.map_or(end, |n| n.min(end)));
            }
            if size.is_some_and(|n| self.buffer.len() >= n) {
                return self.buffer.split_to(size.unwrap_or(0));
            }
            scanned = self.buffer.len();
            if !self.fill(py, runtime) {
                let take = size.map_or(self.buffer.len(), |n| n.min(self.buffer.len()));
                return self.buffer.split_to(take);
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
    fn read<'py>(&self, py: Python<'py>, size: Option<isize>) -> Bound<'py, PyBytes> {
        let data = self.reader().read(py, &self.runtime, limit(size));
        PyBytes::new(py, data.chunk())
    }

    #[pyo3(signature = (size = None))]
    fn readline<'py>(&self, py: Python<'py>, size: Option<isize>) -> Bound<'py, PyBytes> {
        let data = self.reader().readline(py, &self.runtime, limit(size));
        PyBytes::new(py, data.chunk())
    }

    #[pyo3(signature = (hint = None))]
    fn readlines<'py>(&self, py: Python<'py>, hint: Option<isize>) -> PyResult<Bound<'py, PyList>> {
        let hint = limit(hint).filter(|&n| n > 0);
        let lines = PyList::empty(py);
        let mut total = 0;
        let mut reader = self.reader();
        loop {
            let line = reader.readline(py, &self.runtime, None);
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

    fn __next__<'py>(&self, py: Python<'py>) -> Option<Bound<'py, PyBytes>> {
        let line = self.reader().readline(py, &self.runtime, None);
        (!line.is_empty()).then(|| PyBytes::new(py, line.chunk()))
    }
}
