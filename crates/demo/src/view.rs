//! The live terminal view: a simulated clock, counters, and a line for every kill and
//! replacement. Hidden automatically when standard error is not a terminal.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, Sender};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use indicatif::{MultiProgress, ProgressBar, ProgressStyle};
use jiff::tz::TimeZone;
use simian_core::{Clock, Event, Notifier, TerminationState};

use crate::clock::WorkdayClock;
use crate::load::Load;

/// Something worth a line in the view.
#[derive(Debug, Clone)]
pub enum Note {
    /// The monkey killed an instance.
    Killed {
        /// Simulated local time.
        at: String,
        /// Instance id.
        instance: String,
        /// Its cluster.
        cluster: String,
        /// How it died.
        detail: String,
    },
    /// The supervisor replaced an instance.
    Replaced {
        /// Which slot.
        slot: String,
        /// How long the slot was empty.
        after: Duration,
    },
    /// What the Chaos Gorilla drill is doing.
    Drill(String),
}

/// Forwards finished terminations to the view.
pub struct NoteNotifier {
    tx: Mutex<Sender<Note>>,
    tz: TimeZone,
    kills: Arc<AtomicU64>,
}

impl NoteNotifier {
    /// Sends notes to `tx`, with times in `tz`, counting kills in `kills`.
    pub fn new(tx: Sender<Note>, tz: TimeZone, kills: Arc<AtomicU64>) -> NoteNotifier {
        NoteNotifier {
            tx: Mutex::new(tx),
            tz,
            kills,
        }
    }
}

impl Notifier for NoteNotifier {
    fn notify(&self, event: Event<'_>) {
        if let Event::Termination(t) = event {
            if t.state == TerminationState::Recorded {
                return;
            }
            if t.state == TerminationState::Killed {
                self.kills.fetch_add(1, Ordering::Relaxed);
            }
            let note = Note::Killed {
                at: t
                    .recorded_at
                    .to_zoned(self.tz.clone())
                    .strftime("%a %H:%M")
                    .to_string(),
                instance: t.instance_id.clone(),
                cluster: t.cluster.clone(),
                detail: format!("{}: {}", t.state, t.detail),
            };
            let _ = self.tx.lock().unwrap_or_else(|e| e.into_inner()).send(note);
        }
    }
}

/// What the view shows.
pub struct Gauges {
    /// The simulated clock.
    pub clock: Arc<WorkdayClock>,
    /// Its time zone.
    pub tz: TimeZone,
    /// Request counters.
    pub load: Arc<Load>,
    /// Kills so far.
    pub kills: Arc<AtomicU64>,
    /// Replacements so far.
    pub replacements: Arc<AtomicU64>,
}

/// Draws until `stop` is set; with `quiet`, prints no event lines when not on a terminal.
pub fn draw(g: Gauges, notes: Receiver<Note>, stop: Arc<AtomicBool>, quiet: bool) {
    let Gauges {
        clock,
        tz,
        load,
        kills,
        replacements,
    } = g;
    let mp = MultiProgress::new();
    let total = clock.total().as_millis() as u64;
    let time_bar = mp.add(ProgressBar::new(total.max(1)));
    time_bar.set_style(
        ProgressStyle::with_template("{prefix:>10} [{bar:32.cyan/blue}] {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    time_bar.set_prefix("clock");
    let stats = mp.add(ProgressBar::new_spinner());
    stats.set_style(
        ProgressStyle::with_template("{prefix:>10} {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_spinner()),
    );
    stats.set_prefix("fleet");
    let started = std::time::Instant::now();
    while !stop.load(Ordering::SeqCst) {
        for note in notes.try_iter() {
            let line = match note {
                Note::Killed {
                    at,
                    instance,
                    cluster,
                    detail,
                } => {
                    // A container id is 64 hex digits; 12 name it, as `docker ps` does.
                    let shown = if instance.len() == 64
                        && instance.bytes().all(|b| b.is_ascii_hexdigit())
                    {
                        &instance[..12]
                    } else {
                        instance.as_str()
                    };
                    format!("  {at}  chaos monkey killed {shown} in {cluster} ({detail})")
                }
                Note::Replaced { slot, after } => format!(
                    "  supervisor replaced {slot} after {:.1}s",
                    after.as_secs_f64()
                ),
                Note::Drill(what) => format!("  {what}"),
            };
            if mp.is_hidden() {
                if !quiet {
                    eprintln!("{}", line.trim_start());
                }
            } else {
                let _ = mp.println(line);
            }
        }
        let now = clock.now().to_zoned(tz.clone());
        time_bar.set_position((started.elapsed().as_millis() as u64).min(total));
        time_bar.set_message(now.strftime("%a %Y-%m-%d %H:%M %Z").to_string());
        let requests = load.requests.load(Ordering::Relaxed);
        let errors = load.errors.load(Ordering::Relaxed);
        let availability = if requests == 0 {
            100.0
        } else {
            100.0 * (requests - errors) as f64 / requests as f64
        };
        stats.set_message(format!(
            "kills {}  replacements {}  requests {}  errors {}  availability {:.3}%",
            kills.load(Ordering::Relaxed),
            replacements.load(Ordering::Relaxed),
            requests,
            errors,
            availability
        ));
        std::thread::sleep(Duration::from_millis(100));
    }
    time_bar.finish_and_clear();
    stats.finish_and_clear();
}
