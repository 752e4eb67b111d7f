//! The embedded web app: caching, compression, deep links, API 404s.

use crate::helpers::*;

fn header<'a>(hs: &'a [(String, String)], name: &str) -> Option<&'a str> {
    hs.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
}

#[test]
fn index_is_revalidated_and_deep_links_load_the_app() {
    let app = spawn_app_with(Opts::default().args(&["--workers", "0"]));
    let (status, body, hs) = app.get_raw("/", &[]);
    assert_eq!(status, 200);
    assert!(
        String::from_utf8_lossy(&body).contains("<!doctype html")
            || String::from_utf8_lossy(&body).contains("<!DOCTYPE html")
    );
    assert_eq!(header(&hs, "cache-control"), Some("no-cache"));
    let etag = header(&hs, "etag").expect("etag").to_string();
    let (status, _, _) = app.get_raw("/", &[("If-None-Match", &etag)]);
    assert_eq!(status, 304);
    for deep in ["/runs/42", "/runs/42?x=1", "/some/where"] {
        let (status, deep_body, _) = app.get_raw(deep, &[]);
        assert_eq!(status, 200, "{deep}");
        assert_eq!(deep_body, body, "{deep}");
    }
    let (status, body) = app.get("/api/does/not/exist");
    assert_eq!(status, 404);
    assert_eq!(body["code"], "not_found");
}

#[test]
fn hashed_assets_are_immutable_and_precompressed() {
    let app = spawn_app_with(Opts::default().args(&["--workers", "0"]));
    let (_, index, _) = app.get_raw("/", &[]);
    let index = String::from_utf8_lossy(&index).to_string();
    let Some(start) = index.find("/assets/") else {
        // The placeholder page of a build without the web app has no assets.
        assert!(index.contains("testscheduler"));
        return;
    };
    let rest = &index[start..];
    let end = rest.find('"').expect("quoted asset path");
    let asset = &rest[..end];
    let (status, plain, hs) = app.get_raw(asset, &[("Accept-Encoding", "identity")]);
    assert_eq!(status, 200, "{asset}");
    assert_eq!(
        header(&hs, "cache-control"),
        Some("public, max-age=31536000, immutable")
    );
    assert!(header(&hs, "content-encoding").is_none());
    let (status, packed, hs) = app.get_raw(asset, &[("Accept-Encoding", "gzip, br")]);
    assert_eq!(status, 200);
    if header(&hs, "content-encoding").is_some() {
        assert!(packed.len() < plain.len());
    }
    let (status, _, _) = app.get_raw("/assets/missing-abc123.js", &[]);
    assert_eq!(status, 404);
}
