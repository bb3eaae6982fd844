//! The delay line: how a link holds data while its toxics only delay it (`latency`, with
//! `noop` and `slow_close` beside it), the chain users have active nearly all the time.
//!
//! Toxiproxy copies every 32 KB chunk through a goroutine per toxic and sleeps once per chunk,
//! and so did the queued path here: a bulk stream through 1 ms of latency moved barely faster
//! than through Toxiproxy. The line instead keeps, for each piece it reads, when the piece
//! arrived and when it is due, and releases every piece that is due in one call:
//!
//! - A link that streams (a read finds 32 KB or more) splices what it reads into a pipe, so
//!   the bytes stay in the kernel where the socket put them, and one splice moves every due
//!   byte to the destination: no copy through the proxy, as on the pass-through path.
//! - Other links read into memory (one copy), so an interactive connection holds no pipe.
//!   A pipe that runs out of slots (each piece takes one, however small) spills into memory
//!   until it has drained to half.
//!
//! At most [`QUEUE_BYTES`] bytes in [`QUEUE`] pieces are held per link; at the bound the line
//! stops reading and TCP pushes back on the sender. Every piece of up to [`CHUNK`] bytes
//! draws its own jitter, and pieces leave in order, as Toxiproxy's chunks do.

use std::collections::VecDeque;
use std::io::{self, IoSlice};

use bytes::{Buf, Bytes};
use tokio::net::tcp::OwnedReadHalf;
use tokio::time::Instant;

use super::{
    BULK_READ, CHUNK, Chunk, End, Flow, Path, QUEUE, QUEUE_BYTES, SCRATCH, SCRATCH_BUF,
    SMALL_SPLICE, SMALL_SPLICES_BEFORE_COPY, Step, Writer, read_ready,
};
use crate::splice::Pipe;

/// Buffers written in one vectored call.
const IOV: usize = 64;

/// Bytes the line holds, in a pipe or in memory.
struct Piece {
    len: usize,
    /// The bytes, when they are in memory; `None`: the next `len` bytes of pipe `pipe`.
    data: Option<Bytes>,
    /// The pipe (its [`Piped::seq`]) holding the bytes, when they are not in memory.
    pipe: u64,
    /// When they were read.
    at: Instant,
    /// When they leave.
    release: Instant,
}

/// A pipe of the line and its place in the order of pipes.
struct Piped {
    seq: u64,
    pipe: Pipe,
}

/// The pieces of one link, oldest first.
pub(super) struct DelayLine {
    pieces: VecDeque<Piece>,
    /// Oldest first; pieces are read into the last and written from the first. A pipe holds
    /// at most `/proc/sys/fs/pipe-max-size` (1 MiB by default, without privileges), so a line
    /// that holds more than that streams through a few.
    pipes: VecDeque<Piped>,
    /// An emptied pipe, kept for the next one needed.
    spare: Option<Pipe>,
    next_seq: u64,
    /// Bytes held in memory.
    in_memory: usize,
    /// Every pipe the line may have is out of room or slots: reads go to memory until the
    /// oldest empties.
    spill: bool,
    /// Consecutive small splices: a link that turns interactive gives its pipe back.
    small_fills: u8,
    /// The [`Writer::generation`] whose chain set the release times.
    generation: u64,
}

/// Where bytes just read went.
enum Stored {
    /// Copied into memory (at most CHUNK bytes).
    Memory(Bytes),
    /// Into the pipe of this sequence number.
    Pipe(u64),
}

/// Which pieces [`Writer::release`] writes.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Release {
    /// Those whose time has come.
    Due,
    /// The first at once (a chain change interrupted its wait), then those due.
    Front,
    /// All of them (the chain no longer delays anything).
    All,
}

impl DelayLine {
    fn new(generation: u64) -> DelayLine {
        DelayLine {
            pieces: VecDeque::new(),
            pipes: VecDeque::new(),
            spare: None,
            next_seq: 0,
            in_memory: 0,
            spill: false,
            small_fills: 0,
            generation,
        }
    }

    fn held(&self) -> usize {
        self.in_memory + self.pipes.iter().map(|p| p.pipe.pending()).sum::<usize>()
    }

    /// A pipe to read into after the last one: the spare, or a new one, within the budget.
    fn add_pipe(&mut self) -> bool {
        let capacity = self
            .pipes
            .front()
            .map_or(QUEUE_BYTES, |p| p.pipe.capacity());
        if self.pipes.len() >= (QUEUE_BYTES / capacity.max(1)).max(1) {
            return false;
        }
        let pipe = match self.spare.take() {
            Some(pipe) => pipe,
            None => match Pipe::with_capacity(QUEUE_BYTES) {
                Ok(pipe) => pipe,
                // No descriptors left: memory will do.
                Err(_) => return false,
            },
        };
        self.pipes.push_back(Piped {
            seq: self.next_seq,
            pipe,
        });
        self.next_seq += 1;
        true
    }

    /// Bytes the line may still read.
    fn room(&self) -> usize {
        if self.pieces.len() >= QUEUE {
            return 0;
        }
        QUEUE_BYTES.saturating_sub(self.held())
    }

    /// Drops `n` written bytes from the front.
    fn consume(&mut self, mut n: usize) {
        while n > 0 {
            let Some(front) = self.pieces.front_mut() else {
                break;
            };
            let k = n.min(front.len);
            front.len -= k;
            if let Some(data) = front.data.as_mut() {
                data.advance(k);
                self.in_memory -= k;
            }
            n -= k;
            if front.len == 0 {
                self.pieces.pop_front();
            }
        }
        // Emptied pipes before the last go: the next reads need room more than they do.
        while self.pipes.len() > 1 && self.pipes.front().is_some_and(|p| p.pipe.pending() == 0) {
            if let Some(emptied) = self.pipes.pop_front() {
                self.spare = Some(emptied.pipe);
                self.spill = false;
            }
        }
        if self
            .pipes
            .back()
            .is_some_and(|p| p.pipe.pending() <= p.pipe.capacity() / 2)
        {
            self.spill = false;
        }
        if self.small_fills >= SMALL_SPLICES_BEFORE_COPY && self.held_in_pipes() == 0 {
            // Interactive now: memory is cheaper, and the pipes' descriptors go back.
            self.pipes.clear();
            self.spare = None;
            self.small_fills = 0;
            self.spill = false;
        }
    }

    fn held_in_pipes(&self) -> usize {
        self.held() - self.in_memory
    }

    fn pipe(&mut self, seq: u64) -> Option<&mut Pipe> {
        self.pipes
            .iter_mut()
            .find(|p| p.seq == seq)
            .map(|p| &mut p.pipe)
    }

    /// Hands every piece over as chunks, in order, for the queued path: what is in the pipe
    /// is copied out into memory.
    fn into_chunks(mut self, held: &mut VecDeque<Chunk>) -> io::Result<()> {
        while let Some(piece) = self.pieces.pop_front() {
            let data = match (piece.data, self.pipe(piece.pipe)) {
                (Some(data), _) => data,
                (None, Some(pipe)) => {
                    let mut out = vec![0u8; piece.len];
                    pipe.take(&mut out)?;
                    Bytes::from(out)
                }
                (None, None) => return Err(io::ErrorKind::NotFound.into()),
            };
            held.push_back(Chunk {
                data,
                at: piece.at,
                _budget: None,
            });
        }
        Ok(())
    }
}

impl Writer {
    /// The delay line (module doc), after the chunks in `held`. Returns when the chain calls
    /// for another path (handing over what it holds) or when the link ends.
    pub(super) async fn delay_line(
        &mut self,
        src: &mut OwnedReadHalf,
        held: &mut VecDeque<Chunk>,
    ) -> Step {
        let mut line = DelayLine::new(self.generation);
        for chunk in held.drain(..) {
            let release = self.release_time(chunk.at);
            line.in_memory += chunk.data.len();
            line.pieces.push_back(Piece {
                len: chunk.data.len(),
                data: Some(chunk.data),
                pipe: 0,
                at: chunk.at,
                release,
            });
        }
        let mut eof = false;
        loop {
            if !self.refresh() {
                return Step::End(End::Close);
            }
            if line.generation != self.generation {
                match self.path() {
                    Path::Delay => {
                        // Held pieces go through the new chain from the time they arrived,
                        // as queued chunks do in Toxiproxy.
                        line.generation = self.generation;
                        for i in 0..line.pieces.len() {
                            let at = line.pieces[i].at;
                            line.pieces[i].release = self.release_time(at);
                        }
                    }
                    Path::PassThrough => {
                        return match self.release(&mut line, Release::All).await {
                            Flow::Go => Step::Switch,
                            Flow::Stop(end) => Step::End(end),
                        };
                    }
                    Path::Queued => {
                        return match line.into_chunks(held) {
                            Ok(()) => Step::Switch,
                            Err(_) => Step::End(End::Close),
                        };
                    }
                }
            }
            if let Flow::Stop(end) = self.release(&mut line, Release::Due).await {
                return Step::End(end);
            }
            if eof && line.pieces.is_empty() {
                return Step::End(self.eof().await);
            }
            let next_release = line.pieces.front().map(|p| p.release);
            let can_read = !eof && line.room() > 0;
            tokio::select! {
                biased;
                _ = self.conn.cancelled() => return Step::End(End::Close),
                changed = self.chain.changed() => {
                    if changed.is_err() {
                        return Step::End(End::Close);
                    }
                    self.dirty = true;
                    // The change interrupts the wait of the piece at the front: it leaves
                    // now, as Toxiproxy forwards the chunk its latency toxic holds.
                    if let Flow::Stop(end) = self.release(&mut line, Release::Front).await {
                        return Step::End(end);
                    }
                }
                r = src.readable(), if can_read => {
                    eof = match r.and_then(|()| self.fill(&mut line, src)) {
                        Ok(n) => n == 0,
                        Err(e) => e.kind() != io::ErrorKind::WouldBlock,
                    };
                }
                _ = self.timer.sleep_until(next_release.unwrap_or_else(Instant::now)), if next_release.is_some() => {}
            }
        }
    }

    /// Reads what `src` has ready into the line, without waiting: into the pipe while the
    /// link streams, else into memory. `Ok(0)` is EOF.
    fn fill(&mut self, line: &mut DelayLine, src: &OwnedReadHalf) -> io::Result<usize> {
        let room = line.room();
        let now = Instant::now();
        while !line.spill {
            let Some(last) = line.pipes.back_mut() else {
                break;
            };
            let (seq, pipe) = (last.seq, &mut last.pipe);
            let want = room.min(pipe.room());
            let before = pipe.pending();
            if want == 0 {
                // The last pipe is full: another, if the socket has anything for it.
                if rustix::io::ioctl_fionread(src.as_ref()).unwrap_or(0) == 0 {
                    // Nothing is waiting: the wait for the socket's next bytes starts now.
                    return src.as_ref().try_io(tokio::io::Interest::READABLE, || {
                        Err::<usize, _>(io::ErrorKind::WouldBlock.into())
                    });
                }
                if !line.add_pipe() {
                    line.spill = true;
                }
                continue;
            }
            match pipe.fill_at_most(src.as_ref(), want) {
                Ok(0) => return Ok(0),
                Ok(n) => {
                    line.small_fills = if n < SMALL_SPLICE {
                        line.small_fills.saturating_add(1)
                    } else {
                        0
                    };
                    self.queue(line, n, Stored::Pipe(seq), now);
                    return Ok(n);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    // Nothing came: either the socket is empty, or the pipe is out of room or
                    // slots. Only the socket can tell.
                    let waiting = rustix::io::ioctl_fionread(src.as_ref()).unwrap_or(0);
                    if before == 0 || waiting == 0 {
                        return Err(e);
                    }
                    if !line.add_pipe() {
                        line.spill = true;
                    }
                }
                Err(e) => return Err(e),
            }
        }
        let limit = SCRATCH.min(room);
        let mut copies: Vec<Bytes> = Vec::new();
        let n = SCRATCH_BUF.with(|b| {
            let mut buf = b.borrow_mut();
            let n = read_ready(src.as_ref(), &mut buf[..limit])?;
            // Chunk-sized allocations, which the allocator recycles (see `read_loop`).
            copies.extend(buf[..n].chunks(CHUNK).map(Bytes::copy_from_slice));
            Ok::<usize, io::Error>(n)
        })?;
        for data in copies {
            line.in_memory += data.len();
            self.queue(line, data.len(), Stored::Memory(data), now);
        }
        if n >= BULK_READ && line.pipes.is_empty() {
            // A large read: the link streams, and pipes spare the copies. Without one (no
            // descriptors left) it keeps reading into memory.
            line.add_pipe();
        }
        Ok(n)
    }

    /// Adds `len` bytes read at `at` to the line, as pieces of at most CHUNK bytes, each
    /// with its own release time.
    fn queue(&mut self, line: &mut DelayLine, len: usize, stored: Stored, at: Instant) {
        self.counters
            .received
            .fetch_add(len as u64, std::sync::atomic::Ordering::Relaxed);
        match stored {
            Stored::Memory(data) => {
                let release = self.release_time(at);
                line.pieces.push_back(Piece {
                    len,
                    data: Some(data),
                    pipe: 0,
                    at,
                    release,
                });
            }
            Stored::Pipe(seq) => {
                let mut left = len;
                while left > 0 {
                    let piece = left.min(CHUNK);
                    let release = self.release_time(at);
                    line.pieces.push_back(Piece {
                        len: piece,
                        data: None,
                        pipe: seq,
                        at,
                        release,
                    });
                    left -= piece;
                }
            }
        }
    }

    /// Writes the pieces `how` says, oldest first, each run of consecutive pieces in the
    /// pipe with one splice and each run in memory with one vectored write.
    async fn release(&mut self, line: &mut DelayLine, how: Release) -> Flow {
        // Bytes of the front piece still to write regardless of its time.
        let mut forced = match (how, line.pieces.front()) {
            (Release::Front, Some(front)) => front.len,
            _ => 0,
        };
        loop {
            let now = Instant::now();
            let leaves = |i: usize, p: &Piece| {
                how == Release::All || p.release <= now || (i == 0 && forced > 0)
            };
            let Some(front) = line.pieces.front() else {
                return Flow::Go;
            };
            if !leaves(0, front) {
                return Flow::Go;
            }
            let written = if front.data.is_none() {
                let seq = front.pipe;
                let len: usize = line
                    .pieces
                    .iter()
                    .enumerate()
                    .take_while(|(i, p)| p.data.is_none() && p.pipe == seq && leaves(*i, p))
                    .map(|(_, p)| p.len)
                    .sum();
                match line.pipe(seq) {
                    Some(pipe) => pipe.drain_at_most(self.dst.as_ref(), len),
                    None => return Flow::Stop(End::Close),
                }
            } else {
                let slices: Vec<IoSlice<'_>> = line
                    .pieces
                    .iter()
                    .enumerate()
                    .take_while(|(i, p)| leaves(*i, p))
                    .map_while(|(_, p)| p.data.as_deref().map(IoSlice::new))
                    .take(IOV)
                    .collect();
                self.dst.try_write_vectored(&slices)
            };
            match written {
                Ok(n) => {
                    self.counters
                        .sent
                        .fetch_add(n as u64, std::sync::atomic::Ordering::Relaxed);
                    forced = forced.saturating_sub(n);
                    line.consume(n);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    tokio::select! {
                        _ = self.conn.cancelled() => return Flow::Stop(End::Close),
                        w = self.dst.as_ref().writable() => if w.is_err() { return Flow::Stop(End::Close) },
                    }
                }
                Err(_) => return Flow::Stop(End::Close),
            }
        }
    }
}
