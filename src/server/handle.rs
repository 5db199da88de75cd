//! `hmr_serve._core.Server`: what Python sees of the server. It binds when created (so a busy
//! port fails before the app's startup runs), or adopts an open socket (`fd`), starts serving,
//! swaps the app, and shuts down, or stops accepting while keeping the socket for a restart.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use pyo3::exceptions::{PyOSError, PyRuntimeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::PyDict;
use tokio::runtime::Runtime;
use tokio::sync::{oneshot, watch};

use super::app_slot::AppSlot;
use super::asgi::{AsgiBridge, WsConfig};
use super::default_headers::DefaultHeaders;
use super::http_versions::HttpVersions;
use super::limits::Limits;
use super::listener::{self, Control, Listener};
use super::livereload::LiveHub;
use super::proxy_headers::TrustedHosts;
use super::service::{Bridge, StackConfig};
use super::static_files::Mounts;
use super::tls;
use super::wsgi::{WorkerPool, WsgiBridge};
use crate::reload::gate::Gate;

#[pyclass(frozen, module = "hmr_serve._core")]
pub struct Server {
    runtime: Mutex<Option<Runtime>>,
    /// The accept loop holds a second reference while it runs; the socket closes when both are
    /// gone. `shutdown` drops this one, `stop_accepting` keeps it (new connections queue).
    listener: Mutex<Option<Arc<Listener>>>,
    url: String,
    gate: Arc<Gate>,
    app: Mutex<Option<Arc<AppSlot>>>,
    shutdown: watch::Sender<bool>,
    draining: Arc<AtomicBool>,
    stopped: Mutex<Option<oneshot::Receiver<()>>>,
    tls: Mutex<Option<tokio_rustls::TlsAcceptor>>,
    live: Mutex<Option<Arc<LiveHub>>>,
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

/// A non-negative number of seconds from Python; None or 0 turns the timer off.
fn seconds(value: Option<f64>) -> PyResult<Option<Duration>> {
    match value {
        None => Ok(None),
        Some(secs) => Duration::try_from_secs_f64(secs)
            .map(Some)
            .map_err(|_| PyValueError::new_err(format!("invalid number of seconds: {secs}"))),
    }
}

/// `Limits` from the dict `Config.limits`: keys `max_body` (None: unlimited),
/// `max_head`, `concurrency` (None: unlimited), `keep_alive` and `header_timeout` (seconds);
/// missing keys keep their defaults.
fn limits_from(options: &Bound<'_, PyDict>) -> PyResult<Limits> {
    let mut limits = Limits::default();
    let seconds = |value: f64, key: &str| {
        Duration::try_from_secs_f64(value)
            .map_err(|_| PyValueError::new_err(format!("{key} must be a positive number")))
    };
    for (key, value) in options.iter() {
        let key: String = key.extract()?;
        match key.as_str() {
            "max_body" => limits.max_body = value.extract()?,
            "max_head" => limits.max_head = value.extract()?,
            "concurrency" => limits.concurrency = value.extract()?,
            "keep_alive" => limits.keep_alive = seconds(value.extract()?, &key)?,
            "header_timeout" => limits.header_timeout = seconds(value.extract()?, &key)?,
            other => return Err(PyValueError::new_err(format!("unknown limit {other:?}"))),
        }
    }
    if limits.concurrency == Some(0) {
        return Err(PyValueError::new_err("concurrency must be at least 1"));
    }
    Ok(limits)
}

/// The settings `Server.start` reads from the `Config` it is given, by attribute: a new
/// setting is a `Config` field and a field here.
#[derive(FromPyObject)]
struct ServeOptions<'py> {
    root_path: String,
    access_log: bool,
    wsgi_threads: usize,
    #[pyo3(attribute("timeout_graceful_shutdown"))]
    graceful_timeout: Option<f64>,
    #[pyo3(attribute("ws_enabled"))]
    ws: bool,
    ws_max_size: usize,
    ws_max_queue: usize,
    ws_ping_interval: Option<f64>,
    ws_ping_timeout: Option<f64>,
    ws_per_message_deflate: bool,
    server_header: bool,
    date_header: bool,
    headers: Vec<(String, String)>,
    /// `--proxy-headers` off: None; on: the peers allowed to speak for a client.
    trusted_proxies: Option<String>,
    livereload: bool,
    #[pyo3(attribute("error_page"))]
    error_pages: bool,
    show_errors_to_all: bool,
    limits: Bound<'py, PyDict>,
    http: String,
    /// `--static` (URL prefix, directory) pairs.
    statics: Vec<(String, String)>,
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

    fn listener(&self) -> std::sync::MutexGuard<'_, Option<Arc<Listener>>> {
        self.listener.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[pymethods]
impl Server {
    #[new]
    /// Binds `host:port` or `uds`; with `fd`, adopts that open listening socket instead (then
    /// `uds`, if given, says the socket's file is this server's to remove on close).
    #[pyo3(signature = (
        host = "127.0.0.1", port = 8000, uds = None, backlog = 2048, threads = 1, fd = None,
    ))]
    fn new(
        host: &str,
        port: u16,
        uds: Option<&str>,
        backlog: u32,
        threads: usize,
        fd: Option<i32>,
    ) -> PyResult<Self> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads.max(1))
            .thread_name("hmr-serve-io")
            .enable_all()
            .build()
            .map_err(|e| PyRuntimeError::new_err(format!("cannot start the I/O runtime: {e}")))?;
        let listener = {
            let _context = runtime.enter();
            match (fd, uds) {
                (Some(fd), _) => Listener::adopt(fd, uds.is_some()).map_err(|e| {
                    let errno = e.raw_os_error().unwrap_or(0);
                    PyOSError::new_err((
                        errno,
                        format!("cannot serve on file descriptor {fd}: {e}"),
                    ))
                })?,
                (None, Some(path)) => Listener::bind_unix(path).map_err(|e| os_error(e, path))?,
                (None, None) => Listener::bind_tcp(host, port, backlog)
                    .map_err(|e| os_error(e, &format!("address ('{host}', {port})")))?,
            }
        };
        Ok(Self {
            runtime: Mutex::new(Some(runtime)),
            url: listener.url(),
            listener: Mutex::new(Some(Arc::new(listener))),
            gate: Arc::new(Gate::default()),
            app: Mutex::new(None),
            shutdown: watch::channel(false).0,
            draining: Arc::new(AtomicBool::new(false)),
            stopped: Mutex::new(None),
            tls: Mutex::new(None),
            live: Mutex::new(None),
        })
    }

    /// `http://host:port` (the real port when 0 was asked for) or `unix:/path`.
    #[getter]
    fn url(&self) -> String {
        match self.url.strip_prefix("http://") {
            Some(rest) if self.tls.lock().unwrap_or_else(|e| e.into_inner()).is_some() => {
                format!("https://{rest}")
            }
            _ => self.url.clone(),
        }
    }

    /// Serves TLS with this PEM certificate chain and key (`keyfile` None: the key is in
    /// `certfile`), offering `http` ("1", "2", "auto") by ALPN. Before `start`; raises
    /// ValueError naming the file that is wrong.
    #[pyo3(signature = (certfile, keyfile = None, http = "auto"))]
    fn use_tls(&self, certfile: &str, keyfile: Option<&str>, http: &str) -> PyResult<()> {
        if matches!(&*self.listener(), Some(listener) if listener.server_addr().is_none()) {
            return Err(PyValueError::new_err(
                "--ssl-certfile needs a TCP socket, not a Unix socket",
            ));
        }
        let versions = HttpVersions::parse(http).map_err(PyValueError::new_err)?;
        let acceptor =
            tls::acceptor(certfile, keyfile, versions.alpn()).map_err(PyValueError::new_err)?;
        *self.tls.lock().unwrap_or_else(|e| e.into_inner()) = Some(acceptor);
        Ok(())
    }

    /// Serves `app` (`interface` "asgi" or "wsgi") with the settings of `options`, the
    /// package's `Config` (see `ServeOptions`). The other arguments are this process's
    /// objects: for ASGI the event loop, the dispatcher and the resolver, the lifespan state;
    /// for WSGI the error page.
    #[allow(clippy::too_many_arguments)]
    #[pyo3(signature = (
        app, interface, options, *, log_exception, event_loop = None, dispatch = None,
        resolve = None, state = None, error_page = None,
    ))]
    fn start(
        &self,
        py: Python<'_>,
        app: Py<PyAny>,
        interface: &str,
        options: ServeOptions<'_>,
        log_exception: Py<PyAny>,
        event_loop: Option<Bound<'_, PyAny>>,
        dispatch: Option<Py<PyAny>>,
        resolve: Option<Py<PyAny>>,
        state: Option<Py<PyDict>>,
        error_page: Option<Py<PyAny>>,
    ) -> PyResult<()> {
        let ServeOptions {
            root_path,
            access_log,
            wsgi_threads,
            graceful_timeout,
            ws,
            ws_max_size,
            ws_max_queue,
            ws_ping_interval,
            ws_ping_timeout,
            ws_per_message_deflate,
            server_header,
            date_header,
            headers,
            trusted_proxies,
            livereload,
            error_pages,
            show_errors_to_all,
            limits,
            http,
            statics,
        } = options;
        let versions = HttpVersions::parse(&http).map_err(PyValueError::new_err)?;
        // `--static` (URL prefix, directory) pairs; checked before anything starts.
        let statics = Arc::new(Mounts::new(&statics).map_err(PyValueError::new_err)?);
        let limits = limits_from(&limits)?;
        let default_headers =
            DefaultHeaders::new(server_header, &headers).map_err(PyValueError::new_err)?;
        let trusted_proxies = trusted_proxies.map(|ips| Arc::new(TrustedHosts::parse(&ips)));
        let runtime = self.runtime_handle()?;
        let listener = self
            .listener()
            .clone()
            .ok_or_else(|| PyRuntimeError::new_err("the server was shut down"))?;
        let slot = {
            let mut current = self.app.lock().unwrap_or_else(|e| e.into_inner());
            if current.is_some() {
                return Err(PyRuntimeError::new_err("the server was already started"));
            }
            let slot = Arc::new(AppSlot::new(app));
            *current = Some(slot.clone());
            slot
        };
        let root_path = root_path.trim_end_matches('/').to_owned();
        let extras_root: Arc<str> = Arc::from(root_path.as_str());
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
                    ws.then_some(WsConfig {
                        max_size: ws_max_size,
                        max_queue: ws_max_queue.max(1),
                        ping_interval: seconds(ws_ping_interval)?,
                        ping_timeout: seconds(ws_ping_timeout)?,
                        per_message_deflate: ws_per_message_deflate,
                    }),
                    self.shutdown.subscribe(),
                )?)
            }
            "wsgi" => Bridge::Wsgi(Arc::new(WsgiBridge {
                app: slot,
                root_path,
                runtime: runtime.clone(),
                pool: WorkerPool::start(wsgi_threads)?,
                log_exception,
                error_page: error_page.filter(|_| error_pages),
                errors: py.import("sys")?.getattr("stderr")?.unbind(),
            })),
            other => {
                return Err(PyValueError::new_err(format!(
                    "unknown interface {other:?}"
                )));
            }
        };
        let live = (livereload || error_pages).then(|| {
            Arc::new(LiveHub::new(
                livereload,
                show_errors_to_all,
                self.shutdown.subscribe(),
                &extras_root,
            ))
        });
        *self.live.lock().unwrap_or_else(|e| e.into_inner()) = live.clone();
        let stack = Arc::new(StackConfig {
            bridge,
            gate: self.gate.clone(),
            access_log,
            default_headers: Arc::new(default_headers),
            trusted_proxies,
            live,
            statics,
            root_path: extras_root,
        });
        let grace = graceful_timeout.map(Duration::from_secs_f64);
        let control = Control {
            shutdown: self.shutdown.subscribe(),
            draining: self.draining.clone(),
            tls: self.tls.lock().unwrap_or_else(|e| e.into_inner()).clone(),
            date_header,
            versions,
        };
        let (stopped_tx, stopped_rx) = oneshot::channel();
        *self.stopped.lock().unwrap_or_else(|e| e.into_inner()) = Some(stopped_rx);
        runtime.spawn(async move {
            listener::serve(listener, stack, control, grace, limits).await;
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

    /// The overlay HTML pages show while a reload is failing; None once one succeeded.
    fn set_reload_failure(&self, html: Option<String>) {
        if let Some(live) = self.live.lock().unwrap_or_else(|e| e.into_inner()).as_ref() {
            live.set_failure(html);
        }
    }

    /// Pushes one event (`reload`, `failed`) to the pages listening for live reload; returns
    /// how many pages were listening.
    fn send_reload_event(&self, event: &str, data: &str) -> usize {
        match self.live.lock().unwrap_or_else(|e| e.into_inner()).as_ref() {
            Some(live) => live.send(event, data),
            None => 0,
        }
    }

    /// Opens the gate; returns how many requests were waiting at it.
    fn open_gate(&self) -> usize {
        let waiting = self.gate.waiting();
        self.gate.open();
        waiting
    }

    /// Stops accepting and closes the socket; open connections finish their current request
    /// and close.
    fn shutdown(&self) {
        self.listener().take();
        self.shutdown.send_replace(true);
    }

    /// Stops accepting for a restart, keeping the socket open: new connections wait in the
    /// kernel's backlog for the next process. Connections get a moment to send one more request
    /// (answered with `Connection: close`), then finish like on `shutdown`. See `wait`.
    fn stop_accepting(&self) {
        self.draining.store(true, Ordering::Release);
        self.shutdown.send_replace(true);
    }

    /// The listening socket's file descriptor (still owned by the server), None once shut down.
    fn listener_fd(&self) -> Option<i32> {
        self.listener().as_ref().map(|listener| listener.raw_fd())
    }

    /// Hands the listening socket over: returns its descriptor, which the server no longer
    /// closes (nor, for a Unix socket, removes the file of). Only after the accept loop ended
    /// (`stop_accepting`, then `wait`) or before `start`.
    fn release_listener(&self) -> PyResult<i32> {
        let mut slot = self.listener();
        let listener = slot
            .take()
            .ok_or_else(|| PyRuntimeError::new_err("the server has no listening socket"))?;
        let listener = match Arc::try_unwrap(listener) {
            Ok(listener) => listener,
            Err(shared) => {
                *slot = Some(shared);
                return Err(PyRuntimeError::new_err(
                    "the accept loop still runs: call stop_accepting() and wait() first",
                ));
            }
        };
        drop(slot);
        let runtime = self.runtime_handle()?;
        let _context = runtime.enter();
        listener
            .release()
            .map_err(|e| PyOSError::new_err((e.raw_os_error().unwrap_or(0), e.to_string())))
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
        self.listener().take();
        if let Some(runtime) = runtime {
            py.detach(|| runtime.shutdown_timeout(Duration::from_millis(100)));
        }
    }
}
