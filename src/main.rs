//! The `miascan` binary: parses arguments, runs one subcommand, maps errors to exit codes
//! (0 ok, 1 runtime failure, 2 usage, 3 bad input, 4 bad or unsupported model).

mod cli;

use clap::Parser;
use cli::{Cli, Command};

fn main() {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Score(a) => cli::score::run(a),
        Command::Inspect(a) => cli::inspect::run(a),
    };
    if let Err(e) = result {
        eprintln!("miascan: error: {e:#}");
        let code = e
            .downcast_ref::<miascan::Error>()
            .map_or(1, miascan::Error::exit_code);
        std::process::exit(code);
    }
}
