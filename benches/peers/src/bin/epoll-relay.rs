//! `epoll-relay [--per-direction] LISTEN=UPSTREAM...`: the simplest event-loop TCP relay,
//! until killed.
//!
//! One thread waits in epoll_wait(2) on every connection's sockets and moves what is readable
//! with one read(2) and one write(2): the structure of any proxy that serves thousands of
//! connections on few threads, with nothing else (no toxics, no accounting, no runtime).
//! With `--per-direction`, two such threads: one waits on the clients' sockets and writes
//! upstream, the other waits on the upstream sockets and writes to the clients, so that
//! each direction wakes its own thread, as in the splice relay's thread per direction.
//! The benchmark measures both beside the splice relay and `simian proxy`, to tell what an
//! event loop costs a round trip from what a proxy's own work costs.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::sync::Arc;

use rustix::buffer::spare_capacity;
use rustix::event::epoll;

fn main() {
    let new_loop = || {
        let poll = Arc::new(epoll::create(epoll::CreateFlags::CLOEXEC).expect("epoll_create"));
        let looping = poll.clone();
        std::thread::spawn(move || relay(&looping));
        poll
    };
    simian_bench_peers::run_loops("epoll-relay", new_loop, accept);
}

/// Registers each connection's two sockets: reads from the client in `to_upstream`'s loop,
/// reads from the upstream in `to_client`'s. The sockets stay open for the life of the
/// process (the benchmark's connections are few).
fn accept(
    listener: TcpListener,
    upstream: &str,
    to_upstream: &Arc<OwnedFd>,
    to_client: &Arc<OwnedFd>,
) {
    for client in listener.incoming().flatten() {
        let Ok(server) = TcpStream::connect(upstream) else {
            continue;
        };
        for s in [&client, &server] {
            let _ = s.set_nodelay(true);
        }
        // The event's data says which socket to read and which to write: both descriptors.
        let (c, s) = (client.as_raw_fd() as u64, server.as_raw_fd() as u64);
        let readable = epoll::EventFlags::IN | epoll::EventFlags::RDHUP;
        let _ = epoll::add(
            to_upstream,
            &client,
            epoll::EventData::new_u64(c | s << 32),
            readable,
        );
        let _ = epoll::add(
            to_client,
            &server,
            epoll::EventData::new_u64(s | c << 32),
            readable,
        );
        std::mem::forget((client, server));
    }
}

/// Waits for readable sockets and moves each one's bytes on, for ever.
fn relay(poll: &OwnedFd) {
    let mut events = Vec::with_capacity(256);
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        events.clear();
        if epoll::wait(poll, spare_capacity(&mut events), None).is_err() {
            continue;
        }
        for event in &events {
            let data = event.data.u64();
            // SAFETY: the descriptors were leaked open by `accept` and are never closed.
            let (src, dst) = unsafe {
                (
                    BorrowedFd::borrow_raw(data as u32 as i32),
                    BorrowedFd::borrow_raw((data >> 32) as i32),
                )
            };
            let (mut src, mut dst) = (as_stream(src), as_stream(dst));
            match src.read(&mut buf) {
                Ok(n) if n > 0 => {
                    let _ = dst.write_all(&buf[..n]);
                }
                _ => {
                    let _ = epoll::delete(poll, src.as_fd());
                    let _ = dst.shutdown(Shutdown::Write);
                }
            }
            std::mem::forget((src, dst));
        }
    }
}

/// A `TcpStream` over a borrowed descriptor, to be forgotten rather than dropped.
fn as_stream(fd: BorrowedFd<'_>) -> TcpStream {
    use std::os::fd::FromRawFd;
    // SAFETY: the caller forgets the stream, so the descriptor is never closed through it.
    unsafe { TcpStream::from_raw_fd(fd.as_raw_fd()) }
}
