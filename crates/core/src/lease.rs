//! Faults with a deadline, and the promise that they end.
//!
//! Some kills do not end an instance but leave a fault behind for a while (a paused
//! container). Such a fault is a [`Lease`]: recorded in the store, with its deadline, *before*
//! the fault is made, and ended (undone) at the deadline by a [`Guardian`] that lives outside
//! the process that made it, so that even a SIGKILL right after the fault leaves someone to
//! undo it. Any later command that opens the store, and the daemon on every pass, undoes the
//! leases whose deadline has passed, should the guardian have died too.
//!
//! Deadlines are real time, whatever clock the engine runs on: a pause of five minutes lasts
//! five minutes of the world's time, also in a rehearsal on a simulated clock.

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

/// What a lease holds in place.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FaultKind {
    /// The instance is paused (frozen), to be resumed.
    Pause,
    /// The instance is cut off from the network, to be reconnected.
    Isolate,
    /// A toxic sits on a proxy of a Toxiproxy-compatible server (an experiment's network
    /// fault), to be removed. The lease's instance is the proxy, its memo the toxic.
    Toxic,
}

crate::string_enum!(FaultKind { Pause => "pause", Isolate => "isolate", Toxic => "toxic" });

/// A lease before it is stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewLease {
    /// The termination that made the fault.
    pub termination: Option<i64>,
    /// The drill that made the fault.
    pub drill: Option<i64>,
    /// Configured provider name.
    pub provider: String,
    /// The instance.
    pub instance_id: String,
    /// The fault.
    pub kind: FaultKind,
    /// When it must be undone (real time).
    pub deadline: Timestamp,
    /// When it was recorded.
    pub created_at: Timestamp,
    /// What the provider needs to undo the fault exactly, read before it is made (the
    /// networks a container was attached to, with their aliases and addresses).
    pub memo: Option<String>,
}

/// A fault on record, open until it is undone.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lease {
    /// Store-assigned id.
    pub id: i64,
    /// The termination that made the fault.
    pub termination: Option<i64>,
    /// The drill that made the fault.
    pub drill: Option<i64>,
    /// Configured provider name.
    pub provider: String,
    /// The instance.
    pub instance_id: String,
    /// The fault.
    pub kind: FaultKind,
    /// When it must be undone (real time).
    pub deadline: Timestamp,
    /// When it was recorded.
    pub created_at: Timestamp,
    /// What the provider needs to undo the fault exactly (see [`NewLease::memo`]).
    pub memo: Option<String>,
    /// When the undo was started (recorded before it runs); `None` until then.
    pub undo_at: Option<Timestamp>,
    /// When it was undone (or found to need no undoing); `None` while open.
    pub ended_at: Option<Timestamp>,
    /// How it ended ("unpaused after 3.0 s", "the container is gone").
    pub ending: Option<String>,
}

/// Something outside this process that undoes a lease at its deadline.
pub trait Guardian: Send + Sync {
    /// Starts watching `lease`. Failing to start is logged, never fatal: the next command
    /// that opens the store, or the daemon, undoes the lease once it has expired.
    fn watch(&self, lease: &Lease);

    /// Starts watching every lease of `drill`: at its deadline they are undone together.
    /// Failing to start is logged, never fatal, as for [`watch`](Guardian::watch).
    fn watch_drill(&self, drill: &crate::Drill);
}

/// No guardian (tests, and runs that make no timed faults).
#[derive(Debug, Default, Clone, Copy)]
pub struct NoGuardian;

impl Guardian for NoGuardian {
    fn watch(&self, _lease: &Lease) {}
    fn watch_drill(&self, _drill: &crate::Drill) {}
}
