//! `GET /metrics`: every PRODUCT.md family from the start, parsed with a
//! Prometheus text parser (prometheus-parse) plus a strict line check, and the
//! values move as runs run.

use crate::helpers::*;
use prometheus_parse::{Scrape, Value as Prom};
use std::time::Duration;

const FAMILIES: [&str; 10] = [
    "testscheduler_runs_total",
    "testscheduler_active_runs",
    "testscheduler_queue_length",
    "testscheduler_queue_wait_seconds",
    "testscheduler_run_duration_seconds",
    "testscheduler_env_busy",
    "testscheduler_log_lines_total",
    "testscheduler_ws_connections",
    "testscheduler_workers",
    "testscheduler_dispatch_errors_total",
];

/// Scrapes and parses `/metrics`, checking every line's syntax on the way.
fn scrape(app: &TestApp) -> Scrape {
    let (status, body, headers) = app.get_raw("/metrics", &[]);
    assert_eq!(status, 200);
    let ct = headers
        .iter()
        .find(|(k, _)| k == "content-type")
        .map(|(_, v)| v.clone());
    assert!(ct.is_some_and(|c| c.starts_with("application/openmetrics-text")));
    let text = String::from_utf8(body).expect("utf-8");
    for line in text.lines() {
        if line.starts_with("# HELP ") || line.starts_with("# TYPE ") || line == "# EOF" {
            continue;
        }
        let (series, value) = line.rsplit_once(' ').unwrap_or_else(|| panic!("no value: {line:?}"));
        assert!(value.parse::<f64>().is_ok(), "bad value: {line:?}");
        let name = series.split('{').next().expect("name");
        assert!(
            !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':'),
            "bad name: {line:?}"
        );
        if let Some(labels) = series.strip_prefix(name) {
            assert!(
                labels.is_empty() || (labels.starts_with('{') && labels.ends_with('}')),
                "{line:?}"
            );
        }
    }
    Scrape::parse(text.lines().map(|l| Ok(l.to_string()))).expect("Prometheus text")
}

/// The value of series `name` with `label` = `value` (or without labels).
fn value(s: &Scrape, name: &str, label: Option<(&str, &str)>) -> f64 {
    let sample = s
        .samples
        .iter()
        .find(|x| x.metric == name && label.is_none_or(|(k, v)| x.labels.get(k) == Some(v)))
        .unwrap_or_else(|| panic!("no series {name} {label:?}"));
    match &sample.value {
        Prom::Counter(v) | Prom::Gauge(v) | Prom::Untyped(v) => *v,
        other => panic!("{name} is not a number: {other:?}"),
    }
}

#[test]
fn every_family_is_there_from_the_start_with_a_series_per_environment() {
    let app = spawn_app_with(Opts::default().args(&["--envs", "1-3,7"]));
    let s = scrape(&app);
    for family in FAMILIES {
        assert!(
            s.samples
                .iter()
                .any(|x| x.metric == family || x.metric == format!("{family}_count")),
            "{family} missing"
        );
    }
    for env in ["1", "2", "3", "7"] {
        for family in [
            "testscheduler_queue_length",
            "testscheduler_env_busy",
            "testscheduler_queue_wait_seconds_count",
            "testscheduler_run_duration_seconds_count",
        ] {
            assert_eq!(value(&s, family, Some(("env", env))), 0.0, "{family} env {env}");
        }
    }
    let envs: Vec<&str> = s
        .samples
        .iter()
        .filter(|x| x.metric == "testscheduler_env_busy")
        .filter_map(|x| x.labels.get("env"))
        .collect();
    assert_eq!(envs.len(), 4, "{envs:?}");
    for status in ["succeeded", "failed", "cancelled", "timeout", "unknown"] {
        assert_eq!(value(&s, "testscheduler_runs_total", Some(("status", status))), 0.0);
    }
    for status in ["queued", "created", "running"] {
        assert_eq!(value(&s, "testscheduler_active_runs", Some(("status", status))), 0.0);
    }
    assert_eq!(value(&s, "testscheduler_log_lines_total", None), 0.0);
    assert_eq!(value(&s, "testscheduler_workers", None), 0.0);
    assert_eq!(value(&s, "testscheduler_dispatch_errors_total", None), 0.0);
}

#[test]
fn values_move_as_runs_run() {
    let app = spawn_app_with(
        Opts::default()
            .args(&["--envs", "1-3"])
            .env("SLOW_SECONDS", "60")
            .env("LINES", "500"),
    );
    let failed = app.queue(1, "./tests/test_fail.py")["id"].as_i64().expect("id");
    let lines = app.queue(3, "./tests/test_lines.py")["id"].as_i64().expect("id");
    let slow = app.queue(2, "./tests/test_slow.py")["id"].as_i64().expect("id");
    app.wait_run(slow, Duration::from_secs(60), |r| r["status"] == "running");
    let failed_run = app.wait_finished(failed, Duration::from_secs(60));
    let lines_run = app.wait_finished(lines, Duration::from_secs(60));
    wait_until(Duration::from_secs(30), "runs counted", || {
        let s = scrape(&app);
        value(&s, "testscheduler_runs_total", Some(("status", "failed"))) == 1.0
            && value(&s, "testscheduler_runs_total", Some(("status", "succeeded"))) == 1.0
    });
    let s = scrape(&app);
    assert_eq!(value(&s, "testscheduler_active_runs", Some(("status", "running"))), 1.0);
    assert_eq!(value(&s, "testscheduler_env_busy", Some(("env", "2"))), 1.0);
    assert_eq!(value(&s, "testscheduler_env_busy", Some(("env", "1"))), 0.0);
    assert_eq!(
        value(&s, "testscheduler_run_duration_seconds_count", Some(("env", "1"))),
        1.0
    );
    assert_eq!(
        value(&s, "testscheduler_queue_wait_seconds_count", Some(("env", "2"))),
        1.0
    );
    assert_eq!(
        value(&s, "testscheduler_run_duration_seconds_count", Some(("env", "2"))),
        0.0
    );
    // Lines stored so far: both finished runs' and what the slow one printed.
    let done = failed_run["lines"].as_f64().expect("lines") + lines_run["lines"].as_f64().expect("lines");
    assert!(done > 500.0);
    let counted = value(&s, "testscheduler_log_lines_total", None);
    let (_, now) = app.get(&format!("/api/testruns/{slow}"));
    assert!(
        counted >= done && counted <= done + now["lines"].as_f64().expect("lines") + 50.0,
        "{counted} vs {done}"
    );

    // One open /ws connection shows, and goes when it closes.
    let ws = app.ws();
    wait_until(Duration::from_secs(30), "ws counted", || {
        value(&scrape(&app), "testscheduler_ws_connections", None) == 1.0
    });
    drop(ws);
    wait_until(Duration::from_secs(30), "ws gone", || {
        value(&scrape(&app), "testscheduler_ws_connections", None) == 0.0
    });

    let (status, _) = app.post(&format!("/api/testruns/{slow}/cancel"), serde_json::json!({}));
    assert_eq!(status, 200);
    app.wait_finished(slow, Duration::from_secs(60));
    wait_until(Duration::from_secs(30), "cancel counted", || {
        let s = scrape(&app);
        value(&s, "testscheduler_runs_total", Some(("status", "cancelled"))) == 1.0
            && value(&s, "testscheduler_env_busy", Some(("env", "2"))) == 0.0
            && value(&s, "testscheduler_active_runs", Some(("status", "running"))) == 0.0
    });
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        // The cancelled run may still get the server's note line.
        let total = done
            + app.get(&format!("/api/testruns/{slow}")).1["lines"]
                .as_f64()
                .expect("lines");
        let counted = value(&scrape(&app), "testscheduler_log_lines_total", None);
        if counted == total {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{counted} lines counted, {total} stored"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}
