//! The `miascan` binary: parses arguments, runs one subcommand, maps errors to exit codes
//! (0 ok, 1 runtime failure, 2 usage, 3 bad input, 4 bad or unsupported model, 5 a scan
//! that finished but skipped some inputs or failed some passages on a server, 6 a model
//! server that could not be used). With `MIASCAN_PROFILE=1` it ends with the time
//! split by phase on stderr (see `miascan::profile`).

mod cli;

use clap::Parser;
use cli::{Cli, Command};

fn main() {
    miascan::alloc::reuse_large_buffers();
    let cli = Cli::parse();
    let started = std::time::Instant::now();
    let ok = |r: anyhow::Result<()>| r.map(|()| 0);
    let result = match cli.command {
        Command::Scan(a) => cli::scan::run(*a),
        Command::Merge(a) => cli::merge::run(a),
        Command::Score(a) => ok(cli::score::run(*a)),
        Command::Eval(a) => ok(cli::eval::run(*a)),
        Command::Calibrate(a) => ok(cli::calibrate::run(*a)),
        Command::DatasetTest(a) => ok(cli::dataset_test::run(*a)),
        Command::Exposure(a) => ok(cli::exposure::run(*a)),
        Command::Freq(a) => cli::freq::run(a),
        Command::Inspect(a) => ok(cli::inspect::run(a)),
        Command::Tokenize(a) => ok(cli::tokenize::run(a)),
    };
    if miascan::profile::enabled() {
        eprint!(
            "{}",
            miascan::profile::report(started.elapsed().as_secs_f64())
        );
    }
    match result {
        Ok(0) => {}
        Ok(code) => std::process::exit(code),
        // A reader that went away (`miascan … | head`) is not an error: stop quietly.
        Err(e) if broken_pipe(&e) => {}
        // The library's errors already name their cause; other errors print their chain.
        Err(e) => match e.downcast_ref::<miascan::Error>() {
            Some(lib) => {
                eprintln!("miascan: error: {lib}");
                std::process::exit(lib.exit_code());
            }
            None => {
                eprintln!("miascan: error: {e:#}");
                std::process::exit(1);
            }
        },
    }
}

/// Whether `e` is, or was caused by, a write to a pipe whose reader has gone.
fn broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        let io = match c.downcast_ref::<miascan::Error>() {
            Some(miascan::Error::OutputIo { source, .. }) => Some(source),
            _ => c.downcast_ref::<std::io::Error>(),
        };
        io.is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}
