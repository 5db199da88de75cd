//! `wsgi.input`: a file-like reader over the request body. Waiting for the network happens with
//! the GIL released, so other threads keep running Python meanwhile. A body that cannot be read
//! to its end (the client vanished or stalled, broken framing, past the size limit) raises
//! `OSError` (`TimeoutError` for a stall) rather than reading as a short body.
//!
//! Chunks stay as hyper handed them over until a read copies them straight into the `bytes`
//! object it returns: no growing buffer of our own, so a large upload is copied once and costs
//! no allocations that scale with its size on the Rust side.

use std::collections::VecDeque;
use std::sync::Mutex;

use bytes::{Buf, Bytes};
use pyo3::exceptions::{PyOSError, PyTimeoutError};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyList};
use tokio::runtime::Handle;

use crate::server::request_body::{BodyError, RequestBody};

struct Reader {
    body: RequestBody,
    chunks: VecDeque<Bytes>,
    /// Bytes held in `chunks`.
    buffered: usize,
    eof: bool,
    /// Why the body could not be read to its end: raised by every read that needs more.
    failed: Option<(bool, String)>,
}

impl Reader {
    /// Pulls chunks until at least `want` bytes are held (all of the body for `None`), waiting
    /// once with the GIL released for the whole lot; false when nothing more came.
    fn fill(&mut self, py: Python<'_>, runtime: &Handle, want: Option<usize>) -> PyResult<bool> {
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
        if want.is_some_and(|n| self.buffered >= n) {
            return Ok(true);
        }
        let before = self.buffered;
        if let Some(data) = self.body.take_buffered() {
            self.push(data);
        } else {
            let outcome = py.detach(|| {
                runtime.block_on(async {
                    while want.is_none_or(|n| self.buffered < n) {
                        match self.body.next_chunk().await? {
                            Some(data) => self.push(data),
                            None => return Ok(true),
                        }
                    }
                    Ok(false)
                })
            });
            match outcome {
                Ok(end) => self.eof = end,
                Err(err) => {
                    self.failed = Some((matches!(err, BodyError::Stalled), err.to_string()))
                }
            }
        }
        // A failure raises even when some bytes came first: the read needed more than those.
        if self.buffered > before && self.failed.is_none() {
            return Ok(true);
        }
        self.fill(py, runtime, want)
    }

    fn push(&mut self, data: Bytes) {
        if data.is_empty() {
            return;
        }
        self.buffered += data.len();
        self.chunks.push_back(data);
    }

    /// Moves the first `len` held bytes into a new `bytes` object.
    fn take<'py>(&mut self, py: Python<'py>, len: usize) -> PyResult<Bound<'py, PyBytes>> {
        self.buffered -= len;
        PyBytes::new_with(py, len, |mut out| {
            while !out.is_empty() {
                let chunk = self.chunks.front_mut().expect("len is within what is held");
                let n = chunk.len().min(out.len());
                out[..n].copy_from_slice(&chunk[..n]);
                out = &mut out[n..];
                chunk.advance(n);
                if chunk.is_empty() {
                    self.chunks.pop_front();
                }
            }
            Ok(())
        })
    }

    /// Offset just past the first newline at or after `from`, among the held bytes.
    fn line_end(&self, from: usize) -> Option<usize> {
        let mut offset = 0;
        for chunk in &self.chunks {
            if offset + chunk.len() > from {
                let skip = from.saturating_sub(offset);
                if let Some(pos) = chunk[skip..].iter().position(|&b| b == b'\n') {
                    return Some(offset + skip + pos + 1);
                }
            }
            offset += chunk.len();
        }
        None
    }

    fn read<'py>(
        &mut self,
        py: Python<'py>,
        runtime: &Handle,
        size: Option<usize>,
    ) -> PyResult<Bound<'py, PyBytes>> {
        if size.is_none_or(|n| self.buffered < n) {
            self.fill(py, runtime, size)?;
        }
        let len = size.map_or(self.buffered, |n| n.min(self.buffered));
        self.take(py, len)
    }

    fn readline<'py>(
        &mut self,
        py: Python<'py>,
        runtime: &Handle,
        size: Option<usize>,
    ) -> PyResult<Bound<'py, PyBytes>> {
        let mut scanned = 0;
        loop {
            if let Some(end) = self.line_end(scanned) {
                return self.take(py, size.map_or(end, |n| n.min(end)));
            }
            if let Some(n) = size.filter(|&n| self.buffered >= n) {
                return self.take(py, n);
            }
            scanned = self.buffered;
            if !self.fill(py, runtime, Some(self.buffered + 1))? {
                let len = size.map_or(self.buffered, |n| n.min(self.buffered));
                return self.take(py, len);
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
            chunks: VecDeque::new(),
            buffered: 0,
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
        self.reader().read(py, &self.runtime, limit(size))
    }

    #[pyo3(signature = (size = None))]
    fn readline<'py>(&self, py: Python<'py>, size: Option<isize>) -> PyResult<Bound<'py, PyBytes>> {
        self.reader().readline(py, &self.runtime, limit(size))
    }

    #[pyo3(signature = (hint = None))]
    fn readlines<'py>(&self, py: Python<'py>, hint: Option<isize>) -> PyResult<Bound<'py, PyList>> {
        let hint = limit(hint).filter(|&n| n > 0);
        let lines = PyList::empty(py);
        let mut total = 0;
        let mut reader = self.reader();
        loop {
            let line = reader.readline(py, &self.runtime, None)?;
            let len = line.as_bytes().len();
            if len == 0 {
                break;
            }
            total += len;
            lines.append(line)?;
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
        Ok((!line.as_bytes().is_empty()).then_some(line))
    }
}
