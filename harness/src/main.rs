use std::process::ExitCode;

use clap::Parser;

use loadtest::commands::{dispatch, Cli};
use loadtest::exit;

fn main() -> ExitCode {
    loadtest::output::install_panic_hook();
    // Like cargo with Cargo.toml: from a sub-folder of a repository that has
    // a loadtest.toml, work from that folder (its paths are relative to it).
    if let Ok(cwd) = std::env::current_dir() {
        if let Some(root) = loadtest::config::find_root(&cwd) {
            if root != cwd && std::env::set_current_dir(&root).is_ok() {
                loadtest::errln!(
                    "loadtest: working from {} (its loadtest.toml)",
                    root.display()
                );
            }
        }
    }
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
