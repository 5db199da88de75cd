//! One WSGI request, run on the worker pool.

use std::sync::Arc;

use bytes::Bytes;
use http::header::{CONTENT_LENGTH, HeaderName, HeaderValue};
use http::request::Parts;
use http::{HeaderMap, Request, Response, StatusCode};
use hyper::body::Incoming;
use pyo3::exceptions::PyValueError;
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
use crate::server::response::{self, BodySource, ResponseBody, ResponseHead};

pub struct WsgiBridge {
    pub app: Arc<AppSlot>,
    pub root_path: String,
    pub runtime: tokio::runtime::Handle,
    pub pool: WorkerPool,
    /// `log_exception(exc)`: logs an app failure with its traceback.
    pub log_exception: Py<PyAny>,
    /// `error_page(environ, exc_or_none)`: the 500 to answer with instead of the plain one, as
    /// `(headers, body)`, or None; without an exception it looks for one the framework caught.
    pub error_page: Option<Py<PyAny>>,
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
        head_tx: oneshot::Sender<ResponseHead>,
    ) {
        let responder = StartResponse::new(head_tx, self.error_page.is_some());
        let responder = match Py::new(py, responder) {
            Ok(responder) => responder.into_bound(py),
            Err(err) => return self.report(py, err),
        };
        let environ = match self.environ(py, parts, conn, body) {
            Ok(environ) => environ,
            Err(err) => {
                responder.get().fail(None);
                return self.report(py, err);
            }
        };
        match self.call_app(py, &environ, &responder) {
            Ok(()) if responder.get().holds_error() => {
                let page = self.error_page(py, &environ, None);
                responder.get().release(page);
            }
            Ok(()) => {}
            Err(err) => {
                let page = self.error_page(py, &environ, Some(err.value(py).as_any()));
                responder.get().fail(page);
                self.report(py, err);
            }
        }
    }

    fn environ<'py>(
        &self,
        py: Python<'py>,
        parts: &Parts,
        conn: &ConnInfo,
        body: RequestBody,
    ) -> PyResult<Bound<'py, PyAny>> {
        let input = Py::new(py, WsgiInput::new(body, self.runtime.clone()))?.into_bound(py);
        let environ = environ::build(
            py,
            parts,
            conn,
            &self.root_path,
            input.into_any(),
            self.errors.bind(py),
        )?;
        Ok(environ.into_any())
    }

    /// The error page for this request, if error pages are on and there is an error to show.
    fn error_page(
        &self,
        py: Python<'_>,
        environ: &Bound<'_, PyAny>,
        exc: Option<&Bound<'_, PyAny>>,
    ) -> Option<ResponseHead> {
        let render = self.error_page.as_ref()?;
        let exc = exc.cloned().unwrap_or_else(|| py.None().into_bound(py));
        let page = render
            .call1(py, (environ, exc))
            .and_then(|page| page_head(page.bind(py)));
        match page {
            Ok(page) => page,
            Err(err) => {
                self.report(py, err);
                None
            }
        }
    }

    fn call_app(
        &self,
        py: Python<'_>,
        environ: &Bound<'_, PyAny>,
        responder: &Bound<'_, StartResponse>,
    ) -> PyResult<()> {
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

/// `(headers, body)` from the Python renderer as a 500 head, None for None.
fn page_head(page: &Bound<'_, PyAny>) -> PyResult<Option<ResponseHead>> {
    if page.is_none() {
        return Ok(None);
    }
    let (headers, body): (Vec<(String, String)>, Vec<u8>) = page.extract()?;
    let mut map = HeaderMap::with_capacity(headers.len() + 1);
    for (name, value) in headers {
        let name = HeaderName::from_bytes(name.as_bytes())
            .map_err(|_| PyValueError::new_err(format!("invalid header name {name:?}")))?;
        let value = HeaderValue::from_str(&value)
            .map_err(|_| PyValueError::new_err(format!("invalid value for header {name}")))?;
        map.append(name, value);
    }
    map.insert(CONTENT_LENGTH, HeaderValue::from(body.len()));
    Ok(Some(ResponseHead {
        status: StatusCode::INTERNAL_SERVER_ERROR,
        headers: map,
        body: BodySource::Full(Bytes::from(body)),
    }))
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
