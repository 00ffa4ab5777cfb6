//! A fixed time per op type: deterministic costs for snapshot tests and examples.

use super::CostModel;
use onnx_ac_passes::ir::{Graph, NodeId};
use std::collections::BTreeMap;

/// Seconds per node by op type; `default_s` for op types not in `table`.
#[derive(Clone, Debug, PartialEq)]
pub struct FixedCost {
    pub table: BTreeMap<String, f64>,
    pub default_s: f64,
}

impl Default for FixedCost {
    /// 1 µs per node; MatMul, Gemm, Conv and ConvTranspose 10 µs (the table of
    /// `crate::cost::fixed_time`, so plan snapshots do not move).
    fn default() -> Self {
        let table = ["MatMul", "Gemm", "Conv", "ConvTranspose"]
            .iter()
            .map(|op| (op.to_string(), 1e-5))
            .collect();
        FixedCost {
            table,
            default_s: 1e-6,
        }
    }
}

impl FixedCost {
    /// Every node costs `seconds`.
    pub fn uniform(seconds: f64) -> FixedCost {
        FixedCost {
            table: BTreeMap::new(),
            default_s: seconds,
        }
    }

    /// The same table with `op` costing `seconds`.
    pub fn with(mut self, op: &str, seconds: f64) -> FixedCost {
        self.table.insert(op.to_string(), seconds);
        self
    }

    pub fn time_of_op(&self, op: &str) -> f64 {
        self.table.get(op).copied().unwrap_or(self.default_s)
    }
}

impl CostModel for FixedCost {
    fn node_time(&self, g: &Graph, n: NodeId) -> f64 {
        self.time_of_op(&g.node(n).op_type)
    }
    fn name(&self) -> &str {
        "fixed"
    }
}

/// The fixed table: deterministic, for tests and snapshots.
pub fn fixed_time(g: &onnx_ac_passes::ir::Graph, n: onnx_ac_passes::ir::NodeId) -> f64 {
    use super::CostModel;
    FixedCost::default().node_time(g, n)
}
