//! The memory simulator: for a graph and an execution order, the bytes alive at every step,
//! the peak, and what is alive at the peak — as ONNX Runtime (1.31, CPU execution provider)
//! allocates them. docs/memory-model.md gives the sources and the measurements behind every
//! rule; in short:
//!
//! - **The graph ONNX Runtime runs.** `Constant` nodes become weights; `CastLike` is inlined
//!   as a `Cast`. With optimizations on (the default): constant folding (every node whose
//!   inputs are all constant, and `Shape` of a statically shaped value), the transpose
//!   optimizer's push through a shrinking `Slice`, MatMul + Add into Gemm, contiguous
//!   Reshape/Squeeze/Unsqueeze chains into one Reshape (which drops the first one's shape
//!   input, and with it a recompute pin's late dependency), Gemm + activation, Transpose into
//!   MatMul (FusedMatMul), scalar Mul/Div into MatMul, and the NCHWc layout of convolutions,
//!   their batch norms, activations, additions and pools with `ReorderInput`/`ReorderOutput`
//!   copies. New nodes get new, higher indices, which matters for the order.
//! - **The order.** A reverse depth-first walk from the nodes nobody reads, producers taken
//!   largest index first ([`ort_default_order`]).
//! - **Weights.** Initializers of at most 127 bytes are copied into allocator buffers; larger
//!   ones stay in the loaded model. Kernels prepack constant weights once per session
//!   (MatMul, Gemm, ConvTranspose); those buffers are persistent.
//! - **Buffers** (the sequential allocation planner). A graph output gets its own buffer;
//!   `Reshape`-like kernels alias their input; activations and softmax write in place into an
//!   input whose last use this is and whose shape is the output's; otherwise the most recently
//!   freed buffer of exactly the same element size and shape is reused, else a new one is
//!   allocated. A buffer is released after the last node reading any value that shares it, so
//!   a reused buffer stays allocated (idle) between its first value's death and its next
//!   value's birth; a buffer nobody reads stays until the run ends.
//! - **Kernel scratch** (`Sum` of more than two inputs, `Where`, `Softmax` on an inner axis,
//!   im2col buffers of `Conv`, column buffers of `ConvTranspose`) counts at its step only.
//!
//! The code follows that outline: `view.rs` builds the graph ONNX Runtime runs, with one file
//! per ONNX Runtime graph transformer under `transformers/`; `kernels.rs` holds what the CPU
//! kernels allocate or share; `order.rs` the execution order; `alloc.rs` the run of the
//! allocation planner; `held.rs` the run's buffers step by step for reports.

mod alloc;
mod held;
mod ids;
mod kernels;
mod order;
mod transformers;
mod view;

pub use alloc::{allocation_events, simulate, simulate_with, AllocEvent};
pub use held::{held_buffers, HeldBuffers, HeldChange};
pub use order::{ort_default_order, ort_order, simulate_ort_default};

use serde::Serialize;

/// ONNX Runtime's graph optimization level the simulation models.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub enum OptLevel {
    /// `ORT_DISABLE_ALL`: the graph runs as written (only `Constant` nodes become weights).
    Disabled,
    /// `ORT_ENABLE_ALL`, ONNX Runtime's default and what users of the emitted graph get.
    #[default]
    All,
}

/// How the simulated session is configured.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct SimOptions {
    pub level: OptLevel,
    /// Intra-op threads of the session; `None` is ONNX Runtime's default, one per physical
    /// core of the modelled host ([`super::host`]). Convolution scratch buffers grow with it.
    pub intra_threads: Option<usize>,
    /// Channel block of the NCHWc layout (MLAS: 16 with AVX-512, 8 with AVX2, none
    /// otherwise); `None` is the modelled host's ([`super::host`]). `Some(1)` models no
    /// NCHWc transformer.
    pub nchwc_block: Option<usize>,
}

impl SimOptions {
    fn threads(&self) -> u64 {
        self.intra_threads
            .unwrap_or_else(|| super::host::current().cores)
            .max(1) as u64
    }
    fn block(&self) -> i64 {
        self.nchwc_block
            .unwrap_or_else(|| super::host::current().nchwc_block)
            .max(1) as i64
    }
}

/// Initializers up to this many bytes are copied into buffers from the session allocator;
/// larger ones are used in place from the loaded model (ONNX Runtime 1.31).
pub const SMALL_INITIALIZER_MAX_BYTES: u64 = 127;

#[derive(Clone, Debug, Default, Serialize, PartialEq)]
pub struct Breakdown {
    /// Every weight: initializers, `Constant` outputs and (with optimizations) folded values.
    pub parameters: u64,
    /// Graph inputs (the batch, labels; with `--optimizer` also the trained parameters and
    /// the optimizer state); owned by the caller, not counted by ONNX Runtime.
    pub graph_inputs: u64,
    /// The optimizer state inputs (momenta, AdamW's moments and step count), part of
    /// `graph_inputs`; 0 without `--optimizer`.
    pub optimizer_state: u64,
    /// Gradient outputs alive at the peak.
    pub gradients: u64,
    /// Forward values alive at the peak that the backward reads (and their NCHWc copies).
    pub saved_activations: u64,
    /// Everything else alive at the peak: other values, idle reused buffers, kernel scratch.
    pub transients: u64,
    /// Prepacked copies of constant weights (whole session).
    pub prepacked: u64,
    /// Kernel scratch buffers at the peak step (also inside `transients`).
    pub scratch: u64,
}

#[derive(Clone, Debug, Serialize)]
pub struct Simulation {
    /// True total at the peak: every parameter, the graph inputs, the prepacked weights and
    /// the run's allocations (`activation_peak_bytes`).
    pub peak_bytes: u64,
    /// Peak of what the run allocates on top of the session's persistent buffers: live
    /// values, graph outputs, idle reused buffers and kernel scratch (what recomputation can
    /// change).
    pub activation_peak_bytes: u64,
    /// Index into the order of the step at the peak.
    pub peak_step: usize,
    /// Bytes the run holds during each step of the order (outputs allocated, scratch
    /// included, before the step's releases); at nodes ONNX Runtime does not run, what the
    /// previous step left.
    pub timeline: Vec<u64>,
    pub breakdown: Breakdown,
    /// The largest single value allocated (an incompressible transient).
    pub largest_value_bytes: u64,
    /// What ONNX Runtime's allocator holds at the peak, which a counting allocator measures:
    /// `baseline_bytes + activation_peak_bytes`. Large initializers and the graph inputs are
    /// not in it.
    pub counted_peak_bytes: u64,
    /// What the session holds through its allocator before a run: small initializers and
    /// prepacked weights.
    pub baseline_bytes: u64,
    /// Initializers of at most [`SMALL_INITIALIZER_MAX_BYTES`] bytes ONNX Runtime loads.
    pub small_initializer_bytes: u64,
    /// The optimization level simulated.
    pub level: OptLevel,
}
