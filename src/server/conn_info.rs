//! What a request knows about the connection it came on.

use std::net::SocketAddr;

#[derive(Clone, Debug)]
pub struct ConnInfo {
    /// `None` for Unix sockets, which have no peer address.
    pub client: Option<SocketAddr>,
    /// Host and port the server is reachable at, as ASGI `server` and WSGI `SERVER_*` want them.
    pub server: Option<(String, u16)>,
    pub scheme: &'static str,
}

impl ConnInfo {
    /// `host:port` as the access log shows it.
    pub fn client_label(&self) -> String {
        match self.client {
            Some(addr) => addr.to_string(),
            None => "unix".to_string(),
        }
    }
}
