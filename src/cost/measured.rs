//! Costs measured with ONNX Runtime: the per-node medians of a [`Profile`].

use super::{AnalyticCost, CostModel};
use crate::profile::Profile;
use onnx_ac_passes::ir::{Graph, NodeId};
use std::sync::OnceLock;

/// The suffix the recompute rewrite appends to the names of copied nodes
/// (`<orig>/recompute`, made unique as `<orig>/recompute_1`, ...).
pub const RECOMPUTE_MARK: &str = "/recompute";

/// Per-node times from a profile. A node the profile lacks takes, in order: the time of the
/// node it is a recompute copy of (`<orig>/recompute…`), else the analytic estimate scaled by
/// the ratio of measured to analytic time over the nodes the profile has (so that estimates and
/// measurements add up on the same scale).
#[derive(Debug)]
pub struct MeasuredCost {
    profile: Profile,
    fallback: AnalyticCost,
    scale: OnceLock<f64>,
}

impl MeasuredCost {
    pub fn new(profile: Profile, fallback: AnalyticCost) -> MeasuredCost {
        MeasuredCost {
            profile,
            fallback,
            scale: OnceLock::new(),
        }
    }

    pub fn profile(&self) -> &Profile {
        &self.profile
    }

    /// The measured time of the node named `name`, or of the node it recomputes.
    pub fn time_of_name(&self, name: &str) -> Option<f64> {
        self.profile.time_of_name(name).or_else(|| {
            let (orig, _) = name.split_once(RECOMPUTE_MARK)?;
            self.profile.time_of_name(orig)
        })
    }

    /// Measured / analytic time over the nodes of `g` the profile has (1 if none). Computed on
    /// the first fallback, from the graph asked about then.
    pub fn scale(&self, g: &Graph) -> f64 {
        *self.scale.get_or_init(|| {
            let (mut measured, mut analytic) = (0.0, 0.0);
            for n in g.node_ids() {
                if let Some(t) = self.profile.time_of_name(&g.node(n).name) {
                    measured += t;
                    analytic += self.fallback.node_time(g, n);
                }
            }
            if measured > 0.0 && analytic > 0.0 {
                measured / analytic
            } else {
                1.0
            }
        })
    }
}

impl CostModel for MeasuredCost {
    fn node_time(&self, g: &Graph, n: NodeId) -> f64 {
        let node = g.node(n);
        // A recompute copy takes its original's time: by provenance in a graph the rewrite
        // made, else (a graph loaded from a file) by name.
        let measured = self.profile.time_of_name(&node.name).or_else(|| {
            node.recompute_of()
                .and_then(|orig| self.profile.time_of_name(&g.node(orig).name))
                .or_else(|| self.time_of_name(&node.name))
        });
        match measured {
            Some(t) => t,
            None => self.fallback.node_time(g, n) * self.scale(g),
        }
    }
    fn name(&self) -> &str {
        "measured"
    }
}
