//! The ASGI bridge's shared state, and how a protocol object answers the app: an awaitable that
//! is already done (`ready`), or a future a tokio task completes (`later`, `resolve_later`).
//!
//! The protocols (`http_protocol.rs`, `ws_protocol.rs`) hold the bridge and use only this of
//! it. What builds the protocols sits above them: starting apps in `http_start.rs` and
//! `websocket.rs`; `AsgiBridge::start`, `handle` and the job runner in `serve.rs`.

use std::sync::Arc;

use pyo3::prelude::*;
use pyo3::types::PyDict;

#[cfg(not(feature = "asgi-bridge-async-runtimes"))]
use super::awaitable::Ready;
use super::jobs::{Completion, Job, JobQueue};
use super::receive_messages::HttpReply;
use super::ws_session::WsConfig;
use crate::server::app_slot::AppSlot;

pub struct AsgiBridge {
    pub(super) create_future: Py<PyAny>,
    /// `dispatch(app, scope, protocol)`: starts the app as a task.
    pub(super) dispatch: Py<PyAny>,
    /// `resolve(future, result, exception)`: completes a future unless it was cancelled.
    pub(super) resolve: Py<PyAny>,
    pub(super) jobs: JobQueue,
    pub(super) app: Arc<AppSlot>,
    pub(super) state: Option<Py<PyDict>>,
    pub(super) root_path: String,
    pub(super) runtime: tokio::runtime::Handle,
    /// None with `--ws none`: upgrade requests go to the app as plain HTTP.
    pub(super) ws: Option<WsConfig>,
    /// Turns true when the server stops: open WebSockets close with 1012.
    pub(super) shutdown: tokio::sync::watch::Receiver<bool>,
    #[cfg(feature = "asgi-bridge-async-runtimes")]
    pub(super) async_runtimes: super::async_runtimes::AsyncRuntimes,
}

impl AsgiBridge {
    pub fn create_future(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        self.create_future.call0(py)
    }

    /// Completes `future` on the loop thread.
    pub(super) fn resolve_later(&self, future: Py<PyAny>, completion: Completion) {
        self.jobs.push(Job::Resolve(future, completion));
    }
}

/// The custom bridge: what `receive`/`send` cannot answer at once is an asyncio future
/// completed through the job queue.
#[cfg(not(feature = "asgi-bridge-async-runtimes"))]
impl AsgiBridge {
    /// An awaitable that is already done.
    pub(super) fn ready(&self, py: Python<'_>, value: Option<Py<PyAny>>) -> PyResult<Py<PyAny>> {
        Ready::awaitable(py, value)
    }

    /// A future completed with what `work` produces.
    pub(super) fn later(
        self: &Arc<Self>,
        py: Python<'_>,
        work: impl Future<Output = HttpReply> + Send + 'static,
    ) -> PyResult<Py<PyAny>> {
        let future = self.create_future(py)?;
        let result = future.clone_ref(py);
        let bridge = self.clone();
        self.runtime.spawn(async move {
            let reply = work.await;
            bridge.resolve_later(future, Completion::Http(reply));
        });
        Ok(result)
    }
}

/// The pyo3-async-runtimes bridge: its futures, even for answers known at once.
#[cfg(feature = "asgi-bridge-async-runtimes")]
impl AsgiBridge {
    pub(super) fn ready(&self, py: Python<'_>, value: Option<Py<PyAny>>) -> PyResult<Py<PyAny>> {
        self.async_runtimes.ready(py, value)
    }

    pub(super) fn later(
        &self,
        py: Python<'_>,
        work: impl Future<Output = HttpReply> + Send + 'static,
    ) -> PyResult<Py<PyAny>> {
        self.async_runtimes.later(py, work)
    }
}
