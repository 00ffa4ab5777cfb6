//! Generated rust-protobuf binding of the official `onnx.proto` (onnx 1.23, IR version 14).
//! See `tests/proto_codegen.rs` for how it is regenerated and checked.
#![allow(clippy::all, clippy::pedantic, missing_docs, unused_qualifications)]
#[rustfmt::skip]
mod onnx;
pub use self::onnx::*;
