//! The tests tree: which test files (`test*.py`) and directories exist under
//! the tests root, as `./tests/...` paths. A file watcher marks the list stale
//! when the tree changes, so it is re-read only after a change, never per request.
//!
//! Only what resolves inside the project directory is listed (and so can be
//! run): a symlink pointing outside it, a dangling link, and a name that is
//! not UTF-8 are left out. Links inside the project are followed, each
//! directory at most once (a link to a parent cannot loop).

use notify::{RecursiveMode, Watcher};
use std::collections::HashSet;
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
        let mut walk = Walk {
            project_dir: self.inner.project_dir.canonicalize().unwrap_or_default(),
            seen: HashSet::new(),
            out: &mut out,
        };
        if let Some(real) = walk.inside(&root).filter(|r| r.is_dir()) {
            walk.out.push(format!("{prefix}/"));
            walk.seen.insert(real.clone());
            walk.dir(&real, &prefix);
        }
        out.sort();
        *self.inner.paths.write().unwrap_or_else(|p| p.into_inner()) = out;
    }
}

/// One scan of the tree.
struct Walk<'a> {
    /// Canonical: everything listed must resolve under it.
    project_dir: PathBuf,
    /// Directories already walked, by their real path.
    seen: HashSet<PathBuf>,
    out: &'a mut Vec<String>,
}

impl Walk<'_> {
    /// `path`'s real path if it exists and lies inside the project directory.
    fn inside(&self, path: &Path) -> Option<PathBuf> {
        let real = path.canonicalize().ok()?;
        real.starts_with(&self.project_dir).then_some(real)
    }

    /// Lists the tests and directories under `dir` (a real path), shown as `prefix/...`.
    fn dir(&mut self, dir: &Path, prefix: &str) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for entry in entries.flatten() {
            // A name that is not UTF-8 could not be asked for as a path.
            let Ok(name) = entry.file_name().into_string() else {
                continue;
            };
            if name.starts_with('.') || name == "__pycache__" {
                continue;
            }
            // Follows links; a dangling one or one leading out of the project is left out.
            let Some(real) = self.inside(&entry.path()) else {
                continue;
            };
            let path = format!("{prefix}/{name}");
            if real.is_dir() {
                if self.seen.insert(real.clone()) {
                    self.out.push(format!("{path}/"));
                    self.dir(&real, &path);
                }
            } else if real.is_file() && name.starts_with("test") && name.ends_with(".py") {
                self.out.push(path);
            }
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

    #[test]
    fn only_what_resolves_inside_the_project_is_listed() {
        use std::os::unix::ffi::OsStrExt;
        use std::os::unix::fs::symlink;
        let outside = tempfile::tempdir().expect("tmp");
        std::fs::write(outside.path().join("test_out.py"), "").expect("write");
        let dir = tempfile::tempdir().expect("tmp");
        let t = dir.path().join("tests");
        std::fs::create_dir_all(t.join("real")).expect("mkdir");
        std::fs::write(t.join("real/test_in.py"), "").expect("write");
        symlink("/etc/passwd", t.join("test_passwd.py")).expect("link");
        symlink(outside.path().join("test_out.py"), t.join("test_outside.py")).expect("link");
        symlink(outside.path(), t.join("outdir")).expect("link");
        symlink(t.join("nowhere.py"), t.join("test_dangling.py")).expect("link");
        symlink(t.join("real/test_in.py"), t.join("test_alias.py")).expect("link");
        symlink(&t, t.join("real/loop")).expect("link");
        let bad = std::ffi::OsStr::from_bytes(b"test_\xff.py");
        std::fs::write(t.join(bad), "").expect("write");
        let tree = TestTree::new(dir.path(), Path::new("tests"));
        assert_eq!(
            tree.list(),
            [
                "./tests/",
                "./tests/real/",
                "./tests/real/test_in.py",
                "./tests/test_alias.py"
            ]
        );
    }
}
