//! The notifiers a config can name: a generic JSON webhook (optionally signed) and a Slack
//! incoming webhook.
//!
//! A notification never blocks or fails a kill: [`Notify`] hands each event to a worker
//! thread through a bounded queue and returns at once. The worker posts it, retrying failures
//! with backoff (0.5 s, doubling, five attempts), and drops it with a warning when the queue is
//! full or every attempt failed. When the notifier is dropped (a one-shot command ends), the
//! worker gets [`DRAIN`] to deliver what is queued. URLs and secrets are never logged: a
//! delivery failure names the notifier by its kind and where its URL came from.

use std::sync::mpsc::{self, Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::Sha256;
use simian_config::{NotifierKind, NotifierSettings};
use simian_core::{Event, LogNotifier, Notifier, TerminationState};

/// Events waiting to be posted, per notifier.
const QUEUE: usize = 1000;

/// Delivery attempts per event.
const ATTEMPTS: u32 = 5;

/// How long a notifier that is dropped keeps delivering what is queued.
pub const DRAIN: Duration = Duration::from_secs(5);

/// The header carrying a webhook's signature: `sha256=` and the hex HMAC-SHA256 of the body.
pub const SIGNATURE_HEADER: &str = "x-simian-signature";

/// Every configured notifier, plus the log, plus `extra` (the metrics of `simian serve`).
pub fn build(settings: &[NotifierSettings], extra: Option<Arc<dyn Notifier>>) -> Arc<dyn Notifier> {
    let mut all: Vec<Arc<dyn Notifier>> = vec![Arc::new(LogNotifier)];
    for s in settings {
        all.push(Arc::new(Notify::start(s.clone())));
    }
    all.extend(extra);
    Arc::new(Fanout(all))
}

/// Tells every notifier.
struct Fanout(Vec<Arc<dyn Notifier>>);

impl Notifier for Fanout {
    fn notify(&self, event: Event<'_>) {
        for n in &self.0 {
            n.notify(event);
        }
    }
}

/// One webhook or Slack notifier, delivering on a thread of its own.
pub struct Notify {
    settings: NotifierSettings,
    queue: Mutex<Option<SyncSender<Value>>>,
    worker: Mutex<Option<JoinHandle<()>>>,
}

impl Notify {
    /// Starts the delivery thread of `settings`.
    pub fn start(settings: NotifierSettings) -> Notify {
        let (tx, rx) = mpsc::sync_channel(QUEUE);
        let worker = {
            let settings = settings.clone();
            std::thread::Builder::new()
                .name("simian-notify".into())
                .spawn(move || deliver_all(&settings, &rx))
                .map_err(|e| tracing::warn!(error = %e, "cannot start a notifier's thread; its events are dropped"))
                .ok()
        };
        Notify {
            settings,
            queue: Mutex::new(worker.as_ref().map(|_| tx)),
            worker: Mutex::new(worker),
        }
    }
}

impl Notifier for Notify {
    fn notify(&self, event: Event<'_>) {
        if !self.settings.events.contains(event.name()) {
            return;
        }
        // A kill is told once, when its outcome is known (or, for a dry run, when recorded).
        if let Event::Termination(t) = event
            && t.state == TerminationState::Recorded
        {
            return;
        }
        let payload = match self.settings.kind {
            NotifierKind::Webhook => webhook_payload(event),
            NotifierKind::Slack => json!({ "text": slack_text(event) }),
        };
        let queue = self.queue.lock().unwrap_or_else(|e| e.into_inner());
        let Some(tx) = queue.as_ref() else { return };
        match tx.try_send(payload) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => tracing::warn!(
                notifier = %self.settings.url_from,
                "a notifier's queue is full ({QUEUE} events): this {} event is dropped",
                event.name()
            ),
            Err(TrySendError::Disconnected(_)) => {}
        }
    }
}

impl Drop for Notify {
    fn drop(&mut self) {
        // Closing the queue lets the worker finish what is in it, then stop.
        drop(self.queue.lock().unwrap_or_else(|e| e.into_inner()).take());
        let Some(worker) = self.worker.lock().unwrap_or_else(|e| e.into_inner()).take() else {
            return;
        };
        let deadline = Instant::now() + DRAIN;
        while !worker.is_finished() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        if worker.is_finished() {
            let _ = worker.join();
        } else {
            tracing::warn!(notifier = %self.settings.url_from, "notifications still undelivered after {DRAIN:?}; they are dropped");
        }
    }
}

/// The worker: posts each queued event, with retries, until the queue closes.
fn deliver_all(settings: &NotifierSettings, rx: &Receiver<Value>) {
    let agent = ureq::Agent::config_builder()
        .timeout_global(Some(settings.timeout))
        .http_status_as_error(false)
        .build()
        .new_agent();
    for payload in rx {
        let body = payload.to_string();
        let mut wait = Duration::from_millis(500);
        for attempt in 1..=ATTEMPTS {
            match post(&agent, settings, &body) {
                Ok(()) => break,
                Err(why) if attempt == ATTEMPTS => {
                    tracing::warn!(notifier = %settings.url_from, %why, "a notification was dropped after {ATTEMPTS} attempts");
                }
                Err(why) => {
                    tracing::debug!(notifier = %settings.url_from, %why, attempt, "a notification failed; retrying");
                    std::thread::sleep(wait);
                    wait = (wait * 2).min(Duration::from_secs(8));
                }
            }
        }
    }
}

/// One attempt: a 2xx answer delivers.
fn post(agent: &ureq::Agent, settings: &NotifierSettings, body: &str) -> Result<(), String> {
    let mut request = agent
        .post(&settings.url)
        .header("content-type", "application/json")
        .header("user-agent", concat!("simian/", env!("CARGO_PKG_VERSION")));
    if let Some(secret) = &settings.secret {
        request = request.header(SIGNATURE_HEADER, &signature(secret, body.as_bytes()));
    }
    match request.send(body) {
        Ok(resp) if resp.status().is_success() => Ok(()),
        Ok(resp) => Err(format!("answered {}", resp.status().as_u16())),
        // The error may quote the URL, which may hold a token: only its kind is said.
        Err(e) => Err(error_kind(&e)),
    }
}

/// A transport error in words that never quote the URL.
fn error_kind(e: &ureq::Error) -> String {
    match e {
        ureq::Error::Timeout(_) => "timed out".into(),
        ureq::Error::Io(io) => format!("connection failed ({})", io.kind()),
        ureq::Error::ConnectionFailed => "connection failed".into(),
        ureq::Error::HostNotFound => "host not found".into(),
        _ => "request failed".into(),
    }
}

/// `sha256=` and the hex HMAC-SHA256 of `body` under `secret`.
pub fn signature(secret: &str, body: &[u8]) -> String {
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(secret.as_bytes()) else {
        // HMAC takes a key of any length; this cannot happen.
        return String::new();
    };
    mac.update(body);
    let digest = mac.finalize().into_bytes();
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256={hex}")
}

/// The generic webhook's JSON: `event`, `at`, `simian` (version) and the record under its
/// own name (`termination`, `refusal`, `schedule`, `drill`).
pub fn webhook_payload(event: Event<'_>) -> Value {
    let (key, record) = match event {
        Event::Termination(t) => ("termination", json!(t)),
        Event::Refusal(r) => ("refusal", json!(r)),
        Event::Schedule(s) => ("schedule", json!(s)),
        Event::DrillStarted(d) | Event::DrillEnded(d) => ("drill", json!(d)),
        Event::KillSwitch(k) => ("kill_switch", json!(k)),
        Event::Fired { planned, issued } => {
            ("fired", json!({"planned": planned, "issued": issued}))
        }
    };
    json!({
        "event": event.name(),
        "at": jiff::Timestamp::now().to_string(),
        "simian": { "version": env!("CARGO_PKG_VERSION") },
        key: record,
    })
}

/// One line for a Slack channel.
pub fn slack_text(event: Event<'_>) -> String {
    match event {
        Event::Termination(t) => format!(
            "{}Simian {} instance {} of {} ({} / {}, cluster {}): {}",
            if t.dry_run { "[dry run] " } else { "" },
            match t.state {
                TerminationState::Killed => "killed",
                TerminationState::Paused => "paused",
                TerminationState::Simulated => "killed (simulated)",
                TerminationState::DryRun => "would kill",
                TerminationState::AlreadyGone => "found gone",
                TerminationState::Refused => "was refused on",
                TerminationState::Failed => "failed to kill",
                TerminationState::Recorded => "recorded a kill of",
            },
            t.instance_id,
            t.app,
            t.account,
            t.region,
            t.cluster,
            t.detail
        ),
        Event::Refusal(r) => format!(
            "Simian held a kill of {} ({} / {}): {} says {}",
            r.app, r.account, r.region, r.check, r.reason
        ),
        Event::Schedule(s) => format!(
            "Simian's schedule for {}: {} kill(s) planned",
            s.date,
            s.entries.len()
        ),
        Event::DrillStarted(d) => format!(
            "Simian drill {}: {} takes {} {} down ({})",
            d.id,
            d.kind,
            d.kind.scope(),
            d.target,
            d.mode
        ),
        Event::Fired { planned, .. } => format!("Simian issued the kill planned for {planned}"),
        Event::KillSwitch(k) => format!(
            "Simian's kill switch was turned {} by {}{}",
            if k.enabled { "on" } else { "off" },
            k.changed_by,
            if k.reason.is_empty() {
                String::new()
            } else {
                format!(": {}", k.reason)
            }
        ),
        Event::DrillEnded(d) => format!(
            "Simian drill {} ({} {} {}) ended {}: {}",
            d.id,
            d.kind,
            d.kind.scope(),
            d.target,
            d.ending.map_or("", |e| e.as_str()),
            d.detail.as_deref().unwrap_or_default()
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 4231, test case 2.
    #[test]
    fn signatures_are_hmac_sha256() {
        assert_eq!(
            signature("Jefe", b"what do ya want for nothing?"),
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }
}
