//! The command line: parse, set up logging, hand over to the library.

use clap::Parser;
use std::io::Write;
use std::process::ExitCode;
use testscheduler::config::{Cli, Command, Config};
use testscheduler::startup::Application;

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .fmt_fields(escaped_fields())
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    match cli.command {
        Some(Command::Worker(args)) => worker(args),
        Some(Command::Serve(args)) => serve(*args),
        Some(Command::Submit(args)) => client(testscheduler::client::submit::run(args)),
        Some(Command::Runs(args)) => client(testscheduler::client::runs::run(args)),
        Some(Command::Logs(args)) => client(testscheduler::client::logs::run(args)),
        Some(Command::Cancel(args)) => client(testscheduler::client::cancel::run(args)),
        Some(Command::Envs(args)) => client(testscheduler::client::envs::run(args)),
        Some(Command::Backup(args)) => backup(args),
        Some(Command::Users(args)) => accounts(testscheduler::accounts_cli::users(args)),
        Some(Command::Tokens(args)) => accounts(testscheduler::accounts_cli::tokens(args)),
        None => serve(cli.serve),
    }
}

/// Field formatting for the log: as tracing's default, but any control or
/// bidi character that came in with user input (a name, a path, a Host) is
/// written as `\u{..}`, so that no request can forge or garble a log line.
fn escaped_fields() -> impl for<'w> tracing_subscriber::fmt::FormatFields<'w> {
    use tracing_subscriber::field::MakeExt;
    tracing_subscriber::fmt::format::debug_fn(|w, field, value| {
        // As the default formatter: the `log` crate's metadata is not shown.
        if field.name().starts_with("log.") {
            return Ok(());
        }
        let text = format!("{value:?}");
        let text = testscheduler::http::dto::escape_for_log(&text);
        if field.name() == "message" {
            write!(w, "{text}")
        } else {
            write!(w, "{field}={text}")
        }
    })
    .delimited(" ")
}

fn serve(args: testscheduler::config::ServeArgs) -> ExitCode {
    let config = match Config::from_args(args) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    let result = actix_web::rt::System::new().block_on(async move {
        let app = Application::build(config)?;
        // The first line on stdout: scripts and tests read the chosen port from it.
        println!("listening on http://{}", app.addr());
        if app.needs_first_admin() {
            // Not println!: whoever read the first line may have closed the pipe.
            let _ = writeln!(
                std::io::stdout(),
                "no account exists yet (--auth local): create the first admin with\n  \
                 testscheduler users add NAME --role admin --database {}\n\
                 (in a container: docker exec CONTAINER testscheduler users add NAME --role admin)",
                app.database().display()
            );
        }
        let _ = std::io::stdout().flush();
        app.run_until_stopped().await?;
        Ok::<(), testscheduler::startup::StartError>(())
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(1)
        }
    }
}

fn worker(args: testscheduler::config::WorkerArgs) -> ExitCode {
    let opts = match testscheduler::worker::WorkerOptions::from_args(args) {
        Ok(o) => o,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    match testscheduler::worker::run(opts) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(1)
        }
    }
}

fn client(res: Result<u8, testscheduler::client::ClientError>) -> ExitCode {
    ExitCode::from(testscheduler::client::finish(res))
}

fn accounts(res: Result<(), testscheduler::accounts_cli::CliError>) -> ExitCode {
    match res {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(e.exit_code())
        }
    }
}

fn backup(args: testscheduler::config::BackupArgs) -> ExitCode {
    match testscheduler::backup::run(&args) {
        Ok(c) => {
            eprintln!(
                "backed up {} pages ({} bytes) to {}",
                c.pages,
                c.bytes,
                args.file.display()
            );
            ExitCode::SUCCESS
        }
        Err(testscheduler::backup::BackupError::Config(e)) => {
            eprintln!("error: {e}");
            ExitCode::from(2)
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(1)
        }
    }
}
