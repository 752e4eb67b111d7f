//! The embedded web app: files of `assets/` (built from `web/`) served from the
//! binary. Hashed files under `assets/` are immutable for a year; everything
//! else (`index.html`) is `no-cache` with an ETag; `.br`/`.gz` siblings are
//! served when the client accepts them; unknown paths load the app.

use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpRequest, HttpResponse};
use rust_embed::RustEmbed;

#[derive(RustEmbed)]
#[folder = "assets/"]
struct Assets;

const IMMUTABLE: &str = "public, max-age=31536000, immutable";

/// Any GET outside `/api` and `/ws`.
pub async fn serve(req: HttpRequest) -> HttpResponse {
    let path = req.path().trim_start_matches('/');
    let path = if path.is_empty() { "index.html" } else { path };
    if Assets::get(path).is_some() && !path.ends_with(".br") && !path.ends_with(".gz") {
        return file(&req, path);
    }
    // A missing hashed file is a 404, not the app: a stale page must not get HTML for JS.
    if path.starts_with("assets/") {
        return HttpResponse::NotFound().content_type("text/plain").body("not found");
    }
    file(&req, "index.html")
}

fn file(req: &HttpRequest, path: &str) -> HttpResponse {
    let Some(plain) = Assets::get(path) else {
        return HttpResponse::NotFound()
            .content_type("text/plain")
            .body("the web app was not built into this binary");
    };
    let etag = format!("\"{}\"", hex::encode(&plain.metadata.sha256_hash()[..16]));
    let cache = if path.starts_with("assets/") {
        IMMUTABLE
    } else {
        "no-cache"
    };
    let mut res = HttpResponse::Ok();
    res.insert_header((header::CACHE_CONTROL, cache))
        .insert_header((header::ETAG, etag.as_str()))
        .insert_header((header::VARY, "Accept-Encoding"))
        .insert_header((header::CONTENT_TYPE, plain.metadata.mimetype()));
    let if_none_match = req.headers().get(header::IF_NONE_MATCH).and_then(|v| v.to_str().ok());
    if if_none_match.is_some_and(|v| v.split(',').any(|t| t.trim() == etag)) {
        return HttpResponse::NotModified()
            .insert_header((header::ETAG, etag))
            .insert_header((header::CACHE_CONTROL, cache))
            .finish();
    }
    let accept = req
        .headers()
        .get(header::ACCEPT_ENCODING)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    for (enc, ext) in [("br", "br"), ("gzip", "gz")] {
        if accepts(accept, enc) {
            if let Some(packed) = Assets::get(&format!("{path}.{ext}")) {
                res.insert_header((header::CONTENT_ENCODING, HeaderValue::from_static(enc)));
                return res.body(packed.data.into_owned());
            }
        }
    }
    res.body(plain.data.into_owned())
}

fn accepts(header: &str, enc: &str) -> bool {
    header.split(',').any(|part| {
        let mut it = part.split(';');
        let name = it.next().unwrap_or("").trim();
        let q_zero = it.any(|p| {
            let p = p.trim();
            p == "q=0" || p == "q=0.0" || p == "q=0.00" || p == "q=0.000"
        });
        name.eq_ignore_ascii_case(enc) && !q_zero
    })
}

#[cfg(test)]
mod tests {
    use super::accepts;

    #[test]
    fn reads_accept_encoding() {
        assert!(accepts("gzip, deflate, br", "br"));
        assert!(accepts("gzip;q=0.8", "gzip"));
        assert!(!accepts("gzip;q=0", "gzip"));
        assert!(!accepts("identity", "br"));
    }
}
