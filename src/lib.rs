//! Native core of hmr-serve: the HTTP server (`server`), the reload machinery (`reload`) and
//! what the test mode needs natively (`testing`), built on the shared pieces below them (`log`,
//! `wake_fd`). Python drives them through the small surface registered here.

pub mod log;
pub mod reload;
pub mod server;
pub mod testing;
pub mod wake_fd;

use pyo3::prelude::*;

/// A request's Rust allocations are made on the I/O thread and many are freed on the asyncio
/// thread; glibc's malloc takes the other thread's arena lock for each such free. mimalloc frees
/// into per-thread lists and allocates faster besides.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[pymodule]
fn _core(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<server::handle::Server>()?;
    m.add_class::<reload::engine::ReloadEngine>()?;
    m.add_class::<reload::watchdog::ReloadWatchdog>()?;
    m.add_function(wrap_pyfunction!(reload::project_map::project_map, m)?)?;
    m.add(
        "ClientDisconnected",
        m.py().get_type::<server::asgi::ClientDisconnected>(),
    )?;
    m.add_function(wrap_pyfunction!(log::set_log_level, m)?)?;
    m.add_function(wrap_pyfunction!(log::set_log_colors, m)?)?;
    m.add_function(wrap_pyfunction!(log::log_to_python, m)?)?;
    m.add_function(wrap_pyfunction!(testing::calls::trace_calls, m)?)?;
    m.add_function(wrap_pyfunction!(testing::calls::stop_tracing_calls, m)?)?;
    m.add_function(wrap_pyfunction!(testing::calls::take_calls, m)?)?;
    m.add_function(wrap_pyfunction!(testing::opens::on_open, m)?)?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    // The paths of platforms without eventfd and inotify close-after-write (macOS), taken on
    // Linux too with the `portable` feature: `make test-portable` checks it runs such a build.
    m.add(
        "PORTABLE_PATHS",
        cfg!(not(all(target_os = "linux", not(feature = "portable")))),
    )?;
    Ok(())
}
