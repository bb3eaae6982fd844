//! Waits accurate to microseconds for the toxics that hold data: latency, bandwidth and
//! slicer.
//!
//! tokio's timer counts whole milliseconds and its worker parks with a millisecond timeout,
//! so a wait ends up to two milliseconds late: a 50 ms latency became 51.4 ms, and a
//! slicer's 10 µs pause between pieces took over a millisecond, a hundred times too long.
//! Toxiproxy's Go timers are accurate to microseconds, and so are these: a link that waits
//! gets its own timerfd, registered with the runtime's reactor, made on its first wait and
//! kept for the link's life. Links that never wait never make one. When none can be made
//! (the open-files limit), the link falls back to tokio's timer: late, but never failing.

use std::io;
use std::os::fd::OwnedFd;
use std::time::Duration;

use rustix::time::{
    Itimerspec, TimerfdClockId, TimerfdFlags, TimerfdTimerFlags, Timespec, timerfd_create,
    timerfd_settime,
};
use tokio::io::unix::AsyncFd;
use tokio::time::Instant;

/// One link's timer.
#[derive(Default)]
pub(crate) struct Timer {
    fd: Option<AsyncFd<OwnedFd>>,
    /// The deadline the descriptor is set for and that has not been seen to expire: a wait
    /// for the same deadline again (a link woken by its socket in between) only waits.
    armed: Option<Instant>,
    /// A timerfd could not be made or armed: the link uses tokio's timer from then on.
    coarse: bool,
}

impl Timer {
    /// Returns at `deadline`, or at once if it has passed. Cancel-safe: a wait dropped
    /// before its end leaves the timer to be re-armed by the next one.
    pub(crate) async fn sleep_until(&mut self, deadline: Instant) {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return;
        }
        if !self.coarse {
            match self.precise(deadline, left).await {
                Ok(()) => return,
                Err(_) => {
                    self.fd = None;
                    self.coarse = true;
                }
            }
        }
        tokio::time::sleep_until(deadline).await;
    }

    async fn precise(&mut self, deadline: Instant, left: Duration) -> io::Result<()> {
        let fd = match &mut self.fd {
            Some(fd) => fd,
            slot @ None => slot.insert(register(timerfd_create(
                TimerfdClockId::Monotonic,
                TimerfdFlags::NONBLOCK | TimerfdFlags::CLOEXEC,
            )?)?),
        };
        if self.armed != Some(deadline) {
            let value = Timespec::try_from(left).map_err(|_| io::ErrorKind::InvalidInput)?;
            let zero = Timespec {
                tv_sec: 0,
                tv_nsec: 0,
            };
            // Setting the timer also clears an expiry a dropped wait left unread.
            timerfd_settime(
                fd.get_ref(),
                TimerfdTimerFlags::empty(),
                &Itimerspec {
                    it_interval: zero,
                    it_value: value,
                },
            )?;
            self.armed = Some(deadline);
        }
        loop {
            let mut ready = fd.readable().await?;
            let mut expirations = [0u8; 8];
            match ready.try_io(|fd| Ok(rustix::io::read(fd.get_ref(), &mut expirations)?)) {
                Ok(expired) => {
                    self.armed = None;
                    return expired.map(|_| ());
                }
                // Readiness left over from an earlier wait: cleared, wait again.
                Err(_would_block) => continue,
            }
        }
    }
}

/// Registers a timerfd with the runtime's reactor.
#[allow(unsafe_code)]
fn register(timer: OwnedFd) -> io::Result<AsyncFd<OwnedFd>> {
    // SAFETY: an `OwnedFd` is open until it is dropped, and its descriptor never changes;
    // the `AsyncFd` owns it, so both hold for as long as the registration lives.
    Ok(unsafe { AsyncFd::register_with_interest(timer, tokio::io::Interest::READABLE) }?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn waits_end_within_a_fraction_of_a_millisecond() {
        let mut timer = Timer::default();
        let mut late = Vec::new();
        for _ in 0..20 {
            let deadline = Instant::now() + Duration::from_micros(700);
            timer.sleep_until(deadline).await;
            let now = Instant::now();
            assert!(now >= deadline, "returned early");
            late.push(now - deadline);
        }
        assert!(!timer.coarse && timer.fd.is_some());
        late.sort();
        // tokio's timer would be at least 300 µs late every time (whole milliseconds).
        assert!(
            late[10] < Duration::from_micros(300),
            "median lateness {:?}",
            late[10]
        );
    }

    #[tokio::test]
    async fn a_dropped_wait_does_not_end_the_next_one_early() {
        let mut timer = Timer::default();
        let short = Instant::now() + Duration::from_millis(1);
        // Dropped before its end; the armed timer then fires unread.
        let _ = tokio::time::timeout(Duration::from_micros(200), timer.sleep_until(short)).await;
        tokio::time::sleep(Duration::from_millis(3)).await;
        let deadline = Instant::now() + Duration::from_millis(5);
        timer.sleep_until(deadline).await;
        assert!(Instant::now() >= deadline);
    }

    #[tokio::test]
    async fn a_wait_resumed_for_the_same_deadline_keeps_the_timer_set() {
        let mut timer = Timer::default();
        let deadline = Instant::now() + Duration::from_millis(20);
        // Dropped twice before its end (a link woken by its socket), then awaited.
        for _ in 0..2 {
            let _ =
                tokio::time::timeout(Duration::from_millis(2), timer.sleep_until(deadline)).await;
        }
        assert_eq!(timer.armed, Some(deadline));
        timer.sleep_until(deadline).await;
        let now = Instant::now();
        assert!(now >= deadline, "returned early");
        assert!(
            now - deadline < Duration::from_millis(50),
            "late: {:?}",
            now - deadline
        );
        assert_eq!(timer.armed, None, "an expiry that was read disarms");
    }

    #[tokio::test]
    async fn a_passed_deadline_returns_at_once() {
        let mut timer = Timer::default();
        timer.sleep_until(Instant::now()).await;
        assert!(
            timer.fd.is_none(),
            "no descriptor for a wait that is not needed"
        );
    }
}
