//! Process-group bookkeeping that survives a restart: a group is identified by
//! its leader's pid and start time, so a recycled pid is never killed by mistake.

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

/// The start time of process `pid` (field 22 of `/proc/PID/stat`, clock ticks since boot).
pub fn process_start_time(pid: i32) -> Option<u64> {
    stat_fields(pid).map(|(_, start)| start)
}

/// (process group, start time) of `pid`, from `/proc/PID/stat`.
fn stat_fields(pid: i32) -> Option<(i32, u64)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may hold spaces and parentheses: fields start after the last ')'.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // rest starts at field 3 (state): pgrp is field 5, starttime field 22.
    let pgrp = fields.get(2)?.parse().ok()?;
    let start = fields.get(19)?.parse().ok()?;
    Some((pgrp, start))
}

/// Kills every process still in group `pgid` that started no earlier than
/// `start_time` (the group's leader start), i.e. that belongs to that run.
/// Returns how many were killed.
pub fn kill_leftover_group(pgid: i32, start_time: u64) -> usize {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return 0;
    };
    let mut killed = 0;
    for entry in entries.flatten() {
        let Some(pid) = entry.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) else {
            continue;
        };
        if let Some((pgrp, start)) = stat_fields(pid) {
            if pgrp == pgid && start >= start_time && kill(Pid::from_raw(pid), Signal::SIGKILL).is_ok() {
                killed += 1;
            }
        }
    }
    killed
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_own_start_time() {
        let me = std::process::id() as i32;
        assert!(process_start_time(me).is_some());
        assert!(process_start_time(i32::MAX).is_none());
    }
}
