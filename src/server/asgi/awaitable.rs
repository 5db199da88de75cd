//! An awaitable that is already complete. `send` returns it in the common case where the chunk
//! fit in the buffer, which spares the event loop a future and a scheduling round.

use pyo3::exceptions::PyStopIteration;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;

#[pyclass(frozen, module = "hmr_serve._core")]
pub struct Ready {
    value: Option<Py<PyAny>>,
}

/// The one awaitable of nothing: it has no state, so every `send` can return it.
static NOTHING: PyOnceLock<Py<PyAny>> = PyOnceLock::new();

impl Ready {
    pub fn awaitable(py: Python<'_>, value: Option<Py<PyAny>>) -> PyResult<Py<PyAny>> {
        match value {
            None => Ok(NOTHING
                .get_or_try_init(py, || Py::new(py, Self { value: None }).map(Py::into_any))?
                .clone_ref(py)),
            Some(_) => Ok(Py::new(py, Self { value })?.into_any()),
        }
    }
}

#[pymethods]
impl Ready {
    fn __await__(slf: Py<Self>) -> Py<Self> {
        slf
    }

    fn __iter__(slf: Py<Self>) -> Py<Self> {
        slf
    }

    fn __next__(&self, py: Python<'_>) -> PyResult<Option<Py<PyAny>>> {
        match &self.value {
            None => Ok(None),
            Some(value) => Err(PyStopIteration::new_err((value.clone_ref(py),))),
        }
    }
}
