//! `simian.toml`: where it is, what it says, and what it means.
//!
//! Its own crate because every front end needs the same reading of it: the CLI, the server
//! (`simian serve`) and the experiment runner resolve one file into one [`Settings`].
//!
//! Two stages, as ripgrep parses its flags: [`raw`] deserialises the file and keeps spans;
//! [`resolve`] validates every value and builds typed settings, turning each mistake into a
//! [`ConfigError`] that names the file, the line, the key and the fix.

mod raw;
mod resolve;

use std::path::{Path, PathBuf};

pub use resolve::{
    DrillSettings, NOTIFIER_EVENTS, NotifierKind, NotifierSettings, OutageSettings,
    ProviderSettings, ServerSettings, Settings, probe_url_problem,
};

/// The environment variable naming the config file.
pub const ENV_CONFIG: &str = "SIMIAN_CONFIG";

/// A configuration mistake: exit code 2.
#[derive(Debug, thiserror::Error)]
#[error("{location}: {message}{}", hint.as_ref().map(|h| format!("\n  hint: {h}")).unwrap_or_default())]
pub struct ConfigError {
    /// `path:line` or `path`.
    pub location: String,
    /// What is wrong, naming the key.
    pub message: String,
    /// How to fix it.
    pub hint: Option<String>,
}

impl ConfigError {
    /// An error at `line` of `path` (0: the whole file).
    pub fn at(
        path: &Path,
        line: usize,
        message: impl Into<String>,
        hint: Option<String>,
    ) -> ConfigError {
        let location = if line == 0 {
            path.display().to_string()
        } else {
            format!("{}:{line}", path.display())
        };
        ConfigError {
            location,
            message: message.into(),
            hint,
        }
    }
}

/// Which config file to read: `--config`, else `$SIMIAN_CONFIG`, else `./simian.toml`.
pub fn locate(flag: Option<&Path>, env: Option<&str>) -> PathBuf {
    match (flag, env) {
        (Some(path), _) => path.to_path_buf(),
        (None, Some(env)) if !env.is_empty() => PathBuf::from(env),
        _ => PathBuf::from("simian.toml"),
    }
}

/// Reads and resolves the config at `path`.
pub fn load(path: &Path) -> Result<Settings, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        let hint = if e.kind() == std::io::ErrorKind::NotFound {
            Some("write a simian.toml (see docs/config.md), or pass --config FILE or set SIMIAN_CONFIG".to_string())
        } else {
            None
        };
        ConfigError::at(path, 0, format!("cannot read the configuration: {e}"), hint)
    })?;
    resolve::resolve(path, &text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookup_order() {
        assert_eq!(
            locate(Some(Path::new("a.toml")), Some("b.toml")),
            PathBuf::from("a.toml")
        );
        assert_eq!(locate(None, Some("b.toml")), PathBuf::from("b.toml"));
        assert_eq!(locate(None, Some("")), PathBuf::from("simian.toml"));
        assert_eq!(locate(None, None), PathBuf::from("simian.toml"));
    }
}
