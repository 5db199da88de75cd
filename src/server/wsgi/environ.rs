//! The PEP 3333 environ for one request.

use http::request::Parts;
use percent_encoding::percent_decode;
use pyo3::intern;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyString};

use crate::server::conn_info::ConnInfo;
use crate::server::proxy_headers::Forwarded;

/// PEP 3333 "native strings": bytes as latin-1 code points.
pub fn latin1(bytes: &[u8]) -> String {
    bytes.iter().map(|&b| char::from(b)).collect()
}

/// `SCRIPT_NAME` and `PATH_INFO`: the root path is the script name, and is taken off the
/// request path when a proxy left it there.
pub fn split_path(root_path: &str, path: &[u8]) -> (String, String) {
    let decoded = percent_decode(path).collect::<Vec<u8>>();
    let rest = decoded
        .strip_prefix(root_path.as_bytes())
        .filter(|rest| !root_path.is_empty() && (rest.is_empty() || rest.starts_with(b"/")));
    (root_path.to_owned(), latin1(rest.unwrap_or(&decoded)))
}

fn header_key(name: &str) -> String {
    let mut key = String::with_capacity(name.len() + 5);
    key.push_str("HTTP_");
    key.extend(name.chars().map(|c| {
        if c == '-' {
            '_'
        } else {
            c.to_ascii_uppercase()
        }
    }));
    key
}

pub fn build<'py>(
    py: Python<'py>,
    parts: &Parts,
    conn: &ConnInfo,
    root_path: &str,
    input: Bound<'py, PyAny>,
    errors: &Bound<'py, PyAny>,
) -> PyResult<Bound<'py, PyDict>> {
    let environ = PyDict::new(py);
    let (script_name, path_info) = split_path(root_path, parts.uri.path().as_bytes());
    environ.set_item(intern!(py, "REQUEST_METHOD"), parts.method.as_str())?;
    environ.set_item(intern!(py, "SCRIPT_NAME"), script_name)?;
    environ.set_item(intern!(py, "PATH_INFO"), path_info)?;
    environ.set_item(intern!(py, "QUERY_STRING"), parts.uri.query().unwrap_or(""))?;
    environ.set_item(
        intern!(py, "RAW_URI"),
        parts.uri.path_and_query().map_or("/", |pq| pq.as_str()),
    )?;
    let protocol = match parts.version {
        http::Version::HTTP_10 => "HTTP/1.0",
        http::Version::HTTP_2 => "HTTP/2",
        _ => "HTTP/1.1",
    };
    environ.set_item(intern!(py, "SERVER_PROTOCOL"), protocol)?;
    let (server_name, server_port) = match &conn.server {
        Some((host, port)) => (host.clone(), port.to_string()),
        None => ("localhost".to_owned(), "80".to_owned()),
    };
    environ.set_item(intern!(py, "SERVER_NAME"), server_name)?;
    environ.set_item(intern!(py, "SERVER_PORT"), server_port)?;
    let forwarded = parts.extensions.get::<Forwarded>();
    match (forwarded.and_then(|f| f.client.as_ref()), conn.client) {
        (Some((host, port)), _) => {
            environ.set_item(intern!(py, "REMOTE_ADDR"), host)?;
            environ.set_item(intern!(py, "REMOTE_PORT"), port.to_string())?;
        }
        (None, Some(client)) => {
            environ.set_item(intern!(py, "REMOTE_ADDR"), client.ip().to_string())?;
            environ.set_item(intern!(py, "REMOTE_PORT"), client.port().to_string())?;
        }
        (None, None) => {}
    }

    for name in parts.headers.keys() {
        let name_str = name.as_str();
        // `X_Forwarded_For` would collide with `X-Forwarded-For` in the environ: drop such
        // names instead of letting a client spoof a header a proxy sets (gunicorn does the same).
        if name_str.contains('_') {
            continue;
        }
        let separator = if name_str == "cookie" { "; " } else { "," };
        let value = parts
            .headers
            .get_all(name)
            .iter()
            .map(|v| latin1(v.as_bytes()))
            .collect::<Vec<_>>()
            .join(separator);
        match name_str {
            "content-type" => environ.set_item(intern!(py, "CONTENT_TYPE"), value)?,
            "content-length" => environ.set_item(intern!(py, "CONTENT_LENGTH"), value)?,
            _ => environ.set_item(header_key(name_str), value)?,
        }
    }

    environ.set_item(intern!(py, "wsgi.version"), (1, 0))?;
    environ.set_item(
        intern!(py, "wsgi.url_scheme"),
        PyString::new(
            py,
            forwarded
                .and_then(Forwarded::http_scheme)
                .unwrap_or(conn.scheme),
        ),
    )?;
    environ.set_item(intern!(py, "wsgi.input"), input)?;
    environ.set_item(intern!(py, "wsgi.errors"), errors)?;
    environ.set_item(intern!(py, "wsgi.multithread"), true)?;
    environ.set_item(intern!(py, "wsgi.multiprocess"), false)?;
    environ.set_item(intern!(py, "wsgi.run_once"), false)?;
    // The server de-chunks and delimits the body, so apps may read to EOF (Werkzeug checks this).
    environ.set_item(intern!(py, "wsgi.input_terminated"), true)?;
    Ok(environ)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_keys_follow_cgi_rules() {
        assert_eq!(header_key("x-request-id"), "HTTP_X_REQUEST_ID");
        assert_eq!(header_key("host"), "HTTP_HOST");
    }

    #[test]
    fn path_is_percent_decoded_as_latin1() {
        assert_eq!(split_path("", b"/caf%C3%A9").1, "/caf\u{c3}\u{a9}");
    }

    #[test]
    fn environ_follows_pep_3333() {
        Python::initialize();
        Python::attach(|py| {
            let request = http::Request::builder()
                .method("PUT")
                .uri("/api/items/caf%C3%A9?x=1")
                .header("Content-Type", "application/json")
                .header("Content-Length", "2")
                .header("Cookie", "a=1")
                .header("Cookie", "b=2")
                .header("X-Forwarded-For", "1.2.3.4")
                .header("X_Forwarded_For", "spoofed")
                .body(())
                .unwrap();
            let (parts, ()) = request.into_parts();
            let conn = ConnInfo {
                client: Some("127.0.0.1:5000".parse().unwrap()),
                server: Some(("127.0.0.1".into(), 8000)),
                scheme: "http",
            };
            let input = py.None().into_bound(py);
            let errors = py.None().into_bound(py);
            let environ = build(py, &parts, &conn, "/api", input, &errors).unwrap();
            let get = |key: &str| {
                environ
                    .get_item(key)
                    .unwrap()
                    .unwrap()
                    .extract::<String>()
                    .unwrap()
            };
            assert_eq!(get("REQUEST_METHOD"), "PUT");
            assert_eq!(get("SCRIPT_NAME"), "/api");
            assert_eq!(get("PATH_INFO"), "/items/caf\u{c3}\u{a9}");
            assert_eq!(get("QUERY_STRING"), "x=1");
            assert_eq!(get("CONTENT_TYPE"), "application/json");
            assert_eq!(get("CONTENT_LENGTH"), "2");
            assert_eq!(get("HTTP_COOKIE"), "a=1; b=2");
            assert_eq!(get("HTTP_X_FORWARDED_FOR"), "1.2.3.4");
            assert_eq!(get("SERVER_NAME"), "127.0.0.1");
            assert_eq!(get("SERVER_PORT"), "8000");
            assert_eq!(get("SERVER_PROTOCOL"), "HTTP/1.1");
            assert_eq!(get("REMOTE_ADDR"), "127.0.0.1");
            assert_eq!(get("wsgi.url_scheme"), "http");
            assert!(environ.get_item("HTTP_CONTENT_TYPE").unwrap().is_none());
            let version: (u8, u8) = environ
                .get_item("wsgi.version")
                .unwrap()
                .unwrap()
                .extract()
                .unwrap();
            assert_eq!(version, (1, 0));
        });
    }

    #[test]
    fn root_path_becomes_script_name() {
        assert_eq!(
            split_path("/api", b"/api/items"),
            ("/api".into(), "/items".into())
        );
        assert_eq!(
            split_path("/api", b"/items"),
            ("/api".into(), "/items".into())
        );
        assert_eq!(
            split_path("/api", b"/apix"),
            ("/api".into(), "/apix".into())
        );
        assert_eq!(split_path("", b"/items"), ("".into(), "/items".into()));
    }

    mod properties {
        use super::*;
        use percent_encoding::{NON_ALPHANUMERIC, percent_encode};
        use proptest::prelude::*;

        fn header_value() -> impl Strategy<Value = Vec<u8>> {
            proptest::collection::vec(
                prop_oneof![0x20u8..=0x7e, Just(b'\t'), 0x80u8..=0xff],
                0..40,
            )
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(500))]

            #[test]
            fn any_request_makes_a_pep_3333_environ(
                path in proptest::collection::vec(any::<u8>(), 0..60),
                query in "[a-zA-Z0-9=&%+._~-]{0,30}",
                headers in proptest::collection::vec(("[a-z][a-z0-9_-]{0,15}", header_value()), 0..12),
                root in prop_oneof![Just(String::new()), "/[a-z]{1,8}"],
            ) {
                let encoded = percent_encode(&path, NON_ALPHANUMERIC).to_string();
                let target = if query.is_empty() {
                    format!("/{encoded}")
                } else {
                    format!("/{encoded}?{query}")
                };
                let mut builder = http::Request::builder().method("GET").uri(target.as_str());
                for (name, value) in &headers {
                    builder = builder.header(name.as_str(), value.as_slice());
                }
                let (parts, ()) = builder.body(()).unwrap().into_parts();
                let conn = ConnInfo { client: None, server: None, scheme: "http" };
                Python::initialize();
                Python::attach(|py| {
                    let none = py.None().into_bound(py);
                    let environ = build(py, &parts, &conn, &root, none.clone(), &none).unwrap();
                    let get = |key: &str| -> Option<String> {
                        environ.get_item(key).unwrap().map(|v| v.extract::<String>().unwrap())
                    };
                    // SCRIPT_NAME + PATH_INFO is the decoded path, as latin-1 native strings.
                    let mut full = b"/".to_vec();
                    full.extend_from_slice(&path);
                    let script = get("SCRIPT_NAME").unwrap();
                    let info = get("PATH_INFO").unwrap();
                    prop_assert_eq!(&script, &root);
                    let stripped = full
                        .strip_prefix(root.as_bytes())
                        .filter(|rest| !root.is_empty() && (rest.is_empty() || rest.starts_with(b"/")));
                    prop_assert_eq!(info, latin1(stripped.unwrap_or(&full)));
                    prop_assert_eq!(get("QUERY_STRING").unwrap(), query.clone());
                    prop_assert_eq!(get("RAW_URI").unwrap(), target.clone());
                    prop_assert!(get("REMOTE_ADDR").is_none());
                    prop_assert_eq!(get("SERVER_NAME").unwrap(), "localhost");
                    for (name, _) in &headers {
                        let key = match name.as_str() {
                            "content-type" => "CONTENT_TYPE".to_owned(),
                            "content-length" => "CONTENT_LENGTH".to_owned(),
                            other => header_key(other),
                        };
                        let value = get(&key);
                        if name.contains('_') {
                            // Dropped: it would alias the dash spelling in the environ.
                            prop_assert!(value.is_none() || headers.iter().any(|(n, _)| n != name && n.replace('-', "_") == name.replace('-', "_")));
                            continue;
                        }
                        let separator = if name == "cookie" { "; " } else { "," };
                        let joined = headers
                            .iter()
                            .filter(|(n, _)| n == name)
                            .map(|(_, v)| latin1(v))
                            .collect::<Vec<_>>()
                            .join(separator);
                        prop_assert_eq!(value, Some(joined));
                    }
                    for (key, value) in environ.iter() {
                        let key: String = key.extract().unwrap();
                        if key.starts_with("HTTP_") {
                            let value: String = value.extract().unwrap();
                            prop_assert!(value.chars().all(|c| (c as u32) <= 0xff));
                        }
                    }
                    Ok(())
                })?;
            }
        }
    }
}
