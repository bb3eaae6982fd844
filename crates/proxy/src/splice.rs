//! Zero-copy forwarding for links with no toxic: bytes go from one socket into a pipe and
//! from the pipe into the other socket with splice(2), so the proxy never copies them
//! through user space.
//!
//! A link takes a pipe only while it streams bulk data (`link.rs` decides when), so idle and
//! interactive connections cost no extra file descriptors; when none can be made (the
//! open-files limit), the link keeps copying. The pipe is always drained before the next
//! read, so EOF, errors and a switch to the toxic path never strand bytes inside it.
//!
//! splice(2) into a socket whose peer has gone raises SIGPIPE; Rust programs ignore that
//! signal from the start, so the call fails with EPIPE and the link closes.

use std::io;
use std::os::fd::OwnedFd;

use rustix::pipe::{PipeFlags, SpliceFlags, fcntl_setpipe_size, pipe_with};
use tokio::io::Interest;
use tokio::net::TcpStream;

/// Bytes a pipe holds: one splice moves up to this much. Larger is not faster: the pages in
/// flight between the two sockets must stay in the CPU's caches for the receiver's copy out
/// of its socket. On a 2-core VM, 256 KiB moved 10-20% more than 1 MiB in the benchmark,
/// and 512, 128 and 64 KiB were slower (BENCHMARKS.md).
const PIPE_BYTES: usize = 1 << 18;
/// What a pipe holds when its size cannot be set.
const DEFAULT_PIPE_BYTES: usize = 64 * 1024;

/// A link's pipe and the bytes waiting in it.
pub(crate) struct Pipe {
    read: OwnedFd,
    write: OwnedFd,
    capacity: usize,
    pending: usize,
}

impl Pipe {
    /// A non-blocking pipe of `PIPE_BYTES`, or as large as the system allows.
    pub(crate) fn new() -> io::Result<Pipe> {
        Pipe::with_capacity(PIPE_BYTES)
    }

    /// A non-blocking pipe of `want` bytes, or of the largest power-of-two fraction of it the
    /// system allows (`/proc/sys/fs/pipe-max-size`, 1 MiB by default, binds unprivileged
    /// processes), and never less than the default 64 KiB.
    pub(crate) fn with_capacity(want: usize) -> io::Result<Pipe> {
        let (read, write) = pipe_with(PipeFlags::CLOEXEC | PipeFlags::NONBLOCK)?;
        let mut size = want;
        let capacity = loop {
            match fcntl_setpipe_size(&write, size) {
                Ok(got) => break got,
                Err(_) if size > DEFAULT_PIPE_BYTES => size /= 2,
                Err(_) => break DEFAULT_PIPE_BYTES,
            }
        };
        Ok(Pipe {
            read,
            write,
            capacity,
            pending: 0,
        })
    }

    /// Bytes the pipe could still take (fewer when the data arrived in small pieces: each
    /// piece takes a slot of its own).
    pub(crate) fn room(&self) -> usize {
        self.capacity - self.pending
    }

    /// Bytes the pipe holds when full of whole pages.
    pub(crate) fn capacity(&self) -> usize {
        self.capacity
    }

    /// Bytes read into the pipe and not yet written out.
    pub(crate) fn pending(&self) -> usize {
        self.pending
    }

    /// Moves what `src` has ready into the pipe without waiting. `Ok(0)` is EOF;
    /// `WouldBlock` clears `src`'s readiness.
    pub(crate) fn fill(&mut self, src: &TcpStream) -> io::Result<usize> {
        self.fill_at_most(src, self.room())
    }

    /// [`Pipe::fill`], of at most `room` bytes.
    pub(crate) fn fill_at_most(&mut self, src: &TcpStream, room: usize) -> io::Result<usize> {
        let n = src.try_io(Interest::READABLE, || {
            rustix::pipe::splice(src, None, &self.write, None, room, flags())
                .map_err(io::Error::from)
        })?;
        self.pending += n;
        Ok(n)
    }

    /// Moves what the pipe holds into `dst` as far as it takes it without waiting.
    /// `WouldBlock` clears `dst`'s readiness.
    pub(crate) fn drain(&mut self, dst: &TcpStream) -> io::Result<usize> {
        self.drain_at_most(dst, self.pending)
    }

    /// [`Pipe::drain`], of at most `max` bytes: the oldest ones.
    pub(crate) fn drain_at_most(&mut self, dst: &TcpStream, max: usize) -> io::Result<usize> {
        let len = max.min(self.pending);
        let n = dst.try_io(Interest::WRITABLE, || {
            rustix::pipe::splice(&self.read, None, dst, None, len, flags()).map_err(io::Error::from)
        })?;
        self.pending -= n;
        Ok(n)
    }

    /// Copies the oldest `buf.len()` bytes out of the pipe into memory (they must be there).
    pub(crate) fn take(&mut self, buf: &mut [u8]) -> io::Result<()> {
        let mut done = 0;
        while done < buf.len() {
            let n = rustix::io::read(&self.read, &mut buf[done..])?;
            if n == 0 {
                return Err(io::ErrorKind::UnexpectedEof.into());
            }
            done += n;
        }
        self.pending -= done;
        Ok(())
    }
}

fn flags() -> SpliceFlags {
    SpliceFlags::MOVE | SpliceFlags::NONBLOCK
}
