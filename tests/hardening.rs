//! Issue #12 (hardening): the tool run by a careless user or on hostile files. Each test is
//! a regression test for one item of the issue; docs/security.md says what is checked.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const BIN: &str = env!("CARGO_BIN_EXE_onnx-ac");
const ROOT: &str = env!("CARGO_MANIFEST_DIR");

fn root(rel: &str) -> PathBuf {
    Path::new(ROOT).join(rel)
}

/// The binary run from `cwd`, with `env` set and `ORT_DYLIB_PATH` and backtraces unset.
fn run_in(cwd: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut c = Command::new(BIN);
    c.args(args)
        .current_dir(cwd)
        .env_remove("ORT_DYLIB_PATH")
        .env_remove("RUST_BACKTRACE")
        .env_remove("RUST_LIB_BACKTRACE");
    for (k, v) in env {
        c.env(k, v);
    }
    c.output().expect("run onnx-ac")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Exit code 2, one `error: ` line, no panic; returns the line.
fn assert_refused(what: &str, o: &Output) -> String {
    let err = stderr(o);
    assert_eq!(o.status.code(), Some(2), "{what}: {:?}\n{err}", o.status);
    let last = err.lines().last().unwrap_or_default().to_string();
    assert!(last.starts_with("error: "), "{what}: {err}");
    assert_eq!(
        err.lines().filter(|l| l.starts_with("error: ")).count(),
        1,
        "{what}: {err}"
    );
    assert!(!err.contains("panicked"), "{what}: {err}");
    last
}

// ---- item 1: nothing runs or loads from the current directory ---------------------------

// ---- test models --------------------------------------------------------------------------

use onnx_ac::onnx::proto::{
    tensor_proto, GraphProto, ModelProto, NodeProto, OperatorSetIdProto, StringStringEntryProto,
    TensorProto,
};
use protobuf::{EnumOrUnknown, Message, MessageField};

const FLOAT: i32 = 1;

#[path = "hardening/input_files.rs"]
mod input_files;
#[path = "hardening/runtime_loading.rs"]
mod runtime_loading;
use input_files::{external_model, mkfifo, run_guarded, weights};
#[path = "hardening/outputs.rs"]
mod outputs;
#[path = "hardening/streams_and_args.rs"]
mod streams_and_args;
