//! Loading a JSON inventory on two threads.
//!
//! Reading a large inventory is two jobs of about the same size: finding, parsing and checking
//! each instance (bytes to strings), and sharing its strings (strings to instances). A reader
//! thread does the first, over [`scan`](super::scan) and the [`fast`](super::fast) path
//! (serde_json for anything else, and for every error), and hands batches of a few thousand
//! instances to the calling thread, which does the second. A batch owns its text in one arena,
//! so nothing is allocated per string on the way. Errors come out in file order: the caller
//! takes every instance before a reader error, then reports it.

use std::path::Path;
use std::sync::mpsc;

use simian_core::Name;

use super::{
    InventoryError, Loader, Raw, check, fast, id_hash, may_hold_control, scan, without_position,
};

/// Instances per batch.
const BATCH: usize = 4096;

/// A range of a batch's arena.
type Text = (u32, u32);

/// One checked instance: its id, and ranges of its batch's arena.
struct Item {
    line: usize,
    position: usize,
    id: Name,
    id_hash: u64,
    /// id, app, account, region, zone, stack, detail, cluster.
    fields: [Text; 8],
    /// A range of the batch's `labels`.
    labels: (u32, u32),
}

/// Checked instances and the text they point into.
#[derive(Default)]
struct Batch {
    arena: String,
    items: Vec<Item>,
    labels: Vec<(Text, Text)>,
    /// The number of instances the file probably holds, sent once, early.
    estimate: Option<usize>,
}

impl Batch {
    /// An empty batch with room for one like `previous`.
    fn like(previous: &Batch) -> Batch {
        Batch {
            arena: String::with_capacity(previous.arena.len() + previous.arena.len() / 8),
            items: Vec::with_capacity(BATCH),
            labels: Vec::with_capacity(previous.labels.len() + previous.labels.len() / 8),
            estimate: None,
        }
    }

    fn text(&mut self, s: &str) -> Option<Text> {
        let start = u32::try_from(self.arena.len()).ok()?;
        self.arena.push_str(s);
        let end = u32::try_from(self.arena.len()).ok()?;
        Some((start, end))
    }

    #[allow(clippy::too_many_arguments)]
    fn push<'s>(
        &mut self,
        fields: [&str; 8],
        labels: impl Iterator<Item = (&'s str, &'s str)>,
        id: Name,
        id_hash: u64,
        line: usize,
        position: usize,
    ) -> Option<()> {
        let mut spans = [(0, 0); 8];
        for (span, value) in spans.iter_mut().zip(fields) {
            *span = self.text(value)?;
        }
        let first = u32::try_from(self.labels.len()).ok()?;
        for (k, v) in labels {
            let pair = (self.text(k)?, self.text(v)?);
            self.labels.push(pair);
        }
        let last = u32::try_from(self.labels.len()).ok()?;
        self.items.push(Item {
            line,
            position,
            id,
            id_hash,
            fields: spans,
            labels: (first, last),
        });
        Some(())
    }
}

/// The text of a range of `arena` (ranges are made at character boundaries).
fn at(arena: &str, (start, end): Text) -> &str {
    arena.get(start as usize..end as usize).unwrap_or_default()
}

/// Loads the JSON inventory `file` (at `path`) into `loader`.
pub(super) fn load(
    path: &Path,
    file: std::fs::File,
    loader: &mut Loader<'_>,
) -> Result<(), InventoryError> {
    let file_len = file.metadata().map_or(0, |m| m.len());
    let (tx, rx) = mpsc::sync_channel::<Result<Batch, InventoryError>>(4);
    std::thread::scope(|scope| {
        let reader = std::thread::Builder::new()
            .name("inventory-reader".into())
            .spawn_scoped(scope, || read(path, file, file_len, tx));
        if let Err(e) = reader {
            return Err(InventoryError::Read {
                path: path.to_path_buf(),
                message: format!("cannot start the reader thread: {e}"),
            });
        }
        // Dropping `rx` on an early return stops the reader at its next send.
        for batch in rx {
            let batch = batch?;
            if let Some(n) = batch.estimate {
                loader.reserve(n);
            }
            let arena = batch.arena.as_str();
            let mut labels: Vec<(&str, &str)> = Vec::new();
            for item in batch.items {
                let fields = item.fields.map(|t| at(arena, t));
                labels.clear();
                labels.extend(
                    batch.labels[item.labels.0 as usize..item.labels.1 as usize]
                        .iter()
                        .map(|(k, v)| (at(arena, *k), at(arena, *v))),
                );
                loader.accept(
                    fields,
                    &mut labels,
                    item.id,
                    item.id_hash,
                    item.line,
                    item.position,
                )?;
            }
        }
        Ok(())
    })
}

/// The reader thread: scans, parses and checks, sending full batches, then any error.
fn read(
    path: &Path,
    file: std::fs::File,
    file_len: u64,
    tx: mpsc::SyncSender<Result<Batch, InventoryError>>,
) {
    let mut sink = Producer {
        path,
        tx: &tx,
        batch: Batch::default(),
        spans: Vec::new(),
        file_len,
        seen_bytes: 0,
    };
    let result = scan::scan_into(file, &mut sink).map_err(|stop| match stop {
        scan::Stop::Scan(e) => InventoryError::Parse {
            path: path.to_path_buf(),
            line: e.line,
            message: e.message,
        },
        scan::Stop::Read(e) => InventoryError::Read {
            path: path.to_path_buf(),
            message: e.to_string(),
        },
        scan::Stop::Element(e) => e,
    });
    let last = std::mem::take(&mut sink.batch);
    let _ = tx.send(Ok(last));
    if let Err(e) = result {
        let _ = tx.send(Err(e));
    }
}

struct Producer<'a> {
    path: &'a Path,
    tx: &'a mpsc::SyncSender<Result<Batch, InventoryError>>,
    batch: Batch,
    /// The fast path's label spans, reused from one instance to the next.
    spans: Vec<(fast::Span, fast::Span)>,
    file_len: u64,
    seen_bytes: u64,
}

impl Producer<'_> {
    /// Checks one instance and adds it to the batch, sending the batch when it is full.
    fn take<'s>(
        &mut self,
        fields: [&str; 8],
        labels: impl Iterator<Item = (&'s str, &'s str)> + Clone,
        maybe_control: bool,
        size: usize,
        line: usize,
        position: usize,
    ) -> Result<(), InventoryError> {
        self.seen_bytes += size as u64 + 2;
        if position == 1024 {
            // Size the list once from the file's length, rather than doubling it (and
            // copying it) twenty times on the way to a million.
            let estimate = self.file_len / (self.seen_bytes / 1024).max(1);
            self.batch.estimate = usize::try_from(estimate + estimate / 32).ok();
        }
        let invalid = |message: String| InventoryError::Invalid {
            path: self.path.to_path_buf(),
            line,
            position,
            id: fields[0].to_string(),
            message,
        };
        check(fields, labels.clone(), maybe_control).map_err(invalid)?;
        let id = Name::from(fields[0]);
        let hash = id_hash(fields[0]);
        if self
            .batch
            .push(fields, labels, id, hash, line, position)
            .is_none()
        {
            // Only a batch of more than 4 GB of text gets here.
            return Err(invalid(
                "this instance's batch holds more than 4 GB of text".into(),
            ));
        }
        if self.batch.items.len() >= BATCH {
            let next = Batch::like(&self.batch);
            let full = std::mem::replace(&mut self.batch, next);
            if self.tx.send(Ok(full)).is_err() {
                // The loader stopped at an earlier instance; its error is the one reported.
                return Err(InventoryError::Read {
                    path: self.path.to_path_buf(),
                    message: "stopped".into(),
                });
            }
        }
        Ok(())
    }
}

impl scan::Sink for Producer<'_> {
    type Error = InventoryError;

    fn quick(
        &mut self,
        rest: &[u8],
        line: usize,
        position: usize,
    ) -> Option<Result<(usize, usize), InventoryError>> {
        let mut spans = std::mem::take(&mut self.spans);
        spans.clear();
        let result = fast::parse_prefix(rest, &mut spans).map(|parsed| {
            let text = parsed.text;
            let at = |(a, b): fast::Span| text.get(a..b).unwrap_or_default();
            let labels = spans.iter().map(|(k, v)| (at(*k), at(*v)));
            let maybe_control = may_hold_control(text);
            self.take(
                parsed.fields.map(at),
                labels,
                maybe_control,
                parsed.used,
                line,
                position,
            )
            .map(|()| (parsed.used, parsed.lines))
        });
        self.spans = spans;
        result
    }

    fn element(
        &mut self,
        bytes: &[u8],
        line: usize,
        position: usize,
    ) -> Result<(), InventoryError> {
        let raw: Raw<'_> = serde_json::from_slice(bytes).map_err(|e| InventoryError::Parse {
            path: self.path.to_path_buf(),
            line: line + e.line().saturating_sub(1),
            message: format!("instance #{position}: {}", without_position(&e)),
        })?;
        let labels = raw.label_pairs();
        self.take(
            raw.fields(),
            labels.iter().copied(),
            true,
            bytes.len(),
            line,
            position,
        )
    }
}
