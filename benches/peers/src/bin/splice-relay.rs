//! `splice-relay LISTEN=UPSTREAM...`: the simplest zero-copy TCP relay, until killed.
//!
//! Two blocking threads per connection, one per direction, each moving bytes from one
//! socket through a 256 KiB pipe into the other with splice(2): no event loop, no toxics, no
//! accounting. The benchmark measures it as the ceiling of what any user-space proxy moves
//! on the machine, so that `simian proxy`'s rate can be read against it and not only
//! against a direct connection.

use std::net::{Shutdown, TcpListener, TcpStream};

use rustix::pipe::{SpliceFlags, fcntl_setpipe_size, pipe, splice};

fn main() {
    let listeners = simian_bench_peers::listeners("splice-relay");
    println!("ready");
    let accepting: Vec<_> = listeners
        .into_iter()
        .map(|(listener, upstream)| std::thread::spawn(move || accept(listener, &upstream)))
        .collect();
    for a in accepting {
        let _ = a.join();
    }
}

fn accept(listener: TcpListener, upstream: &str) {
    for client in listener.incoming().flatten() {
        let Ok(server) = TcpStream::connect(upstream) else {
            continue;
        };
        for s in [&client, &server] {
            let _ = s.set_nodelay(true);
        }
        let (Ok(client2), Ok(server2)) = (client.try_clone(), server.try_clone()) else {
            continue;
        };
        std::thread::spawn(move || relay(client, server));
        std::thread::spawn(move || relay(server2, client2));
    }
}

/// Moves bytes from `src` to `dst` until EOF or an error, then passes the EOF on.
fn relay(src: TcpStream, dst: TcpStream) {
    let Ok((read, write)) = pipe() else {
        return;
    };
    let capacity = fcntl_setpipe_size(&write, 1 << 18).unwrap_or(64 * 1024);
    while let Ok(n @ 1..) = splice(&src, None, &write, None, capacity, SpliceFlags::MOVE) {
        let mut left = n;
        while left > 0 {
            match splice(&read, None, &dst, None, left, SpliceFlags::MOVE) {
                Ok(m) if m > 0 => left -= m,
                _ => {
                    let _ = src.shutdown(Shutdown::Both);
                    return;
                }
            }
        }
    }
    let _ = dst.shutdown(Shutdown::Write);
}
