//! Gradient rules, one file per op family; the registry (`ops::FAMILIES`) names each op's
//! rule and differentiable inputs.
//!
//! A rule receives the forward node and the gradients of its outputs (None where an output
//! has no gradient), emits backward nodes through the builder, and returns one gradient per
//! input (None where not needed). Rules read only the forward values they need; `docs/`
//! lists what each one saves.

pub mod conv;
pub mod elementwise;
pub mod linalg;
pub mod norm;
pub mod reduce;
pub mod resize;
pub mod shape;

pub use super::builder::{GradCtx, GradResult};
