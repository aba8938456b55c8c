use std::process::ExitCode;

use clap::Parser;

use loadtest::commands::{dispatch, Cli};
use loadtest::exit;

fn main() -> ExitCode {
    loadtest::output::install_panic_hook();
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() {
                exit::USAGE
            } else {
                exit::OK
            });
        }
    };
    match dispatch(cli.command) {
        Ok(code) => ExitCode::from(code),
        Err(f) => {
            loadtest::errln!("error: {f}");
            ExitCode::from(f.code())
        }
    }
}
