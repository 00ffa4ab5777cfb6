//! Recurrent layers: RNN, GRU, LSTM. GRU and LSTM are lowered to unrolled standard ops
//! (`lower_rnn.rs`), whose rules give the gradient.
//! Spec: https://onnx.ai/onnx/operators/onnx__LSTM.html,
//! https://onnx.ai/onnx/operators/onnx__GRU.html.

use super::ctx::{OpCtx, OutInfo, RuleResult};
use crate::error::RuleError;
use crate::ir::Dim;

// Shape and type rules.

/// RNN, GRU, LSTM: X is [seq, batch, input] (layout 0) or [batch, seq, input] (layout 1).
/// Y is [seq, dirs, batch, hidden] / [batch, seq, dirs, hidden]; Y_h (and LSTM's Y_c)
/// [dirs, batch, hidden] / [batch, dirs, hidden].
pub fn recurrent(c: &OpCtx) -> RuleResult {
    let dt = c.dtype(0)?;
    let x = c.shape(0)?;
    if x.len() != 3 {
        return Err(RuleError(format!("{} input must be 3-D", c.node.op_type)));
    }
    let dirs = match c.node.attr_string("direction").as_deref() {
        None | Some("forward") | Some("reverse") => 1,
        Some("bidirectional") => 2,
        Some(other) => return Err(RuleError(format!("unknown direction '{other}'"))),
    };
    let hidden = match c.node.attr_int("hidden_size") {
        Some(h) => Dim::Known(h),
        // R is [dirs, gates * hidden, hidden].
        None => c.shape(2)?.get(2).cloned().unwrap_or(Dim::Unknown),
    };
    let dirs = Dim::Known(dirs);
    let batch_major = c.attr_int("layout", 0) != 0;
    let (seq, batch) = if batch_major {
        (&x[1], &x[0])
    } else {
        (&x[0], &x[1])
    };
    let y = if batch_major {
        vec![batch.clone(), seq.clone(), dirs.clone(), hidden.clone()]
    } else {
        vec![seq.clone(), dirs.clone(), batch.clone(), hidden.clone()]
    };
    let state = if batch_major {
        vec![batch.clone(), dirs, hidden]
    } else {
        vec![dirs, batch.clone(), hidden]
    };
    let mut out = vec![OutInfo::new(dt, y)];
    for _ in 1..c.num_outputs() {
        out.push(OutInfo::new(dt, state.clone()));
    }
    Ok(out)
}
