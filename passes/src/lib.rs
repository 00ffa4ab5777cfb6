//! onnx-ac's compiler core: the IR, shape inference and the passes over it. Pure: no file
//! I/O, no runtime.

pub mod error;
pub mod ir;

pub use error::IrError;
