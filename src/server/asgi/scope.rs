//! The ASGI `http` and `websocket` connection scopes, built exactly as the ASGI 3 spec describes
//! them, and the fields they share.

use http::request::Parts;
use percent_encoding::percent_decode;
use pyo3::intern;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyList, PyString, PyTuple};

use super::ws_handshake::subprotocols;
use crate::server::conn_info::ConnInfo;
use crate::server::proxy_headers::Forwarded;

fn http_version(version: http::Version) -> &'static str {
    match version {
        http::Version::HTTP_10 => "1.0",
        http::Version::HTTP_2 => "2",
        _ => "1.1",
    }
}

pub fn build_http<'py>(
    py: Python<'py>,
    parts: &Parts,
    conn: &ConnInfo,
    root_path: &str,
    state: Option<&Bound<'py, PyDict>>,
) -> PyResult<Bound<'py, PyDict>> {
    let scope = PyDict::new(py);
    scope.set_item(intern!(py, "type"), intern!(py, "http"))?;
    scope.set_item(intern!(py, "asgi"), asgi_versions(py, intern!(py, "2.3"))?)?;
    scope.set_item(intern!(py, "http_version"), http_version(parts.version))?;
    scope.set_item(intern!(py, "method"), parts.method.as_str())?;
    let forwarded = parts.extensions.get::<Forwarded>();
    let scheme = forwarded.and_then(Forwarded::http_scheme);
    scope.set_item(intern!(py, "scheme"), scheme.unwrap_or(conn.scheme))?;
    add_request_fields(py, &scope, parts, conn, root_path, state)?;
    Ok(scope)
}

pub fn build_websocket<'py>(
    py: Python<'py>,
    parts: &Parts,
    conn: &ConnInfo,
    root_path: &str,
    state: Option<&Bound<'py, PyDict>>,
) -> PyResult<Bound<'py, PyDict>> {
    let scope = PyDict::new(py);
    scope.set_item(intern!(py, "type"), intern!(py, "websocket"))?;
    // 2.4: `websocket.disconnect` carries a reason.
    scope.set_item(intern!(py, "asgi"), asgi_versions(py, intern!(py, "2.4"))?)?;
    scope.set_item(intern!(py, "http_version"), http_version(parts.version))?;
    // A trusted proxy's X-Forwarded-Proto (http/https or ws/wss) wins over the socket's own.
    let forwarded = parts.extensions.get::<Forwarded>().and_then(|f| f.scheme);
    let secure = forwarded.map_or(conn.scheme == "https", |s| s == "https" || s == "wss");
    let scheme = if secure { "wss" } else { "ws" };
    scope.set_item(intern!(py, "scheme"), scheme)?;
    add_request_fields(py, &scope, parts, conn, root_path, state)?;
    scope.set_item(
        intern!(py, "subprotocols"),
        PyList::new(py, subprotocols(&parts.headers))?,
    )?;
    let extensions = PyDict::new(py);
    extensions.set_item(intern!(py, "websocket.http.response"), PyDict::new(py))?;
    scope.set_item(intern!(py, "extensions"), extensions)?;
    Ok(scope)
}

/// The scope's `asgi` entry.
fn asgi_versions<'py>(
    py: Python<'py>,
    spec_version: &Bound<'py, PyString>,
) -> PyResult<Bound<'py, PyDict>> {
    let asgi = PyDict::new(py);
    asgi.set_item(intern!(py, "version"), intern!(py, "3.0"))?;
    asgi.set_item(intern!(py, "spec_version"), spec_version)?;
    Ok(asgi)
}

/// What `http` and `websocket` scopes share: path, query, headers, addresses, state.
fn add_request_fields<'py>(
    py: Python<'py>,
    scope: &Bound<'py, PyDict>,
    parts: &Parts,
    conn: &ConnInfo,
    root_path: &str,
    state: Option<&Bound<'py, PyDict>>,
) -> PyResult<()> {
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

    let forwarded = parts.extensions.get::<Forwarded>();
    match (forwarded.and_then(|f| f.client.as_ref()), conn.client) {
        (Some((host, port)), _) => scope.set_item(intern!(py, "client"), (host.as_str(), *port))?,
        (None, Some(addr)) => {
            scope.set_item(intern!(py, "client"), (addr.ip().to_string(), addr.port()))?
        }
        (None, None) => scope.set_item(intern!(py, "client"), py.None())?,
    }
    match &conn.server {
        Some((host, port)) => scope.set_item(intern!(py, "server"), (host.as_str(), *port))?,
        None => scope.set_item(intern!(py, "server"), py.None())?,
    }
    if let Some(state) = state {
        // Each request gets a shallow copy, so one request cannot rebind what another sees.
        scope.set_item(intern!(py, "state"), state.copy()?)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scope_for(uri: &str) -> (Parts, ConnInfo) {
        let request = http::Request::builder()
            .method("POST")
            .uri(uri)
            .header("Content-Type", "text/plain")
            .header("x-multi", "a")
            .header("x-multi", "b")
            .body(())
            .unwrap();
        let conn = ConnInfo {
            client: Some("127.0.0.1:5000".parse().unwrap()),
            server: Some(("127.0.0.1".into(), 8000)),
            scheme: "http",
        };
        (request.into_parts().0, conn)
    }

    #[test]
    fn http_scope_follows_the_asgi_spec() {
        Python::initialize();
        Python::attach(|py| {
            let (parts, conn) = scope_for("/caf%C3%A9/x?q=1&r=%20");
            let scope = build_http(py, &parts, &conn, "", None).unwrap();
            let get = |key: &str| scope.get_item(key).unwrap().unwrap();
            assert_eq!(get("type").extract::<String>().unwrap(), "http");
            assert_eq!(get("http_version").extract::<String>().unwrap(), "1.1");
            assert_eq!(get("method").extract::<String>().unwrap(), "POST");
            assert_eq!(get("path").extract::<String>().unwrap(), "/café/x");
            assert_eq!(
                get("raw_path").extract::<Vec<u8>>().unwrap(),
                b"/caf%C3%A9/x"
            );
            assert_eq!(
                get("query_string").extract::<Vec<u8>>().unwrap(),
                b"q=1&r=%20"
            );
            assert_eq!(get("root_path").extract::<String>().unwrap(), "");
            assert_eq!(
                get("client").extract::<(String, u16)>().unwrap(),
                ("127.0.0.1".into(), 5000)
            );
            assert_eq!(
                get("server").extract::<(String, u16)>().unwrap(),
                ("127.0.0.1".into(), 8000)
            );
            let headers: Vec<(Vec<u8>, Vec<u8>)> = get("headers").extract().unwrap();
            assert_eq!(
                headers,
                vec![
                    (b"content-type".to_vec(), b"text/plain".to_vec()),
                    (b"x-multi".to_vec(), b"a".to_vec()),
                    (b"x-multi".to_vec(), b"b".to_vec()),
                ]
            );
            let asgi = get("asgi");
            assert_eq!(
                asgi.get_item("version")
                    .unwrap()
                    .extract::<String>()
                    .unwrap(),
                "3.0"
            );
            assert!(scope.get_item("state").unwrap().is_none());
        });
    }

    #[test]
    fn root_path_is_prefixed_and_state_is_copied() {
        Python::initialize();
        Python::attach(|py| {
            let (parts, conn) = scope_for("/items");
            let state = PyDict::new(py);
            state.set_item("db", 1).unwrap();
            let scope = build_http(py, &parts, &conn, "/api", Some(&state)).unwrap();
            let get = |key: &str| scope.get_item(key).unwrap().unwrap();
            assert_eq!(get("path").extract::<String>().unwrap(), "/api/items");
            assert_eq!(get("raw_path").extract::<Vec<u8>>().unwrap(), b"/api/items");
            assert_eq!(get("root_path").extract::<String>().unwrap(), "/api");
            let copied = get("state");
            assert!(!copied.is(&state));
            assert_eq!(copied.get_item("db").unwrap().extract::<i32>().unwrap(), 1);
        });
    }

    #[test]
    fn websocket_scope_fields() {
        Python::initialize();
        Python::attach(|py| {
            let req = http::Request::builder()
                .uri("/ws")
                .header("Sec-WebSocket-Protocol", "chat, v2")
                .body(())
                .unwrap();
            let (parts, ()) = req.into_parts();
            let conn = ConnInfo {
                client: Some("127.0.0.1:5000".parse().unwrap()),
                server: Some(("127.0.0.1".into(), 8000)),
                scheme: "http",
            };
            let state = PyDict::new(py);
            state.set_item("k", 1).unwrap();
            let scope = build_websocket(py, &parts, &conn, "/api", Some(&state)).unwrap();
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

    mod properties {
        use super::*;
        use percent_encoding::{NON_ALPHANUMERIC, percent_encode};
        use proptest::prelude::*;

        fn header_value() -> impl Strategy<Value = Vec<u8>> {
            // What hyper lets through: visible ASCII, space, tab and obs-text.
            proptest::collection::vec(
                prop_oneof![0x20u8..=0x7e, Just(b'\t'), 0x80u8..=0xff],
                0..40,
            )
        }

        fn request(path: &[u8], query: &str, headers: &[(String, Vec<u8>)]) -> (Parts, ConnInfo) {
            let encoded = percent_encode(path, NON_ALPHANUMERIC).to_string();
            let uri = if query.is_empty() {
                format!("/{encoded}")
            } else {
                format!("/{encoded}?{query}")
            };
            let mut builder = http::Request::builder().method("PATCH").uri(uri);
            for (name, value) in headers {
                builder = builder.header(name.as_str(), value.as_slice());
            }
            let conn = ConnInfo {
                client: Some("[::1]:6000".parse().unwrap()),
                server: None,
                scheme: "http",
            };
            (builder.body(()).unwrap().into_parts().0, conn)
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(500))]

            #[test]
            fn any_path_query_and_headers_make_a_faithful_scope(
                path in proptest::collection::vec(any::<u8>(), 0..60),
                query in "[a-zA-Z0-9=&%+._~-]{0,30}",
                headers in proptest::collection::vec(("[a-z][a-z0-9-]{0,15}", header_value()), 0..12),
                root in prop_oneof![Just(String::new()), "/[a-z]{1,8}"],
            ) {
                Python::initialize();
                Python::attach(|py| {
                    let (parts, conn) = request(&path, &query, &headers);
                    let scope = build_http(py, &parts, &conn, &root, None).unwrap();
                    let get = |key: &str| scope.get_item(key).unwrap().unwrap();
                    let mut expected_path = root.clone();
                    expected_path.push('/');
                    expected_path.push_str(&String::from_utf8_lossy(&path));
                    prop_assert_eq!(get("path").extract::<String>().unwrap(), expected_path);
                    let raw = get("raw_path").extract::<Vec<u8>>().unwrap();
                    prop_assert_eq!(&raw[..root.len()], root.as_bytes());
                    let decoded: Vec<u8> =
                        percent_encoding::percent_decode(&raw[root.len() + 1..]).collect();
                    prop_assert_eq!(decoded, path.clone());
                    prop_assert_eq!(
                        get("query_string").extract::<Vec<u8>>().unwrap(),
                        query.as_bytes().to_vec()
                    );
                    prop_assert_eq!(get("method").extract::<String>().unwrap(), "PATCH");
                    prop_assert_eq!(get("client").extract::<(String, u16)>().unwrap(), ("::1".into(), 6000));
                    prop_assert!(get("server").is_none());
                    // Every header line, in order (http groups repeats of a name together).
                    let got: Vec<(Vec<u8>, Vec<u8>)> = get("headers").extract().unwrap();
                    let mut want: Vec<(Vec<u8>, Vec<u8>)> = Vec::new();
                    for (name, _) in &headers {
                        if want.iter().any(|(n, _)| n == name.as_bytes()) {
                            continue;
                        }
                        for (other, value) in &headers {
                            if other == name {
                                want.push((name.as_bytes().to_vec(), value.clone()));
                            }
                        }
                    }
                    prop_assert_eq!(got, want);
                    Ok(())
                })?;
            }
        }
    }
}
