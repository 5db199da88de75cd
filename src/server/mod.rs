//! The HTTP server: sockets and connections (hyper on tokio), the tower layers around the app
//! call, and one bridge per Python interface (`asgi`, `wsgi`).

pub mod access_log;
pub mod app_slot;
pub mod asgi;
pub mod conn_info;
pub mod conn_io;
pub mod default_headers;
pub mod disconnect;
pub mod graceful;
pub mod handle;
pub mod http_versions;
pub mod intercept;
pub mod limits;
pub mod listener;
pub mod livereload;
pub mod proxy_headers;
pub mod request_body;
pub mod response;
pub mod root_path;
pub mod service;
pub mod static_files;
pub mod thread_state;
pub mod tls;
pub mod wsgi;
