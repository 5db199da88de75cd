//! One WSGI request, run on the worker pool.

use std::sync::Arc;

use bytes::Bytes;
use http::request::Parts;
use http::{Request, Response};
use hyper::body::Incoming;
use pyo3::intern;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyList, PyTuple};
use tokio::sync::oneshot;

use super::environ;
use super::input::WsgiInput;
use super::pool::WorkerPool;
use super::responder::StartResponse;
use crate::server::app_slot::AppSlot;
use crate::server::conn_info::ConnInfo;
use crate::server::disconnect::{Disconnect, DisconnectGuard};
use crate::server::request_body::{self, RequestBody};
use crate::server::response::{self, ResponseBody};

pub struct WsgiBridge {
    pub app: Arc<AppSlot>,
    pub root_path: String,
    pub runtime: tokio::runtime::Handle,
    pub pool: WorkerPool,
    /// `log_exception(exc)`: logs an app failure with its traceback.
    pub log_exception: Py<PyAny>,
    /// Where `wsgi.errors` writes (sys.stderr).
    pub errors: Py<PyAny>,
}

impl WsgiBridge {
    pub async fn handle(
        self: Arc<Self>,
        req: Request<Incoming>,
        conn: Arc<ConnInfo>,
    ) -> Response<ResponseBody> {
        let (parts, body) = req.into_parts();
        let body = match RequestBody::prepare(body, &parts.extensions).await {
            Ok(body) => body,
            Err(err) => return request_body::unreadable(&err),
        };
        let guard = DisconnectGuard::new(Arc::new(Disconnect::default()));
        let (head_tx, head_rx) = oneshot::channel();
        let bridge = self.clone();
        let job = Box::new(move |py: Python<'_>| bridge.run(py, &parts, &conn, body, head_tx));
        if !self.pool.submit(job) {
            return response::service_unavailable();
        }
        match head_rx.await {
            Ok(head) => head.into_response(Some(guard)),
            Err(_) => response::internal_error(),
        }
    }

    fn run(
        &self,
        py: Python<'_>,
        parts: &Parts,
        conn: &ConnInfo,
        body: RequestBody,
        head_tx: oneshot::Sender<crate::server::response::ResponseHead>,
    ) {
        let responder = match Py::new(py, StartResponse::new(head_tx)) {
            Ok(responder) => responder.into_bound(py),
            Err(err) => return self.report(py, err),
        };
        if let Err(err) = self.call_app(py, parts, conn, body, &responder) {
            responder.get().fail();
            self.report(py, err);
        }
    }

    fn call_app(
        &self,
        py: Python<'_>,
        parts: &Parts,
        conn: &ConnInfo,
        body: RequestBody,
        responder: &Bound<'_, StartResponse>,
    ) -> PyResult<()> {
        let input = Py::new(py, WsgiInput::new(body, self.runtime.clone()))?.into_bound(py);
        let environ = environ::build(
            py,
            parts,
            conn,
            &self.root_path,
            input.into_any(),
            self.errors.bind(py),
        )?;
        let result = self.app.get(py).call1((environ, responder))?;
        let streamed = stream_result(py, &result, responder.get());
        // PEP 3333: close() is called whatever happened while iterating.
        let closed = match result.getattr_opt(intern!(py, "close"))? {
            Some(close) => close.call0().map(drop),
            None => Ok(()),
        };
        streamed.and(closed)
    }

    fn report(&self, py: Python<'_>, err: PyErr) {
        if let Err(log_err) = self.log_exception.call1(py, (err.into_value(py),)) {
            log_err.print(py);
        }
    }
}

fn chunk_bytes(item: &Bound<'_, PyAny>) -> PyResult<Bytes> {
    Ok(Bytes::copy_from_slice(item.cast::<PyBytes>()?.as_bytes()))
}

fn stream_result(py: Python<'_>, result: &Bound<'_, PyAny>, out: &StartResponse) -> PyResult<()> {
    // A list or tuple of known length: its single item (the usual case) goes out whole.
    let sized = if let Ok(list) = result.cast::<PyList>() {
        Some(list.len())
    } else {
        result.cast::<PyTuple>().ok().map(|t| t.len())
    };
    if sized == Some(1) {
        return out.emit(py, chunk_bytes(&result.get_item(0)?)?, true);
    }
    for item in result.try_iter()? {
        out.emit(py, chunk_bytes(&item?)?, false)?;
    }
    out.emit(py, Bytes::new(), true)
}
