//! The tests tree: which test files (`test*.py`) and directories exist under
//! the tests root, as `./tests/...` paths. A file watcher marks the list stale
//! when the tree changes, so it is re-read only after a change, never per request.

use notify::{RecursiveMode, Watcher};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};

/// The discovered tests; cheap to clone.
#[derive(Clone)]
pub struct TestTree {
    inner: Arc<Inner>,
}

struct Inner {
    project_dir: PathBuf,
    tests_dir: PathBuf,
    stale: AtomicBool,
    /// Whether a watcher tells us about changes; without one every read rescans.
    watched: AtomicBool,
    paths: RwLock<Vec<String>>,
    watcher: std::sync::Mutex<Option<notify::RecommendedWatcher>>,
}

impl TestTree {
    /// Scans `project_dir/tests_dir` and watches it for changes.
    pub fn new(project_dir: &Path, tests_dir: &Path) -> TestTree {
        let tree = TestTree {
            inner: Arc::new(Inner {
                project_dir: project_dir.to_path_buf(),
                tests_dir: tests_dir.to_path_buf(),
                stale: AtomicBool::new(true),
                watched: AtomicBool::new(false),
                paths: RwLock::new(Vec::new()),
                watcher: std::sync::Mutex::new(None),
            }),
        };
        tree.watch();
        tree
    }

    fn watch(&self) {
        let weak = Arc::downgrade(&self.inner);
        let handler = move |res: notify::Result<notify::Event>| {
            if let Some(inner) = weak.upgrade() {
                if res.is_err() || res.is_ok_and(|e| !e.kind.is_access()) {
                    inner.stale.store(true, Ordering::SeqCst);
                }
            }
        };
        let root = self.inner.project_dir.join(&self.inner.tests_dir);
        let watcher = notify::recommended_watcher(handler).and_then(|mut w| {
            w.watch(&root, RecursiveMode::Recursive)?;
            Ok(w)
        });
        match watcher {
            Ok(w) => {
                self.inner.watched.store(true, Ordering::SeqCst);
                *self.inner.watcher.lock().unwrap_or_else(|p| p.into_inner()) = Some(w);
            }
            Err(e) => {
                tracing::warn!(root = %root.display(), error = %e, "cannot watch the tests tree; it is re-read on every request");
            }
        }
    }

    /// The current list, sorted.
    pub fn list(&self) -> Vec<String> {
        if self.inner.stale.swap(false, Ordering::SeqCst) || !self.inner.watched.load(Ordering::SeqCst) {
            self.rescan();
        }
        self.inner.paths.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Whether `path` is a discovered test; looks at the tree once more before saying no
    /// (a file created a moment ago is accepted).
    pub fn contains(&self, path: &str) -> bool {
        if self.list().binary_search_by(|p| p.as_str().cmp(path)).is_ok() {
            return true;
        }
        self.rescan();
        self.inner
            .paths
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .binary_search_by(|p| p.as_str().cmp(path))
            .is_ok()
    }

    fn rescan(&self) {
        let prefix = format!("./{}", self.inner.tests_dir.to_string_lossy().trim_end_matches('/'));
        let root = self.inner.project_dir.join(&self.inner.tests_dir);
        let mut out = Vec::new();
        if root.is_dir() {
            out.push(format!("{prefix}/"));
            walk(&root, &prefix, &mut out);
        }
        out.sort();
        *self.inner.paths.write().unwrap_or_else(|p| p.into_inner()) = out;
    }
}

fn walk(dir: &Path, prefix: &str, out: &mut Vec<String>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with('.') || name == "__pycache__" {
            continue;
        }
        let Ok(kind) = entry.file_type() else { continue };
        let path = format!("{prefix}/{name}");
        if kind.is_dir() {
            out.push(format!("{path}/"));
            walk(&entry.path(), &path, out);
        } else if name.starts_with("test") && name.ends_with(".py") {
            out.push(path);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_test_files_and_dirs_only() {
        let dir = tempfile::tempdir().expect("tmp");
        let t = dir.path().join("tests");
        std::fs::create_dir_all(t.join("sub/__pycache__")).expect("mkdir");
        for f in [
            "test_a.py",
            "conftest.py",
            "helper.py",
            "sub/test_b.py",
            "sub/__pycache__/test_b.cpython.pyc",
        ] {
            std::fs::write(t.join(f), "").expect("write");
        }
        let tree = TestTree::new(dir.path(), Path::new("tests"));
        assert_eq!(
            tree.list(),
            ["./tests/", "./tests/sub/", "./tests/sub/test_b.py", "./tests/test_a.py"]
        );
        std::fs::write(t.join("test_new.py"), "").expect("write");
        assert!(tree.contains("./tests/test_new.py"));
        assert!(!tree.contains("./tests/helper.py"));
    }
}
