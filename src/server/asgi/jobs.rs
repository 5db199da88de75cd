//! Work handed from tokio threads to the asyncio thread without touching the GIL (a request
//! would wait for it, see crate::wake_fd): tokio threads push jobs here and poke a wake-up fd
//! the event loop watches; the loop thread, which holds the GIL anyway, runs them in batches.

use std::os::fd::RawFd;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use pyo3::prelude::*;

#[cfg(not(feature = "asgi-bridge-async-runtimes"))]
use super::pending::PendingRequest;
use super::pending::PendingWebSocket;
use super::receive_messages::HttpReply;
use super::ws_delivery::Delivery;
use crate::wake_fd::WakeFd;

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
    /// True while a wake-up is on its way, so a burst of jobs costs one poke.
    woken: AtomicBool,
    wake: WakeFd,
}

impl JobQueue {
    pub fn new() -> std::io::Result<Self> {
        Ok(Self {
            jobs: Mutex::new(Vec::new()),
            woken: AtomicBool::new(false),
            wake: WakeFd::new()?,
        })
    }

    pub fn fd(&self) -> RawFd {
        self.wake.fd()
    }

    pub fn push(&self, job: Job) {
        self.jobs
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(job);
        if !self.woken.swap(true, Ordering::AcqRel) {
            self.wake.poke();
        }
    }

    /// Everything queued so far. Clears the wake-up first, so a job pushed meanwhile either is
    /// taken now or wakes the loop again.
    pub fn take(&self) -> Vec<Job> {
        self.wake.clear();
        self.woken.store(false, Ordering::Release);
        std::mem::take(&mut *self.jobs.lock().unwrap_or_else(|e| e.into_inner()))
    }
}
