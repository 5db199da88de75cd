//! Which Python functions ran, for the test mode on Python 3.10 and 3.11 (from 3.12 on it uses
//! `sys.monitoring`): a C trace function that notes the code object of every frame that starts.
//!
//! A trace function written in Python costs a Python call per frame, and reading `frame.f_code`
//! or calling `id()` there raises an audit event each, which every installed audit hook (the
//! engine has one) handles in Python: a pytest run took 3 times as long. From C none of that
//! happens; what remains is the interpreter's own slower dispatch while any tracer is installed.
//!
//! The trace function is installed per thread (`trace_calls`), never asks for line events, and
//! collects into one process-wide set that `take_calls` empties: the Python side takes what was
//! recorded whenever it switches from one test's (or fixture's) recording to another.

use std::collections::HashSet;
use std::os::raw::c_int;
use std::sync::Mutex;

use pyo3::ffi;
use pyo3::prelude::*;

/// `Py_tracefunc`: (the object given when installing, the frame, the event, its argument).
type TraceFunc = unsafe extern "C" fn(
    *mut ffi::PyObject,
    *mut ffi::PyFrameObject,
    c_int,
    *mut ffi::PyObject,
) -> c_int;

// Outside the limited API (so not declared by pyo3 for an abi3 build), but exported by every
// CPython with this signature since 2.x; only 3.10 and 3.11 call it here.
unsafe extern "C" {
    fn PyEval_SetTrace(func: Option<TraceFunc>, obj: *mut ffi::PyObject);
    fn PyEval_SetProfile(func: Option<TraceFunc>, obj: *mut ffi::PyObject);
}

/// `PyTrace_CALL`: a frame starts (a function is called, a generator or coroutine resumes).
const CALL: c_int = 0;

/// The code objects seen since the last `take_calls`, by address; each holds one reference
/// (taken from `PyFrame_GetCode`), so no address is reused while it is in the set.
static SEEN: Mutex<Option<HashSet<usize>>> = Mutex::new(None);

unsafe extern "C" fn on_event(
    _obj: *mut ffi::PyObject,
    frame: *mut ffi::PyFrameObject,
    what: c_int,
    _arg: *mut ffi::PyObject,
) -> c_int {
    if what != CALL || frame.is_null() {
        return 0;
    }
    // SAFETY: called by the interpreter with the GIL held and a live frame.
    let code = unsafe { ffi::PyFrame_GetCode(frame) } as *mut ffi::PyObject;
    if code.is_null() {
        unsafe { ffi::PyErr_Clear() };
        return 0;
    }
    let mut seen = SEEN.lock().unwrap_or_else(|e| e.into_inner());
    if !seen.get_or_insert_with(HashSet::new).insert(code as usize) {
        // Already there with its reference: drop the one just taken.
        unsafe { ffi::Py_DECREF(code) };
    }
    0
}

/// Installs the trace function on this thread: as the trace function, or, with `profile`, as
/// the profile function (which leaves a trace function such as coverage's in place).
#[pyfunction]
#[pyo3(signature = (profile = false))]
pub fn trace_calls(_py: Python<'_>, profile: bool) {
    // SAFETY: called from Python, so attached to the interpreter on this thread.
    unsafe {
        if profile {
            PyEval_SetProfile(Some(on_event), std::ptr::null_mut());
        } else {
            PyEval_SetTrace(Some(on_event), std::ptr::null_mut());
        }
    }
}

/// Removes it from this thread (the trace function, or with `profile` the profile function).
#[pyfunction]
#[pyo3(signature = (profile = false))]
pub fn stop_tracing_calls(_py: Python<'_>, profile: bool) {
    // SAFETY: as above.
    unsafe {
        if profile {
            PyEval_SetProfile(None, std::ptr::null_mut());
        } else {
            PyEval_SetTrace(None, std::ptr::null_mut());
        }
    }
}

/// The code objects that started running since the last call.
#[pyfunction]
pub fn take_calls(py: Python<'_>) -> Vec<Py<PyAny>> {
    let taken = SEEN
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .take()
        .unwrap_or_default();
    taken
        .into_iter()
        // SAFETY: each address holds the reference taken when it was inserted.
        .map(|code| unsafe { Bound::from_owned_ptr(py, code as *mut ffi::PyObject).unbind() })
        .collect()
}
