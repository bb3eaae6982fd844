//! A static inventory file as a fleet: for planning and simulation at any scale.
//!
//! The file is JSON (`{"instances": [...]}`) or the same shape in TOML (`[[instances]]`),
//! chosen by its extension. Every instance needs `id`, `app`, `account` and `region`;
//! `zone`, `stack`, `detail`, `cluster` and `labels` are optional. The file is re-read on
//! every listing, so edits take effect without a restart. A kill here is recorded by the
//! tracker (as `simulated`) and removes nothing real.
//!
//! Built for millions of instances: a JSON file is read block by block ([`scan`]), each
//! instance parsed on its own with borrowed strings, and every repeated value (app, account,
//! region, zone, stack, detail, cluster, label keys, values and whole label sets) stored once
//! and shared (see `simian_core::name`). Errors name the file, the line, the instance's
//! 1-based position and its id.

mod fast;
mod json;
mod scan;

use std::borrow::Cow;
use std::collections::HashSet;
use std::hash::BuildHasher as _;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde::Deserialize;
use simian_core::{ClusterName, Instance, KillOutcome, Labels, Name, Provider, ProviderError};

/// A bad inventory file.
#[derive(Debug, thiserror::Error)]
pub enum InventoryError {
    /// The file cannot be read.
    #[error("{path}: cannot read the inventory: {message}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        message: String,
    },
    /// The file does not parse or has the wrong shape.
    #[error("{}: {message}", at(path, *line))]
    Parse {
        /// The file.
        path: PathBuf,
        /// 1-based line (0 when unknown).
        line: usize,
        /// What is wrong and how to fix it.
        message: String,
    },
    /// An instance is missing a required value, holds a bad one, or repeats an id.
    #[error("{}: instance #{position} (id {id:?}): {message}", at(path, *line))]
    Invalid {
        /// The file.
        path: PathBuf,
        /// 1-based line where the instance starts (0 when unknown).
        line: usize,
        /// 1-based position in the list.
        position: usize,
        /// Its id.
        id: String,
        /// What is wrong and how to fix it.
        message: String,
    },
}

fn at(path: &Path, line: usize) -> String {
    if line == 0 {
        path.display().to_string()
    } else {
        format!("{}:{line}", path.display())
    }
}

/// One instance as written, its strings borrowed from the file where possible.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Raw<'a> {
    #[serde(borrow)]
    pub(crate) id: Cow<'a, str>,
    #[serde(borrow)]
    pub(crate) app: Cow<'a, str>,
    #[serde(borrow)]
    pub(crate) account: Cow<'a, str>,
    #[serde(borrow)]
    pub(crate) region: Cow<'a, str>,
    #[serde(borrow, default)]
    pub(crate) zone: Cow<'a, str>,
    #[serde(borrow, default)]
    pub(crate) stack: Cow<'a, str>,
    #[serde(borrow, default)]
    pub(crate) detail: Cow<'a, str>,
    #[serde(borrow, default)]
    pub(crate) cluster: Cow<'a, str>,
    #[serde(borrow, default, deserialize_with = "pairs")]
    pub(crate) labels: Pairs<'a>,
}

/// Label pairs in file order, borrowed where the input allows.
pub(crate) type Pairs<'a> = Vec<(Cow<'a, str>, Cow<'a, str>)>;

/// `labels` as pairs in file order, without building a map per instance.
fn pairs<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Pairs<'de>, D::Error> {
    struct PairsVisitor;
    impl<'de> serde::de::Visitor<'de> for PairsVisitor {
        type Value = Pairs<'de>;
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("an object of string labels")
        }
        fn visit_map<M: serde::de::MapAccess<'de>>(
            self,
            mut map: M,
        ) -> Result<Self::Value, M::Error> {
            let mut out = Vec::with_capacity(map.size_hint().unwrap_or(4));
            while let Some((k, v)) = map.next_entry::<Borrowed<'de>, Borrowed<'de>>()? {
                out.push((k.0, v.0));
            }
            Ok(out)
        }
    }
    d.deserialize_map(PairsVisitor)
}

/// A string, borrowed from the input when it has no escapes.
struct Borrowed<'a>(Cow<'a, str>);

impl<'de> Deserialize<'de> for Borrowed<'de> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Text;
        impl<'de> serde::de::Visitor<'de> for Text {
            type Value = Borrowed<'de>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(Borrowed(Cow::Borrowed(v)))
            }
            fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
                Ok(Borrowed(Cow::Owned(v.to_string())))
            }
            fn visit_string<E>(self, v: String) -> Result<Self::Value, E> {
                Ok(Borrowed(Cow::Owned(v)))
            }
        }
        d.deserialize_str(Text)
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TomlFile<'a> {
    #[serde(borrow)]
    instances: Vec<Raw<'a>>,
}

type FastSet<T> = HashSet<T, foldhash::fast::RandomState>;

/// The text fields of an instance, in the order of [`Loader::last`]'s slots.
const APP: usize = 0;
const ACCOUNT: usize = 1;
const REGION: usize = 2;
const ZONE: usize = 3;
const STACK: usize = 4;
const DETAIL: usize = 5;
const CLUSTER: usize = 6;

/// Validates instances one by one and shares every repeated string.
struct Loader<'p> {
    path: &'p Path,
    names: FastSet<Name>,
    /// Every distinct label set with its hash, found by the label text as written (see
    /// `labels`); the hash is kept so that growing the table never re-reads the sets.
    label_sets: hashbrown::HashTable<(u64, Labels)>,
    /// The last value of each field: files list an instance's neighbours with the same app,
    /// cluster, zone... so most look-ups end here without hashing.
    last: [Name; 7],
    /// (hash of the id, position, line) of every instance, sorted once at the end to find
    /// repeated ids: far cheaper than a million-entry set probed at random.
    ids: Vec<(u64, u32, u32)>,
    hasher: foldhash::fast::FixedState,
    scratch: String,
    instances: Vec<Instance>,
}

impl<'p> Loader<'p> {
    fn new(path: &'p Path) -> Loader<'p> {
        Loader {
            path,
            names: FastSet::default(),
            label_sets: hashbrown::HashTable::new(),
            last: Default::default(),
            ids: Vec::new(),
            hasher: foldhash::fast::FixedState::with_seed(ID_HASH_SEED),
            scratch: String::new(),
            instances: Vec::new(),
        }
    }

    /// Room for `n` instances in all.
    fn reserve(&mut self, n: usize) {
        self.instances
            .reserve(n.saturating_sub(self.instances.len()));
        self.ids.reserve(n.saturating_sub(self.ids.len()));
    }

    /// The shared copy of `s`.
    fn name(&mut self, s: &str) -> Name {
        if let Some(n) = self.names.get(s) {
            return n.clone();
        }
        let n = Name::from(s);
        self.names.insert(n.clone());
        n
    }

    /// The shared copy of `s`, for field `slot`.
    fn field(&mut self, slot: usize, s: &str) -> Name {
        if self.last[slot] == *s {
            return self.last[slot].clone();
        }
        let n = self.name(s);
        self.last[slot] = n.clone();
        n
    }

    /// The shared label set for `pairs` (sorted here in place). A set met before is found
    /// from the text as written, without interning or allocating anything.
    fn labels(&mut self, pairs: &mut [(&str, &str)]) -> Labels {
        if pairs.is_empty() {
            return Labels::default();
        }
        pairs.sort_by(|a, b| a.0.cmp(b.0));
        // A key given twice keeps its last value: such a set takes the long way below.
        let unique = pairs.windows(2).all(|w| w[0].0 != w[1].0);
        let hash = label_hash(&self.hasher, pairs.iter().copied());
        if unique {
            let same = |(_, l): &(u64, Labels)| {
                l.len() == pairs.len()
                    && l.iter()
                        .zip(pairs.iter())
                        .all(|((lk, lv), (k, v))| lk == k && lv == v)
            };
            if let Some((_, shared)) = self.label_sets.find(hash, same) {
                return shared.clone();
            }
        }
        let named: Vec<(Name, Name)> = pairs
            .iter()
            .map(|(k, v)| (self.name(k), self.name(v)))
            .collect();
        let labels = Labels::from_pairs(named);
        let hash = label_hash(
            &self.hasher,
            labels.iter().map(|(k, v)| (k.as_str(), v.as_str())),
        );
        if let Some((_, shared)) = self.label_sets.find(hash, |(_, l)| *l == labels) {
            return shared.clone();
        }
        self.label_sets
            .insert_unique(hash, (hash, labels.clone()), |(h, _)| *h);
        labels
    }

    /// Adds an instance that passed [`check`]: its `fields` (id, app, account, region, zone,
    /// stack, detail, cluster), its labels (sorted here in place), its id made and hashed.
    /// Fails only past 4,294,967,294 instances.
    #[allow(clippy::too_many_arguments)]
    fn accept(
        &mut self,
        fields: [&str; 8],
        labels: &mut [(&str, &str)],
        id: Name,
        id_hash: u64,
        line: usize,
        position: usize,
    ) -> Result<(), InventoryError> {
        let [_, app, account, region, zone, stack, detail, cluster] = fields;
        let count = u32::try_from(self.instances.len())
            .ok()
            .filter(|n| *n < u32::MAX);
        let Some(index) = count else {
            return Err(InventoryError::Invalid {
                path: self.path.to_path_buf(),
                line,
                position,
                id: id.to_string(),
                message: "the inventory has more than 4,294,967,294 instances: split it".into(),
            });
        };
        self.ids
            .push((id_hash, index, u32::try_from(line).unwrap_or(u32::MAX)));
        let (stack, detail, cluster) = if cluster.is_empty() {
            let mut joined = std::mem::take(&mut self.scratch);
            ClusterName::join_into(&mut joined, app, stack, detail);
            let parts = (
                self.field(STACK, stack),
                self.field(DETAIL, detail),
                self.field(CLUSTER, &joined),
            );
            self.scratch = joined;
            parts
        } else if stack.is_empty() && detail.is_empty() {
            let parsed = ClusterName::parse(cluster);
            (
                self.field(STACK, &parsed.stack),
                self.field(DETAIL, &parsed.detail),
                self.field(CLUSTER, cluster),
            )
        } else {
            (
                self.field(STACK, stack),
                self.field(DETAIL, detail),
                self.field(CLUSTER, cluster),
            )
        };
        let instance = Instance {
            id,
            app: self.field(APP, app),
            account: self.field(ACCOUNT, account),
            region: self.field(REGION, region),
            zone: self.field(ZONE, zone),
            stack,
            detail,
            cluster,
            labels: self.labels(labels),
        };
        self.instances.push(instance);
        Ok(())
    }

    /// The instances, once no id repeats; else the first repetition in file order.
    fn finish(mut self) -> Result<Vec<Instance>, InventoryError> {
        self.ids.sort_unstable();
        let mut first_repeat: Option<(u32, u32, u32)> = None;
        for run in self.ids.chunk_by(|a, b| a.0 == b.0).filter(|r| r.len() > 1) {
            // Equal hashes: compare the ids themselves (a hash collision is not a repeat).
            for (k, later) in run.iter().enumerate().skip(1) {
                let earlier = run[..k].iter().find(|e| {
                    self.instances[e.1 as usize].id == self.instances[later.1 as usize].id
                });
                if let Some(earlier) = earlier
                    && first_repeat.is_none_or(|(at, _, _)| later.1 < at)
                {
                    first_repeat = Some((later.1, earlier.1, later.2));
                }
            }
        }
        if let Some((at, earlier, line)) = first_repeat {
            return Err(InventoryError::Invalid {
                path: self.path.to_path_buf(),
                line: line as usize,
                position: at as usize + 1,
                id: self.instances[at as usize].id.to_string(),
                message: format!("id repeats instance #{}: ids must be unique", earlier + 1),
            });
        }
        self.instances.shrink_to_fit();
        Ok(self.instances)
    }
}

/// The seed of the id hashes (any fixed value: the hashes only find repeats within a file).
const ID_HASH_SEED: u64 = 0x5349_4d49_414e;

/// The hash [`Loader::finish`] finds repeated ids by.
fn id_hash(id: &str) -> u64 {
    foldhash::fast::FixedState::with_seed(ID_HASH_SEED).hash_one(id)
}

impl<'a> Raw<'a> {
    /// id, app, account, region, zone, stack, detail, cluster.
    fn fields(&self) -> [&str; 8] {
        [
            &self.id,
            &self.app,
            &self.account,
            &self.region,
            &self.zone,
            &self.stack,
            &self.detail,
            &self.cluster,
        ]
    }

    fn label_pairs(&self) -> Vec<(&str, &str)> {
        self.labels
            .iter()
            .map(|(k, v)| (k.as_ref(), v.as_ref()))
            .collect()
    }
}

const FIELD_NAMES: [&str; 8] = [
    "id", "app", "account", "region", "zone", "stack", "detail", "cluster",
];

/// What is wrong with one instance as written, if anything: a blank required value, or a
/// control character anywhere. `maybe_control` false skips the second check, for a caller
/// that knows the text holds no byte that can start a control character.
fn check<'s>(
    fields: [&str; 8],
    mut labels: impl Iterator<Item = (&'s str, &'s str)>,
    maybe_control: bool,
) -> Result<(), String> {
    for (field, value) in FIELD_NAMES.iter().zip(fields).take(4) {
        let starts_visible = value
            .as_bytes()
            .first()
            .is_some_and(|b| b.is_ascii_graphic());
        if !starts_visible && value.trim().is_empty() {
            return Err(format!(
                "{field} is empty or blank: every instance needs a non-empty {field}"
            ));
        }
    }
    if !maybe_control {
        return Ok(());
    }
    let has_control = |v: &str| v.bytes().any(is_control_byte) && v.chars().any(char::is_control);
    let controlled = FIELD_NAMES
        .iter()
        .zip(fields)
        .find(|(_, v)| has_control(v))
        .map(|(field, _)| (*field).to_string())
        .or_else(|| {
            labels
                .find(|(k, v)| has_control(k) || has_control(v))
                .map(|(k, _)| format!("label {k:?}"))
        });
    match controlled {
        Some(field) => Err(format!(
            "{field} holds a control character: remove it (such text could rewrite the terminal it is printed to)"
        )),
        None => Ok(()),
    }
}

/// A hash of label pairs sorted by key, the same whether they are read from a file or held in
/// a [`Labels`].
fn label_hash<'s>(
    state: &foldhash::fast::FixedState,
    pairs: impl Iterator<Item = (&'s str, &'s str)>,
) -> u64 {
    use std::hash::Hasher as _;
    let mut h = state.build_hasher();
    for (k, v) in pairs {
        h.write(k.as_bytes());
        h.write_u8(0xff);
        h.write(v.as_bytes());
        h.write_u8(0xff);
    }
    h.finish()
}

/// Bytes that can start a control character in UTF-8: C0, DEL, and the lead byte of C1.
fn is_control_byte(b: u8) -> bool {
    b < 0x20 || b == 0x7f || b == 0xc2
}

/// False when `text`, which holds no C0 byte (the fast path refuses them), cannot hold a
/// control character: no DEL, and no lead byte of a C1 character. One vectorised search.
fn may_hold_control(text: &str) -> bool {
    memchr::memchr2(0x7f, 0xc2, text.as_bytes()).is_some()
}

/// Reads and validates an inventory file.
pub fn load(path: &Path) -> Result<Vec<Instance>, InventoryError> {
    let read_error = |e: &dyn std::fmt::Display| InventoryError::Read {
        path: path.to_path_buf(),
        message: e.to_string(),
    };
    let toml = path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("toml"));
    let mut loader = Loader::new(path);
    if toml {
        let text = std::fs::read_to_string(path).map_err(|e| read_error(&e))?;
        let file: TomlFile<'_> = toml::from_str(&text).map_err(|e| InventoryError::Parse {
            path: path.to_path_buf(),
            line: e.span().map_or(0, |s| {
                text[..s.start.min(text.len())].matches('\n').count() + 1
            }),
            message: e.message().trim().to_string(),
        })?;
        for (n, raw) in file.instances.iter().enumerate() {
            let fields = raw.fields();
            let mut labels = raw.label_pairs();
            check(fields, labels.iter().copied(), true).map_err(|message| {
                InventoryError::Invalid {
                    path: path.to_path_buf(),
                    line: 0,
                    position: n + 1,
                    id: raw.id.to_string(),
                    message,
                }
            })?;
            let id = Name::from(fields[0]);
            loader.accept(fields, &mut labels, id, id_hash(fields[0]), 0, n + 1)?;
        }
    } else {
        let file = std::fs::File::open(path).map_err(|e| read_error(&e))?;
        json::load(path, file, &mut loader)?;
    }
    loader.finish()
}

/// serde_json's message without its " at line L column C" (the line is given separately).
fn without_position(e: &serde_json::Error) -> String {
    let text = e.to_string();
    match text.rfind(" at line ") {
        Some(i) => text[..i].to_string(),
        None => text,
    }
}

/// A fleet read from an inventory file.
#[derive(Debug)]
pub struct StaticProvider {
    name: String,
    path: PathBuf,
    /// The parse made by `open`, handed to the first listing if the file has not changed
    /// since, so a one-shot command reads a large inventory once.
    first: Mutex<Option<(Stamp, Vec<Instance>)>>,
}

/// What identifies a file's version cheaply: length and modification time.
type Stamp = Option<(u64, std::time::SystemTime)>;

fn stamp(path: &Path) -> Stamp {
    let m = std::fs::metadata(path).ok()?;
    Some((m.len(), m.modified().ok()?))
}

impl StaticProvider {
    /// A provider over `path`, validated now so a bad file is a configuration error.
    pub fn open(
        name: impl Into<String>,
        path: impl Into<PathBuf>,
    ) -> Result<StaticProvider, InventoryError> {
        let path = path.into();
        let before = stamp(&path);
        let instances = load(&path)?;
        Ok(StaticProvider {
            name: name.into(),
            first: Mutex::new(Some((before, instances))),
            path,
        })
    }

    /// The inventory file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Provider for StaticProvider {
    fn name(&self) -> &str {
        &self.name
    }

    fn kind(&self) -> &'static str {
        "static"
    }

    fn instances(&self) -> Result<Vec<Instance>, ProviderError> {
        let first = self.first.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some((_, instances)) =
            first.filter(|(then, _)| then.is_some() && *then == stamp(&self.path))
        {
            return Ok(instances);
        }
        load(&self.path).map_err(|e| ProviderError::Inventory {
            provider: self.name.clone(),
            message: e.to_string(),
        })
    }

    fn terminate(
        &self,
        _instance: &Instance,
        _termination: i64,
    ) -> Result<KillOutcome, ProviderError> {
        Ok(KillOutcome::Simulated {
            detail: "static inventory: recorded only, nothing real was touched".into(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(name: &str, text: &str) -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        (dir, path)
    }

    #[test]
    fn json_and_toml_read_the_same() {
        let (_d1, json) = write(
            "inv.json",
            r#"{"instances": [{"id": "i-1", "app": "web", "account": "prod", "region": "us-east-1", "zone": "us-east-1a", "stack": "prod", "labels": {"team": "core"}}]}"#,
        );
        let (_d2, toml) = write(
            "inv.toml",
            "[[instances]]\nid = \"i-1\"\napp = \"web\"\naccount = \"prod\"\nregion = \"us-east-1\"\nzone = \"us-east-1a\"\nstack = \"prod\"\nlabels = { team = \"core\" }\n",
        );
        let a = load(&json).unwrap();
        assert_eq!(a, load(&toml).unwrap());
        assert_eq!(a[0].cluster, "web-prod");
        assert_eq!(a[0].labels.get("team").unwrap(), "core");
    }

    #[test]
    fn repeated_values_and_label_sets_are_stored_once() {
        let (_d, p) = write(
            "inv.json",
            r#"{"instances": [
                {"id": "i-1", "app": "web", "account": "prod", "region": "r", "stack": "s", "labels": {"team": "core", "env": "prod"}},
                {"id": "i-2", "app": "web", "account": "prod", "region": "r", "stack": "s", "labels": {"env": "prod", "team": "core"}},
                {"id": "i-\u0033", "app": "w\u0065b", "account": "prod", "region": "r", "cluster": "web-s"}
            ]}"#,
        );
        let v = load(&p).unwrap();
        assert_eq!(v[2].id, "i-3", "escapes are decoded");
        for field in [
            |i: &Instance| i.app.as_str().as_ptr(),
            |i: &Instance| i.cluster.as_str().as_ptr(),
        ] {
            assert_eq!(field(&v[0]), field(&v[1]));
            assert_eq!(field(&v[0]), field(&v[2]));
        }
        assert_eq!(v[0].labels, v[1].labels);
        assert!(
            std::ptr::eq(v[0].labels.as_slice(), v[1].labels.as_slice()),
            "one label set, shared"
        );
        assert_eq!((v[2].stack.as_str(), v[2].detail.as_str()), ("s", ""));
    }

    fn error(name: &str, text: &str) -> String {
        let (_d, p) = write(name, text);
        load(&p).unwrap_err().to_string()
    }

    #[test]
    fn errors_say_where_and_what() {
        let e = error(
            "inv.json",
            "{\"instances\": [\n{\"id\": \"i-1\", \"app\": \"web\", \"acount\": \"prod\", \"region\": \"r\"}]}",
        );
        assert!(
            e.contains("inv.json:2") && e.contains("instance #1") && e.contains("acount"),
            "{e}"
        );

        let e = error("inv.toml", "[[instances]]\nid = \"i-1\"\napp = 3\n");
        assert!(e.contains("inv.toml:3"), "{e}");

        let e = error(
            "inv.json",
            "{\"instances\": [\n{\"id\": \"a\", \"app\": \"w\", \"account\": \"p\", \"region\": \"r\"},\n{\"id\": \"a\", \"app\": \"w\", \"account\": \"p\", \"region\": \"r\"}]}",
        );
        assert!(
            e.contains("inv.json:3: instance #2")
                && e.contains("repeats instance #1")
                && e.contains("unique"),
            "{e}"
        );

        let e = error(
            "inv.json",
            r#"{"instances": [{"id": "a", "app": "", "account": "p", "region": "r"}]}"#,
        );
        assert!(
            e.contains("instance #1") && e.contains("app is empty"),
            "{e}"
        );

        let e = error(
            "inv.json",
            r#"{"instances": [{"id": "a", "app": "w", "account": "p", "region": "r"}, {"id": "  ", "app": "w", "account": "p", "region": "r"}]}"#,
        );
        assert!(
            e.contains("instance #2") && e.contains("id is empty or blank"),
            "{e}"
        );

        let e = error(
            "inv.json",
            r#"[{"id": "a", "app": "w", "account": "p", "region": "r"}]"#,
        );
        assert!(
            e.contains("bare array") && e.contains("\"instances\""),
            "{e}"
        );

        let e = error(
            "inv.json",
            r#"{"instances": [{"id": "a", "app": "w", "account": "p"}]}"#,
        );
        assert!(e.contains("missing field `region`"), "{e}");

        let e = load(Path::new("/nonexistent/inv.json"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("cannot read"), "{e}");
    }

    /// Many batches on the reader thread: the first bad instance in file order is the one
    /// reported, whatever fails later, and a repeat is found across batches.
    #[test]
    fn errors_come_in_file_order_across_batches() {
        let mut rows: Vec<String> = (0..20_000)
            .map(|n| format!(r#"{{"id": "i-{n}", "app": "web", "account": "p", "region": "r"}}"#))
            .collect();
        let good = rows.clone();
        rows[9_000] = r#"{"id": "i-9000", "app": " ", "account": "p", "region": "r"}"#.into();
        rows[15_000] = r#"{"id": 5}"#.into();
        let e = error(
            "inv.json",
            &format!("{{\"instances\": [\n{}\n]}}", rows.join(",\n")),
        );
        assert!(
            e.contains("inv.json:9002: instance #9001") && e.contains("app is empty"),
            "{e}"
        );

        let mut rows = good.clone();
        rows[15_000] = r#"{"id": 5}"#.into();
        let e = error(
            "inv.json",
            &format!("{{\"instances\": [\n{}\n]}}", rows.join(",\n")),
        );
        assert!(e.contains("inv.json:15002: instance #15001"), "{e}");

        let mut rows = good;
        rows[19_999] = rows[3].clone();
        let e = error(
            "inv.json",
            &format!("{{\"instances\": [\n{}\n]}}", rows.join(",\n")),
        );
        assert!(
            e.contains("instance #20000") && e.contains("repeats instance #4"),
            "{e}"
        );
    }

    #[test]
    fn control_characters_are_rejected_and_never_echoed() {
        for (field, text) in [
            (
                "id",
                r#"{"id": "i-\u001b[2J", "app": "w", "account": "p", "region": "r"}"#,
            ),
            (
                "zone",
                r#"{"id": "i", "app": "w", "account": "p", "region": "r", "zone": "a\u0007"}"#,
            ),
            (
                "label \"team\"",
                r#"{"id": "i", "app": "w", "account": "p", "region": "r", "labels": {"team": "\u009b"}}"#,
            ),
        ] {
            let e = error("inv.json", &format!("{{\"instances\": [{text}]}}"));
            assert!(e.contains(field) && e.contains("control character"), "{e}");
            assert!(!e.chars().any(|c| c.is_control()), "{e:?}");
        }
    }
}
