//! The outage seam: kills are held while there is an outage.
//!
//! Fail safe: an implementation that cannot tell must answer `Outage`, never `Clear`.

/// What the outage check said.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum OutageStatus {
    /// All clear: kills may go ahead.
    Clear,
    /// An outage, or no answer; the text says which.
    Outage(String),
}

/// Is there an outage right now?
pub trait OutageCheck: Send + Sync {
    /// Asks. Must not take long; implementations carry their own timeout.
    fn check(&self) -> OutageStatus;
}

/// The check used when none is configured: always clear.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoOutageCheck;

impl OutageCheck for NoOutageCheck {
    fn check(&self) -> OutageStatus {
        OutageStatus::Clear
    }
}
