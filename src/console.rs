//! Standard output and standard error without panics (issue #12): `println!` panics when
//! stdout is a closed pipe (`onnx-ac inspect M --json | true`) or a full device
//! (`> /dev/full`), and `eprintln!` likewise for stderr.

use std::io::{self, IsTerminal, Write};
use std::time::Duration;

/// Standard output failed (other than a closed pipe, which is not an error).
#[derive(Debug, thiserror::Error)]
#[error("cannot write to standard output: {0}")]
pub struct StdoutError(pub io::Error);

/// Writes `text` to standard output and flushes it. A closed pipe (EPIPE: the reader went
/// away, as in `onnx-ac inspect M --json | head -1`) is not an error: the rest of the output is
/// dropped and the command ends as it would have, with its own exit code. Any other failure
/// (`/dev/full`, a full disk) is an error naming standard output (exit 2).
pub fn print(text: &str) -> Result<(), StdoutError> {
    let mut out = io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => Ok(()),
        Err(e) => Err(StdoutError(e)),
    }
}

/// Writes `text` and a newline to standard error, ignoring failures: there is nowhere left
/// to report them, and a closed stderr must not turn a result into a panic.
pub fn eprint_line(text: &str) {
    let mut err = io::stderr().lock();
    let _ = err
        .write_all(text.as_bytes())
        .and_then(|()| err.write_all(b"\n"));
}

/// A spinner with the step's name and elapsed time on stderr while a step runs, cleared when
/// dropped. Drawn only when stderr is a terminal (never into a pipe, a file or a test).
pub struct Stage(Option<indicatif::ProgressBar>);

impl Stage {
    pub fn start(what: &str) -> Stage {
        if !io::stderr().is_terminal() {
            return Stage(None);
        }
        let bar = indicatif::ProgressBar::new_spinner();
        if let Ok(style) =
            indicatif::ProgressStyle::with_template("{spinner} onnx-ac: {msg} ({elapsed})")
        {
            bar.set_style(style);
        }
        bar.set_message(what.to_string());
        bar.enable_steady_tick(Duration::from_millis(120));
        Stage(Some(bar))
    }

    /// Replaces the step's description (e.g. with its progress).
    pub fn set_message(&self, what: &str) {
        if let Some(b) = &self.0 {
            b.set_message(what.to_string());
        }
    }
}

/// A bar of `done / total` items with the step's name and elapsed time on stderr, cleared
/// when dropped; drawn only when stderr is a terminal. Safe to advance from several threads.
pub struct Progress(Option<indicatif::ProgressBar>);

impl Progress {
    pub fn start(what: &str, total: usize) -> Progress {
        if !io::stderr().is_terminal() {
            return Progress(None);
        }
        let bar = indicatif::ProgressBar::new(total as u64);
        if let Ok(style) = indicatif::ProgressStyle::with_template(
            "onnx-ac: {msg} [{bar:30}] {pos}/{len} ({elapsed})",
        ) {
            bar.set_style(style.progress_chars("=> "));
        }
        bar.set_message(what.to_string());
        bar.enable_steady_tick(Duration::from_millis(250));
        Progress(Some(bar))
    }

    /// One more item done.
    pub fn inc(&self) {
        if let Some(b) = &self.0 {
            b.inc(1);
        }
    }

    /// Sets how many items are done and what is being done now.
    pub fn set(&self, done: usize, what: &str) {
        if let Some(b) = &self.0 {
            b.set_position(done as u64);
            b.set_message(what.to_string());
        }
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        if let Some(b) = &self.0 {
            b.finish_and_clear();
        }
    }
}

impl Drop for Stage {
    fn drop(&mut self) {
        if let Some(b) = &self.0 {
            b.finish_and_clear();
        }
    }
}
