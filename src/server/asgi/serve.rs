//! One ASGI request: build the scope, hand the app call to the asyncio loop, await the head.

use std::sync::Arc;

use http::{Request, Response};
use hyper::body::Incoming;
use pyo3::prelude::*;
use pyo3::types::PyDict;
use tokio::sync::oneshot;

use super::protocol::HttpProtocol;
use super::scope;
use crate::server::app_slot::AppSlot;
use crate::server::conn_info::ConnInfo;
use crate::server::disconnect::{Disconnect, DisconnectGuard};
use crate::server::log::{self, Level};
use crate::server::request_body::RequestBody;
use crate::server::response::{self, ResponseBody};

/// The asyncio objects Rust needs to reach the loop thread from anywhere.
pub struct LoopRefs {
    pub call_soon_threadsafe: Py<PyAny>,
    pub create_future: Py<PyAny>,
    /// `dispatch(app, scope, protocol)`: starts the app as a task (runs on the loop thread).
    pub dispatch: Py<PyAny>,
    /// `resolve(future, result, exception)`: completes a future unless it was cancelled.
    pub resolve: Py<PyAny>,
}

impl LoopRefs {
    pub fn create_future(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        self.create_future.call0(py)
    }

    /// Completes `future` on the loop thread. Failures are logged: the loop is closing.
    pub fn resolve(&self, py: Python<'_>, future: Py<PyAny>, value: PyResult<Bound<'_, PyAny>>) {
        let (result, error) = match value {
            Ok(value) => (value.unbind(), py.None()),
            Err(err) => (py.None(), err.into_value(py).into_any()),
        };
        if let Err(err) = self
            .call_soon_threadsafe
            .call1(py, (&self.resolve, future, result, error))
        {
            log::write(
                Level::Debug,
                &format!("could not complete an asyncio future: {err}"),
            );
        }
    }
}

pub struct AsgiBridge {
    pub loop_refs: LoopRefs,
    pub app: Arc<AppSlot>,
    pub state: Option<Py<PyDict>>,
    pub root_path: String,
    pub runtime: tokio::runtime::Handle,
}

impl AsgiBridge {
    pub async fn handle(
        self: Arc<Self>,
        req: Request<Incoming>,
        conn: Arc<ConnInfo>,
    ) -> Response<ResponseBody> {
        let (parts, body) = req.into_parts();
        let Ok(body) = RequestBody::prepare(body).await else {
            // The client went away while sending its body; nobody is left to answer.
            return response::internal_error();
        };
        let disconnect = Arc::new(Disconnect::default());
        let guard = DisconnectGuard::new(disconnect.clone());
        let (head_tx, head_rx) = oneshot::channel();
        let dispatched = Python::attach(|py| -> PyResult<()> {
            let state = self.state.as_ref().map(|s| s.bind(py));
            let scope = scope::build(py, &parts, &conn, &self.root_path, state)?;
            let protocol = HttpProtocol::new(self.clone(), body, disconnect, head_tx);
            let protocol = Py::new(py, protocol)?;
            self.loop_refs.call_soon_threadsafe.call1(
                py,
                (&self.loop_refs.dispatch, self.app.get(py), scope, protocol),
            )?;
            Ok(())
        });
        if let Err(err) = dispatched {
            log::write(
                Level::Error,
                &format!("could not hand the request to the event loop: {err}"),
            );
            return response::service_unavailable();
        }
        match head_rx.await {
            Ok(head) => head.into_response(Some(guard)),
            Err(_) => response::internal_error(),
        }
    }
}
