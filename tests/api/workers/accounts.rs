//! Remote workers need no account: with `--auth local` on (the container's
//! mode) they claim, report and heartbeat with the run token and the worker
//! secret alone, while everything else needs a session or a token.

use super::*;

#[test]
fn remote_workers_run_under_auth_local_without_an_account() {
    let redis = Redis::start();
    let prefix = prefix();
    let secret = "compose secret";
    let app = redis_app(&redis, &prefix, &["--auth", "local", "--worker-secret", secret]);
    let (code, token, err) = crate::accounts::cli_for(&app, "runner");
    assert_eq!(code, 0, "{err}");
    let _worker = Worker::spawn(
        &app,
        &app.base,
        &redis.url(),
        &prefix,
        "w-auth",
        &[("TESTSCHEDULER_WORKER_SECRET", secret)],
    );
    let bearer = format!("Bearer {token}");
    let queued = ureq::post(&app.url("/api/testruns"))
        .set("Authorization", &bearer)
        .send_json(json!({"env_id": 3, "path": "./tests/test_quick.py"}))
        .expect("queued with a token")
        .into_json::<Value>()
        .expect("json");
    assert_eq!(queued["username"], "ci-runner");
    let id = id_of(&queued);
    let deadline = Instant::now() + Duration::from_secs(60);
    let run = loop {
        let run: Value = ureq::get(&app.url(&format!("/api/testruns/{id}")))
            .set("Authorization", &bearer)
            .call()
            .expect("read with a token")
            .into_json()
            .expect("json");
        if run["status"] == "succeeded" || run["status"] == "failed" {
            break run;
        }
        assert!(
            Instant::now() < deadline,
            "the run never ended: {run}\n{}",
            app.server_log()
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(run["status"], "succeeded", "{run}");
    assert_eq!(run["worker"], "w-auth");
    // Without credentials the same read is refused.
    let status = match ureq::get(&app.url(&format!("/api/testruns/{id}"))).call() {
        Err(ureq::Error::Status(s, _)) => s,
        other => panic!("{other:?}"),
    };
    assert_eq!(status, 401);
}
