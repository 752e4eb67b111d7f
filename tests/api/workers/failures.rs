//! What happens when something goes away: a killed worker, a restarted
//! server, a worker cut off for a lease, cancel, timeout, and the worker's
//! SIGTERM handling.

use super::*;

#[test]
fn a_killed_worker_s_run_ends_unknown_and_frees_its_environment() {
    let redis = Redis::start();
    let p = prefix();
    let app = redis_app(&redis, &p, &["--lease", "2"]);
    let pid_file = app.path().join("slow.pid");
    let pid_env = pid_file.display().to_string();
    let mut worker = Worker::spawn(
        &app,
        &app.base,
        &redis.url(),
        &p,
        "doomed",
        &[("SLOW_SECONDS", "60"), ("PID_FILE", pid_env.as_str())],
    );
    let id = id_of(&app.queue(3, "./tests/test_slow.py"));
    app.wait_run(id, T, |r| r["status"] == "running" && r["lines"].as_u64() > Some(10));
    let held_since = Instant::now();
    worker.kill();
    kill_pid_file(&pid_file);

    let run = app.wait_finished(id, Duration::from_secs(20));
    assert_eq!(run["status"], "unknown", "{run}");
    assert!(
        held_since.elapsed() >= Duration::from_secs(1),
        "judged by the lease, not at once"
    );
    assert_eq!(env_holder(&app, 3), Value::Null, "the environment is free again");
    let lines = app.log_lines(id);
    assert!(
        lines.iter().any(|l| l.contains("tick 0")),
        "output before the kill is kept"
    );
    assert!(
        lines.last().is_some_and(|l| l.contains("stopped reporting")),
        "{lines:?}"
    );
    // Another run can take the environment at once.
    app.queue(3, "./tests/test_quick.py");
    wait_until(Duration::from_secs(10), "the silent worker leaves the list", || {
        let (_, list) = app.get("/api/workers");
        !list.as_array().into_iter().flatten().any(|w| w["id"] == "doomed")
    });
}

#[test]
fn a_restarted_server_gets_the_whole_log_from_a_worker_that_buffered() {
    let redis = Redis::start();
    let p = prefix();
    let mut app = redis_app(&redis, &p, &[]);
    let proxy = Proxy::start(app.port);
    let _worker = Worker::spawn(&app, &proxy.url(), &redis.url(), &p, "steady", &[("SLOW_SECONDS", "5")]);
    let id = id_of(&app.queue(4, "./tests/test_slow.py"));
    app.wait_run(id, T, |r| r["status"] == "running" && r["lines"].as_u64() > Some(8));

    app.kill();
    // The outage itself: the test keeps printing and the worker keeps its lines.
    std::thread::sleep(Duration::from_millis(1500));
    app.start().expect("restart");
    proxy.backend.store(app.port, Ordering::SeqCst);

    let run = app.wait_finished(id, T);
    assert_eq!(run["status"], "succeeded", "{run}");
    let lines = app.log_lines(id);
    assert_eq!(run["lines"].as_u64(), Some(lines.len() as u64));
    let ticks: Vec<&String> = lines
        .iter()
        .filter(|l| l.starts_with("tick ") || l.contains("tick 0"))
        .collect();
    let expected: Vec<String> = (0..50).map(|i| format!("tick {i}")).collect();
    let got: Vec<String> = ticks
        .iter()
        .map(|l| {
            l.rsplit_once("tick ")
                .map(|(_, n)| format!("tick {n}"))
                .unwrap_or_default()
        })
        .collect();
    assert_eq!(got, expected, "every line once, in order, across the restart");
    assert_eq!(env_holder(&app, 4), Value::Null);
}

#[test]
fn cancelling_a_remote_run_stops_it_and_frees_the_environment_once_stopped() {
    let redis = Redis::start();
    let p = prefix();
    let app = redis_app(&redis, &p, &[]);
    let _worker = Worker::spawn(&app, &app.base, &redis.url(), &p, "w", &[("SLOW_SECONDS", "60")]);
    let id = id_of(&app.queue(9, "./tests/test_slow.py"));
    app.wait_run(id, T, |r| r["status"] == "running" && r["lines"].as_u64() > Some(10));
    let (status, run) = app.post(&format!("/api/testruns/{id}/cancel"), json!({}));
    assert_eq!((status, run["status"].as_str()), (200, Some("cancelled")));
    wait_until(
        Duration::from_secs(20),
        "env freed once the worker stopped the run",
        || env_holder(&app, 9) == Value::Null,
    );
    let lines = app.log_lines(id);
    assert!(lines.last().is_some_and(|l| l.contains("cancelled")), "{lines:?}");
    let (_, run) = app.get(&format!("/api/testruns/{id}"));
    assert_eq!(run["status"], "cancelled");
}

#[test]
fn sigterm_lets_the_running_run_finish_then_the_worker_exits() {
    let redis = Redis::start();
    let p = prefix();
    let app = redis_app(&redis, &p, &[]);
    let mut worker = Worker::spawn(&app, &app.base, &redis.url(), &p, "polite", &[("SLOW_SECONDS", "2")]);
    let id = id_of(&app.queue(10, "./tests/test_slow.py"));
    app.wait_run(id, T, |r| r["status"] == "running");
    worker.signal(nix::sys::signal::Signal::SIGTERM);
    // Queued after the SIGTERM: this worker must not take it.
    let waiting = id_of(&app.queue(11, "./tests/test_quick.py"));
    let status = worker.wait_exit(T);
    assert!(status.success(), "{status:?}");
    let run = app.wait_finished(id, T);
    assert_eq!(run["status"], "succeeded", "{run}");
    assert_eq!(app.log_lines(id).iter().filter(|l| l.contains("tick ")).count(), 20);
    let (_, w) = app.get(&format!("/api/testruns/{waiting}"));
    assert_eq!(w["status"], "created", "{w}");
    let mut log = String::new();
    let _ = std::fs::File::open(&worker.log).and_then(|mut f| f.read_to_string(&mut log));
    assert!(log.contains("taking no new run"), "{log}");
}

#[test]
fn a_remote_run_past_its_timeout_ends_timeout_and_frees_its_environment() {
    let redis = Redis::start();
    let p = prefix();
    let app = redis_app(&redis, &p, &[]);
    let _worker = Worker::spawn(&app, &app.base, &redis.url(), &p, "w", &[("SLOW_SECONDS", "60")]);
    let (status, run) = app.post(
        "/api/testruns",
        json!({"username": "tester", "env_id": 13, "path": "./tests/test_slow.py", "timeout_s": 1}),
    );
    assert_eq!(status, 201, "{run}");
    let id = id_of(&run);
    let run = app.wait_finished(id, T);
    assert_eq!(run["status"], "timeout", "{run}");
    wait_until(
        Duration::from_secs(20),
        "env freed once the worker stopped the run",
        || env_holder(&app, 13) == Value::Null,
    );
    let (_, run) = app.get(&format!("/api/testruns/{id}"));
    assert_eq!(
        run["status"], "timeout",
        "the worker's end does not change the server's verdict"
    );
    let lines = app.log_lines(id);
    assert!(
        lines.last().is_some_and(|l| l.contains("timed out")),
        "the log says why the run stopped: {lines:?}"
    );
}

#[test]
fn a_worker_that_lost_the_server_for_a_lease_stops_its_run_and_delivers_its_lines() {
    let redis = Redis::start();
    let p = prefix();
    let mut app = redis_app(&redis, &p, &["--lease", "2"]);
    let proxy = Proxy::start(app.port);
    let pid_file = app.path().join("slow.pid");
    let pid_env = pid_file.display().to_string();
    let _worker = Worker::spawn(
        &app,
        &proxy.url(),
        &redis.url(),
        &p,
        "cut-off",
        &[("SLOW_SECONDS", "60"), ("PID_FILE", pid_env.as_str())],
    );
    let id = id_of(&app.queue(14, "./tests/test_slow.py"));
    app.wait_run(id, T, |r| r["status"] == "running" && r["lines"].as_u64() > Some(10));
    let pid: i32 = std::fs::read_to_string(&pid_file)
        .expect("pid file")
        .trim()
        .parse()
        .expect("pid");

    app.kill();
    // Nobody told the worker anything: it stops the run itself after a lease.
    wait_until(Duration::from_secs(15), "the worker stopped its run", || !alive(pid));
    app.start().expect("restart");
    proxy.backend.store(app.port, Ordering::SeqCst);

    // The worker reports what it printed but no end: the lease decides.
    let run = app.wait_finished(id, T);
    assert_eq!(run["status"], "unknown", "{run}");
    let lines = app.log_lines(id);
    let ticks: Vec<u64> = lines
        .iter()
        .filter_map(|l| l.rsplit_once("tick ").and_then(|(_, n)| n.trim().parse().ok()))
        .collect();
    assert!(ticks.len() > 10, "{lines:?}");
    assert_eq!(ticks, (0..ticks.len() as u64).collect::<Vec<_>>(), "no gap, no repeat");
    assert!(
        lines
            .iter()
            .any(|l| l.contains("could not be reached for a whole lease")),
        "the stop's own line arrived and says why: {lines:?}"
    );
    assert_eq!(env_holder(&app, 14), Value::Null);
}

#[test]
fn a_second_sigterm_cancels_the_running_run_and_the_worker_exits_once_it_is_reported() {
    let redis = Redis::start();
    let p = prefix();
    let app = redis_app(&redis, &p, &[]);
    let mut worker = Worker::spawn(&app, &app.base, &redis.url(), &p, "hasty", &[("SLOW_SECONDS", "60")]);
    let id = id_of(&app.queue(15, "./tests/test_slow.py"));
    app.wait_run(id, T, |r| r["status"] == "running" && r["lines"].as_u64() > Some(10));
    worker.signal(nix::sys::signal::Signal::SIGTERM);
    // Two signals sent at once may arrive as one: send the second once the first is handled.
    wait_until(T, "the first SIGTERM handled", || {
        worker.log().contains("taking no new run")
    });
    worker.signal(nix::sys::signal::Signal::SIGTERM);
    let status = worker.wait_exit(Duration::from_secs(20));
    assert!(status.success(), "{status:?}");
    // The worker exited only after its end report: the run is over already.
    let (_, run) = app.get(&format!("/api/testruns/{id}"));
    assert_eq!(run["status"], "failed", "{run}");
    let lines = app.log_lines(id);
    assert!(lines.last().is_some_and(|l| l.contains("run cancelled")), "{lines:?}");
    assert_eq!(env_holder(&app, 15), Value::Null);
}
