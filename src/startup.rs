//! Wires everything: store, log writer, hub, tests tree, dispatcher, scheduler,
//! recovery, and the HTTP server. Tests and `main` run the same wiring.

use crate::config::Config;
use crate::discovery::TestTree;
use crate::dispatch::local;
use crate::hub::{Hub, LogEvent};
use crate::scheduler::{Dispatcher, Scheduler};
use crate::state::AppState;
use crate::store::{runs, writer::LogWriter, Store, StoreError};
use actix_web::{dev::Server, web, App, HttpServer};
use std::net::TcpListener;
use std::sync::Arc;

/// How long an exiting server waits for its runs to stop.
const SHUTDOWN_GRACE: std::time::Duration = std::time::Duration::from_secs(5);

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("--database {path}: {source}")]
    Store { path: String, source: StoreError },
    #[error("--bind {addr}: {source}")]
    Bind { addr: String, source: std::io::Error },
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("--redis: {0}")]
    Redis(String),
}

/// A built, not yet running server.
pub struct Application {
    port: u16,
    addr: std::net::SocketAddr,
    server: Server,
    scheduler: Scheduler,
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
        let metrics = crate::metrics::Metrics::new(&config.envs);
        metrics.watch(&hub)?;
        crate::notify::start(&config.notify_urls, &hub)?;
        let writer = LogWriter::start(store.clone(), announce_lines(store.clone(), hub.clone()))?;
        let tests = TestTree::new(&config.project_dir, &config.tests_dir);
        let (local_dispatcher, pool) = local::channel();
        // With --redis every run goes through Redis; --workers N are then slots
        // of an in-process worker (started once the port is known).
        let dispatcher: Arc<dyn Dispatcher> = match &config.redis {
            Some(_) => {
                Arc::new(crate::dispatch::redis::start(config.clone(), store.clone()).map_err(StartError::Redis)?)
            }
            None => Arc::new(local_dispatcher),
        };
        let dispatcher = metrics.count_dispatch_errors(dispatcher);
        let scheduler = Scheduler::new(config.clone(), store.clone(), hub.clone(), writer, dispatcher);
        let store_error = |source| StartError::Store {
            path: config.database.display().to_string(),
            source,
        };
        scheduler.recover().map_err(store_error)?;
        // Remote runs are judged by their leases, also by a server started
        // without --redis after one that had it.
        scheduler.recover_remote().map_err(store_error)?;
        crate::scheduler::lease::start(scheduler.clone())?;
        if config.redis.is_none() {
            pool.start(config.workers, scheduler.local_runs())?;
        }

        let listener = TcpListener::bind(config.bind).map_err(|source| StartError::Bind {
            addr: config.bind.to_string(),
            source,
        })?;
        let addr = listener.local_addr()?;
        let state = AppState {
            config: config.clone(),
            store,
            hub,
            tests,
            workers: scheduler.workers().clone(),
            scheduler: scheduler.clone(),
        };
        let data = web::Data::new(state);
        let metrics = web::Data::new(metrics);
        let server = HttpServer::new(move || {
            App::new()
                .wrap(tracing_actix_web::TracingLogger::<AccessLog>::new())
                .app_data(data.clone())
                .app_data(metrics.clone())
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
        if let (Some(redis), true) = (&config.redis, config.workers > 0) {
            start_local_slots(&config, redis, addr).map_err(StartError::Redis)?;
        }
        tracing::info!(%addr, workers = config.workers, database = %config.database.display(), "server ready");
        Ok(Application {
            port: addr.port(),
            addr,
            server,
            scheduler,
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
    /// Then the runs executing here are stopped and end `unknown`.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        let served = self.server.await;
        let scheduler = self.scheduler;
        actix_web::rt::task::spawn_blocking(move || scheduler.shutdown(SHUTDOWN_GRACE)).await?;
        tracing::info!("server stopped");
        served
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

/// `serve --redis --workers N`: N slots of an in-process worker that take runs
/// from Redis like any worker and report to this server's own address.
fn start_local_slots(config: &Config, redis: &str, addr: std::net::SocketAddr) -> Result<(), String> {
    let host = match addr.ip() {
        ip if ip.is_unspecified() && ip.is_ipv6() => std::net::IpAddr::from(std::net::Ipv6Addr::LOCALHOST),
        ip if ip.is_unspecified() => std::net::IpAddr::from(std::net::Ipv4Addr::LOCALHOST),
        ip => ip,
    };
    let server = format!("http://{}", std::net::SocketAddr::new(host, addr.port()));
    crate::worker::spawn(crate::worker::WorkerOptions {
        redis: redis.to_string(),
        redis_prefix: config.redis_prefix.clone(),
        server,
        slots: config.workers,
        project_dir: config.project_dir.clone(),
        id: format!("{}-{}-server", crate::worker::host_name(), std::process::id()),
    })
}

/// One span per request (tracing-actix-web's), plus one `info` line when it
/// ends, so that the log shows every request with its status.
pub struct AccessLog;

impl tracing_actix_web::RootSpanBuilder for AccessLog {
    fn on_request_start(request: &actix_web::dev::ServiceRequest) -> tracing::Span {
        tracing_actix_web::root_span!(request)
    }

    fn on_request_end<B: actix_web::body::MessageBody>(
        span: tracing::Span,
        outcome: &Result<actix_web::dev::ServiceResponse<B>, actix_web::Error>,
    ) {
        let status = match outcome {
            Ok(res) => res.status().as_u16(),
            Err(e) => e.as_response_error().status_code().as_u16(),
        };
        span.in_scope(|| tracing::info!(status, "request"));
        tracing_actix_web::DefaultRootSpanBuilder::on_request_end(span, outcome);
    }
}
