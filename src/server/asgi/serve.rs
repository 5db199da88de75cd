//! One ASGI request: queue it for the asyncio thread, which builds the scope and starts the app
//! as a task; then await the response head.

use std::sync::Arc;

use http::{Request, Response};
use hyper::body::Incoming;
use pyo3::prelude::*;
use pyo3::types::PyDict;
use tokio::sync::oneshot;

#[cfg(not(feature = "asgi-bridge-async-runtimes"))]
use super::awaitable::Ready;
use super::jobs::{Completion, Job, JobQueue};
#[cfg(not(feature = "asgi-bridge-async-runtimes"))]
use super::messages::HttpReply;
use super::protocol::{HttpProtocol, PendingRequest};
use super::scope;
use super::websocket::{self, Upgrade};
use super::ws_session::WsConfig;
use crate::log::{self, Level};
use crate::server::app_slot::AppSlot;
use crate::server::conn_info::ConnInfo;
use crate::server::disconnect::{Disconnect, DisconnectGuard};
use crate::server::request_body::{self, RequestBody};
use crate::server::response::{self, ResponseBody, ResponseHead};

pub struct AsgiBridge {
    pub(super) create_future: Py<PyAny>,
    /// `dispatch(app, scope, protocol)`: starts the app as a task.
    pub(super) dispatch: Py<PyAny>,
    /// `resolve(future, result, exception)`: completes a future unless it was cancelled.
    resolve: Py<PyAny>,
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

    pub fn create_future(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        self.create_future.call0(py)
    }

    /// Runs on the loop thread: starts queued requests, completes futures.
    fn run_jobs(self: &Arc<Self>, py: Python<'_>) {
        for job in self.jobs.take() {
            let result = match job {
                #[cfg(not(feature = "asgi-bridge-async-runtimes"))]
                Job::Dispatch(request) => self.start_app(py, *request),
                Job::WebSocket(pending) => websocket::start_app(self, py, *pending),
                Job::Resolve(future, completion) => self.complete(py, future, completion),
            };
            if let Err(err) = result {
                log::write(Level::Error, &format!("ASGI bridge error: {err}"));
            }
        }
    }

    #[cfg(not(feature = "asgi-bridge-async-runtimes"))]
    fn start_app(self: &Arc<Self>, py: Python<'_>, request: PendingRequest) -> PyResult<()> {
        let (scope, protocol) = self.scope_and_protocol(py, request)?;
        self.dispatch
            .call1(py, (self.app.get(py), scope, protocol))?;
        Ok(())
    }

    /// The `http` scope and the receive/send pair of one request; a scope that cannot be built
    /// answers the request with a 500.
    pub(super) fn scope_and_protocol<'py>(
        self: &Arc<Self>,
        py: Python<'py>,
        request: PendingRequest,
    ) -> PyResult<(Bound<'py, PyDict>, Bound<'py, HttpProtocol>)> {
        let state = self.state.as_ref().map(|s| s.bind(py));
        let scope = match scope::build(py, &request.parts, &request.conn, &self.root_path, state) {
            Ok(scope) => scope,
            Err(err) => {
                let _ = request.head_tx.send(ResponseHead::internal_error());
                return Err(err);
            }
        };
        let protocol = Bound::new(py, HttpProtocol::new(self.clone(), request))?;
        Ok((scope, protocol))
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
        match websocket::upgrade_requested(req.headers()) {
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
        self.hand_over(request);
        match head_rx.await {
            Ok(head) => head.into_response(Some(guard)),
            Err(_) => response::internal_error(),
        }
    }
}

/// The custom bridge: the loop thread starts the request, and what `receive`/`send` cannot
/// answer at once is an asyncio future completed through the job queue.
#[cfg(not(feature = "asgi-bridge-async-runtimes"))]
impl AsgiBridge {
    fn hand_over(&self, request: PendingRequest) {
        self.jobs.push(Job::Dispatch(Box::new(request)));
    }

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
            resolve_later(&bridge, future, Completion::Http(reply));
        });
        Ok(result)
    }
}

/// Completes `future` on the loop thread.
pub(super) fn resolve_later(bridge: &AsgiBridge, future: Py<PyAny>, completion: Completion) {
    bridge.jobs.push(Job::Resolve(future, completion));
}
