//! Work handed from tokio threads to the asyncio thread without touching the GIL.
//!
//! Taking the GIL on a tokio thread means waiting until the asyncio thread lets go of it, which
//! it does only when idle or every `sys.getswitchinterval()` (5 ms): a request would wait that
//! long. Instead, tokio threads push jobs here and poke an eventfd that the event loop watches
//! (`loop.add_reader`); the loop thread, which holds the GIL anyway, runs them in batches.

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use pyo3::prelude::*;

use super::messages::HttpReply;
#[cfg(not(feature = "asgi-bridge-async-runtimes"))]
use super::protocol::PendingRequest;
use super::websocket::PendingWebSocket;
use super::ws_protocol::Delivery;

/// The value an asyncio future waiting on the network is completed with.
pub enum Completion {
    Http(HttpReply),
    WebSocket(Box<Delivery>),
}

pub enum Job {
    /// With the pyo3-async-runtimes bridge, tokio threads start HTTP requests themselves.
    #[cfg(not(feature = "asgi-bridge-async-runtimes"))]
    Dispatch(Box<PendingRequest>),
    WebSocket(Box<PendingWebSocket>),
    Resolve(Py<PyAny>, Completion),
}

pub struct JobQueue {
    jobs: Mutex<Vec<Job>>,
    /// True while a wake-up is on its way, so a burst of jobs costs one eventfd write.
    woken: AtomicBool,
    eventfd: OwnedFd,
}

impl JobQueue {
    pub fn new() -> std::io::Result<Self> {
        // SAFETY: eventfd has no memory-safety preconditions; the result is checked below.
        let fd = unsafe { libc::eventfd(0, libc::EFD_NONBLOCK | libc::EFD_CLOEXEC) };
        if fd < 0 {
            return Err(std::io::Error::last_os_error());
        }
        // SAFETY: `fd` is a fresh descriptor that nothing else owns.
        let eventfd = unsafe { OwnedFd::from_raw_fd(fd) };
        Ok(Self {
            jobs: Mutex::new(Vec::new()),
            woken: AtomicBool::new(false),
            eventfd,
        })
    }

    pub fn fd(&self) -> RawFd {
        self.eventfd.as_raw_fd()
    }

    pub fn push(&self, job: Job) {
        self.jobs
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(job);
        if !self.woken.swap(true, Ordering::AcqRel) {
            let one: u64 = 1;
            // SAFETY: writes 8 bytes from a valid u64 to our own eventfd. A full counter
            // (EAGAIN) still leaves the fd readable, which is all the wake-up needs.
            unsafe { libc::write(self.fd(), (&one as *const u64).cast(), 8) };
        }
    }

    /// Everything queued so far. Clears the wake-up first, so a job pushed meanwhile either is
    /// taken now or wakes the loop again.
    pub fn take(&self) -> Vec<Job> {
        let mut counter: u64 = 0;
        // SAFETY: reads 8 bytes into a valid u64 from our own non-blocking eventfd.
        unsafe { libc::read(self.fd(), (&mut counter as *mut u64).cast(), 8) };
        self.woken.store(false, Ordering::Release);
        std::mem::take(&mut *self.jobs.lock().unwrap_or_else(|e| e.into_inner()))
    }
}
