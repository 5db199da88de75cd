//! Listening sockets (TCP or Unix) and the accept loop that serves each connection with hyper,
//! with graceful shutdown. A socket can also be adopted from a file descriptor (`--fd`, or the
//! one a restarting server hands to its successor through `exec`) and handed back as one.

use std::io;
use std::net::{SocketAddr, ToSocketAddrs};
use std::os::fd::{FromRawFd, IntoRawFd, RawFd};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use http::header::{CONNECTION, HeaderValue};
use http::{Request, Version};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpSocket, UnixListener};
use tokio::sync::watch;
use tower::ServiceExt;

use super::conn_info::ConnInfo;
use super::conn_io::{self, ConnIo, Leftover};
use super::graceful::{GracefulShutdown, Watcher};
use super::http_versions::{ConnBuilder, HttpVersions, Options};
use super::limits::{self, ConnState, Limits, Shared};
use super::service::StackConfig;
use super::tls;
use crate::log::{self, Level};

/// On a restart, how long connections get to send one more request (answered with
/// `Connection: close`) before the idle ones are closed. A client that sends on a keep-alive
/// connection while the server closes it loses that request; one told to close does not.
const RESTART_LINGER: Duration = Duration::from_millis(100);

pub enum Listener {
    Tcp(TcpListener, SocketAddr),
    Unix(UnixListener, SocketFile),
}

/// The path of a Unix socket, removed when the listener is dropped if this server created it.
pub struct SocketFile {
    path: PathBuf,
    remove: bool,
}

impl Drop for SocketFile {
    fn drop(&mut self) {
        if self.remove {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

impl Listener {
    /// Binds a TCP socket. Must run inside the tokio runtime.
    pub fn bind_tcp(host: &str, port: u16, backlog: u32) -> io::Result<Self> {
        let addr = (host, port).to_socket_addrs()?.next().ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("cannot resolve host {host:?}"),
            )
        })?;
        let socket = if addr.is_ipv4() {
            TcpSocket::new_v4()?
        } else {
            TcpSocket::new_v6()?
        };
        // Lets a restarted server bind while old connections sit in TIME_WAIT.
        socket.set_reuseaddr(true)?;
        socket.bind(addr)?;
        let listener = socket.listen(backlog)?;
        let local = listener.local_addr()?;
        Ok(Self::Tcp(listener, local))
    }

    /// Binds a Unix socket, replacing a stale socket file left by an earlier run.
    pub fn bind_unix(path: &str) -> io::Result<Self> {
        let path = PathBuf::from(path);
        if let Ok(meta) = std::fs::symlink_metadata(&path) {
            use std::os::unix::fs::FileTypeExt;
            if meta.file_type().is_socket() {
                std::fs::remove_file(&path)?;
            }
        }
        let listener = UnixListener::bind(&path)?;
        Ok(Self::Unix(listener, SocketFile { path, remove: true }))
    }

    /// Adopts an open listening socket (TCP or Unix). Must run inside the tokio runtime. On
    /// success the listener owns `fd`; when `fd` is no socket or cannot be made non-blocking it
    /// is left open. A Unix socket's file is removed on drop only if `remove_file` (the socket
    /// was bound by this server, before an exec).
    pub fn adopt(fd: RawFd, remove_file: bool) -> io::Result<Self> {
        // SAFETY: the caller hands over an open descriptor; every failure path below gives it
        // back with `into_raw_fd` instead of closing it.
        let tcp = unsafe { std::net::TcpListener::from_raw_fd(fd) };
        // getsockname succeeds for any socket; std turns only IPv4/IPv6 addresses into Ok.
        if let Ok(local) = tcp.local_addr() {
            if let Err(err) = tcp.set_nonblocking(true) {
                let _ = tcp.into_raw_fd();
                return Err(err);
            }
            return Ok(Self::Tcp(TcpListener::from_std(tcp)?, local));
        }
        let fd = tcp.into_raw_fd();
        // SAFETY: as above.
        let unix = unsafe { std::os::unix::net::UnixListener::from_raw_fd(fd) };
        let path = match unix.local_addr() {
            Ok(addr) => addr.as_pathname().map(PathBuf::from).unwrap_or_default(),
            Err(err) => {
                let _ = unix.into_raw_fd();
                return Err(io::Error::new(
                    err.kind(),
                    format!("file descriptor {fd} is not a TCP or Unix socket: {err}"),
                ));
            }
        };
        if let Err(err) = unix.set_nonblocking(true) {
            let _ = unix.into_raw_fd();
            return Err(err);
        }
        let listener = UnixListener::from_std(unix)?;
        Ok(Self::Unix(
            listener,
            SocketFile {
                path,
                remove: remove_file,
            },
        ))
    }

    /// The socket's descriptor, still owned by the listener.
    pub fn raw_fd(&self) -> RawFd {
        use std::os::fd::AsRawFd;
        match self {
            Self::Tcp(listener, _) => listener.as_raw_fd(),
            Self::Unix(listener, _) => listener.as_raw_fd(),
        }
    }

    /// Gives up the socket without closing it (nor removing a Unix socket's file): the
    /// descriptor is the caller's, e.g. to pass to the process that replaces this one.
    pub fn release(self) -> io::Result<RawFd> {
        match self {
            Self::Tcp(listener, _) => Ok(listener.into_std()?.into_raw_fd()),
            Self::Unix(listener, mut file) => {
                file.remove = false;
                Ok(listener.into_std()?.into_raw_fd())
            }
        }
    }

    pub fn url(&self) -> String {
        match self {
            Self::Tcp(_, addr) if addr.is_ipv6() => {
                format!("http://[{}]:{}", addr.ip(), addr.port())
            }
            Self::Tcp(_, addr) => format!("http://{addr}"),
            Self::Unix(_, file) => format!("unix:{}", file.path.display()),
        }
    }

    pub fn server_addr(&self) -> Option<(String, u16)> {
        match self {
            Self::Tcp(_, addr) => Some((addr.ip().to_string(), addr.port())),
            Self::Unix(..) => None,
        }
    }
}

/// What the accept loop shares with `Server`: the stop signal and whether stopping is a restart.
pub struct Control {
    pub shutdown: watch::Receiver<bool>,
    /// Set before `shutdown` for a restart: responses carry `Connection: close` from then on and
    /// connections get `RESTART_LINGER` to send one more request before idle ones are closed.
    pub draining: Arc<AtomicBool>,
    /// `--ssl-certfile`: TCP connections are TLS (scheme `https`).
    pub tls: Option<tokio_rustls::TlsAcceptor>,
    /// `--no-date-header` turns hyper's `Date` off.
    pub date_header: bool,
    /// `--http`: HTTP/1.1, HTTP/2 or both.
    pub versions: HttpVersions,
}

fn spawn_connection<I>(
    io: I,
    conn: ConnInfo,
    state: Arc<ConnState>,
    stack: &StackConfig,
    draining: &Arc<AtomicBool>,
    builder: &ConnBuilder,
    graceful: Watcher,
) where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let draining = draining.clone();
    let leftover: Leftover<I> = Arc::default();
    let io = ConnIo::new(io, state.clone(), leftover.clone());
    let stack = stack.for_connection(conn, state.clone());
    let stack = tower::service_fn(move |req: Request<Incoming>| {
        let http1 = req.version() < Version::HTTP_2;
        let draining = draining.clone();
        let response = stack.clone().oneshot(req);
        async move {
            let mut response = response.await?;
            let headers = response.headers_mut();
            if !http1 {
                // Connection-specific headers do not exist in HTTP/2 (a limit's answer or the
                // app may carry `Connection: close`); a restart ends h2 with GOAWAY instead.
                headers.remove(CONNECTION);
            } else if draining.load(Ordering::Acquire) {
                headers.insert(CONNECTION, HeaderValue::from_static("close"));
            }
            Ok::<_, std::convert::Infallible>(response)
        }
    });
    let service = TowerToHyperService::new(stack);
    let connection = builder.serve(TokioIo::new(io), service, graceful, state);
    tokio::spawn(async move {
        let result = connection.await;
        let rest = leftover.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Err(err) = &result {
            log::write(
                Level::Debug,
                &format!("connection ended with an error: {err}"),
            );
        }
        if let Some((io, owed)) = rest {
            let answer = match &result {
                Err(err) if owed => err
                    .downcast_ref::<hyper::Error>()
                    .and_then(limits::refusal_for),
                _ => None,
            };
            conn_io::close_lingering(io, answer.as_deref()).await;
        }
    });
}

/// Accepts until `shutdown` turns true, then waits (up to `grace`) for open connections. The
/// socket closes when the last reference to `listener` goes: at the end of the accept loop
/// unless the caller kept one (a restart keeps it, so new connections queue in the backlog).
pub async fn serve(
    listener: Arc<Listener>,
    stack: Arc<StackConfig>,
    control: Control,
    grace: Option<Duration>,
    limits: Limits,
) {
    let Control {
        mut shutdown,
        draining,
        tls,
        date_header,
        versions,
    } = control;
    let builder = ConnBuilder::new(versions, &limits, &Options { date_header });
    let shared = Shared::new(limits);
    let graceful = GracefulShutdown::new();
    loop {
        let accepted = match &*listener {
            Listener::Tcp(tcp, local) => tokio::select! {
                accepted = tcp.accept() => accepted.map(|(stream, peer)| {
                    let Some(head) = shared.begin_head(peer.ip()) else {
                        // Over its share of connections still sending a head: told so, closed.
                        tokio::spawn(async move {
                            conn_io::close_lingering(stream, Some(&limits::too_many_heads())).await;
                        });
                        return;
                    };
                    let _ = stream.set_nodelay(true);
                    let conn = ConnInfo {
                        client: Some(peer),
                        server: Some((local.ip().to_string(), local.port())),
                        scheme: if tls.is_some() { "https" } else { "http" },
                    };
                    let state = ConnState::new(shared.clone(), Some(head));
                    match &tls {
                        Some(acceptor) => {
                            let (stack, draining, builder, watcher) =
                                (stack.clone(), draining.clone(), builder.clone(), graceful.watcher());
                            tls::spawn_handshake(acceptor.clone(), stream, move |stream| {
                                spawn_connection(stream, conn, state, &stack, &draining, &builder, watcher);
                            });
                        }
                        None => spawn_connection(
                            stream, conn, state, &stack, &draining, &builder, graceful.watcher(),
                        ),
                    }
                }),
                _ = shutdown.wait_for(|stop| *stop) => break,
            },
            Listener::Unix(unix, _) => tokio::select! {
                accepted = unix.accept() => accepted.map(|(stream, _)| {
                    let conn = ConnInfo { client: None, server: None, scheme: "http" };
                    let state = ConnState::new(shared.clone(), None);
                    spawn_connection(stream, conn, state, &stack, &draining, &builder, graceful.watcher());
                }),
                _ = shutdown.wait_for(|stop| *stop) => break,
            },
        };
        if let Err(err) = accepted {
            // Typically out of file descriptors: back off instead of spinning.
            log::write(Level::Error, &format!("accept failed: {err}"));
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    drop(listener);
    let stopped_at = Instant::now();
    if draining.load(Ordering::Acquire) {
        let linger = grace.map_or(RESTART_LINGER, |grace| grace.min(RESTART_LINGER));
        while graceful.count() > 0 && stopped_at.elapsed() < linger {
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }
    let grace = grace.map(|grace| grace.saturating_sub(stopped_at.elapsed()));
    match grace {
        Some(grace) => {
            if tokio::time::timeout(grace, graceful.shutdown())
                .await
                .is_err()
            {
                log::write(
                    Level::Warning,
                    "graceful shutdown timed out, closing the remaining connections",
                );
            }
        }
        None => graceful.shutdown().await,
    }
}
