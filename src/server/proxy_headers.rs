//! `--proxy-headers`: when the peer is a trusted proxy (`--forwarded-allow-ips`),
//! `X-Forwarded-For` and `X-Forwarded-Proto` say who the client is and which scheme it used,
//! with uvicorn's rules. The result rides in the request's extensions, read by the ASGI scope,
//! the WSGI environ and the access log.

use std::net::IpAddr;
use std::sync::Arc;
use std::task::{Context, Poll};

use http::Request;
use ipnet::IpNet;
use tower::{Layer, Service};

use super::conn_info::ConnInfo;

/// Which peers may speak for a client. Like uvicorn: `*`, IP addresses, networks (`10.0.0.0/8`)
/// and literals (anything else, e.g. `unix:` for Unix-socket peers).
#[derive(Debug, Default)]
pub struct TrustedHosts {
    always: bool,
    addresses: Vec<IpAddr>,
    networks: Vec<IpNet>,
    literals: Vec<String>,
}

impl TrustedHosts {
    /// Parses the comma-separated `--forwarded-allow-ips` value.
    pub fn parse(spec: &str) -> Self {
        let mut trusted = Self::default();
        for item in spec.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            if item == "*" {
                trusted.always = true;
            } else if let Ok(ip) = item.parse::<IpAddr>() {
                trusted.addresses.push(ip);
            } else if let Ok(net) = item.parse::<IpNet>() {
                trusted.networks.push(net);
            } else {
                trusted.literals.push(item.to_owned());
            }
        }
        trusted
    }

    pub fn contains(&self, host: &str) -> bool {
        if self.always {
            return true;
        }
        if host.is_empty() {
            return false;
        }
        match host.parse::<IpAddr>() {
            Ok(ip) => {
                let ip = ip.to_canonical();
                self.addresses.iter().any(|a| a.to_canonical() == ip)
                    || self.networks.iter().any(|n| n.contains(&ip))
            }
            Err(_) => self.literals.iter().any(|l| l == host),
        }
    }

    /// The client a trusted `X-Forwarded-For` chain names: the right-most untrusted hop (each
    /// proxy appends), or the first hop when every hop is trusted.
    fn client_of(&self, forwarded_for: &str) -> (String, u16) {
        let hops: Vec<&str> = forwarded_for.split(',').map(str::trim).collect();
        if !self.always {
            for hop in hops.iter().rev() {
                let (host, port) = host_port(hop);
                if !self.contains(&host) {
                    return (host, port);
                }
            }
        }
        host_port(hops[0])
    }
}

/// `1.2.3.4`, `1.2.3.4:80`, `[::1]:80`; anything else is a host without a port.
fn host_port(value: &str) -> (String, u16) {
    if let Some(rest) = value.strip_prefix('[') {
        let Some(end) = rest.find(']') else {
            return (value.to_owned(), 0);
        };
        let (host, after) = (&rest[..end], &rest[end + 1..]);
        return match after.strip_prefix(':') {
            None if after.is_empty() => (host.to_owned(), 0),
            None => (value.to_owned(), 0),
            Some(port) => (host.to_owned(), port.parse().unwrap_or(0)),
        };
    }
    if value.matches(':').count() == 1 {
        let (host, port) = value.rsplit_once(':').unwrap_or((value, ""));
        if let Ok(port) = port.parse() {
            return (host.to_owned(), port);
        }
    }
    (value.to_owned(), 0)
}

/// What a trusted proxy said about the request; absent when nothing was overridden.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Forwarded {
    pub client: Option<(String, u16)>,
    pub scheme: Option<&'static str>,
}

impl Forwarded {
    /// `None` when the peer is not trusted or sent neither header.
    pub fn from_request<B>(
        req: &Request<B>,
        conn: &ConnInfo,
        trusted: &TrustedHosts,
    ) -> Option<Self> {
        let headers = req.headers();
        // Most requests come without either: no need to look at the peer then.
        if !headers.contains_key("x-forwarded-proto") && !headers.contains_key("x-forwarded-for") {
            return None;
        }
        let peer = match conn.client {
            Some(addr) => addr.ip().to_string(),
            None => "unix:".to_owned(),
        };
        if !trusted.contains(&peer) {
            return None;
        }
        let scheme = headers
            .get_all("x-forwarded-proto")
            .iter()
            .next_back()
            .and_then(|v| match v.as_bytes().trim_ascii() {
                b"http" => Some("http"),
                b"https" => Some("https"),
                b"ws" => Some("ws"),
                b"wss" => Some("wss"),
                _ => None,
            });
        let forwarded_for: Vec<String> = headers
            .get_all("x-forwarded-for")
            .iter()
            .map(|v| v.as_bytes().iter().map(|&b| char::from(b)).collect())
            .collect();
        let client = if forwarded_for.is_empty() {
            None
        } else {
            Some(trusted.client_of(&forwarded_for.join(", "))).filter(|(host, _)| !host.is_empty())
        };
        (client.is_some() || scheme.is_some()).then_some(Self { client, scheme })
    }

    /// The HTTP scheme for ASGI `http` scopes and WSGI (`ws`/`wss` map to `http`/`https`).
    pub fn http_scheme(&self) -> Option<&'static str> {
        self.scheme.map(|s| match s {
            "ws" => "http",
            "wss" => "https",
            other => other,
        })
    }
}

#[derive(Clone)]
pub struct ProxyHeadersLayer {
    conn: Arc<ConnInfo>,
    /// `None`: `--no-proxy-headers`.
    trusted: Option<Arc<TrustedHosts>>,
}

impl ProxyHeadersLayer {
    pub fn new(conn: Arc<ConnInfo>, trusted: Option<Arc<TrustedHosts>>) -> Self {
        Self { conn, trusted }
    }
}

impl<S> Layer<S> for ProxyHeadersLayer {
    type Service = ProxyHeaders<S>;

    fn layer(&self, inner: S) -> ProxyHeaders<S> {
        ProxyHeaders {
            inner,
            layer: self.clone(),
        }
    }
}

#[derive(Clone)]
pub struct ProxyHeaders<S> {
    inner: S,
    layer: ProxyHeadersLayer,
}

impl<S, B> Service<Request<B>> for ProxyHeaders<S>
where
    S: Service<Request<B>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<B>) -> Self::Future {
        if let Some(trusted) = &self.layer.trusted
            && let Some(forwarded) = Forwarded::from_request(&req, &self.layer.conn, trusted)
        {
            req.extensions_mut().insert(forwarded);
        }
        self.inner.call(req)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn conn(peer: &str) -> ConnInfo {
        ConnInfo {
            client: Some(peer.parse().unwrap()),
            server: None,
            scheme: "http",
        }
    }

    fn forwarded(peer: &str, trusted: &str, headers: &[(&str, &str)]) -> Option<Forwarded> {
        let mut req = Request::builder();
        for (name, value) in headers {
            req = req.header(*name, *value);
        }
        let req = req.body(()).unwrap();
        Forwarded::from_request(&req, &conn(peer), &TrustedHosts::parse(trusted))
    }

    #[test]
    fn trusted_peer_sets_client_and_scheme() {
        let got = forwarded(
            "127.0.0.1:5000",
            "127.0.0.1",
            &[
                ("x-forwarded-for", "203.0.113.7"),
                ("x-forwarded-proto", "https"),
            ],
        )
        .unwrap();
        assert_eq!(got.client, Some(("203.0.113.7".into(), 0)));
        assert_eq!(got.http_scheme(), Some("https"));
    }

    #[test]
    fn untrusted_peer_is_ignored() {
        let headers = [("x-forwarded-for", "203.0.113.7")];
        assert_eq!(forwarded("10.1.2.3:5000", "127.0.0.1", &headers), None);
    }

    #[test]
    fn right_most_untrusted_hop_is_the_client() {
        let headers = [("x-forwarded-for", "1.1.1.1, 2.2.2.2, 10.0.0.5")];
        let got = forwarded("127.0.0.1:1", "127.0.0.1, 10.0.0.0/8", &headers).unwrap();
        assert_eq!(got.client, Some(("2.2.2.2".into(), 0)));
        let got = forwarded("127.0.0.1:1", "*", &headers).unwrap();
        assert_eq!(got.client, Some(("1.1.1.1".into(), 0)));
    }

    #[test]
    fn hop_ports_and_bad_protos() {
        assert_eq!(host_port("[::1]:8080"), ("::1".into(), 8080));
        assert_eq!(host_port("1.2.3.4:99"), ("1.2.3.4".into(), 99));
        assert_eq!(host_port("::1"), ("::1".into(), 0));
        let headers = [("x-forwarded-proto", "gopher")];
        assert_eq!(forwarded("127.0.0.1:1", "127.0.0.1", &headers), None);
    }
}
