//! Wires everything: store, log writer, hub, tests tree, dispatcher, scheduler,
//! recovery, and the HTTP server. Tests and `main` run the same wiring.

use crate::config::Config;
use crate::discovery::TestTree;
use crate::dispatch::local;
use crate::envs_file::Environments;
use crate::http::conn::{self, ClientConn, ConnLimiter, Stopping};
use crate::hub::{Hub, LogEvent, RunEvent};
use crate::scheduler::{Dispatcher, Scheduler};
use crate::state::AppState;
use crate::store::{runs, writer::LogWriter, Store, StoreError};
use actix_http::HttpService;
use actix_service::ServiceFactoryExt;
use actix_web::{dev::Server, web, App};
use std::net::TcpListener;
use std::sync::Arc;

/// How long an exiting server waits for its runs to stop.
const SHUTDOWN_GRACE: std::time::Duration = std::time::Duration::from_secs(3);
/// How long an exiting server lets open requests finish before dropping them.
const HTTP_GRACE_SECS: u64 = 1;

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
    #[error("--envs-file {0}")]
    EnvsFile(String),
    #[error("another testscheduler server is using the database {database}: it holds the lock {lock}{holder}; stop it first (one server per database)")]
    Locked {
        database: String,
        lock: String,
        holder: String,
    },
    #[error("cannot lock the database: {lock}: {source}")]
    Lock { lock: String, source: std::io::Error },
}

/// A built, not yet running server.
pub struct Application {
    port: u16,
    addr: std::net::SocketAddr,
    server: Server,
    scheduler: Scheduler,
    stop: tokio::sync::watch::Sender<bool>,
    /// `--auth local` with no account yet: `main` says how to make the first admin.
    first_admin: bool,
    database: std::path::PathBuf,
    /// Held while the server lives: one server per database.
    _lock: nix::fcntl::Flock<std::fs::File>,
}

impl Application {
    /// Builds every part from `config` and binds the listener (port 0 picks one).
    pub fn build(config: Config) -> Result<Application, StartError> {
        let config = Arc::new(config);
        let lock = lock_database(&config.database)?;
        let store = Store::open(&config.database).map_err(|source| StartError::Store {
            path: config.database.display().to_string(),
            source,
        })?;
        let hub = Hub::new();
        let envs = match &config.envs_file {
            Some(file) => Environments::from_file(file).map_err(StartError::EnvsFile)?,
            None => Environments::fixed(config.envs.clone()),
        };
        let metrics = crate::metrics::Metrics::new(&envs.catalog().ids());
        metrics.watch(&hub)?;
        crate::notify::start(&config.notify_urls, &hub)?;
        let live = crate::results::LiveResults::default();
        crate::results::ticker::start(live.clone(), store.clone(), hub.clone())?;
        let writer = LogWriter::start(
            store.clone(),
            announce_lines(store.clone(), hub.clone(), live.clone()),
            config.store_give_up,
        )
        .map_err(|source| StartError::Store {
            path: config.database.display().to_string(),
            source,
        })?;
        let tests = TestTree::new(&config.project_dir, &config.tests_dir);
        let (local_dispatcher, pool) = local::channel();
        // With --redis every run goes through Redis; --workers N are then slots
        // of an in-process worker (started once the port is known).
        let dispatcher: Arc<dyn Dispatcher> = match &config.redis {
            Some(_) => Arc::new(
                crate::dispatch::redis::start(config.clone(), store.clone(), envs.clone())
                    .map_err(StartError::Redis)?,
            ),
            None => Arc::new(local_dispatcher),
        };
        let dispatcher = metrics.count_dispatch_errors(dispatcher);
        let scheduler = Scheduler::new(config.clone(), store.clone(), hub.clone(), writer, dispatcher, envs)
            .with_live_results(live);
        let store_error = |source| StartError::Store {
            path: config.database.display().to_string(),
            source,
        };
        crate::quarantine::start(
            config.quarantine,
            config.suspect_threshold,
            store.clone(),
            scheduler.clone(),
            &hub,
        )?;
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
        let first_admin = config.auth.mode == crate::auth::AuthMode::Local
            && crate::store::accounts::count_users(&*store.conn().map_err(store_error)?).map_err(store_error)? == 0;
        let state = AppState {
            auth: Arc::new(crate::auth::Auth::new(config.auth.clone())),
            config: config.clone(),
            store,
            hub,
            tests,
            workers: scheduler.workers().clone(),
            scheduler: scheduler.clone(),
        };
        let data = web::Data::new(state);
        let metrics = web::Data::new(metrics);
        let rules = web::Data::new(crate::http::guard::EdgeRules::new(&config));
        let (stop_tx, stopping) = Stopping::channel();
        let stopping = web::Data::new(stopping);
        let limiter = ConnLimiter::new(config.max_connections_per_client);
        let server = actix_server::Server::build()
            .workers(
                std::thread::available_parallelism()
                    .map(|n| n.get())
                    .unwrap_or(2)
                    .min(4),
            )
            // SIGTERM is ours (see `run_until_stopped`); whatever a client
            // still holds after this grace is dropped.
            .disable_signals()
            .shutdown_timeout(HTTP_GRACE_SECS)
            .listen("http", listener, move || {
                let (data, rules, stopping, metrics) = (data.clone(), rules.clone(), stopping.clone(), metrics.clone());
                let app = App::new()
                    .wrap(actix_web::middleware::from_fn(crate::auth::gate::gate))
                    .wrap(actix_web::middleware::from_fn(crate::http::guard::edge))
                    .wrap(tracing_actix_web::TracingLogger::<AccessLog>::new())
                    .app_data(data)
                    .app_data(rules)
                    .app_data(stopping)
                    .app_data(metrics)
                    .configure(crate::http::routes);
                let http = HttpService::build()
                    .local_addr(addr)
                    .on_connect_ext(|io: &ClientConn, ext: &mut actix_web::dev::Extensions| {
                        ext.insert(io.deadline());
                    })
                    .finish(actix_service::map_config(app, |_| actix_web::dev::AppConfig::default()));
                let limiter = limiter.clone();
                actix_service::fn_service(move |tcp: actix_web::rt::net::TcpStream| {
                    let accepted = conn::accept(tcp, &limiter)
                        .map(|(io, peer)| (io, actix_http::Protocol::Http1, peer))
                        .map_err(actix_http::error::DispatchError::Io);
                    std::future::ready(accepted)
                })
                .and_then(http)
            })?
            .run();
        if let (Some(redis), true) = (&config.redis, config.workers > 0) {
            start_local_slots(&config, redis, addr).map_err(StartError::Redis)?;
        }
        tracing::info!(%addr, workers = config.workers, database = %config.database.display(), auth = config.auth.mode.as_str(), "server ready");
        Ok(Application {
            first_admin,
            database: config.database.clone(),
            port: addr.port(),
            addr,
            server,
            scheduler,
            stop: stop_tx,
            _lock: lock,
        })
    }

    /// Whether the server runs `--auth local` with no account yet.
    pub fn needs_first_admin(&self) -> bool {
        self.first_admin
    }

    /// The database file.
    pub fn database(&self) -> &std::path::Path {
        &self.database
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
    /// SIGTERM or SIGINT closes every `/ws` socket at once, lets other open
    /// requests finish for at most a second, then stops the runs (within 5 s
    /// in all); a second signal drops the connections at once.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        let signals = signal_hook::iterator::Signals::new([signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT])?;
        let signals_handle = signals.handle();
        let server = self.server.handle();
        let stop = self.stop;
        std::thread::Builder::new().name("signals".into()).spawn(move || {
            let mut signals = signals;
            for (n, signal) in signals.forever().enumerate() {
                tracing::info!(signal, "stopping: closing connections, then the runs");
                let _ = stop.send(true);
                // The command is sent at once; its completion is awaited below.
                std::mem::drop(server.stop(n == 0));
            }
        })?;
        let served = self.server.await;
        signals_handle.close();
        let scheduler = self.scheduler;
        actix_web::rt::task::spawn_blocking(move || scheduler.shutdown(SHUTDOWN_GRACE)).await?;
        tracing::info!("server stopped");
        served
    }
}

/// Takes the advisory lock beside the database (`DB.lock`), or says who holds it.
fn lock_database(database: &std::path::Path) -> Result<nix::fcntl::Flock<std::fs::File>, StartError> {
    use std::io::{Read, Seek, Write};
    let mut name = database.as_os_str().to_owned();
    name.push(".lock");
    let path = std::path::PathBuf::from(name);
    let lock = path.display().to_string();
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .map_err(|source| StartError::Lock {
            lock: lock.clone(),
            source,
        })?;
    match nix::fcntl::Flock::lock(file, nix::fcntl::FlockArg::LockExclusiveNonblock) {
        Ok(mut held) => {
            // The holder's pid, for the message a second server prints.
            let _ = held.set_len(0);
            let _ = held.rewind();
            let _ = write!(held, "{}", std::process::id());
            Ok(held)
        }
        Err((mut file, nix::errno::Errno::EWOULDBLOCK)) => {
            let mut pid = String::new();
            let _ = file.read_to_string(&mut pid);
            let pid = pid.trim();
            Err(StartError::Locked {
                database: database.display().to_string(),
                lock,
                holder: if pid.is_empty() || !pid.bytes().all(|b| b.is_ascii_digit()) {
                    String::new()
                } else {
                    format!(" (pid {pid})")
                },
            })
        }
        Err((_, errno)) => Err(StartError::Lock {
            lock,
            source: std::io::Error::from(errno),
        }),
    }
}

/// What the log writer does after each commit: count pytest's result words,
/// tell followers, and tell every client when a run printed its first line
/// (its `logs` flag turned on).
fn announce_lines(store: Store, hub: Hub, live: crate::results::LiveResults) -> crate::store::writer::OnCommit {
    Box::new(move |c| {
        live.feed(c.run_id, c.from, &c.lines, c.first);
        if c.first {
            if let Ok(Some(run)) = store.conn().and_then(|conn| runs::get(&conn, c.run_id)) {
                hub.publish_run(RunEvent::Changed, &run);
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
        secret: config.worker_secret.clone(),
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
