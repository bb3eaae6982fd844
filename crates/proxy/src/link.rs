//! One connection through a proxy: two links (upstream and downstream), each a reader that
//! queues chunks and a writer that runs them through the direction's active toxics.
//!
//! The toxic chain of a direction arrives on a `watch` channel; the writer picks up a new
//! chain between chunks and while waiting, so adding, updating or removing a toxic reaches
//! every live connection without the control plane ever waiting on a link. A wait that a
//! chain change interrupts forwards the held chunk at once, as Toxiproxy does.
//!
//! A link moves bytes by one of three paths ([`Path`]), chosen again whenever its chain
//! changes: straight from socket to socket while it has no toxic (`pass_through`), the
//! delay line while its toxics only delay ([`delay`]), and the queued path above for every
//! other chain. What one path has read and not written is handed to the next, in order.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use tokio::io::{AsyncWriteExt, Interest};
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc, watch};
use tokio::time::{Instant, sleep_until};
use tokio_util::sync::CancellationToken;

mod delay;

use crate::congestion::LoopbackCongestion;
use crate::splice::Pipe;
use crate::timer::Timer;
use crate::toxic::{Kind, Toxic};

/// The toxics of one direction, in order, as published to links.
pub type Chain = Arc<[Toxic]>;

/// Largest chunk read at once (Toxiproxy's chunk size).
pub const CHUNK: usize = 32 * 1024;
/// Chunks a link queues ahead of its toxics while they hold data.
pub const QUEUE: usize = 1024;
/// Bytes a link holds for its toxics: bounds memory however many connections are slowed.
/// A latency toxic holds what arrives during its delay, so this also caps a slowed link's
/// rate at `QUEUE_BYTES / latency`: 4 MiB through 1 ms is 33 Gbit/s, above what loopback
/// moves here (1 MiB capped it at 8 Gbit/s, below what the proxy could do; BENCHMARKS.md).
pub const QUEUE_BYTES: usize = 4 << 20;

/// Largest read on the pass-through path.
const SCRATCH: usize = 256 * 1024;
/// A read at least this large marks the link as bulk, for the zero-copy path.
const BULK_READ: usize = 32 * 1024;
/// A splice smaller than this counts towards switching an interactive link back to copying.
const SMALL_SPLICE: usize = 16 * 1024;
/// Consecutive small splices after which a link goes back to copying.
const SMALL_SPLICES_BEFORE_COPY: u8 = 8;

thread_local! {
    /// One read buffer per worker thread: an idle connection owns no buffer at all.
    static SCRATCH_BUF: std::cell::RefCell<Vec<u8>> = std::cell::RefCell::new(vec![0u8; SCRATCH]);
}

/// Live byte counters of one direction of one proxy.
#[derive(Debug, Default)]
pub struct Counters {
    /// Bytes read from the source.
    pub received: AtomicU64,
    /// Bytes written to the destination.
    pub sent: AtomicU64,
}

/// How a link ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum End {
    /// EOF, an error, a toxic closing, or the other link ending.
    Close,
    /// `reset_peer`: both sockets are reset.
    Reset,
}

struct Chunk {
    data: Bytes,
    at: Instant,
    /// Its share of the link's byte budget, returned when the chunk is dropped (none for
    /// chunks handed over from the delay line, which keeps its own count).
    _budget: Option<OwnedSemaphorePermit>,
}

/// What the connection needs from its proxy.
pub(crate) struct ConnectionPlan {
    pub upstream: String,
    pub chains: [watch::Receiver<Chain>; 2],
    pub counters: [Arc<Counters>; 2],
    pub dial_timeout: Duration,
    pub busy_poll: Duration,
    pub congestion: LoopbackCongestion,
    pub seed: u64,
}

/// Serves one accepted client until either side closes or `cancel` fires.
pub(crate) async fn serve(client: TcpStream, plan: ConnectionPlan, cancel: CancellationToken) {
    let ConnectionPlan {
        upstream,
        chains: [up_chain, down_chain],
        counters: [up_counters, down_counters],
        dial_timeout,
        busy_poll,
        congestion,
        seed,
    } = plan;
    let server = tokio::select! {
        _ = cancel.cancelled() => return,
        dialed = tokio::time::timeout(dial_timeout, TcpStream::connect(upstream.as_str())) => match dialed {
            Ok(Ok(s)) => s,
            Ok(Err(e)) => {
                tracing::debug!(%upstream, error = %e, "upstream unreachable; closing the client");
                return;
            }
            Err(_) => {
                tracing::debug!(%upstream, "upstream dial timed out; closing the client");
                return;
            }
        },
    };
    let _ = client.set_nodelay(true);
    let _ = server.set_nodelay(true);
    congestion.apply(&client);
    congestion.apply(&server);
    let (cr, cw) = client.into_split();
    let (sr, sw) = server.into_split();
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let up_rng = ChaCha8Rng::seed_from_u64(rng.random());
    let down_rng = ChaCha8Rng::seed_from_u64(rng.random());
    let conn = cancel.child_token();
    // Each direction is a task of its own: a message wakes and polls only the link it is
    // for, never the idle one beside it.
    let down = tokio::spawn(link(
        sr,
        cw,
        down_chain,
        down_counters,
        down_rng,
        busy_poll,
        conn.clone(),
    ));
    let (cr, sw, up_end) = link(
        cr,
        sw,
        up_chain,
        up_counters,
        up_rng,
        busy_poll,
        conn.clone(),
    )
    .await;
    // Whichever link ends first ends the other (`conn`); an error here is the runtime
    // shutting down, which ends the connection anyway.
    let Ok((sr, cw, down_end)) = down.await else {
        return;
    };
    if up_end == End::Reset || down_end == End::Reset {
        // SO_LINGER 0 turns the close into a TCP RST on both sides.
        if let (Ok(client), Ok(server)) = (cr.reunite(cw), sr.reunite(sw)) {
            let _ = client.set_zero_linger();
            let _ = server.set_zero_linger();
        }
    }
}

async fn link(
    mut src: OwnedReadHalf,
    dst: OwnedWriteHalf,
    chain: watch::Receiver<Chain>,
    counters: Arc<Counters>,
    rng: ChaCha8Rng,
    busy_poll: Duration,
    conn: CancellationToken,
) -> (OwnedReadHalf, OwnedWriteHalf, End) {
    let mut writer = Writer {
        dst,
        chain,
        counters: counters.clone(),
        rng,
        conn: conn.clone(),
        states: HashMap::new(),
        dirty: true,
        current: Arc::from(Vec::new()),
        active: Arc::from(Vec::new()),
        busy_poll,
        pipe: None,
        small_fills: 0,
        timer: Timer::default(),
        generation: 0,
    };
    let budget = Arc::new(Semaphore::new(QUEUE_BYTES));
    // Chunks read and not yet written, handed from one path to the next in order.
    let mut held: VecDeque<Chunk> = VecDeque::new();
    let end = loop {
        if !writer.refresh() {
            break End::Close;
        }
        let step = match writer.path() {
            // No toxic: no queue, no copy, no buffer of its own.
            Path::PassThrough => match writer.write_held(&mut held).await {
                Flow::Stop(end) => Step::End(end),
                Flow::Go => match writer.pass_through(&mut src).await {
                    Some(end) => Step::End(end),
                    None => Step::Switch,
                },
            },
            Path::Delay => writer.delay_line(&mut src, &mut held).await,
            Path::Queued => {
                let (tx, mut rx) = mpsc::channel(QUEUE);
                let stop = conn.child_token();
                let reader = read_loop(&src, tx, counters.clone(), budget.clone(), stop.clone());
                let (unsent, step) = tokio::join!(reader, async {
                    let step = writer.run(&mut rx, &mut held).await;
                    stop.cancel();
                    step
                });
                // Leaving for another path: what the reader queued goes first there.
                while let Ok(chunk) = rx.try_recv() {
                    held.push_back(chunk);
                }
                held.extend(unsent);
                step
            }
        };
        if let Step::End(end) = step {
            break end;
        }
    };
    // Whatever ended this link ends the connection: no half-close propagation.
    conn.cancel();
    (src, writer.dst, end)
}

/// How a link moves bytes under its current chain.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Path {
    /// No toxic: straight from socket to socket.
    PassThrough,
    /// Toxics that only delay (latency, noop, slow_close): the delay line.
    Delay,
    /// Anything else: chunk by chunk through the chain.
    Queued,
}

/// How a path ended.
enum Step {
    /// The chain calls for another path.
    Switch,
    /// The link is over.
    End(End),
}

/// Reads `src` into the queue until `stop` fires or the source ends; returns the chunks it
/// had read but not queued when stopped, so that a switch of path loses nothing.
async fn read_loop(
    src: &OwnedReadHalf,
    tx: mpsc::Sender<Chunk>,
    counters: Arc<Counters>,
    budget: Arc<Semaphore>,
    stop: CancellationToken,
) -> Vec<Chunk> {
    let mut unsent = Vec::new();
    'reading: loop {
        // Room first: the reader never holds bytes that the budget does not cover.
        let mut permit = tokio::select! {
            _ = stop.cancelled() => break,
            p = budget.clone().acquire_many_owned(SCRATCH as u32) => match p {
                Ok(p) => p,
                Err(_) => break,
            },
        };
        tokio::select! {
            _ = stop.cancelled() => break,
            r = src.readable() => if r.is_err() { break },
        }
        // One read takes what the socket holds, up to the scratch buffer; it is queued as
        // chunks of at most CHUNK bytes (Toxiproxy's reads), each in its own allocation: one
        // of a few hundred kilobytes would come from the system and go back to it each time
        // (page faults on every read), where chunk-sized ones are recycled by the allocator.
        let mut pieces: Vec<Bytes> = Vec::new();
        let read = SCRATCH_BUF.with(|b| {
            let mut buf = b.borrow_mut();
            let n = read_ready(src.as_ref(), &mut buf)?;
            pieces.extend(buf[..n].chunks(CHUNK).map(Bytes::copy_from_slice));
            Ok::<usize, std::io::Error>(n)
        });
        let n = match read {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
            Err(_) => break,
        };
        counters.received.fetch_add(n as u64, Ordering::Relaxed);
        let at = Instant::now();
        let mut pieces = pieces.into_iter();
        while let Some(piece) = pieces.next() {
            let chunk = Chunk {
                _budget: permit.split(piece.len()),
                data: piece,
                at,
            };
            // Reserving a slot first keeps the chunk in hand if `stop` fires while the
            // queue is full: the chunk and the rest were read, and must reach the next path.
            let slot = tokio::select! {
                biased;
                slot = tx.reserve() => match slot {
                    Ok(slot) => slot,
                    Err(_) => break 'reading,
                },
                _ = stop.cancelled() => {
                    unsent.push(chunk);
                    unsent.extend(pieces.map(|data| Chunk { data, at, _budget: None }));
                    break 'reading;
                }
            };
            slot.send(chunk);
        }
    }
    unsent
}

/// Reads what `src` has ready into `buf`, without waiting.
///
/// A read that leaves room in `buf` emptied the socket, so its readiness is cleared at once,
/// as tokio's own `poll_read` does: the next wait goes straight to the reactor instead of
/// first making a read that can only say `WouldBlock`. That is one system call fewer per
/// message on request/response traffic. Bytes arriving after the read raise a new event,
/// which the clearing never hides (the runtime clears only the event it reported).
fn read_ready(src: &TcpStream, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut short = None;
    let read = src.try_io(Interest::READABLE, || {
        let n = rustix::io::read(src, &mut *buf)?;
        if n > 0 && n < buf.len() {
            short = Some(n);
            return Err(std::io::ErrorKind::WouldBlock.into());
        }
        Ok(n)
    });
    match short {
        Some(n) => Ok(n),
        None => read,
    }
}

/// Per-link state of one toxic.
struct StageState {
    version: u64,
    active: bool,
    /// `limit_data`: bytes forwarded so far (kept across updates of the same toxic).
    forwarded: i64,
    /// `bandwidth`: sleep owed or saved by rounding, carried to the next chunk.
    carry: Duration,
}

enum Flow {
    Go,
    Stop(End),
}

struct Writer {
    dst: OwnedWriteHalf,
    chain: watch::Receiver<Chain>,
    counters: Arc<Counters>,
    rng: ChaCha8Rng,
    conn: CancellationToken,
    states: HashMap<String, StageState>,
    /// A chain change was seen and not applied yet.
    dirty: bool,
    current: Chain,
    /// The toxics of `current` this link applies (its toxicity draws), worked out when the
    /// chain changes rather than for every chunk.
    active: Chain,
    /// How long the pass-through path polls for more bytes before it sleeps.
    busy_poll: Duration,
    /// The zero-copy pipe, while the link streams bulk data.
    pipe: Option<Pipe>,
    /// Consecutive small splices: a link that turns interactive goes back to copying.
    small_fills: u8,
    /// The timer of the toxics' waits.
    timer: Timer,
    /// Chain changes applied so far.
    generation: u64,
}

impl Writer {
    /// Applies the latest chain. Returns false when the change closes the connection (an
    /// active `timeout` toxic was removed, which Toxiproxy answers by closing).
    fn refresh(&mut self) -> bool {
        if !self.dirty {
            return true;
        }
        self.dirty = false;
        self.generation += 1;
        let chain = self.chain.borrow_and_update().clone();
        let mut keep = HashMap::with_capacity(chain.len());
        for t in chain.iter() {
            let previous = self.states.remove(&t.name);
            let state = match previous {
                Some(s) if s.version == t.version => s,
                other => StageState {
                    version: t.version,
                    active: roll(&mut self.rng, t.toxicity),
                    forwarded: other.as_ref().map_or(0, |s| s.forwarded),
                    carry: Duration::ZERO,
                },
            };
            keep.insert(t.name.clone(), state);
        }
        let timeout_removed = self.states.iter().any(|(name, s)| {
            s.active
                && self
                    .current
                    .iter()
                    .any(|t| &t.name == name && matches!(t.kind, Kind::Timeout { .. }))
        });
        self.states = keep;
        let active: Vec<Toxic> = chain
            .iter()
            .filter(|t| self.states.get(&t.name).is_some_and(|s| s.active))
            .cloned()
            .collect();
        self.active = Arc::from(active);
        self.current = chain;
        !timeout_removed
    }

    /// Forwards bytes straight from `src` while the direction has no toxic. Returns `None`
    /// when a toxic appears (the caller switches to the queued path), or how the link ended.
    ///
    /// The waits for a cancellation and for a chain change are made once per chain rather
    /// than once per message: a message then costs one readiness wait, as in a bare relay,
    /// instead of also unregistering and registering two waiters (BENCHMARKS.md).
    ///
    /// After moving bytes it keeps polling for up to `busy_poll` (yielding to other tasks
    /// between polls) before it lets the worker sleep: the reply of a request/response
    /// exchange then finds the proxy awake.
    async fn pass_through(&mut self, src: &mut OwnedReadHalf) -> Option<End> {
        loop {
            if !self.refresh() {
                return Some(End::Close);
            }
            if !self.current.is_empty() {
                return None;
            }
            // A receiver of its own, at the version just applied: its wait borrows it, not
            // `self`, so the forwarding below can go on while it waits.
            let mut chain = self.chain.clone();
            let conn = self.conn.clone();
            let changed = chain.changed();
            let cancelled = conn.cancelled();
            tokio::pin!(changed, cancelled);
            let mut last_moved: Option<std::time::Instant> = None;
            loop {
                let spinning = last_moved.is_some_and(|t| t.elapsed() < self.busy_poll);
                // Bytes first: the other waits are polled once the source has nothing more,
                // after the message went out rather than before. Their wakers stay
                // registered meanwhile, and the task budget makes a source that never runs
                // dry yield every so many reads, so a close or a toxic change always gets
                // through, and other connections on the thread get their turn.
                tokio::select! {
                    biased;
                    r = tokio::task::coop::cooperative(src.readable()) => if r.is_err() { return Some(End::Close) },
                    _ = &mut cancelled => return Some(End::Close),
                    changed = &mut changed => {
                        if changed.is_err() {
                            return Some(End::Close);
                        }
                        self.dirty = true;
                        break;
                    }
                    _ = tokio::task::yield_now(), if spinning => continue,
                }
                match self.forward_ready(src).await {
                    Ok(n) if n > 0 && !self.busy_poll.is_zero() => {
                        last_moved = Some(std::time::Instant::now());
                    }
                    Ok(_) => {}
                    Err(end) => return Some(end),
                }
            }
        }
    }

    /// Moves what `src` has ready to the destination: by splice while the link streams bulk
    /// data, by one copy through the thread's scratch buffer otherwise. Returns the bytes
    /// moved (0 when the readiness was spurious), or how the link ended.
    async fn forward_ready(&mut self, src: &OwnedReadHalf) -> Result<usize, End> {
        if let Some(pipe) = self.pipe.as_mut() {
            let n = match pipe.fill(src.as_ref()) {
                Ok(0) => return Err(End::Close),
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return Ok(0),
                Err(_) => return Err(End::Close),
            };
            // Counted before the bytes go on, so no one can see them arrive uncounted.
            self.counters
                .received
                .fetch_add(n as u64, Ordering::Relaxed);
            if let Flow::Stop(end) = self.drain_pipe().await {
                return Err(end);
            }
            self.small_fills = if n < SMALL_SPLICE {
                self.small_fills.saturating_add(1)
            } else {
                0
            };
            if self.small_fills >= SMALL_SPLICES_BEFORE_COPY {
                // Interactive now: copying is cheaper, and the pipe's descriptors go back.
                self.pipe = None;
                self.small_fills = 0;
            }
            return Ok(n);
        }
        // Read and write in one go from the thread's scratch buffer; only what the
        // destination cannot take right now is copied out and awaited.
        let (dst, counters) = (&self.dst, &self.counters);
        let moved = SCRATCH_BUF.with(|b| {
            let mut buf = b.borrow_mut();
            let n = read_ready(src.as_ref(), &mut buf)?;
            if n == 0 {
                return Ok((0, 0, Bytes::new()));
            }
            counters.received.fetch_add(n as u64, Ordering::Relaxed);
            let written = match dst.try_write(&buf[..n]) {
                Ok(w) => w,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => 0,
                Err(e) => return Err(e),
            };
            Ok((n, written, Bytes::copy_from_slice(&buf[written..n])))
        });
        match moved {
            Ok((0, _, _)) => Err(End::Close),
            Ok((n, written, rest)) => {
                self.counters
                    .sent
                    .fetch_add(written as u64, Ordering::Relaxed);
                if !rest.is_empty()
                    && let Flow::Stop(end) = self.write(&rest).await
                {
                    return Err(end);
                }
                if n >= BULK_READ {
                    // A large read: the source streams bulk data, which splice moves
                    // without copying. Without a pipe (no descriptors left), the link keeps
                    // copying.
                    self.pipe = Pipe::new().ok();
                }
                Ok(n)
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => Ok(0),
            Err(_) => Err(End::Close),
        }
    }

    /// The instant an active `timeout` toxic closes the connection, if any.
    fn timeout_deadline(&self, last_data: Instant) -> Option<Instant> {
        self.active.iter().find_map(|t| match t.kind {
            Kind::Timeout { timeout } if timeout > 0 => Some(later(last_data, timeout as u64)),
            _ => None,
        })
    }

    /// The queued path: chunks from `rx` (after those in `held`) one by one through the chain.
    /// Returns when the chain calls for another path, or when the link ends.
    async fn run(&mut self, rx: &mut mpsc::Receiver<Chunk>, held: &mut VecDeque<Chunk>) -> Step {
        let mut last_data = Instant::now();
        loop {
            if !self.refresh() {
                return Step::End(End::Close);
            }
            if self.path() != Path::Queued {
                return Step::Switch;
            }
            let chunk = match held.pop_front() {
                Some(chunk) => chunk,
                None => {
                    let deadline = self.timeout_deadline(last_data);
                    let received = tokio::select! {
                        biased;
                        _ = self.conn.cancelled() => return Step::End(End::Close),
                        changed = self.chain.changed() => {
                            if changed.is_err() {
                                return Step::End(End::Close);
                            }
                            self.dirty = true;
                            continue;
                        }
                        _ = sleep_until(deadline.unwrap_or_else(Instant::now)), if deadline.is_some() => return Step::End(End::Close),
                        chunk = rx.recv() => chunk,
                    };
                    let Some(chunk) = received else {
                        return Step::End(self.eof().await);
                    };
                    last_data = Instant::now();
                    chunk
                }
            };
            if let Flow::Stop(end) = self.process(chunk).await {
                return Step::End(end);
            }
        }
    }

    /// The path the current chain calls for.
    fn path(&self) -> Path {
        if self.current.is_empty() {
            return Path::PassThrough;
        }
        let delays_only = self.active.iter().all(|t| {
            matches!(
                t.kind,
                Kind::Latency { .. } | Kind::Noop | Kind::SlowClose { .. }
            )
        });
        if delays_only {
            Path::Delay
        } else {
            Path::Queued
        }
    }

    /// When a chunk received at `at` leaves a chain of delays: every latency toxic adds its
    /// delay and its own jitter draw, in chain order, exactly as [`Writer::through`] would.
    fn release_time(&mut self, at: Instant) -> Instant {
        let mut released = at;
        for t in self.active.iter() {
            if let Kind::Latency { latency, jitter } = t.kind {
                let offset = if jitter > 0 {
                    self.rng.random_range(-jitter..jitter)
                } else {
                    0
                };
                let total = latency.saturating_add(offset);
                if total > 0 {
                    released = later(released, total as u64);
                }
            }
        }
        released
    }

    /// Writes every chunk of `held` at once: the chain no longer holds them.
    async fn write_held(&mut self, held: &mut VecDeque<Chunk>) -> Flow {
        while let Some(chunk) = held.pop_front() {
            if let Flow::Stop(end) = self.write(&chunk.data).await {
                return Flow::Stop(end);
            }
        }
        Flow::Go
    }

    /// The source reached EOF: `slow_close` postpones the close.
    async fn eof(&mut self) -> End {
        let delay = self.active.iter().find_map(|t| match t.kind {
            Kind::SlowClose { delay } if delay > 0 => Some(Duration::from_millis(delay as u64)),
            _ => None,
        });
        if let Some(delay) = delay {
            tokio::select! {
                _ = self.conn.cancelled() => {}
                _ = tokio::time::sleep(delay) => {}
            }
        }
        End::Close
    }

    /// Runs one chunk through the active toxics and writes what comes out.
    async fn process(&mut self, chunk: Chunk) -> Flow {
        let stages = self.active.clone();
        if stages.is_empty() {
            return self.write(&chunk.data).await;
        }
        Box::pin(self.through(&stages, chunk.data, chunk.at, false)).await
    }

    /// Passes `data` (received at `at`) through `stages`, then writes it. `hurry` skips the
    /// remaining waits: a chain change interrupted this chunk.
    fn through<'a>(
        &'a mut self,
        stages: &'a [Toxic],
        data: Bytes,
        at: Instant,
        hurry: bool,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Flow> + Send + 'a>> {
        Box::pin(async move {
            let mut hurry = hurry;
            let Some((toxic, rest)) = stages.split_first() else {
                return self.write(&data).await;
            };
            match toxic.kind {
                Kind::Noop | Kind::SlowClose { .. } => self.through(rest, data, at, hurry).await,
                Kind::Timeout { .. } => Flow::Go,
                Kind::ResetPeer { timeout } => {
                    // Not interruptible by chain changes, as upstream.
                    tokio::select! {
                        _ = self.conn.cancelled() => return Flow::Stop(End::Close),
                        _ = tokio::time::sleep(Duration::from_millis(timeout.max(0) as u64)) => {}
                    }
                    Flow::Stop(End::Reset)
                }
                Kind::Latency { latency, jitter } => {
                    let offset = if jitter > 0 {
                        self.rng.random_range(-jitter..jitter)
                    } else {
                        0
                    };
                    // Saturating: latency + jitter near i64::MAX is "forever", never a wrap.
                    let total = latency.saturating_add(offset);
                    // As in Toxiproxy, the chunk's timestamp moves on by the delay, so the next
                    // latency toxic in the chain adds its own: 100 ms + 50 ms is 150 ms.
                    let mut released = at;
                    if total > 0 {
                        released = later(at, total as u64);
                        if !hurry {
                            match self.wait_until(released).await {
                                Wait::Done => {}
                                Wait::Interrupted => hurry = true,
                                Wait::Cancelled => return Flow::Stop(End::Close),
                            }
                        }
                    }
                    self.through(rest, data, released, hurry).await
                }
                Kind::Bandwidth { rate } => {
                    let slice = (rate as usize).saturating_mul(100).max(1);
                    let mut data = data;
                    while data.len() > slice {
                        let piece = data.split_to(slice);
                        if !hurry {
                            match self
                                .wait_until(Instant::now() + Duration::from_millis(100))
                                .await
                            {
                                Wait::Done => {}
                                Wait::Interrupted => hurry = true,
                                Wait::Cancelled => return Flow::Stop(End::Close),
                            }
                        }
                        if let Flow::Stop(end) = self.through(rest, piece, at, hurry).await {
                            return Flow::Stop(end);
                        }
                    }
                    // len / rate milliseconds, with the rounding carried forward.
                    let name = toxic.name.clone();
                    let ideal = Duration::from_secs_f64(data.len() as f64 / (rate as f64 * 1000.0));
                    let state = self.states.get_mut(&name);
                    let wait = match state {
                        Some(s) => {
                            let owed = ideal + s.carry;
                            let whole = Duration::from_millis(owed.as_millis() as u64);
                            s.carry = owed - whole;
                            whole
                        }
                        None => ideal,
                    };
                    if !hurry && !wait.is_zero() {
                        match self.wait_until(Instant::now() + wait).await {
                            Wait::Done => {}
                            Wait::Interrupted => hurry = true,
                            Wait::Cancelled => return Flow::Stop(End::Close),
                        }
                    }
                    self.through(rest, data, at, hurry).await
                }
                Kind::Slicer {
                    average_size,
                    size_variation,
                    delay,
                } => {
                    let mut pieces = Vec::new();
                    slice(
                        &mut self.rng,
                        data,
                        average_size as usize,
                        size_variation as usize,
                        &mut pieces,
                    );
                    let pause = Duration::from_micros(delay.max(0) as u64);
                    for piece in pieces {
                        if let Flow::Stop(end) = self.through(rest, piece, at, hurry).await {
                            return Flow::Stop(end);
                        }
                        if !hurry && !pause.is_zero() {
                            match self.wait_until(Instant::now() + pause).await {
                                Wait::Done => {}
                                Wait::Interrupted => hurry = true,
                                Wait::Cancelled => return Flow::Stop(End::Close),
                            }
                        }
                    }
                    Flow::Go
                }
                Kind::LimitData { bytes } => {
                    let name = toxic.name.clone();
                    let forwarded = self.states.get(&name).map_or(0, |s| s.forwarded);
                    let left = (bytes - forwarded).max(0) as usize;
                    let mut data = data;
                    let reached = data.len() >= left;
                    data.truncate(left);
                    if let Some(s) = self.states.get_mut(&name) {
                        s.forwarded += data.len() as i64;
                    }
                    if !data.is_empty()
                        && let Flow::Stop(end) = self.through(rest, data, at, hurry).await
                    {
                        return Flow::Stop(end);
                    }
                    if reached {
                        Flow::Stop(End::Close)
                    } else {
                        Flow::Go
                    }
                }
            }
        })
    }

    async fn wait_until(&mut self, deadline: Instant) -> Wait {
        tokio::select! {
            _ = self.conn.cancelled() => Wait::Cancelled,
            _ = self.timer.sleep_until(deadline) => Wait::Done,
            changed = self.chain.changed() => {
                if changed.is_err() {
                    return Wait::Cancelled;
                }
                self.dirty = true;
                Wait::Interrupted
            }
        }
    }

    /// Writes out everything the link's pipe holds.
    async fn drain_pipe(&mut self) -> Flow {
        let Some(pipe) = self.pipe.as_mut() else {
            return Flow::Go;
        };
        while pipe.pending() > 0 {
            match pipe.drain(self.dst.as_ref()) {
                Ok(n) => {
                    self.counters.sent.fetch_add(n as u64, Ordering::Relaxed);
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    tokio::select! {
                        _ = self.conn.cancelled() => return Flow::Stop(End::Close),
                        w = self.dst.as_ref().writable() => if w.is_err() { return Flow::Stop(End::Close) },
                    }
                }
                Err(_) => return Flow::Stop(End::Close),
            }
        }
        Flow::Go
    }

    async fn write(&mut self, data: &[u8]) -> Flow {
        tokio::select! {
            _ = self.conn.cancelled() => Flow::Stop(End::Close),
            r = self.dst.write_all(data) => match r {
                Ok(()) => {
                    self.counters.sent.fetch_add(data.len() as u64, Ordering::Relaxed);
                    Flow::Go
                }
                Err(_) => Flow::Stop(End::Close),
            },
        }
    }
}

enum Wait {
    Done,
    Interrupted,
    Cancelled,
}

/// True with probability `toxicity` (>= 1 always, <= 0 never).
fn roll(rng: &mut ChaCha8Rng, toxicity: f32) -> bool {
    if toxicity >= 1.0 {
        return true;
    }
    if toxicity <= 0.0 || toxicity.is_nan() {
        return false;
    }
    rng.random::<f32>() < toxicity
}

/// `at` plus `ms` milliseconds, or the farthest instant representable near it: a client's
/// value (up to i64::MAX ms) never overflows the clock.
fn later(at: Instant, ms: u64) -> Instant {
    const FAR: Duration = Duration::from_secs(100 * 365 * 24 * 3600);
    at.checked_add(Duration::from_millis(ms).min(FAR))
        .unwrap_or(at)
}

/// Halves `data` recursively, the cut shifted by up to `variation` bytes, until every piece
/// is at most `average + variation` bytes. Iterative, so no input can exhaust the stack.
fn slice(
    rng: &mut ChaCha8Rng,
    data: Bytes,
    average: usize,
    variation: usize,
    out: &mut Vec<Bytes>,
) {
    let limit = average.saturating_add(variation).max(1);
    let mut stack = vec![data];
    while let Some(piece) = stack.pop() {
        if piece.len() <= limit {
            out.push(piece);
            continue;
        }
        let mid = piece.len() / 2;
        // A shift beyond half the piece would be clamped anyway: bounding it first keeps every
        // value small whatever `variation` a client sent.
        let v = variation.min(mid);
        let cut = if v > 0 {
            (mid - v + rng.random_range(0..2 * v)).clamp(1, piece.len() - 1)
        } else {
            mid.clamp(1, piece.len() - 1)
        };
        let mut left = piece;
        let right = left.split_off(cut);
        // Pushed right first so the left half is emitted first.
        stack.push(right);
        stack.push(left);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slices_stay_in_bounds_and_in_order() {
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let data: Bytes = (0..2000u32).map(|i| i as u8).collect::<Vec<u8>>().into();
        let mut out = Vec::new();
        slice(&mut rng, data.clone(), 100, 10, &mut out);
        assert!(out.iter().all(|p| !p.is_empty() && p.len() <= 110));
        assert!(out.iter().any(|p| p.len() < 100));
        let joined: Vec<u8> = out.iter().flat_map(|p| p.iter().copied()).collect();
        assert_eq!(joined, data.to_vec());
        let mut one = Vec::new();
        slice(&mut rng, Bytes::from_static(b"abc"), 1, 0, &mut one);
        assert_eq!(one.len(), 3);
    }

    #[test]
    fn toxicity_rolls_are_bounded() {
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        assert!(roll(&mut rng, 1.0) && roll(&mut rng, 7.0));
        assert!(!roll(&mut rng, 0.0) && !roll(&mut rng, -3.0));
        // 10,000 rolls at 0.3: mean 3000, sd 45.8; accept within 5 sd.
        let hits = (0..10_000).filter(|_| roll(&mut rng, 0.3)).count() as f64;
        assert!((hits - 3000.0).abs() < 5.0 * 45.8, "{hits}");
    }
}
