//! The queue through Redis: waiting runs reach remote workers one at a time
//! in order, and the envs file's variables travel with the job.

use super::*;

#[test]
fn queued_runs_go_through_a_remote_worker_in_order_with_their_variables() {
    let redis = Redis::start();
    let p = prefix();
    let envs = tempfile::tempdir().expect("tmp");
    let file = envs.path().join("envs.toml");
    std::fs::write(
        &file,
        "[[env]]\nid = 4\nname = \"rig-4\"\nlabels = [\"rig\"]\n[env.vars]\nBOARD = \"/dev/ttyUSB4\"\n",
    )
    .expect("write envs file");
    let app = redis_app(&redis, &p, &["--envs-file", file.to_str().expect("utf-8")]);
    std::fs::write(
        app.path().join("tests/test_board.py"),
        "import os\n\ndef test_board():\n    print('BOARD=' + os.environ.get('BOARD', 'unset'))\n",
    )
    .expect("write");
    let _w = Worker::spawn(&app, &app.base, &redis.url(), &p, "w1", &[]);
    let mut ids = Vec::new();
    for i in 0..3 {
        let (status, run) = app.post(
            "/api/testruns",
            json!({"username": format!("user{i}"), "labels": ["rig"], "path": "./tests/test_board.py", "wait": true}),
        );
        assert_eq!(status, 201, "{run}");
        ids.push(id_of(&run));
    }
    let mut starts = Vec::new();
    for id in &ids {
        let run = app.wait_finished(*id, T);
        assert_eq!(run["status"], "succeeded", "{run}");
        assert_eq!(run["env_id"], 4);
        starts.push(run["started_at"].as_str().expect("started").to_string());
        assert!(
            app.log_lines(*id).iter().any(|l| l.contains("BOARD=/dev/ttyUSB4")),
            "the variables reach the remote run"
        );
    }
    let mut sorted = starts.clone();
    sorted.sort();
    assert_eq!(starts, sorted, "in queue order");
}
