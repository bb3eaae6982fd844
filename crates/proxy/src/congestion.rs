//! TCP congestion control of the proxy's own sockets when both ends are on this machine.
//!
//! A proxy turns one TCP connection into two, and on each the sending side runs the
//! system's congestion control. Where that is BBR (the default of many distributions and
//! clouds), every sender paces its segments with timers to the bandwidth it has estimated:
//! worth it across a real network, pure cost on loopback, which has no queue to keep short
//! and never loses a segment (on 2-core VMs, direct loopback moved 6-36% more under CUBIC
//! than under BBR, BENCHMARKS.md). So on a loopback leg the proxy's side uses a
//! loss-based algorithm, which sends as fast as the receiver takes: CUBIC, or Reno where
//! CUBIC may not be chosen (an unprivileged process may only pick what
//! `net.ipv4.tcp_allowed_congestion_control` lists, and Reno always). Without loss, which
//! loopback never has, the two send the same. The clients and servers keep their own
//! algorithm; a leg that leaves the machine keeps the system's.
//!
//! The choice is made once, when the server starts ([`LoopbackCongestion::resolve`]), by
//! trying it on a socket that is never connected; each connection then only applies it.

use std::fmt;
use std::io;
use std::os::fd::AsFd;
use std::sync::Arc;

use rustix::io::Errno;
use rustix::net::{AddressFamily, SocketType, socket};

/// What [`LoopbackCongestion::resolve`] tries when nothing is asked for, in order.
const PREFERRED: [&str; 2] = ["cubic", "reno"];

/// The congestion control the proxy's sockets use on loopback legs.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum LoopbackCongestion {
    /// The system's, as on any other leg.
    #[default]
    System,
    /// This algorithm, which the kernel accepted when the server started.
    Algorithm(Arc<str>),
}

/// Why an asked-for algorithm cannot be used.
#[derive(Debug, thiserror::Error)]
#[error(
    "congestion control {name:?} cannot be used here: {reason}; choose one that \
     net.ipv4.tcp_allowed_congestion_control lists ({allowed}), or \"system\""
)]
pub struct CongestionError {
    name: String,
    allowed: String,
    reason: String,
}

impl LoopbackCongestion {
    /// The algorithm to use: `asked` (`"system"` keeps the system's), or by default the first
    /// of CUBIC and Reno that the kernel lets this process set, and the system's when the
    /// default already is that one (nothing to change) or neither can be set.
    pub fn resolve(asked: Option<&str>) -> Result<LoopbackCongestion, CongestionError> {
        let probe = socket(AddressFamily::INET, SocketType::STREAM, None);
        let system = probe
            .as_ref()
            .ok()
            .and_then(|fd| rustix::net::sockopt::tcp_congestion(fd).ok());
        let settable = |name: &str| -> rustix::io::Result<()> {
            rustix::net::sockopt::set_tcp_congestion(probe.as_ref().map_err(|e| *e)?, name)
        };
        let chosen = match asked {
            Some("system") => return Ok(LoopbackCongestion::System),
            Some(name) => {
                settable(name).map_err(|e| CongestionError {
                    name: name.to_string(),
                    allowed: allowed(),
                    reason: match e {
                        Errno::NOENT => "the kernel has no such algorithm".into(),
                        Errno::PERM => "only a privileged process may choose it".into(),
                        e => io::Error::from(e).to_string(),
                    },
                })?;
                name
            }
            None => match PREFERRED.into_iter().find(|name| settable(name).is_ok()) {
                Some(name) => name,
                None => return Ok(LoopbackCongestion::System),
            },
        };
        if system.as_deref() == Some(chosen) {
            return Ok(LoopbackCongestion::System);
        }
        Ok(LoopbackCongestion::Algorithm(chosen.into()))
    }

    /// Sets the algorithm on `socket` if its connection stays on this machine. A failure
    /// leaves the system's in place: the connection works either way.
    pub(crate) fn apply(&self, socket: &tokio::net::TcpStream) {
        let LoopbackCongestion::Algorithm(name) = self else {
            return;
        };
        if is_loopback_leg(socket.local_addr().ok(), socket.peer_addr().ok()) {
            let _ = rustix::net::sockopt::set_tcp_congestion(socket.as_fd(), name.as_ref());
        }
    }
}

impl fmt::Display for LoopbackCongestion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LoopbackCongestion::System => f.write_str("system"),
            LoopbackCongestion::Algorithm(name) => f.write_str(name),
        }
    }
}

/// Whether a connection between these addresses stays on loopback.
fn is_loopback_leg(
    local: Option<std::net::SocketAddr>,
    peer: Option<std::net::SocketAddr>,
) -> bool {
    matches!((local, peer), (Some(l), Some(p)) if l.ip().is_loopback() && p.ip().is_loopback())
}

/// What the kernel lets unprivileged processes choose, for an error message.
fn allowed() -> String {
    std::fs::read_to_string("/proc/sys/net/ipv4/tcp_allowed_congestion_control")
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "unknown".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_legs_with_both_ends_on_loopback_count() {
        let at = |s: &str| Some(s.parse().unwrap());
        assert!(is_loopback_leg(at("127.0.0.1:1"), at("127.0.0.2:2")));
        assert!(is_loopback_leg(at("[::1]:1"), at("[::1]:2")));
        assert!(!is_loopback_leg(at("127.0.0.1:1"), at("10.0.0.1:2")));
        assert!(!is_loopback_leg(at("192.168.1.2:1"), at("127.0.0.1:2")));
        assert!(!is_loopback_leg(None, at("127.0.0.1:2")));
    }

    #[test]
    fn reno_is_always_available_and_system_changes_nothing() {
        // Reno is built into every kernel and every process may choose it.
        let reno = LoopbackCongestion::resolve(Some("reno")).unwrap();
        assert!(
            matches!(&reno, LoopbackCongestion::Algorithm(n) if &**n == "reno")
                || reno == LoopbackCongestion::System
        );
        assert_eq!(
            LoopbackCongestion::resolve(Some("system")).unwrap(),
            LoopbackCongestion::System
        );
    }

    #[test]
    fn an_unknown_algorithm_is_refused_with_what_to_choose() {
        let e = LoopbackCongestion::resolve(Some("no-such-algorithm")).unwrap_err();
        let text = e.to_string();
        assert!(
            text.contains("\"no-such-algorithm\" cannot be used here"),
            "{text}"
        );
        assert!(text.contains("\"system\""), "{text}");
    }

    #[test]
    fn the_default_is_cubic_or_reno_unless_the_system_already_uses_it() {
        match LoopbackCongestion::resolve(None).unwrap() {
            LoopbackCongestion::Algorithm(name) => assert!(PREFERRED.contains(&&*name)),
            LoopbackCongestion::System => {}
        }
    }
}
