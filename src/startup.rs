//! Wires everything: store, log writer, hub, tests tree, dispatcher, scheduler,
//! recovery, and the HTTP server. Tests and `main` run the same wiring.

use crate::config::Config;
use crate::discovery::TestTree;
use crate::dispatch::local;
use crate::hub::{Hub, LogEvent};
use crate::scheduler::Scheduler;
use crate::state::AppState;
use crate::store::{runs, writer::LogWriter, Store, StoreError};
use crate::workers::WorkerRegistry;
use actix_web::{dev::Server, web, App, HttpServer};
use std::net::TcpListener;
use std::sync::Arc;

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("--database {path}: {source}")]
    Store { path: String, source: StoreError },
    #[error("--bind {addr}: {source}")]
    Bind { addr: String, source: std::io::Error },
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

/// A built, not yet running server.
pub struct Application {
    port: u16,
    addr: std::net::SocketAddr,
    server: Server,
}

impl Application {
    /// Builds every part from `config` and binds the listener (port 0 picks one).
    pub fn build(config: Config) -> Result<Application, StartError> {
        let config = Arc::new(config);
        let store = Store::open(&config.database).map_err(|source| StartError::Store {
            path: config.database.display().to_string(),
            source,
        })?;
        let hub = Hub::new();
        let writer = LogWriter::start(store.clone(), announce_lines(store.clone(), hub.clone()))?;
        let tests = TestTree::new(&config.project_dir, &config.tests_dir);
        let (dispatcher, pool) = local::channel();
        let scheduler = Scheduler::new(config.clone(), store.clone(), hub.clone(), writer, Arc::new(dispatcher));
        scheduler.recover().map_err(|source| StartError::Store {
            path: config.database.display().to_string(),
            source,
        })?;
        pool.start(config.workers, scheduler.clone())?;

        let listener = TcpListener::bind(config.bind).map_err(|source| StartError::Bind {
            addr: config.bind.to_string(),
            source,
        })?;
        let addr = listener.local_addr()?;
        let state = AppState {
            config: config.clone(),
            store,
            hub,
            scheduler,
            tests,
            workers: WorkerRegistry::default(),
        };
        let data = web::Data::new(state);
        let server = HttpServer::new(move || {
            App::new()
                .wrap(tracing_actix_web::TracingLogger::default())
                .app_data(data.clone())
                .configure(crate::http::routes)
        })
        .on_connect(|conn, _| {
            // Small /ws frames must not wait for a delayed ACK (Nagle).
            if let Some(tcp) = conn.downcast_ref::<actix_web::rt::net::TcpStream>() {
                let _ = tcp.set_nodelay(true);
            }
        })
        .workers(
            std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(2)
                .min(4),
        )
        .listen(listener)?
        .run();
        tracing::info!(%addr, workers = config.workers, database = %config.database.display(), "server ready");
        Ok(Application {
            port: addr.port(),
            addr,
            server,
        })
    }

    /// The bound port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The bound address.
    pub fn addr(&self) -> std::net::SocketAddr {
        self.addr
    }

    /// Serves until the server is stopped (SIGINT/SIGTERM).
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        self.server.await
    }
}

/// What the log writer does after each commit: tell followers, and tell every
/// client when a run printed its first line (its `logs` flag turned on).
fn announce_lines(store: Store, hub: Hub) -> crate::store::writer::OnCommit {
    Box::new(move |c| {
        if c.first {
            if let Ok(Some(run)) = store.conn().and_then(|conn| runs::get(&conn, c.run_id)) {
                hub.publish_run("taskChanged", &run);
            }
        }
        hub.publish_log(
            c.run_id,
            LogEvent::Lines {
                from: c.from,
                lines: c.lines,
            },
        );
    })
}
