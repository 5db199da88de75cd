//! `hmr_serve._core.ReloadWatchdog`: the timer behind `--reload-timeout`
//! (python/hmr_serve/reload/time_limit.py). At its deadline it sends SIGALRM to the reloading
//! thread itself, whose Python handler raises; then again every half second until disarmed, for
//! code that swallows even that.
//!
//! A Rust thread rather than a Python one: arming and disarming then never wait for the GIL or
//! for a thread to be scheduled. The signal is sent only while the lock is held that `disarm`
//! takes, so when `disarm` returns no alarm is on its way.

use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use pyo3::prelude::*;

const REFIRE: Duration = Duration::from_millis(500);

struct Alarm {
    deadline: Instant,
    thread: libc::pthread_t,
}

#[derive(Default)]
struct Shared {
    alarm: Mutex<Option<Alarm>>,
    changed: Condvar,
}

#[pyclass(frozen, module = "hmr_serve._core")]
pub struct ReloadWatchdog {
    shared: Arc<Shared>,
}

impl Shared {
    fn run(&self) {
        let mut alarm = self.alarm.lock().unwrap_or_else(|e| e.into_inner());
        loop {
            let Some(armed) = alarm.as_mut() else {
                alarm = self.changed.wait(alarm).unwrap_or_else(|e| e.into_inner());
                continue;
            };
            let now = Instant::now();
            if now < armed.deadline {
                let wait = armed.deadline - now;
                alarm = self
                    .changed
                    .wait_timeout(alarm, wait)
                    .unwrap_or_else(|e| e.into_inner())
                    .0;
                continue;
            }
            // SAFETY: `thread` is the pthread id of the thread that armed the alarm, which is
            // blocked in Python code until it disarms; pthread_kill only queues a signal.
            unsafe { libc::pthread_kill(armed.thread, libc::SIGALRM) };
            armed.deadline = now + REFIRE;
        }
    }

    fn set(&self, alarm: Option<Alarm>) {
        *self.alarm.lock().unwrap_or_else(|e| e.into_inner()) = alarm;
        self.changed.notify_one();
    }
}

#[pymethods]
impl ReloadWatchdog {
    #[new]
    fn new() -> PyResult<Self> {
        let shared = Arc::new(Shared::default());
        let runner = shared.clone();
        std::thread::Builder::new()
            .name("hmr-serve reload watchdog".into())
            .spawn(move || runner.run())?;
        Ok(Self { shared })
    }

    /// SIGALRM to `thread` (a `threading.get_ident()`) once `seconds` have passed.
    fn arm(&self, seconds: f64, thread: u64) {
        self.shared.set(Some(Alarm {
            deadline: Instant::now() + Duration::from_secs_f64(seconds.max(0.0)),
            thread: thread as libc::pthread_t,
        }));
    }

    fn disarm(&self) {
        self.shared.set(None);
    }
}
