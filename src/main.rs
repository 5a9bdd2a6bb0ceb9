//! The `miascan` binary: parses arguments, runs one subcommand, maps errors to exit codes
//! (0 ok, 1 runtime failure, 2 usage, 3 bad input, 4 bad or unsupported model).

mod cli;

use clap::Parser;
use cli::{Cli, Command};

fn main() {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Score(a) => cli::score::run(*a),
        Command::Eval(a) => cli::eval::run(*a),
        Command::Calibrate(a) => cli::calibrate::run(*a),
        Command::DatasetTest(a) => cli::dataset_test::run(*a),
        Command::Inspect(a) => cli::inspect::run(a),
    };
    if let Err(e) = result {
        // The library's errors already name their cause; other errors print their chain.
        match e.downcast_ref::<miascan::Error>() {
            Some(lib) => {
                eprintln!("miascan: error: {lib}");
                std::process::exit(lib.exit_code());
            }
            None => {
                eprintln!("miascan: error: {e:#}");
                std::process::exit(1);
            }
        }
    }
}
