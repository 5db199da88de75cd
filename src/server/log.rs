//! Log lines written by Rust, formatted like the Python side's (uvicorn's `LEVEL:    message`).
//! Written straight to stderr so logging a request never needs the GIL.

use std::io::Write;
use std::sync::atomic::{AtomicU8, Ordering};

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

/// Set by Python with the numeric level of the `logging` module, so both sides filter alike.
#[pyfunction]
pub fn set_log_level(level: u8) {
    THRESHOLD.store(level, Ordering::Relaxed);
}

pub fn enabled(level: Level) -> bool {
    level as u8 >= THRESHOLD.load(Ordering::Relaxed)
}

pub fn write(level: Level, message: &str) {
    if !enabled(level) {
        return;
    }
    let prefix = match level {
        Level::Trace => "TRACE:    ",
        Level::Debug => "DEBUG:    ",
        Level::Info => "INFO:     ",
        Level::Warning => "WARNING:  ",
        Level::Error => "ERROR:    ",
    };
    let mut line = String::with_capacity(prefix.len() + message.len() + 1);
    line.push_str(prefix);
    line.push_str(message);
    line.push('\n');
    // One write call per line keeps lines whole when Python logs at the same time.
    let _ = std::io::stderr().lock().write_all(line.as_bytes());
}
