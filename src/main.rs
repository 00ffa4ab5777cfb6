use clap::Parser;
mod cli;
mod commands;

use cli::{Cli, Command};
use onnx_ac::Error;
use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() { 2 } else { 0 });
        }
    };
    onnx_ac::runtime::set_log_level(cli.ort_log);
    if let Err(e) = onnx_ac::plan::host::init(cli.host) {
        onnx_ac::console::eprint_line(&format!("error: {e}"));
        return ExitCode::from(2);
    }
    // Ctrl-C (and SIGTERM, SIGHUP) removes staged outputs and temporary folders, then exits
    // with 128 + the signal number. Without the handler they would only be left behind.
    if let Err(e) = onnx_ac::output::install_signal_cleanup() {
        onnx_ac::console::eprint_line(&format!(
            "warning: cannot install the signal handler ({e}); an interrupted run may leave temporary files"
        ));
    }
    let result: Result<(), Error> = match cli.command {
        Some(Command::Inspect(a)) => commands::inspect(&a),
        Some(Command::TrainGraph(a)) => commands::train_graph(&a),
        Some(Command::Verify(a)) => commands::verify(&a),
        Some(Command::Train(a)) => commands::train(&a),
        Some(Command::Profile(a)) => commands::profile(&a),
        Some(Command::Tradeoff(a)) => commands::tradeoff(&a),
        Some(Command::Sweep(a)) => commands::sweep(&a),
        Some(Command::Estimate(a)) => commands::estimate::command(&a),
        None => commands::main_command(&cli.main),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            onnx_ac::console::eprint_line(&format!("error: {e}"));
            ExitCode::from(e.exit_code() as u8)
        }
    }
}
