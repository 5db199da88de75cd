//! Starting the app for one HTTP request: its `http` scope and `HttpProtocol` are built with the
//! GIL, then the app runs as a task on the loop. The custom bridge hands the request to the loop
//! thread through the job queue; the pyo3-async-runtimes bridge starts it from the tokio thread.

use std::sync::Arc;

use pyo3::prelude::*;
use pyo3::types::PyDict;

use super::bridge::AsgiBridge;
use super::http_protocol::HttpProtocol;
#[cfg(not(feature = "asgi-bridge-async-runtimes"))]
use super::jobs::Job;
use super::pending::PendingRequest;
use super::scope;
#[cfg(feature = "asgi-bridge-async-runtimes")]
use crate::log::{self, Level};
use crate::server::response::ResponseHead;

/// The custom bridge: the loop thread starts the request (`start_app`).
#[cfg(not(feature = "asgi-bridge-async-runtimes"))]
pub fn hand_over(bridge: &AsgiBridge, request: PendingRequest) {
    bridge.jobs.push(Job::Dispatch(Box::new(request)));
}

/// Runs on the loop thread, for `Job::Dispatch`.
#[cfg(not(feature = "asgi-bridge-async-runtimes"))]
pub fn start_app(
    bridge: &Arc<AsgiBridge>,
    py: Python<'_>,
    request: PendingRequest,
) -> PyResult<()> {
    let (scope, protocol) = scope_and_protocol(bridge, py, request)?;
    bridge
        .dispatch
        .call1(py, (bridge.app.get(py), scope, protocol))?;
    Ok(())
}

/// The pyo3-async-runtimes bridge: runs on a tokio thread, which waits here for the GIL.
#[cfg(feature = "asgi-bridge-async-runtimes")]
pub fn hand_over(bridge: &Arc<AsgiBridge>, request: PendingRequest) {
    let started = Python::attach(|py| -> PyResult<()> {
        let (scope, protocol) = scope_and_protocol(bridge, py, request)?;
        bridge
            .async_runtimes
            .start_app(py, (bridge.app.get(py), scope, protocol))
    });
    if let Err(err) = started {
        log::write(Level::Error, &format!("ASGI bridge error: {err}"));
    }
}

/// The `http` scope and the receive/send pair of one request; a scope that cannot be built
/// answers the request with a 500.
fn scope_and_protocol<'py>(
    bridge: &Arc<AsgiBridge>,
    py: Python<'py>,
    request: PendingRequest,
) -> PyResult<(Bound<'py, PyDict>, Bound<'py, HttpProtocol>)> {
    let state = bridge.state.as_ref().map(|s| s.bind(py));
    let scope = match scope::build_http(py, &request.parts, &request.conn, &bridge.root_path, state)
    {
        Ok(scope) => scope,
        Err(err) => {
            let _ = request.head_tx.send(ResponseHead::internal_error());
            return Err(err);
        }
    };
    let protocol = Bound::new(py, HttpProtocol::new(bridge.clone(), request))?;
    Ok((scope, protocol))
}
