//! A descriptor the asyncio loop watches (`loop.add_reader`), so that a thread without the GIL
//! can wake it: taking the GIL on another thread waits until the loop thread lets go of it,
//! which it does only when idle or every `sys.getswitchinterval()` (5 ms).
//!
//! Linux has eventfd: one descriptor around a counter. Elsewhere (macOS has no eventfd), and on
//! Linux with the `portable` feature (so that path is tested here too), a non-blocking socket
//! pair, as asyncio's own self-pipe: a byte written to one end makes the other readable until
//! it is read.

#[cfg(all(target_os = "linux", not(feature = "portable")))]
pub use eventfd::WakeFd;
#[cfg(not(all(target_os = "linux", not(feature = "portable"))))]
pub use socket_pair::WakeFd;

#[cfg(all(target_os = "linux", not(feature = "portable")))]
mod eventfd {
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
            // SAFETY: writes 8 bytes from a valid u64 to our own eventfd. A full counter
            // (EAGAIN) still leaves the fd readable, which is all a wake-up needs.
            unsafe { libc::write(self.fd(), (&one as *const u64).cast(), 8) };
        }

        /// Makes the fd unreadable again, until the next poke.
        pub fn clear(&self) {
            let mut counter: u64 = 0;
            // SAFETY: reads 8 bytes into a valid u64 from our own non-blocking eventfd.
            unsafe { libc::read(self.fd(), (&mut counter as *mut u64).cast(), 8) };
        }
    }
}

#[cfg(not(all(target_os = "linux", not(feature = "portable"))))]
mod socket_pair {
    use std::io::{Read, Write};
    use std::os::fd::{AsRawFd, RawFd};
    use std::os::unix::net::UnixStream;

    pub struct WakeFd {
        /// The end the loop watches.
        readable: UnixStream,
        poked: UnixStream,
    }

    impl WakeFd {
        pub fn new() -> std::io::Result<Self> {
            // std opens both ends close-on-exec, so an exec-restart does not leak them.
            let (readable, poked) = UnixStream::pair()?;
            readable.set_nonblocking(true)?;
            poked.set_nonblocking(true)?;
            Ok(Self { readable, poked })
        }

        pub fn fd(&self) -> RawFd {
            self.readable.as_raw_fd()
        }

        /// Makes the fd readable.
        pub fn poke(&self) {
            // A full buffer (WouldBlock) still leaves the fd readable, which is all a wake-up
            // needs.
            let _ = (&self.poked).write(&[1]);
        }

        /// Makes the fd unreadable again, until the next poke.
        pub fn clear(&self) {
            let mut drained = [0u8; 256];
            // Pokes only queue single bytes: a short read means nothing is left.
            while let Ok(n) = (&self.readable).read(&mut drained) {
                if n < drained.len() {
                    break;
                }
            }
        }
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

    #[test]
    fn many_pokes_are_cleared_at_once() {
        let wake = WakeFd::new().unwrap();
        // More than a socket buffer holds: the pokes that do not fit are dropped, and the fd
        // stays readable.
        for _ in 0..100_000 {
            wake.poke();
        }
        assert!(readable(&wake));
        wake.clear();
        assert!(!readable(&wake));
        wake.poke();
        assert!(readable(&wake));
    }
}
