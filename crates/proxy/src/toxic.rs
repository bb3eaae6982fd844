//! Toxics: what they are, their attributes, and which values are refused.
//!
//! The kinds and attributes are Toxiproxy's, with its defaults (every attribute 0). Values
//! that hang or crash the original (bandwidth `rate <= 0`, a slicer whose pieces can never get
//! small enough, negative sizes) are refused here with a message that says why.

use std::fmt;

/// Which way the bytes flow.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Stream {
    /// Client to server.
    Upstream,
    /// Server to client.
    Downstream,
}

impl Stream {
    /// Parses `upstream` or `downstream`, case-insensitively.
    pub fn parse(text: &str) -> Option<Stream> {
        if text.eq_ignore_ascii_case("upstream") {
            Some(Stream::Upstream)
        } else if text.eq_ignore_ascii_case("downstream") {
            Some(Stream::Downstream)
        } else {
            None
        }
    }

    /// The canonical spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Stream::Upstream => "upstream",
            Stream::Downstream => "downstream",
        }
    }
}

/// A toxic's behaviour and attributes (all integers, as on the wire).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Hold each chunk `latency` ms (± `jitter`) after it arrived.
    Latency {
        /// Milliseconds.
        latency: i64,
        /// Milliseconds.
        jitter: i64,
    },
    /// Limit the rate to `rate` KB/s (1 KB = 1000 bytes).
    Bandwidth {
        /// KB/s, > 0.
        rate: i64,
    },
    /// Delay the close after EOF by `delay` ms.
    SlowClose {
        /// Milliseconds.
        delay: i64,
    },
    /// Discard data; close after `timeout` ms without data (0: never).
    Timeout {
        /// Milliseconds.
        timeout: i64,
    },
    /// On the first data, wait `timeout` ms, then reset the connection (TCP RST).
    ResetPeer {
        /// Milliseconds.
        timeout: i64,
    },
    /// Cut chunks into pieces of about `average_size` bytes, `delay` µs apart.
    Slicer {
        /// Bytes.
        average_size: i64,
        /// Bytes.
        size_variation: i64,
        /// Microseconds.
        delay: i64,
    },
    /// Close the connection after `bytes` bytes.
    LimitData {
        /// Bytes.
        bytes: i64,
    },
    /// Pass everything through.
    Noop,
}

/// The toxic type names, as on the wire.
pub const TYPES: [&str; 8] = [
    "latency",
    "bandwidth",
    "slow_close",
    "timeout",
    "reset_peer",
    "slicer",
    "limit_data",
    "noop",
];

impl Kind {
    /// The type name.
    pub fn type_name(&self) -> &'static str {
        match self {
            Kind::Latency { .. } => "latency",
            Kind::Bandwidth { .. } => "bandwidth",
            Kind::SlowClose { .. } => "slow_close",
            Kind::Timeout { .. } => "timeout",
            Kind::ResetPeer { .. } => "reset_peer",
            Kind::Slicer { .. } => "slicer",
            Kind::LimitData { .. } => "limit_data",
            Kind::Noop => "noop",
        }
    }

    /// A kind of type `name` with every attribute 0.
    pub fn zeroed(name: &str) -> Option<Kind> {
        Some(match name {
            "latency" => Kind::Latency {
                latency: 0,
                jitter: 0,
            },
            "bandwidth" => Kind::Bandwidth { rate: 0 },
            "slow_close" => Kind::SlowClose { delay: 0 },
            "timeout" => Kind::Timeout { timeout: 0 },
            "reset_peer" => Kind::ResetPeer { timeout: 0 },
            "slicer" => Kind::Slicer {
                average_size: 0,
                size_variation: 0,
                delay: 0,
            },
            "limit_data" => Kind::LimitData { bytes: 0 },
            "noop" => Kind::Noop,
            _ => return None,
        })
    }

    /// The attributes in their wire order.
    pub fn attributes(&self) -> Vec<(&'static str, i64)> {
        match *self {
            Kind::Latency { latency, jitter } => vec![("latency", latency), ("jitter", jitter)],
            Kind::Bandwidth { rate } => vec![("rate", rate)],
            Kind::SlowClose { delay } => vec![("delay", delay)],
            Kind::Timeout { timeout } | Kind::ResetPeer { timeout } => vec![("timeout", timeout)],
            Kind::Slicer {
                average_size,
                size_variation,
                delay,
            } => {
                vec![
                    ("average_size", average_size),
                    ("size_variation", size_variation),
                    ("delay", delay),
                ]
            }
            Kind::LimitData { bytes } => vec![("bytes", bytes)],
            Kind::Noop => vec![],
        }
    }

    /// Sets one attribute; false when this kind has no such attribute (it is then ignored,
    /// as Toxiproxy ignores unknown keys).
    pub fn set(&mut self, key: &str, value: i64) -> bool {
        let slot = match (self, key) {
            (Kind::Latency { latency, .. }, "latency") => latency,
            (Kind::Latency { jitter, .. }, "jitter") => jitter,
            (Kind::Bandwidth { rate }, "rate") => rate,
            (Kind::SlowClose { delay }, "delay") => delay,
            (Kind::Timeout { timeout }, "timeout") | (Kind::ResetPeer { timeout }, "timeout") => {
                timeout
            }
            (Kind::Slicer { average_size, .. }, "average_size") => average_size,
            (Kind::Slicer { size_variation, .. }, "size_variation") => size_variation,
            (Kind::Slicer { delay, .. }, "delay") => delay,
            (Kind::LimitData { bytes }, "bytes") => bytes,
            _ => return false,
        };
        *slot = value;
        true
    }

    /// Refuses values that would hang or crash a link.
    pub fn validate(&self) -> Result<(), String> {
        match *self {
            Kind::Bandwidth { rate } if rate <= 0 => Err(format!(
                "bandwidth rate must be greater than 0 KB/s (got {rate}): a rate of 0 would stall the stream forever"
            )),
            Kind::Slicer { average_size, size_variation, .. } if average_size < 0 || size_variation < 0 => {
                Err("slicer average_size and size_variation must not be negative".into())
            }
            Kind::Slicer { average_size, size_variation, .. } if average_size.saturating_add(size_variation) <= 0 => Err(
                "slicer average_size + size_variation must be at least 1 byte: pieces of 0 bytes can never be reached".into(),
            ),
            Kind::Slicer { delay, .. } if delay < 0 => Err("slicer delay must not be negative".into()),
            Kind::LimitData { bytes } if bytes < 0 => Err(format!("limit_data bytes must not be negative (got {bytes})")),
            _ => Ok(()),
        }
    }
}

/// One toxic on one proxy.
#[derive(Clone, Debug, PartialEq)]
pub struct Toxic {
    /// Unique within its proxy (both streams).
    pub name: String,
    /// Behaviour and attributes.
    pub kind: Kind,
    /// Direction.
    pub stream: Stream,
    /// The stream as the client spelled it (echoed back).
    pub stream_text: String,
    /// Probability that a link applies it.
    pub toxicity: f32,
    /// Bumped on every update, so links re-roll toxicity and restart the stage.
    pub version: u64,
}

impl fmt::Display for Toxic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} ({} {})",
            self.name,
            self.kind.type_name(),
            self.stream.as_str()
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crashing_values_are_refused() {
        assert!(Kind::Bandwidth { rate: 0 }.validate().is_err());
        assert!(Kind::Bandwidth { rate: -5 }.validate().is_err());
        assert!(Kind::Bandwidth { rate: 1 }.validate().is_ok());
        assert!(
            Kind::Slicer {
                average_size: 0,
                size_variation: 0,
                delay: 0
            }
            .validate()
            .is_err()
        );
        assert!(
            Kind::Slicer {
                average_size: 1,
                size_variation: 0,
                delay: 0
            }
            .validate()
            .is_ok()
        );
        assert!(Kind::LimitData { bytes: -1 }.validate().is_err());
        assert!(
            Kind::Latency {
                latency: -5,
                jitter: 0
            }
            .validate()
            .is_ok(),
            "accepted, as upstream does"
        );
    }

    #[test]
    fn attributes_round_trip() {
        for t in TYPES {
            let mut k = Kind::zeroed(t).unwrap();
            assert_eq!(k.type_name(), t);
            for (key, _) in k.attributes() {
                assert!(k.set(key, 7));
            }
            assert!(k.attributes().iter().all(|(_, v)| *v == 7));
            assert!(!k.set("nonsense", 1));
        }
        assert!(Kind::zeroed("down").is_none());
        assert_eq!(Stream::parse("UPSTREAM"), Some(Stream::Upstream));
        assert_eq!(Stream::parse("sideways"), None);
    }
}
