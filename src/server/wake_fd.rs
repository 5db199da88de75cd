//! An eventfd the asyncio loop watches (`loop.add_reader`), so that a thread without the GIL can
//! wake it: taking the GIL on another thread waits until the loop thread lets go of it, which
//! it does only when idle or every `sys.getswitchinterval()` (5 ms).

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

pub struct WakeFd(OwnedFd);

impl WakeFd {
    pub fn new() -> std::io::Result<Self> {
        // SAFETY: eventfd has no memory-safety preconditions; the result is checked below.
        let fd = unsafe { libc::eventfd(0, libc::EFD_NONBLOCK | libc::EFD_CLOEXEC) };
        if fd < 0 {
            return Err(std::io::Error::last_os_error());
        }
        // SAFETY: `fd` is a fresh descriptor that nothing else owns.
        Ok(Self(unsafe { OwnedFd::from_raw_fd(fd) }))
    }

    pub fn fd(&self) -> RawFd {
        self.0.as_raw_fd()
    }

    /// Makes the fd readable.
    pub fn poke(&self) {
        let one: u64 = 1;
        // SAFETY: writes 8 bytes from a valid u64 to our own eventfd. A full counter (EAGAIN)
        // still leaves the fd readable, which is all a wake-up needs.
        unsafe { libc::write(self.fd(), (&one as *const u64).cast(), 8) };
    }

    /// Makes the fd unreadable again, until the next poke.
    pub fn clear(&self) {
        let mut counter: u64 = 0;
        // SAFETY: reads 8 bytes into a valid u64 from our own non-blocking eventfd.
        unsafe { libc::read(self.fd(), (&mut counter as *mut u64).cast(), 8) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn readable(wake: &WakeFd) -> bool {
        let mut poll = libc::pollfd {
            fd: wake.fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd, no wait.
        unsafe { libc::poll(&mut poll, 1, 0) == 1 }
    }

    #[test]
    fn poke_makes_readable_until_cleared() {
        let wake = WakeFd::new().unwrap();
        assert!(!readable(&wake));
        wake.poke();
        wake.poke();
        assert!(readable(&wake));
        wake.clear();
        assert!(!readable(&wake));
    }
}
