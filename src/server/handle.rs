//! `hmr_serve._core.Server`: what Python sees of the server. It binds when created (so a busy
//! port fails before the app's startup runs), starts serving, swaps the app, and shuts down.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use pyo3::exceptions::{PyOSError, PyRuntimeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::PyDict;
use tokio::runtime::Runtime;
use tokio::sync::{oneshot, watch};

use super::app_slot::AppSlot;
use super::asgi::AsgiBridge;
use super::listener::{self, Listener};
use super::service::{Bridge, StackConfig};
use super::wsgi::{WorkerPool, WsgiBridge};
use crate::reload::gate::Gate;

#[pyclass(frozen, module = "hmr_serve._core")]
pub struct Server {
    runtime: Mutex<Option<Runtime>>,
    listener: Mutex<Option<Listener>>,
    url: String,
    gate: Arc<Gate>,
    app: Mutex<Option<Arc<AppSlot>>>,
    shutdown: watch::Sender<bool>,
    stopped: Mutex<Option<oneshot::Receiver<()>>>,
}

fn os_error(err: std::io::Error, what: &str) -> PyErr {
    let errno = err.raw_os_error().unwrap_or(0);
    let reason = match err.kind() {
        std::io::ErrorKind::AddrInUse => "address already in use".to_owned(),
        std::io::ErrorKind::PermissionDenied => "permission denied".to_owned(),
        _ => err.to_string(),
    };
    PyOSError::new_err((
        errno,
        format!("error while attempting to bind on {what}: {reason}"),
    ))
}

impl Server {
    fn runtime_handle(&self) -> PyResult<tokio::runtime::Handle> {
        self.runtime
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .as_ref()
            .map(|rt| rt.handle().clone())
            .ok_or_else(|| PyRuntimeError::new_err("the server is closed"))
    }
}

#[pymethods]
impl Server {
    #[new]
    #[pyo3(signature = (host = "127.0.0.1", port = 8000, uds = None, backlog = 2048, threads = 1))]
    fn new(
        host: &str,
        port: u16,
        uds: Option<&str>,
        backlog: u32,
        threads: usize,
    ) -> PyResult<Self> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads.max(1))
            .thread_name("hmr-serve-io")
            .enable_all()
            .build()
            .map_err(|e| PyRuntimeError::new_err(format!("cannot start the I/O runtime: {e}")))?;
        let listener = {
            let _context = runtime.enter();
            match uds {
                Some(path) => Listener::bind_unix(path).map_err(|e| os_error(e, path))?,
                None => Listener::bind_tcp(host, port, backlog)
                    .map_err(|e| os_error(e, &format!("address ('{host}', {port})")))?,
            }
        };
        Ok(Self {
            runtime: Mutex::new(Some(runtime)),
            url: listener.url(),
            listener: Mutex::new(Some(listener)),
            gate: Arc::new(Gate::default()),
            app: Mutex::new(None),
            shutdown: watch::channel(false).0,
            stopped: Mutex::new(None),
        })
    }

    /// `http://host:port` (the real port when 0 was asked for) or `unix:/path`.
    #[getter]
    fn url(&self) -> &str {
        &self.url
    }

    #[allow(clippy::too_many_arguments)]
    #[pyo3(signature = (
        app, interface, *, log_exception, event_loop = None, dispatch = None, resolve = None,
        state = None, root_path = String::new(), access_log = true, wsgi_threads = 32,
        graceful_timeout = None,
    ))]
    fn start(
        &self,
        py: Python<'_>,
        app: Py<PyAny>,
        interface: &str,
        log_exception: Py<PyAny>,
        event_loop: Option<Bound<'_, PyAny>>,
        dispatch: Option<Py<PyAny>>,
        resolve: Option<Py<PyAny>>,
        state: Option<Py<PyDict>>,
        root_path: String,
        access_log: bool,
        wsgi_threads: usize,
        graceful_timeout: Option<f64>,
    ) -> PyResult<()> {
        let listener = self
            .listener
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
            .ok_or_else(|| PyRuntimeError::new_err("the server was already started"))?;
        let runtime = self.runtime_handle()?;
        let slot = Arc::new(AppSlot::new(app));
        *self.app.lock().unwrap_or_else(|e| e.into_inner()) = Some(slot.clone());
        let root_path = root_path.trim_end_matches('/').to_owned();
        let bridge = match interface {
            "asgi" => {
                let (Some(event_loop), Some(dispatch), Some(resolve)) =
                    (event_loop, dispatch, resolve)
                else {
                    return Err(PyValueError::new_err(
                        "ASGI needs event_loop, dispatch and resolve",
                    ));
                };
                Bridge::Asgi(AsgiBridge::start(
                    py,
                    &event_loop,
                    dispatch,
                    resolve,
                    slot,
                    state,
                    root_path,
                    runtime.clone(),
                )?)
            }
            "wsgi" => Bridge::Wsgi(Arc::new(WsgiBridge {
                app: slot,
                root_path,
                runtime: runtime.clone(),
                pool: WorkerPool::start(wsgi_threads)?,
                log_exception,
                errors: py.import("sys")?.getattr("stderr")?.unbind(),
            })),
            other => {
                return Err(PyValueError::new_err(format!(
                    "unknown interface {other:?}"
                )));
            }
        };
        let stack = Arc::new(StackConfig {
            bridge,
            gate: self.gate.clone(),
            access_log,
        });
        let grace = graceful_timeout.map(Duration::from_secs_f64);
        let shutdown = self.shutdown.subscribe();
        let (stopped_tx, stopped_rx) = oneshot::channel();
        *self.stopped.lock().unwrap_or_else(|e| e.into_inner()) = Some(stopped_rx);
        runtime.spawn(async move {
            listener::serve(listener, stack, shutdown, grace).await;
            let _ = stopped_tx.send(());
        });
        Ok(())
    }

    /// Replaces the app that new requests are handed to.
    fn set_app(&self, py: Python<'_>, app: Py<PyAny>) -> PyResult<()> {
        let slot = self.app.lock().unwrap_or_else(|e| e.into_inner()).clone();
        let slot = slot.ok_or_else(|| PyRuntimeError::new_err("the server is not started"))?;
        let previous = slot.replace(app);
        drop(previous);
        let _ = py;
        Ok(())
    }

    /// Closes the reload gate: new requests wait. Returns 0 at once when no request is inside;
    /// otherwise returns None and later calls `done(still_inside, None)` from another thread,
    /// after the requests inside left or `drain` seconds passed.
    fn close_gate(&self, drain: f64, done: Py<PyAny>) -> PyResult<Option<usize>> {
        if self.gate.close_now() {
            return Ok(Some(0));
        }
        let gate = self.gate.clone();
        self.runtime_handle()?.spawn(async move {
            let still_inside = gate.close(Duration::from_secs_f64(drain)).await;
            Python::attach(|py| {
                if let Err(err) = done.call1(py, (still_inside, py.None())) {
                    err.print(py);
                }
            });
        });
        Ok(None)
    }

    /// Opens the gate; returns how many requests were waiting at it.
    fn open_gate(&self) -> usize {
        let waiting = self.gate.waiting();
        self.gate.open();
        waiting
    }

    /// Stops accepting; open connections finish their current request and close.
    fn shutdown(&self) {
        self.shutdown.send_replace(true);
    }

    /// Blocks (without the GIL) until shutdown completed; false if `timeout` passed first.
    #[pyo3(signature = (timeout = None))]
    fn wait(&self, py: Python<'_>, timeout: Option<f64>) -> PyResult<bool> {
        let Some(mut stopped) = self
            .stopped
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
        else {
            return Ok(true);
        };
        let runtime = self.runtime_handle()?;
        let finished = py.detach(|| {
            runtime.block_on(async {
                match timeout {
                    Some(secs) => tokio::time::timeout(Duration::from_secs_f64(secs), &mut stopped)
                        .await
                        .is_ok(),
                    None => {
                        let _ = (&mut stopped).await;
                        true
                    }
                }
            })
        });
        if !finished {
            *self.stopped.lock().unwrap_or_else(|e| e.into_inner()) = Some(stopped);
        }
        Ok(finished)
    }

    /// Stops the I/O threads. Connections still open are cut.
    fn close(&self, py: Python<'_>) {
        let runtime = self
            .runtime
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        self.listener
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        if let Some(runtime) = runtime {
            py.detach(|| runtime.shutdown_timeout(Duration::from_millis(100)));
        }
    }
}
