//! Log lines written by Rust, formatted like the Python side's (uvicorn's `LEVEL:    message`,
//! coloured like uvicorn's when asked). Written straight to stderr so logging a request never
//! needs the GIL; with `--log-config` they go to Python's `logging` instead, from one thread of
//! their own so no tokio thread ever waits for the GIL.

use std::io::Write;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::mpsc::{self, Sender};
use std::sync::{Mutex, OnceLock};

use pyo3::prelude::*;

#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug)]
pub enum Level {
    Trace = 5,
    Debug = 10,
    Info = 20,
    Warning = 30,
    Error = 40,
}

static THRESHOLD: AtomicU8 = AtomicU8::new(Level::Info as u8);
static COLORS: AtomicBool = AtomicBool::new(false);
/// Set by `log_to_python`: records go to this channel instead of stderr.
static PYTHON_SINK: OnceLock<Mutex<Sender<Record>>> = OnceLock::new();

/// Set by Python with the numeric level of the `logging` module, so both sides filter alike.
#[pyfunction]
pub fn set_log_level(level: u8) {
    THRESHOLD.store(level, Ordering::Relaxed);
}

/// `--use-colors`, or stderr is a terminal.
#[pyfunction]
pub fn set_log_colors(enabled: bool) {
    COLORS.store(enabled, Ordering::Relaxed);
}

/// From now on every line goes to `emit(levelno, logger_name, msg, args)` (a Python callable
/// that hands it to `logging`), called on a dedicated thread. Only the first call counts.
#[pyfunction]
pub fn log_to_python(emit: Py<PyAny>) {
    let (tx, rx) = mpsc::channel::<Record>();
    if PYTHON_SINK.set(Mutex::new(tx)).is_err() {
        return;
    }
    std::thread::Builder::new()
        .name("hmr-serve-log".into())
        .spawn(move || {
            for record in rx {
                Python::attach(|py| {
                    let result = match &record.access {
                        Some(a) => emit.call1(
                            py,
                            (
                                record.level as u8,
                                "hmr_serve.access",
                                ACCESS_FORMAT,
                                (&a.client, &a.method, &a.target, &a.version, a.status),
                            ),
                        ),
                        None => {
                            emit.call1(py, (record.level as u8, "hmr_serve", &record.message, ()))
                        }
                    };
                    if let Err(err) = result {
                        err.print(py);
                    }
                });
            }
        })
        .expect("cannot start the log thread");
}

/// uvicorn's access message, so its `AccessFormatter` works on these records too.
const ACCESS_FORMAT: &str = "%s - \"%s %s HTTP/%s\" %d";

pub struct Access {
    pub client: String,
    pub method: String,
    pub target: String,
    pub version: &'static str,
    pub status: u16,
}

struct Record {
    level: Level,
    message: String,
    access: Option<Access>,
}

pub fn enabled(level: Level) -> bool {
    level as u8 >= THRESHOLD.load(Ordering::Relaxed)
}

fn prefix(level: Level, colors: bool) -> String {
    let (name, color) = match level {
        Level::Trace => ("TRACE", "34"),
        Level::Debug => ("DEBUG", "36"),
        Level::Info => ("INFO", "32"),
        Level::Warning => ("WARNING", "33"),
        Level::Error => ("ERROR", "31"),
    };
    let pad = " ".repeat(9 - name.len());
    if colors {
        format!("\x1b[{color}m{name}\x1b[0m:{pad}")
    } else {
        format!("{name}:{pad}")
    }
}

fn emit(record: Record) {
    if let Some(sink) = PYTHON_SINK.get() {
        let _ = sink.lock().unwrap_or_else(|e| e.into_inner()).send(record);
        return;
    }
    let colors = COLORS.load(Ordering::Relaxed);
    let mut line = prefix(record.level, colors);
    match &record.access {
        Some(a) => line.push_str(&access_line(a, colors)),
        None => line.push_str(&record.message),
    }
    line.push('\n');
    // One write call per line keeps lines whole when Python logs at the same time.
    let _ = std::io::stderr().lock().write_all(line.as_bytes());
}

/// `127.0.0.1:5000 - "GET / HTTP/1.1" 200 OK`, the request bold and the status coloured by
/// class when colours are on (as uvicorn does).
fn access_line(a: &Access, colors: bool) -> String {
    let reason = http::StatusCode::from_u16(a.status)
        .ok()
        .and_then(|s| s.canonical_reason())
        .unwrap_or("");
    let request = format!("{} {} HTTP/{}", a.method, a.target, a.version);
    let status = format!("{} {reason}", a.status).trim_end().to_owned();
    if !colors {
        return format!("{} - \"{request}\" {status}", a.client);
    }
    let color = match a.status {
        100..=199 => "97",
        200..=299 => "32",
        300..=399 => "33",
        400..=499 => "31",
        _ => "91",
    };
    format!(
        "{} - \"\x1b[1m{request}\x1b[0m\" \x1b[{color}m{status}\x1b[0m",
        a.client
    )
}

pub fn write(level: Level, message: &str) {
    if !enabled(level) {
        return;
    }
    emit(Record {
        level,
        message: message.to_owned(),
        access: None,
    });
}

/// One access line (at INFO).
pub fn access(access: Access) {
    emit(Record {
        level: Level::Info,
        message: String::new(),
        access: Some(access),
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(status: u16) -> Access {
        Access {
            client: "127.0.0.1:5000".into(),
            method: "GET".into(),
            target: "/".into(),
            version: "1.1",
            status,
        }
    }

    #[test]
    fn access_lines_look_like_uvicorns() {
        assert_eq!(
            access_line(&sample(200), false),
            "127.0.0.1:5000 - \"GET / HTTP/1.1\" 200 OK"
        );
        assert_eq!(
            access_line(&sample(599), false),
            "127.0.0.1:5000 - \"GET / HTTP/1.1\" 599"
        );
        assert!(access_line(&sample(404), true).contains("\x1b[31m404 Not Found\x1b[0m"));
        assert_eq!(prefix(Level::Info, false), "INFO:     ");
        assert_eq!(prefix(Level::Warning, true), "\x1b[33mWARNING\x1b[0m:  ");
    }
}
