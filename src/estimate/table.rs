//! The estimate as a text table: one block per point, one row per plan, every size in one
//! unit chosen from the largest figure.

use super::Estimate;
use crate::size::ByteScale;
use std::fmt::Write;

/// A budget as given (`Budget::spec`) as people read it: `80000000000B` → `74.51 GiB`.
pub fn budget_text(spec: &str) -> String {
    spec.parse::<crate::size::Budget>()
        .map(|b| b.to_string())
        .unwrap_or_else(|_| spec.to_string())
}

/// The bytes per unit of `scale` (its unit is one of B, KiB, MiB, GiB, TiB).
pub fn unit_bytes(scale: &ByteScale) -> f64 {
    let k = ["B", "KiB", "MiB", "GiB", "TiB"]
        .iter()
        .position(|u| *u == scale.unit())
        .unwrap_or(0);
    (1u64 << (10 * k)) as f64
}

/// One scale for the whole estimate, from the largest total or step peak, at most GiB (a
/// 70B model's 0.26 TiB of parameters reads better as 262.84 GiB).
pub fn scale_of(e: &Estimate) -> ByteScale {
    let largest = e
        .points
        .iter()
        .flat_map(|p| &p.plans)
        .map(|r| r.total_bytes.max(r.step_peak_bytes))
        .max()
        .unwrap_or(0);
    ByteScale::for_largest(largest.min((1 << 40) - 1))
}

pub fn text(e: &Estimate) -> String {
    let scale = scale_of(e);
    let per = unit_bytes(&scale);
    let n = |b: u64| format!("{:.2}", b as f64 / per);
    let mut s = String::new();
    let without = if e.initializers_without_data > 0 {
        format!(
            " (structure only: {} initializers without data)",
            e.initializers_without_data
        )
    } else {
        String::new()
    };
    let _ = writeln!(s, "model        {}{without}", e.model);
    let from_inputs = if e.parameters_from_inputs.is_empty() {
        String::new()
    } else {
        format!(
            ", {} of them graph inputs (--params-from-inputs)",
            e.parameters_from_inputs.len()
        )
    };
    let _ = writeln!(
        s,
        "parameters   {} in {} tensors{from_inputs}: {}",
        e.parameters.count,
        e.parameters.tensors,
        scale.format(e.parameters.bytes)
    );
    let _ = writeln!(
        s,
        "optimizer    {}",
        match &e.optimizer {
            None => "none (gradients are the step's outputs)".to_string(),
            Some(o) => format!(
                "{o}: {} state tensor(s) per parameter",
                e.optimizer_states_per_parameter
            ),
        }
    );
    let _ = writeln!(s, "cost model   {}", e.cost_model);
    if let Some(b) = &e.budget_requested {
        let _ = writeln!(
            s,
            "budget       {} (plan \"budget\": planner ac)",
            budget_text(b)
        );
    }
    let mut missed = false;
    for p in &e.points {
        let dims: Vec<String> = p.dims.iter().map(|(k, v)| format!("{k}={v}")).collect();
        let dims = if dims.is_empty() {
            "static shapes".to_string()
        } else {
            dims.join(" ")
        };
        let _ = writeln!(s, "\n{dims}");
        let _ = writeln!(
            s,
            "  {:<10} {:>11} {:>11} {:>11} {:>12} {:>11} {:>11} {:>10}",
            "plan",
            "parameters",
            "gradients",
            "optimizer",
            "activations",
            "total",
            "step peak",
            "recompute"
        );
        for r in &p.plans {
            let name = if r.within_budget == Some(false) {
                missed = true;
                format!("{}*", r.plan)
            } else {
                r.plan.clone()
            };
            let _ = writeln!(
                s,
                "  {:<10} {:>11} {:>11} {:>11} {:>12} {:>11} {:>11} {:>9.1}%",
                name,
                n(r.parameters_bytes),
                n(r.gradients_bytes),
                n(r.optimizer_state_bytes),
                n(r.activations_bytes),
                n(r.total_bytes),
                n(r.step_peak_bytes),
                r.recompute_time_percent
            );
        }
    }
    let _ = writeln!(
        s,
        "\nsizes in {}; total = parameters + gradients + optimizer state + activations (the \
         forward buffers the backward keeps); step peak: the simulated peak of the whole step; \
         recompute: time added, % of the step (docs/estimate.md)",
        scale.unit()
    );
    if missed {
        let _ = writeln!(
            s,
            "* the budget is not met at this point: the row is the planner's lowest-peak plan"
        );
    }
    s
}
