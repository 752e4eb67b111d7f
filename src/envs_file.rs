//! The server's current set of environments: fixed by `--envs`, or read from
//! `--envs-file` and read again whenever the file changes. A file that does
//! not parse or validate keeps the last good set; the error is logged and
//! shown by `GET /api/envs/config`. Parsing lives in `domain::catalog`.

use crate::domain::{run::now, Catalog, EnvSet};
use serde::Serialize;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::SystemTime;

/// How often the file's modification time is looked at.
pub const POLL: std::time::Duration = std::time::Duration::from_millis(300);

/// `GET /api/envs/config`.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct FileStatus {
    /// The envs file, or null with `--envs`.
    pub file: Option<String>,
    /// When the set in use was read (RFC 3339), or null with `--envs`.
    pub loaded_at: Option<String>,
    /// Why the file's current text is not in use, or null when it is.
    pub error: Option<String>,
}

/// The environments in use; cheap to clone.
#[derive(Clone)]
pub struct Environments {
    inner: Arc<RwLock<Current>>,
    file: Option<PathBuf>,
}

struct Current {
    catalog: Arc<Catalog>,
    loaded_at: Option<String>,
    error: Option<String>,
    /// Modification time and size of the file when last read.
    seen: Option<(SystemTime, u64)>,
}

impl Environments {
    /// The ids of `--envs`.
    pub fn fixed(set: EnvSet) -> Environments {
        Environments {
            inner: Arc::new(RwLock::new(Current {
                catalog: Arc::new(Catalog::Ids(set)),
                loaded_at: None,
                error: None,
                seen: None,
            })),
            file: None,
        }
    }

    /// Reads `file`; at start it must be good.
    pub fn from_file(file: &Path) -> Result<Environments, String> {
        let seen = stamp(file);
        let text = std::fs::read_to_string(file).map_err(|e| format!("{}: {e}", file.display()))?;
        let catalog = Catalog::from_toml(&text).map_err(|e| format!("{}: {e}", file.display()))?;
        Ok(Environments {
            inner: Arc::new(RwLock::new(Current {
                catalog: Arc::new(catalog),
                loaded_at: Some(now()),
                error: None,
                seen,
            })),
            file: Some(file.to_path_buf()),
        })
    }

    /// The set in use now.
    pub fn catalog(&self) -> Arc<Catalog> {
        self.read().catalog.clone()
    }

    /// What `GET /api/envs/config` shows.
    pub fn status(&self) -> FileStatus {
        let cur = self.read();
        FileStatus {
            file: self.file.as_ref().map(|f| f.display().to_string()),
            loaded_at: cur.loaded_at.clone(),
            error: cur.error.clone(),
        }
    }

    /// Reads the file again if it changed since it was last read. Returns the
    /// previous set when a new one is now in use.
    pub fn reload_if_changed(&self) -> Option<Arc<Catalog>> {
        let file = self.file.as_ref()?;
        let seen = stamp(file);
        if seen == self.read().seen {
            return None;
        }
        let parsed = std::fs::read_to_string(file)
            .map_err(|e| e.to_string())
            .and_then(|text| Catalog::from_toml(&text));
        let mut cur = self.inner.write().unwrap_or_else(|p| p.into_inner());
        cur.seen = seen;
        match parsed {
            Ok(catalog) => {
                cur.error = None;
                cur.loaded_at = Some(now());
                if *cur.catalog == catalog {
                    return None;
                }
                tracing::info!(file = %file.display(), envs = catalog.ids().len(), "envs file read again");
                Some(std::mem::replace(&mut cur.catalog, Arc::new(catalog)))
            }
            Err(e) => {
                tracing::error!(file = %file.display(), error = %e, "envs file refused; the last good set stays in use");
                cur.error = Some(e);
                None
            }
        }
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Current> {
        self.inner.read().unwrap_or_else(|p| p.into_inner())
    }
}

fn stamp(file: &Path) -> Option<(SystemTime, u64)> {
    let meta = std::fs::metadata(file).ok()?;
    Some((meta.modified().ok()?, meta.len()))
}
