//! One line per image while images are pulled or built, as compose shows them:
//! a spinner with the current step and the elapsed time on a terminal, a start
//! and an end line otherwise. The raw build output goes to a log file per image
//! and is shown (its tail, and the file's path) only when the build fails.

use std::fs::File;
use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

/// The display all image tasks of one `up` (or `images --build`) share.
pub struct Progress {
    multi: Option<MultiProgress>,
    quiet: bool,
}

impl Progress {
    /// Spinners on a terminal, plain lines elsewhere, nothing when quiet.
    pub fn new(quiet: bool) -> Progress {
        let multi = (!quiet && std::io::stderr().is_terminal())
            .then(|| MultiProgress::with_draw_target(ProgressDrawTarget::stderr()));
        Progress { multi, quiet }
    }

    /// A line of its own for `label` (an image), starting with `what`.
    pub fn task(&self, label: &str, what: &str) -> Task {
        let bar = self.multi.as_ref().map(|m| {
            let bar = m.add(ProgressBar::new_spinner());
            bar.set_style(
                ProgressStyle::with_template("{spinner} {prefix:<40} {msg:<40} {elapsed:>4}")
                    .expect("static template"),
            );
            bar.set_prefix(label.to_string());
            bar.set_message(what.to_string());
            bar.enable_steady_tick(Duration::from_millis(120));
            bar
        });
        if bar.is_none() && !self.quiet {
            crate::errln!("{label:<40} {what} ...");
        }
        let path = file_for(label, "log");
        let file = File::create(&path).ok();
        Task {
            label: label.to_string(),
            bar,
            quiet: self.quiet,
            started: Instant::now(),
            log: Mutex::new(file),
            path,
        }
    }
}

/// A file beside the image logs for `label` (an image name) with extension
/// `ext`: the raw log (`log`) or the build lock (`lock`).
pub fn file_for(label: &str, ext: &str) -> PathBuf {
    let dir = std::env::temp_dir().join("loadtest-logs");
    let _ = std::fs::create_dir_all(&dir);
    let safe: String = label
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect();
    dir.join(format!("{safe}.{ext}"))
}

/// The line of one image.
pub struct Task {
    label: String,
    bar: Option<ProgressBar>,
    quiet: bool,
    started: Instant,
    log: Mutex<Option<File>>,
    path: PathBuf,
}

impl Task {
    /// Appends raw output to the image's log file; a `Step N/M` line also
    /// becomes the step shown on the image's line.
    pub fn log(&self, text: &str) {
        if let Ok(mut f) = self.log.lock() {
            if let Some(f) = f.as_mut() {
                let _ = f.write_all(text.as_bytes());
            }
        }
        if let Some(bar) = &self.bar {
            if let Some(step) = text.trim_start().strip_prefix("Step ") {
                let n = step.split_whitespace().next().unwrap_or("");
                bar.set_message(format!("build step {n}"));
            }
        }
    }

    /// What the image is doing now (mmdebstrap, build, pull).
    pub fn step(&self, what: &str) {
        if let Some(bar) = &self.bar {
            bar.set_message(what.to_string());
        }
    }

    /// The path of the raw log, for error messages.
    pub fn log_file(&self) -> &std::path::Path {
        &self.path
    }

    fn finish(&self, mark: &str, what: &str) {
        let secs = self.started.elapsed().as_secs_f64();
        match &self.bar {
            Some(bar) => {
                bar.set_style(
                    ProgressStyle::with_template("{prefix:<42} {msg}").expect("static template"),
                );
                bar.set_prefix(format!("{mark} {}", self.label));
                bar.finish_with_message(format!("{what:<40} {secs:>5.1}s"));
            }
            None if !self.quiet => crate::errln!("{:<40} {what} ({secs:.1}s)", self.label),
            None => {}
        }
    }

    /// The image is ready.
    pub fn done(&self, what: &str) {
        self.finish("✔", what);
    }

    /// The image could not be made; the error itself is reported by the caller.
    pub fn failed(&self, what: &str) {
        self.finish("✘", what);
    }
}
