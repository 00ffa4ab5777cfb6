//! What each buffer holds, step by step (for reports: `html_report`).

use super::alloc::run;
use super::{SimOptions, Simulation};
use onnx_ac_passes::autodiff::TrainingInfo;
use onnx_ac_passes::ir::{Graph, NodeId, ValueId};

/// A buffer of the simulated run allocated (+bytes), released (−bytes) or written with a new
/// value in place (0).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HeldChange {
    /// Index into [`HeldBuffers::steps`].
    pub step: usize,
    /// The buffer (an index of the simulator's own).
    pub buffer: usize,
    pub bytes: i64,
    /// The value of `g` the buffer now holds (for a layout copy, the value it is a copy of);
    /// `None` for a value ONNX Runtime's optimizer made.
    pub value: Option<ValueId>,
}

/// The simulated run as the steps ONNX Runtime runs and the changes of its buffers: per step,
/// its allocations and new holders, then its kernel scratch (held during the step only), then
/// its releases. Replaying it gives [`Simulation::timeline`] and the peak, and at every step
/// which value holds each buffer.
#[derive(Clone, Debug, Default)]
pub struct HeldBuffers {
    /// Per step run: its position in the order given, and the bytes of its kernel scratch.
    pub steps: Vec<(usize, u64)>,
    /// In step order (within a step: allocations and new holders, then releases).
    pub log: Vec<HeldChange>,
}

/// [`simulate_with`](super::simulate_with) and the run's buffers step by step ([`HeldBuffers`]).
pub fn held_buffers(
    g: &Graph,
    order: &[NodeId],
    info: Option<&TrainingInfo>,
    opts: &SimOptions,
) -> (Simulation, HeldBuffers) {
    let r = run(g, order, info, opts, true);
    (r.sim, r.held.unwrap_or_default())
}
