//! The application object the server calls. A reload swaps it; requests read it under the GIL.

use std::sync::RwLock;

use pyo3::prelude::*;

pub struct AppSlot {
    app: RwLock<Py<PyAny>>,
}

impl AppSlot {
    pub fn new(app: Py<PyAny>) -> Self {
        Self {
            app: RwLock::new(app),
        }
    }

    pub fn get<'py>(&self, py: Python<'py>) -> Bound<'py, PyAny> {
        self.app
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .bind(py)
            .clone()
    }

    /// Returns the previous app so the caller drops it while attached to the interpreter.
    pub fn replace(&self, app: Py<PyAny>) -> Py<PyAny> {
        let mut slot = self.app.write().unwrap_or_else(|e| e.into_inner());
        std::mem::replace(&mut *slot, app)
    }
}
