//! Listening sockets (TCP or Unix) and the accept loop that serves each connection with hyper,
//! with graceful shutdown.

use std::io;
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpSocket, UnixListener};
use tokio::sync::watch;

use super::conn_info::ConnInfo;
use super::log::{self, Level};
use super::service::StackConfig;

pub enum Listener {
    Tcp(TcpListener, SocketAddr),
    Unix(UnixListener, PathBuf),
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
        Ok(Self::Unix(UnixListener::bind(&path)?, path))
    }

    pub fn url(&self) -> String {
        match self {
            Self::Tcp(_, addr) if addr.is_ipv6() => {
                format!("http://[{}]:{}", addr.ip(), addr.port())
            }
            Self::Tcp(_, addr) => format!("http://{addr}"),
            Self::Unix(_, path) => format!("unix:{}", path.display()),
        }
    }

    pub fn server_addr(&self) -> Option<(String, u16)> {
        match self {
            Self::Tcp(_, addr) => Some((addr.ip().to_string(), addr.port())),
            Self::Unix(..) => None,
        }
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        if let Self::Unix(_, path) = self {
            let _ = std::fs::remove_file(path);
        }
    }
}

fn http1_builder() -> http1::Builder {
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .keep_alive(true)
        .pipeline_flush(true)
        .header_read_timeout(Duration::from_secs(30));
    builder
}

fn spawn_connection<I>(
    io: I,
    conn: ConnInfo,
    stack: &StackConfig,
    builder: &http1::Builder,
    graceful: &GracefulShutdown,
) where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let service = TowerToHyperService::new(stack.for_connection(conn));
    let connection = builder.serve_connection(TokioIo::new(io), service);
    let connection = graceful.watch(connection);
    tokio::spawn(async move {
        if let Err(err) = connection.await {
            log::write(
                Level::Debug,
                &format!("connection ended with an error: {err}"),
            );
        }
    });
}

/// Accepts until `shutdown` turns true, then waits (up to `grace`) for open connections.
pub async fn serve(
    listener: Listener,
    stack: Arc<StackConfig>,
    mut shutdown: watch::Receiver<bool>,
    grace: Option<Duration>,
) {
    let builder = http1_builder();
    let graceful = GracefulShutdown::new();
    loop {
        let accepted = match &listener {
            Listener::Tcp(tcp, local) => tokio::select! {
                accepted = tcp.accept() => accepted.map(|(stream, peer)| {
                    let _ = stream.set_nodelay(true);
                    let conn = ConnInfo {
                        client: Some(peer),
                        server: Some((local.ip().to_string(), local.port())),
                        scheme: "http",
                    };
                    spawn_connection(stream, conn, &stack, &builder, &graceful);
                }),
                _ = shutdown.wait_for(|stop| *stop) => break,
            },
            Listener::Unix(unix, _) => tokio::select! {
                accepted = unix.accept() => accepted.map(|(stream, _)| {
                    let conn = ConnInfo { client: None, server: None, scheme: "http" };
                    spawn_connection(stream, conn, &stack, &builder, &graceful);
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
