//! The terminal client against an https:// server: REST over TLS and the
//! follow over `wss://`. The server speaks plain HTTP, so the test puts a
//! tiny TLS proxy in front of it (rustls, with a certificate for `localhost`
//! from a private CA made with `openssl`), and the client trusts that CA with
//! `--ca-file` (`TESTSCHEDULER_CA_FILE`); without it the client refuses.

use crate::helpers::*;
use std::io::{ErrorKind, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Arc;
use std::time::Duration;

/// A private CA, and a certificate it signed for `localhost` and 127.0.0.1,
/// made with `openssl` in `dir`: (CA certificate, server certificate, key).
fn certificates(dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
    let p = |name: &str| dir.join(name);
    let ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"];
    std::fs::write(
        p("ext.cnf"),
        "subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\n",
    )
    .expect("write ext.cnf");
    let steps: [Vec<&str>; 3] = [
        [
            &["req", "-x509"][..],
            &ec,
            &[
                "-days",
                "2",
                "-subj",
                "/CN=testscheduler test CA",
                "-keyout",
                "ca.key",
                "-out",
                "ca.pem",
            ],
        ]
        .concat(),
        [
            &["req"][..],
            &ec,
            &["-subj", "/CN=localhost", "-keyout", "key.pem", "-out", "server.csr"],
        ]
        .concat(),
        vec![
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            "2",
            "-extfile",
            "ext.cnf",
            "-out",
            "server.pem",
        ],
    ];
    for args in steps {
        let out = Command::new("openssl")
            .args(&args)
            .current_dir(dir)
            .output()
            .expect("this test needs the openssl command (apt-get install openssl)");
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    (p("ca.pem"), p("server.pem"), p("key.pem"))
}

/// Accepts TLS connections on a free port and relays each to `backend`; returns the port.
fn tls_proxy(cert: &Path, key: &Path, backend: u16) -> u16 {
    use rustls::pki_types::{pem::PemObject, CertificateDer, PrivateKeyDer};
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .expect("cert")
        .collect::<Result<_, _>>()
        .expect("cert");
    let key = PrivateKeyDer::from_pem_file(key).expect("key");
    let config = rustls::ServerConfig::builder_with_provider(rustls::crypto::ring::default_provider().into())
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .expect("server config");
    let config = Arc::new(config);
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    std::thread::spawn(move || {
        for conn in listener.incoming().flatten() {
            let config = config.clone();
            std::thread::spawn(move || relay(conn, config, backend));
        }
    });
    port
}

/// Copies bytes both ways between a TLS client and the plain backend.
fn relay(conn: TcpStream, config: Arc<rustls::ServerConfig>, backend: u16) {
    let Ok(server) = rustls::ServerConnection::new(config) else {
        return;
    };
    let Ok(mut plain) = TcpStream::connect(("127.0.0.1", backend)) else {
        return;
    };
    let tick = Some(Duration::from_millis(2));
    if conn.set_read_timeout(tick).is_err() || plain.set_read_timeout(tick).is_err() {
        return;
    }
    let _ = (conn.set_nodelay(true), plain.set_nodelay(true));
    let mut tls = rustls::StreamOwned::new(server, conn);
    let mut buf = vec![0u8; 64 * 1024];
    let idle = |e: &std::io::Error| matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut);
    loop {
        match tls.read(&mut buf) {
            Ok(0) => return,
            Ok(n) => {
                if plain.write_all(&buf[..n]).is_err() {
                    return;
                }
            }
            Err(e) if idle(&e) => {}
            Err(_) => return,
        }
        match plain.read(&mut buf) {
            Ok(0) => return,
            Ok(n) => {
                if tls.write_all(&buf[..n]).and_then(|_| tls.flush()).is_err() {
                    return;
                }
            }
            Err(e) if idle(&e) => {}
            Err(_) => return,
        }
    }
}

fn client(server: &str, ca: Option<&Path>, args: &[&str]) -> Output {
    let mut cmd = Command::new(BIN);
    cmd.args(args)
        .args(["--server", server])
        .env_remove("TESTSCHEDULER_CA_FILE");
    if let Some(ca) = ca {
        cmd.arg("--ca-file").arg(ca);
    }
    cmd.output().expect("run the client")
}

fn plain(lines: &[String]) -> Vec<String> {
    lines
        .iter()
        .map(|l| String::from_utf8_lossy(&strip_ansi_escapes::strip(l.as_bytes())).to_string())
        .collect()
}

#[test]
fn the_client_follows_an_https_server_over_wss() {
    let app = spawn_app_with(Opts::default().env("LINES", "3000"));
    let certs = tempfile::tempdir().expect("temp dir");
    let (ca, cert, key) = certificates(certs.path());
    let server = format!("https://localhost:{}", tls_proxy(&cert, &key, app.port));

    let out = client(
        &server,
        Some(&ca),
        &[
            "submit",
            "--env",
            "1",
            "--path",
            "./tests/test_lines.py",
            "--user",
            "tls",
            "--follow",
        ],
    );
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert_eq!(out.status.code(), Some(0), "stderr: {stderr}");
    let (_, list) = app.get("/api/testruns?limit=1");
    let id = list[0]["id"].as_i64().expect("id");
    let stored = plain(&app.log_lines(id));
    assert!(stored.len() > 3000);
    let printed: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_string)
        .collect();
    assert_eq!(printed, stored, "every line once, in order, over wss://");

    // A finished run's follow (the backlog over wss://) and its stored log over https://.
    let id_text = id.to_string();
    for args in [
        vec!["logs", id_text.as_str(), "--follow"],
        vec!["logs", id_text.as_str()],
    ] {
        let out = client(&server, Some(&ca), &args);
        assert_eq!(
            out.status.code(),
            Some(0),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let printed: Vec<String> = String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(str::to_string)
            .collect();
        assert_eq!(printed, stored, "{args:?}");
    }

    // Without the certificate trusted, TLS refuses the server.
    let out = client(&server, None, &["logs", id_text.as_str(), "--follow"]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("cannot reach") && err.to_lowercase().contains("certificate"),
        "{err}"
    );
}
