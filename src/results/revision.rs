//! The project directory's git revision when a run starts: `git rev-parse
//! HEAD` and `git status --porcelain --untracked-files=no`, run directly
//! (never a shell), each given at most [`GIT_TIMEOUT`]. Outside git, without
//! git, or past the time: `None`.

use super::Revision;
use std::io::Read;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Longest a git command may take.
pub const GIT_TIMEOUT: Duration = Duration::from_secs(5);

/// The revision of `dir`, or `None`.
pub fn of(dir: &Path) -> Option<Revision> {
    let head = git(dir, &["rev-parse", "--verify", "-q", "HEAD"])?;
    let commit = head.trim().to_string();
    if commit.is_empty() || !commit.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let status = git(dir, &["status", "--porcelain", "--untracked-files=no"])?;
    Some(Revision {
        commit,
        dirty: !status.trim().is_empty(),
    })
}

/// Runs `git ARGS` in `dir`; its stdout when it exits 0 within the time.
fn git(dir: &Path, args: &[&str]) -> Option<String> {
    let mut child = Command::new("git")
        .args(args)
        .current_dir(dir)
        // No lock files, no pager, no prompts.
        .env("GIT_OPTIONAL_LOCKS", "0")
        .env("GIT_TERMINAL_PROMPT", "0")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .ok()?;
    let mut stdout = child.stdout.take()?;
    // Read on a thread, so that a full pipe never blocks the wait.
    let reader = std::thread::spawn(move || {
        let mut out = Vec::new();
        let _ = (&mut stdout).take(1 << 20).read_to_end(&mut out);
        out
    });
    let deadline = Instant::now() + GIT_TIMEOUT;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break Some(status),
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(5)),
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
        }
    };
    let out = reader.join().ok()?;
    if !status?.success() {
        return None;
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(dir: &Path, args: &[&str]) {
        let ok = Command::new("git")
            .args(args)
            .current_dir(dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        assert!(ok, "git {args:?}");
    }

    #[test]
    fn outside_git_there_is_none_and_inside_it_tracks_dirty() {
        let dir = tempfile::tempdir().expect("tmp");
        assert_eq!(of(dir.path()), None);
        if Command::new("git").arg("--version").output().is_err() {
            return; // no git here: nothing more to check
        }
        let p = dir.path();
        run(p, &["init", "-q"]);
        assert_eq!(of(p), None, "no commit yet");
        std::fs::write(p.join("a.txt"), "1").expect("write");
        run(p, &["add", "a.txt"]);
        run(
            p,
            &["-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-m", "one"],
        );
        let clean = of(p).expect("a revision");
        assert_eq!(clean.commit.len(), 40);
        assert!(!clean.dirty);
        std::fs::write(p.join("untracked.txt"), "x").expect("write");
        assert!(!of(p).expect("rev").dirty, "untracked files do not count");
        std::fs::write(p.join("a.txt"), "2").expect("write");
        assert!(of(p).expect("rev").dirty);
    }
}
