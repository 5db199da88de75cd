//! The ASGI `http` bridge done the way pyo3-async-runtimes servers do it (feature
//! `asgi-bridge-async-runtimes`, off by default). `bench/bridge.py` measures it against the
//! custom bridge of `bridge.rs`, which stays the default: it served 1.6-2.6x the requests/s.
//!
//! A tokio thread takes the GIL, builds the scope and schedules the app's coroutine on the loop
//! with `into_future_with_locals` (`http_start.rs`); `receive` and `send` answer with
//! `future_into_py_with_locals` futures, even when the answer is known at once. WebSockets keep
//! the custom bridge.

use pyo3::call::PyCallArgs;
use pyo3::intern;
use pyo3::prelude::*;
use pyo3_async_runtimes::TaskLocals;

use super::receive_messages::HttpReply;

pub struct AsyncRuntimes {
    /// The loop and the context the app's tasks start from.
    locals: TaskLocals,
    /// `Dispatcher.run(app, scope, protocol)`: the coroutine of one request.
    run: Py<PyAny>,
    /// `--reset-contextvars`: each request's task starts from an empty context.
    fresh_context: bool,
}

impl AsyncRuntimes {
    /// `dispatch` is the bound `Dispatcher.dispatch`; this bridge schedules the coroutine itself.
    pub fn new(event_loop: &Bound<'_, PyAny>, dispatch: &Py<PyAny>) -> PyResult<Self> {
        let py = event_loop.py();
        let dispatcher = dispatch.bind(py).getattr("__self__")?;
        // pyo3-async-runtimes completes futures from its own tokio runtime; one thread, like the
        // server's default `--threads 1`. Only the first call before the runtime exists counts.
        let mut builder = tokio::runtime::Builder::new_multi_thread();
        builder.worker_threads(1).enable_all();
        pyo3_async_runtimes::tokio::init(builder);
        Ok(Self {
            locals: TaskLocals::new(event_loop.clone()).copy_context(py)?,
            run: dispatcher.getattr("run")?.unbind(),
            fresh_context: dispatcher.getattr("fresh_context")?.is_truthy()?,
        })
    }

    fn locals(&self, py: Python<'_>) -> PyResult<TaskLocals> {
        if !self.fresh_context {
            return Ok(self.locals.clone());
        }
        let empty = py
            .import(intern!(py, "contextvars"))?
            .call_method0("Context")?;
        Ok(self.locals.clone().with_context(empty))
    }

    /// Schedules the app's coroutine for one request on the loop; `args` are `(app, scope,
    /// protocol)`.
    pub fn start_app<'py>(&self, py: Python<'py>, args: impl PyCallArgs<'py>) -> PyResult<()> {
        let coroutine = self.run.bind(py).call1(args)?;
        let locals = self.locals(py)?;
        // The Python side logs what the app raises and the response comes through the
        // protocol, so the coroutine's own result is not awaited.
        drop(pyo3_async_runtimes::into_future_with_locals(
            &locals, coroutine,
        )?);
        Ok(())
    }

    pub fn ready(&self, py: Python<'_>, value: Option<Py<PyAny>>) -> PyResult<Py<PyAny>> {
        let locals = self.locals.clone();
        let future = pyo3_async_runtimes::tokio::future_into_py_with_locals(py, locals, async {
            Ok(value)
        })?;
        Ok(future.unbind())
    }

    pub fn later(
        &self,
        py: Python<'_>,
        work: impl Future<Output = HttpReply> + Send + 'static,
    ) -> PyResult<Py<PyAny>> {
        let locals = self.locals.clone();
        let future = pyo3_async_runtimes::tokio::future_into_py_with_locals(py, locals, async {
            Ok(work.await)
        })?;
        Ok(future.unbind())
    }
}

impl<'py> IntoPyObject<'py> for HttpReply {
    type Target = PyAny;
    type Output = Bound<'py, PyAny>;
    type Error = PyErr;

    fn into_pyobject(self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        self.into_value(py)
    }
}
