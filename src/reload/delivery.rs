//! Change batches from the watcher thread to the event loop, without the GIL on the watcher
//! thread (see crate::wake_fd): waiting for it would delay a reload, and a watcher thread
//! descheduled while holding it would stall every request. The watcher queues the batch and
//! pokes a wake-up fd; the loop thread hands what is queued to the reloader.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use pyo3::prelude::*;

use super::content_hash::{Change, ChangeKind};
use crate::log::{self, Level};
use crate::wake_fd::WakeFd;

pub struct Outbox {
    pending: Mutex<Vec<Change>>,
    wake: WakeFd,
}

impl Outbox {
    pub fn new() -> std::io::Result<Arc<Self>> {
        Ok(Arc::new(Self {
            pending: Mutex::new(Vec::new()),
            wake: WakeFd::new()?,
        }))
    }

    pub fn fd(&self) -> std::os::fd::RawFd {
        self.wake.fd()
    }

    /// On the watcher thread. Batches the loop has not taken yet are delivered as one, in order.
    pub fn send(&self, changes: Vec<Change>) {
        self.pending
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .extend(changes);
        self.wake.poke();
    }

    fn take(&self) -> Vec<Change> {
        self.wake.clear();
        std::mem::take(&mut *self.pending.lock().unwrap_or_else(|e| e.into_inner()))
    }
}

/// Registered with `loop.add_reader` on the outbox's wake-up fd: calls
/// `callback([(path, "modified" | "deleted"), ...])`.
#[pyclass(frozen, module = "hmr_serve._core")]
pub struct Deliver {
    outbox: Arc<Outbox>,
    callback: Py<PyAny>,
}

impl Deliver {
    pub fn new(outbox: Arc<Outbox>, callback: Py<PyAny>) -> Self {
        Self { outbox, callback }
    }
}

#[pymethods]
impl Deliver {
    fn __call__(&self, py: Python<'_>) {
        let changes = self.outbox.take();
        if changes.is_empty() {
            return;
        }
        let batch: Vec<(PathBuf, &str)> = changes
            .into_iter()
            .map(|change| {
                let kind = match change.kind {
                    ChangeKind::Modified => "modified",
                    ChangeKind::Deleted => "deleted",
                };
                (change.path, kind)
            })
            .collect();
        if let Err(err) = self.callback.call1(py, (batch,)) {
            log::write(Level::Error, &format!("reload callback failed: {err}"));
            err.print(py);
        }
    }
}
