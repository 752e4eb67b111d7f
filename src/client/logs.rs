//! `testscheduler logs ID [--follow]`: the stored log, or the live one.

use super::{exit, follow, Client, ClientError};
use crate::config::LogsArgs;
use std::io::{BufRead, BufReader, BufWriter, Write};

/// Runs `logs`; returns the exit code (with `--follow`, the run's).
pub fn run(args: LogsArgs) -> Result<u8, ClientError> {
    let client = Client::new(&args.client)?;
    let colour = super::colour_stdout();
    if args.follow {
        // Says "not found" plainly before opening a socket.
        client.get_json(&format!("/api/testruns/{}", args.id))?;
        let intr = follow::Interrupt::install()?;
        let opts = follow::Options {
            cancel_on_interrupt: false,
            colour,
        };
        return follow::follow(&client, args.id, opts, &intr);
    }
    let reader = client.get_reader(&format!("/api/testruns/{}/log.txt", args.id))?;
    let mut out = BufWriter::with_capacity(64 * 1024, std::io::stdout().lock());
    if colour {
        std::io::copy(&mut BufReader::new(reader), &mut out)?;
    } else {
        let mut reader = BufReader::with_capacity(64 * 1024, reader);
        let mut line = Vec::new();
        while reader.read_until(b'\n', &mut line)? > 0 {
            crate::domain::ansi::strip_to(&line, |piece| out.write_all(piece))?;
            line.clear();
        }
    }
    out.flush()?;
    Ok(exit::SUCCEEDED)
}
