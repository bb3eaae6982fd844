//! Loading a JSON inventory on two threads.
//!
//! Reading a large inventory is two jobs of about the same size: finding and parsing each
//! instance (bytes to strings), and validating and sharing them (strings to instances). A
//! reader thread does the first, over [`scan`](super::scan) and the [`fast`](super::fast) path
//! (serde_json for anything else, and for every error), and hands batches of a few thousand
//! parsed instances to the calling thread, which does the second. A batch owns its strings in
//! one arena, so nothing is allocated per string on the way. Errors come out in file order:
//! the caller stops at the first bad instance it meets, and a reader error is reported once
//! every instance before it was accepted.

use std::borrow::Cow;
use std::path::Path;
use std::sync::mpsc;

use super::{InventoryError, Loader, Raw, fast, scan, without_position};

/// Instances per batch.
const BATCH: usize = 4096;

/// One parsed instance: byte ranges into its batch's arena.
struct Item {
    line: usize,
    position: usize,
    /// id, app, account, region, zone, stack, detail, cluster.
    fields: [(u32, u32); 8],
    /// A range of the batch's `labels`.
    labels: (u32, u32),
}

/// Parsed instances and the text they point into.
#[derive(Default)]
struct Batch {
    arena: String,
    items: Vec<Item>,
    labels: Vec<((u32, u32), (u32, u32))>,
    /// The number of instances the file probably holds, sent once, early.
    estimate: Option<usize>,
}

impl Batch {
    fn text(&mut self, s: &str) -> Option<(u32, u32)> {
        let start = u32::try_from(self.arena.len()).ok()?;
        self.arena.push_str(s);
        let end = u32::try_from(self.arena.len()).ok()?;
        Some((start, end))
    }

    fn push(&mut self, raw: &Raw<'_>, line: usize, position: usize) -> Option<()> {
        let mut fields = [(0, 0); 8];
        for (slot, value) in [
            &raw.id,
            &raw.app,
            &raw.account,
            &raw.region,
            &raw.zone,
            &raw.stack,
            &raw.detail,
            &raw.cluster,
        ]
        .into_iter()
        .enumerate()
        {
            fields[slot] = self.text(value)?;
        }
        let first = u32::try_from(self.labels.len()).ok()?;
        for (k, v) in &raw.labels {
            let pair = (self.text(k)?, self.text(v)?);
            self.labels.push(pair);
        }
        let last = u32::try_from(self.labels.len()).ok()?;
        self.items.push(Item {
            line,
            position,
            fields,
            labels: (first, last),
        });
        Some(())
    }

    fn raw(&self, item: &Item) -> Raw<'_> {
        let at = |(start, end): (u32, u32)| {
            Cow::Borrowed(
                self.arena
                    .get(start as usize..end as usize)
                    .unwrap_or_default(),
            )
        };
        let [id, app, account, region, zone, stack, detail, cluster] = item.fields;
        Raw {
            id: at(id),
            app: at(app),
            account: at(account),
            region: at(region),
            zone: at(zone),
            stack: at(stack),
            detail: at(detail),
            cluster: at(cluster),
            labels: self
                .labels
                .get(item.labels.0 as usize..item.labels.1 as usize)
                .unwrap_or_default()
                .iter()
                .map(|(k, v)| (at(*k), at(*v)))
                .collect(),
        }
    }
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
            for item in &batch.items {
                loader.accept(batch.raw(item), item.line, item.position)?;
            }
        }
        Ok(())
    })
}

/// The reader thread: scans and parses, sending full batches, then any error.
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
    file_len: u64,
    seen_bytes: u64,
}

impl Producer<'_> {
    fn take(
        &mut self,
        raw: &Raw<'_>,
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
        if self.batch.push(raw, line, position).is_none() {
            // Only an instance of more than 4 GB of text gets here.
            return Err(InventoryError::Parse {
                path: self.path.to_path_buf(),
                line,
                message: format!("instance #{position} is too large"),
            });
        }
        if self.batch.items.len() >= BATCH {
            let full = std::mem::take(&mut self.batch);
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
    ) -> Option<Result<usize, InventoryError>> {
        let (raw, used) = fast::parse_prefix(rest)?;
        Some(self.take(&raw, used, line, position).map(|()| used))
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
        self.take(&raw, bytes.len(), line, position)
    }
}
