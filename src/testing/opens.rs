//! Files the test mode's tests open: an audit hook in C that passes only the `open` event on to
//! Python (python/hmr_serve/testing/recorder.py).
//!
//! Every audit hook written in Python is called for every audited event of the process, and
//! pytest's machinery raises thousands per test (`object.__getattr__` for each `__code__` it
//! inspects, `builtins.id`): one in Python cost about a third of the test mode's recording.
//! Here the other events return at once, without a Python call.

use std::ffi::{CStr, c_char, c_int, c_void};
use std::sync::Mutex;

use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::types::PyTuple;

type AuditHook = unsafe extern "C" fn(*const c_char, *mut ffi::PyObject, *mut c_void) -> c_int;

// Outside the limited API (so not declared by pyo3 for an abi3 build), but exported by every
// CPython since 3.8 with this signature.
unsafe extern "C" {
    fn PySys_AddAuditHook(hook: AuditHook, data: *mut c_void) -> c_int;
}

/// The Python callable the `open` events go to once installed (hooks cannot be removed).
static CALLBACK: Mutex<Option<Py<PyAny>>> = Mutex::new(None);

unsafe extern "C" fn on_audit(
    event: *const c_char,
    args: *mut ffi::PyObject,
    _data: *mut c_void,
) -> c_int {
    // SAFETY: the interpreter passes a NUL-terminated event name.
    if event.is_null() || unsafe { CStr::from_ptr(event) }.to_bytes() != b"open" {
        return 0;
    }
    // SAFETY: audit hooks run with the GIL held.
    let py = unsafe { Python::assume_attached() };
    let callback = match CALLBACK.lock() {
        Ok(guard) => guard.as_ref().map(|c| c.clone_ref(py)),
        Err(_) => None,
    };
    let Some(callback) = callback else {
        return 0;
    };
    // SAFETY: `args` is the event's argument tuple, borrowed for the call.
    let args = unsafe { Bound::from_borrowed_ptr(py, args) };
    if let Ok(args) = args.cast_into::<PyTuple>() {
        // An error in the callback must never fail the user's `open`.
        let _ = callback.call1(py, args);
    }
    0
}

/// Sends every `open` audit event's arguments to `callback` from now on (replacing the one
/// given before; the hook itself is installed once).
#[pyfunction]
pub fn on_open(py: Python<'_>, callback: Py<PyAny>) -> PyResult<()> {
    let mut slot = CALLBACK.lock().unwrap_or_else(|e| e.into_inner());
    let first = slot.is_none();
    *slot = Some(callback);
    drop(slot);
    if first {
        // SAFETY: called from Python with the GIL held.
        if unsafe { PySys_AddAuditHook(on_audit, std::ptr::null_mut()) } != 0 {
            return Err(PyErr::fetch(py));
        }
    }
    Ok(())
}
