//! A static inventory file as a fleet: for planning and simulation at any scale.
//!
//! The file is JSON (`{"instances": [...]}`) or the same shape in TOML (`[[instances]]`),
//! chosen by its extension. Every instance needs `id`, `app`, `account` and `region`;
//! `zone`, `stack`, `detail`, `cluster` and `labels` are optional. The file is re-read on
//! every listing, so edits take effect without a restart. A kill here is recorded by the
//! tracker and removes nothing real.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde::Deserialize;
use simian_core::{Instance, KillOutcome, Provider, ProviderError};

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
    #[error("{path}:{line}: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// 1-based line (0 when unknown).
        line: usize,
        /// What the parser said.
        message: String,
    },
    /// An instance is missing a required field or repeats an id.
    #[error("{path}: instance #{index} (id {id:?}): {message}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// 0-based position in the list.
        index: usize,
        /// Its id.
        id: String,
        /// What is wrong and how to fix it.
        message: String,
    },
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    instances: Vec<Raw>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Raw {
    id: String,
    app: String,
    account: String,
    region: String,
    #[serde(default)]
    zone: String,
    #[serde(default)]
    stack: String,
    #[serde(default)]
    detail: String,
    #[serde(default)]
    cluster: String,
    #[serde(default)]
    labels: BTreeMap<String, String>,
}

/// Reads and validates an inventory file.
pub fn load(path: &Path) -> Result<Vec<Instance>, InventoryError> {
    let text = std::fs::read_to_string(path).map_err(|e| InventoryError::Read {
        path: path.to_path_buf(),
        message: e.to_string(),
    })?;
    let toml = path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("toml"));
    let file: File = if toml {
        toml::from_str(&text).map_err(|e| InventoryError::Parse {
            path: path.to_path_buf(),
            line: e.span().map_or(0, |s| {
                text[..s.start.min(text.len())].matches('\n').count() + 1
            }),
            message: e.message().to_string(),
        })?
    } else {
        serde_json::from_str(&text).map_err(|e| InventoryError::Parse {
            path: path.to_path_buf(),
            line: e.line(),
            message: e.to_string(),
        })?
    };
    let mut seen: HashMap<&str, usize> = HashMap::with_capacity(file.instances.len());
    for (index, raw) in file.instances.iter().enumerate() {
        let invalid = |message: String| InventoryError::Invalid {
            path: path.to_path_buf(),
            index,
            id: raw.id.clone(),
            message,
        };
        for (field, value) in [
            ("id", &raw.id),
            ("app", &raw.app),
            ("account", &raw.account),
            ("region", &raw.region),
        ] {
            if value.is_empty() {
                return Err(invalid(format!(
                    "{field} is empty: every instance needs a non-empty {field}"
                )));
            }
        }
        if let Some(first) = seen.insert(raw.id.as_str(), index) {
            return Err(invalid(format!(
                "id repeats instance #{first}: ids must be unique"
            )));
        }
    }
    drop(seen);
    Ok(file
        .instances
        .into_iter()
        .map(|r| {
            let mut i = Instance {
                id: r.id,
                app: r.app,
                account: r.account,
                region: r.region,
                zone: r.zone,
                stack: r.stack,
                detail: r.detail,
                cluster: r.cluster,
                labels: r.labels,
            };
            i.normalize();
            i
        })
        .collect())
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

    fn terminate(&self, _instance: &Instance) -> Result<KillOutcome, ProviderError> {
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
        assert_eq!(a[0].labels["team"], "core");
    }

    #[test]
    fn errors_say_where_and_what() {
        let (_d, p) = write(
            "inv.json",
            "{\"instances\": [\n{\"id\": \"i-1\", \"app\": \"web\", \"acount\": \"prod\", \"region\": \"r\"}]}",
        );
        let e = load(&p).unwrap_err().to_string();
        assert!(e.contains("inv.json:2") && e.contains("acount"), "{e}");

        let (_d, p) = write("inv.toml", "[[instances]]\nid = \"i-1\"\napp = 3\n");
        let e = load(&p).unwrap_err().to_string();
        assert!(e.contains("inv.toml:3"), "{e}");

        let (_d, p) = write(
            "inv.json",
            r#"{"instances": [{"id": "a", "app": "w", "account": "p", "region": "r"}, {"id": "a", "app": "w", "account": "p", "region": "r"}]}"#,
        );
        let e = load(&p).unwrap_err().to_string();
        assert!(e.contains("instance #1") && e.contains("unique"), "{e}");

        let (_d, p) = write(
            "inv.json",
            r#"{"instances": [{"id": "a", "app": "", "account": "p", "region": "r"}]}"#,
        );
        assert!(load(&p).unwrap_err().to_string().contains("app is empty"));

        let e = load(Path::new("/nonexistent/inv.json"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("cannot read"), "{e}");
    }
}
