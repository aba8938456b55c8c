//! Everything the binary prints goes through here, so a closed stdout or stderr
//! (`loadtest images | grep -q missing`, `| head`) is handled in one place: the
//! process stops as a Unix tool does when its reader went away, killed by
//! SIGPIPE (status 141 in a shell), with no panic and no message.
//!
//! Rust ignores SIGPIPE so that sockets report EPIPE instead of killing the
//! process; the load engine relies on that, so the default action is restored
//! only at the moment a console write fails.

use std::fmt;
use std::io::{self, Write};

/// Writes to stdout; see the module docs for a closed pipe.
pub fn stdout(args: fmt::Arguments<'_>) {
    let mut out = io::stdout().lock();
    if let Err(e) = out.write_fmt(args).and_then(|_| out.flush()) {
        failed("stdout", e);
    }
}

/// Writes to stderr; see the module docs for a closed pipe.
pub fn stderr(args: fmt::Arguments<'_>) {
    let mut err = io::stderr().lock();
    if let Err(e) = err.write_fmt(args) {
        failed("stderr", e);
    }
}

fn failed(stream: &str, e: io::Error) {
    if e.kind() == io::ErrorKind::BrokenPipe {
        closed_pipe();
    }
    // Anything else (a full disk behind `> file`) must not pass silently when
    // it is the output the user asked for; stderr has nowhere left to report.
    if stream == "stdout" {
        let _ = writeln!(io::stderr(), "error: cannot write to stdout: {e}");
        std::process::exit(i32::from(crate::exit::RUNTIME));
    }
}

/// Ends the process the way the shell expects of a tool whose reader closed.
pub fn closed_pipe() -> ! {
    // SAFETY: restoring a default signal action and raising it in our own
    // process; nothing else is running that relies on the handler now.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
        libc::raise(libc::SIGPIPE);
    }
    // Only reached if the signal is blocked: exit with the same status.
    std::process::exit(128 + libc::SIGPIPE);
}

/// A safety net for prints outside this module (a library's `println!`):
/// their "failed printing to stdout: Broken pipe" panic ends like a closed pipe.
pub fn install_panic_hook() {
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let msg = info
            .payload()
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| info.payload().downcast_ref::<&str>().copied())
            .unwrap_or("");
        if msg.starts_with("failed printing to std") && msg.contains("Broken pipe") {
            closed_pipe();
        }
        previous(info);
    }));
}

/// `println!` through [`stdout`].
#[macro_export]
macro_rules! outln {
    () => { $crate::output::stdout(format_args!("\n")) };
    ($($arg:tt)*) => { $crate::output::stdout(format_args!("{}\n", format_args!($($arg)*))) };
}

/// `print!` through [`stdout`].
#[macro_export]
macro_rules! out {
    ($($arg:tt)*) => { $crate::output::stdout(format_args!($($arg)*)) };
}

/// `eprintln!` through [`stderr`].
#[macro_export]
macro_rules! errln {
    () => { $crate::output::stderr(format_args!("\n")) };
    ($($arg:tt)*) => { $crate::output::stderr(format_args!("{}\n", format_args!($($arg)*))) };
}

/// `eprint!` through [`stderr`].
#[macro_export]
macro_rules! err {
    ($($arg:tt)*) => { $crate::output::stderr(format_args!($($arg)*)) };
}
