//! The ASGI `http` connection scope, built exactly as the ASGI 3 spec describes it.

use http::request::Parts;
use percent_encoding::percent_decode;
use pyo3::intern;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyList, PyString, PyTuple};

use crate::server::conn_info::ConnInfo;

pub fn http_version(version: http::Version) -> &'static str {
    match version {
        http::Version::HTTP_10 => "1.0",
        http::Version::HTTP_2 => "2",
        _ => "1.1",
    }
}

pub fn build<'py>(
    py: Python<'py>,
    parts: &Parts,
    conn: &ConnInfo,
    root_path: &str,
    state: Option<&Bound<'py, PyDict>>,
) -> PyResult<Bound<'py, PyDict>> {
    let scope = PyDict::new(py);
    let asgi = PyDict::new(py);
    asgi.set_item(intern!(py, "version"), intern!(py, "3.0"))?;
    asgi.set_item(intern!(py, "spec_version"), intern!(py, "2.3"))?;
    scope.set_item(intern!(py, "type"), intern!(py, "http"))?;
    scope.set_item(intern!(py, "asgi"), asgi)?;
    scope.set_item(intern!(py, "http_version"), http_version(parts.version))?;
    scope.set_item(intern!(py, "method"), parts.method.as_str())?;
    scope.set_item(intern!(py, "scheme"), conn.scheme)?;

    // Like uvicorn, `path` and `raw_path` carry the root path in front of the request target.
    let raw_path = parts.uri.path();
    let decoded = percent_decode(raw_path.as_bytes()).decode_utf8_lossy();
    let path = if root_path.is_empty() {
        PyString::new(py, &decoded)
    } else {
        PyString::new(py, &format!("{root_path}{decoded}"))
    };
    scope.set_item(intern!(py, "path"), path)?;
    let raw = if root_path.is_empty() {
        PyBytes::new(py, raw_path.as_bytes())
    } else {
        PyBytes::new(py, format!("{root_path}{raw_path}").as_bytes())
    };
    scope.set_item(intern!(py, "raw_path"), raw)?;
    let query = parts.uri.query().unwrap_or("");
    scope.set_item(
        intern!(py, "query_string"),
        PyBytes::new(py, query.as_bytes()),
    )?;
    scope.set_item(intern!(py, "root_path"), root_path)?;

    let headers = PyList::empty(py);
    for (name, value) in &parts.headers {
        let pair = PyTuple::new(
            py,
            [
                PyBytes::new(py, name.as_str().as_bytes()),
                PyBytes::new(py, value.as_bytes()),
            ],
        )?;
        headers.append(pair)?;
    }
    scope.set_item(intern!(py, "headers"), headers)?;

    match conn.client {
        Some(addr) => {
            scope.set_item(intern!(py, "client"), (addr.ip().to_string(), addr.port()))?
        }
        None => scope.set_item(intern!(py, "client"), py.None())?,
    }
    match &conn.server {
        Some((host, port)) => scope.set_item(intern!(py, "server"), (host.as_str(), *port))?,
        None => scope.set_item(intern!(py, "server"), py.None())?,
    }
    if let Some(state) = state {
        // Each request gets a shallow copy, so one request cannot rebind what another sees.
        scope.set_item(intern!(py, "state"), state.copy()?)?;
    }
    Ok(scope)
}
