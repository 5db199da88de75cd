//! The WebSocket handshake for ASGI apps: recognise an upgrade request, hand the app its
//! `websocket` scope, answer with what the app decided (101 with the accept key, 403, or the
//! app's own response), and start the session on the upgraded connection.
//!
//! The handshake is an ordinary request as far as the reload gate goes: it waits while a reload
//! runs, and counts as in flight until the app answers. An accepted socket then lives on its
//! own and never holds a reload up.

use std::sync::Arc;

use http::header::{
    CONNECTION, HeaderMap, HeaderName, HeaderValue, SEC_WEBSOCKET_ACCEPT, SEC_WEBSOCKET_EXTENSIONS,
    SEC_WEBSOCKET_KEY, SEC_WEBSOCKET_PROTOCOL, SEC_WEBSOCKET_VERSION, UPGRADE,
};
use http::{Method, Request, Response, StatusCode};
use hyper::body::Incoming;
use pyo3::intern;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList};
use tokio::sync::{mpsc, oneshot};
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;

use super::jobs::Job;
use super::scope;
use super::serve::AsgiBridge;
use super::ws_protocol::WebSocketProtocol;
use super::ws_session::deflate_offer::{self, Agreement};
use super::ws_session::{self, Channels, CloseState, Inbound, OUTBOX, Outbound, WsConfig};
use crate::log::{self, Level};
use crate::server::conn_info::ConnInfo;
use crate::server::proxy_headers::Forwarded;
use crate::server::response::{self, BodySource, ResponseBody, ResponseHead};

/// What a request asks to be upgraded to.
#[derive(Debug, PartialEq, Eq)]
pub enum Upgrade {
    None,
    WebSocket,
    /// Something else (h2c, or websocket while WebSockets are off): served as plain HTTP.
    Unsupported,
}

fn has_token(headers: &HeaderMap, name: HeaderName, token: &str) -> bool {
    headers
        .get_all(name)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .any(|t| t.trim().eq_ignore_ascii_case(token))
}

/// Like uvicorn: an upgrade is asked for by `Connection: upgrade` plus an `Upgrade` header.
pub fn upgrade_requested(headers: &HeaderMap) -> Upgrade {
    if !has_token(headers, CONNECTION, "upgrade") || !headers.contains_key(UPGRADE) {
        return Upgrade::None;
    }
    if has_token(headers, UPGRADE, "websocket") {
        Upgrade::WebSocket
    } else {
        Upgrade::Unsupported
    }
}

/// The client's key when the request is a valid RFC 6455 handshake; otherwise why not.
fn handshake_key<B>(req: &Request<B>) -> Result<HeaderValue, &'static str> {
    if req.method() != Method::GET {
        return Err("the handshake must be a GET request");
    }
    if req.version() != http::Version::HTTP_11 {
        return Err("the handshake needs HTTP/1.1");
    }
    let version = req.headers().get(SEC_WEBSOCKET_VERSION);
    if version.map(|v| v.as_bytes()) != Some(b"13") {
        return Err("unsupported or missing Sec-WebSocket-Version (13 is supported)");
    }
    let key = req
        .headers()
        .get(SEC_WEBSOCKET_KEY)
        .ok_or("missing Sec-WebSocket-Key header")?;
    // A base64-encoded 16-byte nonce is 24 characters ending in "==".
    let bytes = key.as_bytes();
    let base64 = |c: &u8| c.is_ascii_alphanumeric() || *c == b'+' || *c == b'/';
    if bytes.len() != 24 || !bytes[..22].iter().all(base64) || &bytes[22..] != b"==" {
        return Err("invalid Sec-WebSocket-Key header");
    }
    Ok(key.clone())
}

/// The subprotocols the client offers, in its order of preference.
pub fn subprotocols(headers: &HeaderMap) -> Vec<String> {
    headers
        .get_all(SEC_WEBSOCKET_PROTOCOL)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .map(str::trim)
        .filter(|token| !token.is_empty())
        .map(str::to_owned)
        .collect()
}

/// The app's answer to the handshake.
pub enum Handshake {
    Accept {
        subprotocol: Option<String>,
        headers: HeaderMap,
    },
    Respond(ResponseHead),
}

/// A handshake on its way to the loop thread, where its scope and protocol are built.
pub struct PendingWebSocket {
    pub parts: http::request::Parts,
    pub conn: Arc<ConnInfo>,
    pub reply: oneshot::Sender<Handshake>,
    pub inbox: mpsc::Receiver<Inbound>,
    pub outbox: mpsc::Sender<Outbound>,
    pub closed: Arc<CloseState>,
}

fn switching_protocols(
    key: &HeaderValue,
    subprotocol: Option<String>,
    deflate: Option<&Agreement>,
    mut headers: HeaderMap,
) -> Result<ResponseHead, &'static str> {
    headers.insert(UPGRADE, HeaderValue::from_static("websocket"));
    if let Some(agreement) = deflate {
        headers.insert(SEC_WEBSOCKET_EXTENSIONS, agreement.header_value());
    }
    headers.insert(CONNECTION, HeaderValue::from_static("Upgrade"));
    let accept = derive_accept_key(key.as_bytes());
    headers.insert(
        SEC_WEBSOCKET_ACCEPT,
        HeaderValue::from_str(&accept).expect("base64 is a valid header value"),
    );
    if let Some(subprotocol) = subprotocol {
        let value = HeaderValue::from_str(&subprotocol)
            .map_err(|_| "the accepted subprotocol is not a valid header value")?;
        headers.insert(SEC_WEBSOCKET_PROTOCOL, value);
    }
    Ok(ResponseHead {
        status: StatusCode::SWITCHING_PROTOCOLS,
        headers,
        body: BodySource::Full(bytes::Bytes::new()),
    })
}

fn bad_request(reason: &str) -> Response<ResponseBody> {
    let text = format!("Failed to open a WebSocket connection: {reason}.\n");
    let mut head = ResponseHead::plain(StatusCode::BAD_REQUEST, "");
    head.headers
        .insert(http::header::CONTENT_LENGTH, HeaderValue::from(text.len()));
    // The client expected to switch protocols: it is not waiting to send another request.
    head.headers
        .insert(CONNECTION, HeaderValue::from_static("close"));
    head.body = BodySource::Full(bytes::Bytes::from(text));
    head.into_response(None)
}

/// Serves one upgrade request: asks the app, answers the handshake, runs the session.
pub async fn handle(
    bridge: Arc<AsgiBridge>,
    config: WsConfig,
    mut req: Request<Incoming>,
    conn: Arc<ConnInfo>,
) -> Response<ResponseBody> {
    let key = match handshake_key(&req) {
        Ok(key) => key,
        Err(reason) => return bad_request(reason),
    };
    let deflate = config
        .per_message_deflate
        .then(|| deflate_offer::negotiate(req.headers()))
        .flatten();
    let on_upgrade = hyper::upgrade::on(&mut req);
    let (parts, _body) = req.into_parts();
    let (reply, answer) = oneshot::channel();
    let (inbox_tx, inbox) = mpsc::channel(config.max_queue.max(1));
    let (outbox, outbox_rx) = mpsc::channel(OUTBOX);
    let closed = Arc::new(CloseState::default());
    bridge.jobs.push(Job::WebSocket(Box::new(PendingWebSocket {
        parts,
        conn,
        reply,
        inbox,
        outbox,
        closed: closed.clone(),
    })));
    // Dropping this future (the client left) drops `inbox_tx` too: the app's `receive` then
    // reports `websocket.disconnect`.
    let (subprotocol, headers) = match answer.await {
        Ok(Handshake::Accept {
            subprotocol,
            headers,
        }) => (subprotocol, headers),
        Ok(Handshake::Respond(head)) => return head.into_response(None),
        Err(_) => return response::internal_error(),
    };
    let head = match switching_protocols(&key, subprotocol, deflate.as_ref(), headers) {
        Ok(head) => head,
        Err(reason) => {
            log::write(
                Level::Error,
                &format!("WebSocket handshake failed: {reason}"),
            );
            return response::internal_error();
        }
    };
    let shutdown = bridge.shutdown.clone();
    bridge.runtime.spawn(async move {
        match on_upgrade.await {
            Ok(io) => {
                let channels = Channels {
                    inbox: inbox_tx,
                    outbox: outbox_rx,
                    closed,
                };
                ws_session::run(io, config, deflate, channels, shutdown).await;
            }
            Err(err) => {
                closed.set(ws_session::code::ABNORMAL, "");
                log::write(Level::Debug, &format!("WebSocket upgrade failed: {err}"));
            }
        }
    });
    head.into_response(None)
}

/// Runs on the loop thread: builds the `websocket` scope and starts the app.
pub(super) fn start_app(
    bridge: &Arc<AsgiBridge>,
    py: Python<'_>,
    pending: PendingWebSocket,
) -> PyResult<()> {
    let state = bridge.state.as_ref().map(|s| s.bind(py));
    let scope = match build_scope(py, &pending.parts, &pending.conn, &bridge.root_path, state) {
        Ok(scope) => scope,
        Err(err) => {
            let _ = pending
                .reply
                .send(Handshake::Respond(ResponseHead::internal_error()));
            return Err(err);
        }
    };
    let protocol = Py::new(py, WebSocketProtocol::new(bridge.clone(), pending))?;
    bridge
        .dispatch
        .call1(py, (bridge.app.get(py), scope, protocol))?;
    Ok(())
}

fn build_scope<'py>(
    py: Python<'py>,
    parts: &http::request::Parts,
    conn: &ConnInfo,
    root_path: &str,
    state: Option<&Bound<'py, PyDict>>,
) -> PyResult<Bound<'py, PyDict>> {
    let scope = PyDict::new(py);
    scope.set_item(intern!(py, "type"), intern!(py, "websocket"))?;
    // 2.4: `websocket.disconnect` carries a reason.
    scope.set_item(
        intern!(py, "asgi"),
        scope::asgi_versions(py, intern!(py, "2.4"))?,
    )?;
    scope.set_item(
        intern!(py, "http_version"),
        scope::http_version(parts.version),
    )?;
    // A trusted proxy's X-Forwarded-Proto (http/https or ws/wss) wins over the socket's own.
    let forwarded = parts.extensions.get::<Forwarded>().and_then(|f| f.scheme);
    let secure = forwarded.map_or(conn.scheme == "https", |s| s == "https" || s == "wss");
    let scheme = if secure { "wss" } else { "ws" };
    scope.set_item(intern!(py, "scheme"), scheme)?;
    scope::add_request_fields(py, &scope, parts, conn, root_path, state)?;
    scope.set_item(
        intern!(py, "subprotocols"),
        PyList::new(py, subprotocols(&parts.headers))?,
    )?;
    let extensions = PyDict::new(py);
    extensions.set_item(intern!(py, "websocket.http.response"), PyDict::new(py))?;
    scope.set_item(intern!(py, "extensions"), extensions)?;
    Ok(scope)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(headers: &[(&str, &str)]) -> Request<()> {
        let mut builder = Request::builder().method("GET").uri("/ws");
        for (name, value) in headers {
            builder = builder.header(*name, *value);
        }
        builder.body(()).unwrap()
    }

    const VALID: &[(&str, &str)] = &[
        ("Connection", "keep-alive, Upgrade"),
        ("Upgrade", "WebSocket"),
        ("Sec-WebSocket-Version", "13"),
        ("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="),
    ];

    #[test]
    fn recognises_upgrade_requests() {
        assert_eq!(
            upgrade_requested(request(VALID).headers()),
            Upgrade::WebSocket
        );
        let plain = request(&[("Connection", "keep-alive")]);
        assert_eq!(upgrade_requested(plain.headers()), Upgrade::None);
        // An Upgrade header without the Connection token is no upgrade (RFC 9110 7.8).
        let no_token = request(&[("Upgrade", "websocket")]);
        assert_eq!(upgrade_requested(no_token.headers()), Upgrade::None);
        let h2c = request(&[
            ("Connection", "Upgrade, HTTP2-Settings"),
            ("Upgrade", "h2c"),
        ]);
        assert_eq!(upgrade_requested(h2c.headers()), Upgrade::Unsupported);
    }

    #[test]
    fn validates_the_handshake() {
        assert!(handshake_key(&request(VALID)).is_ok());
        let without = |skip: &str| {
            let headers: Vec<_> = VALID.iter().copied().filter(|(n, _)| *n != skip).collect();
            handshake_key(&request(&headers))
        };
        assert_eq!(
            without("Sec-WebSocket-Key"),
            Err("missing Sec-WebSocket-Key header")
        );
        assert!(without("Sec-WebSocket-Version").is_err());
        let mut bad_key = VALID.to_vec();
        bad_key[3] = ("Sec-WebSocket-Key", "short");
        assert_eq!(
            handshake_key(&request(&bad_key)),
            Err("invalid Sec-WebSocket-Key header")
        );
        let mut post = request(VALID);
        *post.method_mut() = Method::POST;
        assert!(handshake_key(&post).is_err());
    }

    #[test]
    fn accept_key_follows_rfc_6455() {
        let key = HeaderValue::from_static("dGhlIHNhbXBsZSBub25jZQ==");
        let mut extra = HeaderMap::new();
        extra.insert("x-extra", HeaderValue::from_static("1"));
        let head = switching_protocols(&key, Some("chat".into()), None, extra).unwrap();
        assert_eq!(head.status, StatusCode::SWITCHING_PROTOCOLS);
        // The example from RFC 6455 section 1.3.
        assert_eq!(
            head.headers[SEC_WEBSOCKET_ACCEPT],
            "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
        );
        assert_eq!(head.headers[SEC_WEBSOCKET_PROTOCOL], "chat");
        assert_eq!(head.headers[UPGRADE], "websocket");
        assert_eq!(head.headers["x-extra"], "1");
        assert!(!head.headers.contains_key(SEC_WEBSOCKET_EXTENSIONS));
        assert!(
            switching_protocols(&key, Some("bad\nvalue".into()), None, HeaderMap::new()).is_err()
        );
        let agreement = Agreement {
            server_no_context_takeover: true,
            ..Agreement::default()
        };
        let head = switching_protocols(&key, None, Some(&agreement), HeaderMap::new()).unwrap();
        assert_eq!(
            head.headers[SEC_WEBSOCKET_EXTENSIONS],
            "permessage-deflate; server_no_context_takeover"
        );
    }

    #[test]
    fn subprotocols_keep_the_client_order() {
        let req = request(&[
            ("Sec-WebSocket-Protocol", "graphql-ws, chat"),
            ("Sec-WebSocket-Protocol", " v2 "),
        ]);
        assert_eq!(
            subprotocols(req.headers()),
            vec!["graphql-ws", "chat", "v2"]
        );
    }

    #[test]
    fn websocket_scope_fields() {
        Python::initialize();
        Python::attach(|py| {
            let req = request(&[("Sec-WebSocket-Protocol", "chat, v2")]);
            let (parts, ()) = req.into_parts();
            let conn = ConnInfo {
                client: Some("127.0.0.1:5000".parse().unwrap()),
                server: Some(("127.0.0.1".into(), 8000)),
                scheme: "http",
            };
            let state = PyDict::new(py);
            state.set_item("k", 1).unwrap();
            let scope = build_scope(py, &parts, &conn, "/api", Some(&state)).unwrap();
            let get = |key: &str| scope.get_item(key).unwrap().unwrap();
            assert_eq!(get("type").extract::<String>().unwrap(), "websocket");
            assert_eq!(get("scheme").extract::<String>().unwrap(), "ws");
            assert_eq!(get("path").extract::<String>().unwrap(), "/api/ws");
            assert_eq!(get("root_path").extract::<String>().unwrap(), "/api");
            assert!(scope.get_item("method").unwrap().is_none());
            assert_eq!(
                get("subprotocols").extract::<Vec<String>>().unwrap(),
                vec!["chat", "v2"]
            );
            assert!(
                get("extensions")
                    .get_item("websocket.http.response")
                    .is_ok()
            );
            assert_eq!(
                get("asgi")
                    .get_item("spec_version")
                    .unwrap()
                    .extract::<String>()
                    .unwrap(),
                "2.4"
            );
            assert!(!get("state").is(&state));
        });
    }
}
