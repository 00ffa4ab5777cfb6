//! onnx-ac's compiler core: the IR, shape inference and the passes over it. Pure: no file
//! I/O, no runtime.

pub mod autodiff;
pub mod error;
pub mod fxhash;
pub mod infer;
pub mod ir;
pub mod lower;
pub mod lower_rnn;
pub mod ops;
pub mod pass;
pub mod pin;
pub mod recompute;
pub mod runtime_shapes;
pub mod runtime_weights;
pub mod schedule;
pub mod synth;

pub use error::{IrError, RuleError};
