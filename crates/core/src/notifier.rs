//! The notifier seam: who hears about kills and refusals.
//!
//! Notifications never block or fail a kill: by the time one is sent, the record is already
//! durable. The default [`LogNotifier`] writes structured log lines.

use crate::{Refusal, Termination};

/// Something worth telling.
#[derive(Clone, Copy, Debug)]
pub enum Event<'a> {
    /// A termination was recorded or finished.
    Termination(&'a Termination),
    /// A check refused a kill.
    Refusal(&'a Refusal),
}

/// Receives events.
pub trait Notifier: Send + Sync {
    /// Delivers one event; must not fail the caller.
    fn notify(&self, event: Event<'_>);
}

/// Logs every event with `tracing`.
#[derive(Debug, Default, Clone, Copy)]
pub struct LogNotifier;

impl Notifier for LogNotifier {
    fn notify(&self, event: Event<'_>) {
        match event {
            Event::Termination(t) => tracing::info!(
                id = t.id,
                instance = %t.instance_id,
                app = %t.app,
                account = %t.account,
                region = %t.region,
                cluster = %t.cluster,
                dry_run = t.dry_run,
                state = %t.state,
                detail = %t.detail,
                "termination"
            ),
            Event::Refusal(r) => tracing::info!(
                app = %r.app,
                account = %r.account,
                check = %r.check,
                dry_run = r.dry_run,
                "kill refused: {}",
                r.reason
            ),
        }
    }
}
