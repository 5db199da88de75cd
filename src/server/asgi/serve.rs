//! The bridge's two ends: `handle` takes each request on a tokio thread (a WebSocket upgrade
//! goes to `websocket.rs`; an HTTP request is handed over, then its response head awaited), and
//! `run_jobs` empties the job queue on the asyncio thread, which `start` wires to the loop.

use std::sync::Arc;

use http::{Request, Response};
use hyper::body::Incoming;
use pyo3::prelude::*;
use pyo3::types::PyDict;
use tokio::sync::oneshot;

use super::bridge::AsgiBridge;
use super::http_start;
use super::jobs::{Completion, Job, JobQueue};
use super::pending::PendingRequest;
use super::websocket;
use super::ws_handshake::{Upgrade, upgrade_requested};
use super::ws_session::WsConfig;
use crate::log::{self, Level};
use crate::server::app_slot::AppSlot;
use crate::server::conn_info::ConnInfo;
use crate::server::disconnect::{Disconnect, DisconnectGuard};
use crate::server::request_body::{self, RequestBody};
use crate::server::response::{self, ResponseBody};

/// Registered with `loop.add_reader` on the job queue's wake-up fd.
#[pyclass(frozen, module = "hmr_serve._core")]
struct RunJobs(Arc<AsgiBridge>);

#[pymethods]
impl RunJobs {
    fn __call__(&self, py: Python<'_>) {
        self.0.run_jobs(py);
    }
}

impl AsgiBridge {
    #[allow(clippy::too_many_arguments)]
    pub fn start(
        py: Python<'_>,
        event_loop: &Bound<'_, PyAny>,
        dispatch: Py<PyAny>,
        resolve: Py<PyAny>,
        app: Arc<AppSlot>,
        state: Option<Py<PyDict>>,
        root_path: String,
        runtime: tokio::runtime::Handle,
        ws: Option<WsConfig>,
        shutdown: tokio::sync::watch::Receiver<bool>,
    ) -> PyResult<Arc<Self>> {
        let jobs = JobQueue::new()?;
        let bridge = Arc::new(Self {
            #[cfg(feature = "asgi-bridge-async-runtimes")]
            async_runtimes: super::async_runtimes::AsyncRuntimes::new(event_loop, &dispatch)?,
            create_future: event_loop.getattr("create_future")?.unbind(),
            dispatch,
            resolve,
            jobs,
            app,
            state,
            root_path,
            runtime,
            ws,
            shutdown,
        });
        let runner = Py::new(py, RunJobs(bridge.clone()))?;
        event_loop.call_method1("add_reader", (bridge.jobs.fd(), runner))?;
        Ok(bridge)
    }

    /// Runs on the loop thread: starts queued requests, completes futures.
    fn run_jobs(self: &Arc<Self>, py: Python<'_>) {
        for job in self.jobs.take() {
            let result = match job {
                #[cfg(not(feature = "asgi-bridge-async-runtimes"))]
                Job::Dispatch(request) => http_start::start_app(self, py, *request),
                Job::WebSocket(pending) => websocket::start_app(self, py, *pending),
                Job::Resolve(future, completion) => self.complete(py, future, completion),
            };
            if let Err(err) = result {
                log::write(Level::Error, &format!("ASGI bridge error: {err}"));
            }
        }
    }

    fn complete(&self, py: Python<'_>, future: Py<PyAny>, completion: Completion) -> PyResult<()> {
        let value = match completion {
            Completion::Http(reply) => reply.into_value(py)?,
            Completion::WebSocket(delivery) => return delivery.complete(py, &self.resolve, future),
        };
        self.resolve.call1(py, (future, value, py.None()))?;
        Ok(())
    }

    pub async fn handle(
        self: Arc<Self>,
        req: Request<Incoming>,
        conn: Arc<ConnInfo>,
    ) -> Response<ResponseBody> {
        match upgrade_requested(req.headers()) {
            Upgrade::None => {}
            Upgrade::WebSocket if self.ws.is_some() => {
                let config = self.ws.clone().expect("checked by the guard");
                return websocket::handle(self, config, req, conn).await;
            }
            _ => log::write(Level::Warning, "Unsupported upgrade request."),
        }
        let (parts, body) = req.into_parts();
        let body = match RequestBody::prepare(body, &parts.extensions).await {
            Ok(body) => body,
            Err(err) => return request_body::unreadable(&err),
        };
        let disconnect = Arc::new(Disconnect::default());
        let guard = DisconnectGuard::new(disconnect.clone());
        let (head_tx, head_rx) = oneshot::channel();
        let request = PendingRequest {
            parts,
            conn,
            body,
            disconnect,
            head_tx,
        };
        http_start::hand_over(&self, request);
        match head_rx.await {
            Ok(head) => head.into_response(Some(guard)),
            Err(_) => response::internal_error(),
        }
    }
}
