//! Keeps a Python thread state alive on threads that call into Python again and again.
//!
//! Attaching to the interpreter from a thread without a thread state creates one and destroys
//! it on detach: tens of microseconds per WSGI request. Creating it once per pool thread and
//! leaving it parked (GIL released) makes every later attach a cheap re-acquire.

use std::cell::Cell;

thread_local! {
    static KEPT: Cell<bool> = const { Cell::new(false) };
}

/// Call on a pool thread before it first attaches to Python.
pub fn keep_for_this_thread() {
    KEPT.with(|kept| {
        if kept.replace(true) {
            return;
        }
        // SAFETY: the interpreter is initialized (this code runs inside the extension module).
        // Ensure creates this thread's state and takes the GIL; SaveThread releases the GIL but
        // keeps the state, which is deliberately never released: the thread lives as long as
        // the server, and releasing during interpreter finalization would be unsafe.
        unsafe {
            pyo3::ffi::PyGILState_Ensure();
            pyo3::ffi::PyEval_SaveThread();
        }
    });
}
