//! Shape computations and views: Shape, Size, Reshape, Flatten, Squeeze, Unsqueeze,
//! Transpose. Reshape-like ops alias their input in ONNX Runtime (`MemoryClass`).
//! Spec: https://onnx.ai/onnx/operators/onnx__Reshape.html (and `onnx__<Op>.html`),
//! opsets 13–24.
//!
//! Gradients: Reshape/Flatten/Squeeze/Unsqueeze reshape back, Transpose applies the inverse
//! permutation; none saves a forward value.

use super::ctx::{norm_axis, rank_from_len, OpCtx, OutInfo, RuleResult};
use super::fold;
use crate::autodiff::{dy0, pad_none, GradCtx, Grads};
use crate::error::RuleError;
use crate::ir::{known_shape, static_dims, DType, Dim, Shape, Tensor, ValueId};

// Shape and type rules.

fn dims_to_tensor(shape: &[Dim]) -> Option<Tensor> {
    let d = static_dims(shape)?;
    Some(Tensor::from_i64(vec![d.len() as i64], &d))
}

pub fn shape(c: &OpCtx) -> RuleResult {
    let s = c.shape(0)?;
    let r = s.len() as i64;
    let clamp = |x: i64| (if x < 0 { x + r } else { x }).clamp(0, r) as usize;
    let start = clamp(c.attr_int("start", 0));
    let end = clamp(c.attr_int("end", r));
    let part: Shape = s[start..end.max(start)].to_vec();
    if let Some(t) = dims_to_tensor(&part) {
        return Ok(vec![OutInfo::constant(t)]);
    }
    Ok(vec![OutInfo::new(
        DType::Int64,
        vec![Dim::Known(part.len() as i64)],
    )])
}

pub fn size(c: &OpCtx) -> RuleResult {
    let s = c.shape(0)?;
    if let Some(n) = crate::ir::static_numel(s) {
        return Ok(vec![OutInfo::constant(Tensor::from_i64(
            vec![],
            &[n as i64],
        ))]);
    }
    Ok(vec![OutInfo::new(DType::Int64, vec![])])
}

fn with_data(c: &OpCtx, dims: Vec<i64>) -> OutInfo {
    // Data movement that keeps element order (Reshape, Flatten, Squeeze, Unsqueeze) folds by
    // re-labelling the dims of a constant input.
    if let Some(t) = c.constant(0) {
        if fold::small(t) && fold::numel(&dims) == fold::numel(&t.dims) {
            let mut t = t.clone();
            t.dims = dims;
            return OutInfo::constant(t);
        }
    }
    OutInfo::new(c.dtype(0).unwrap_or(DType::Float), known_shape(&dims))
}

pub fn reshape(c: &OpCtx) -> RuleResult {
    let dt = c.dtype(0)?;
    let what = || format!("the length of shape input '{}'", c.input_name(1));
    let Some(target) = c.const_ints(1) else {
        let n = c.shape(1).ok().and_then(|s| s.first().and_then(Dim::known));
        return Ok(vec![match n {
            Some(n) => OutInfo::new(dt, vec![Dim::Unknown; rank_from_len(n, &what())?]),
            None => OutInfo::unranked(dt),
        }]);
    };
    rank_from_len(target.len() as i64, &what())?;
    let input = c.shape(0)?;
    let allowzero = c.attr_int("allowzero", 0) != 0;
    let mut out: Shape = Vec::with_capacity(target.len());
    let mut infer_at = None;
    for (i, &t) in target.iter().enumerate() {
        out.push(match t {
            0 if !allowzero => input.get(i).cloned().ok_or_else(|| {
                RuleError(format!(
                    "Reshape copies dim {i} of a rank-{} input",
                    input.len()
                ))
            })?,
            -1 => {
                if infer_at.replace(i).is_some() {
                    return Err(RuleError("Reshape target has two -1 dims".into()));
                }
                Dim::Unknown
            }
            t if t < 0 => return Err(RuleError(format!("Reshape target has dim {t}"))),
            t => Dim::Known(t),
        });
    }
    if let Some(k) = infer_at {
        let total = crate::ir::static_numel(input);
        let rest: Option<u64> = out
            .iter()
            .enumerate()
            .filter(|&(i, _)| i != k)
            .try_fold(1u64, |a, (_, d)| {
                a.checked_mul(u64::try_from(d.known()?).ok()?)
            });
        if let (Some(total), Some(rest)) = (total, rest) {
            if rest == 0 || total % rest != 0 {
                return Err(RuleError(format!(
                    "cannot reshape {} elements into {target:?}",
                    total
                )));
            }
            out[k] = Dim::Known((total / rest) as i64);
        } else if input.len() == out.len() {
            // Same rank and every other dim equal: the -1 dim is the remaining one.
            let others_equal = (0..out.len())
                .filter(|&i| i != k)
                .all(|i| out[i] == input[i]);
            if others_equal {
                out[k] = input[k].clone();
            }
        }
    } else if let (Some(total), Some(n)) = (
        crate::ir::static_numel(input),
        crate::ir::static_numel(&out),
    ) {
        if total != n {
            return Err(RuleError(format!(
                "cannot reshape {} elements into {target:?}",
                total
            )));
        }
    }
    match static_dims(&out) {
        Some(d) => Ok(vec![with_data(c, d)]),
        None => Ok(vec![OutInfo::new(dt, out)]),
    }
}

pub fn flatten(c: &OpCtx) -> RuleResult {
    let dt = c.dtype(0)?;
    let s = c.shape(0)?;
    let r = s.len() as i64;
    let mut axis = c.attr_int("axis", 1);
    if axis < 0 {
        axis += r;
    }
    if !(0..=r).contains(&axis) {
        return Err(RuleError(format!("Flatten axis out of range for rank {r}")));
    }
    // A product of known dims, or unknown; it can overflow when another dim is 0.
    let prod = |d: &[Dim]| -> Result<Dim, RuleError> {
        let mut p = 1i64;
        for x in d {
            let Some(x) = x.known() else {
                return Ok(Dim::Unknown);
            };
            p = p.checked_mul(x).ok_or_else(|| {
                RuleError(format!(
                    "Flatten of {} at axis {axis} overflows int64",
                    crate::ir::shape_string(Some(s))
                ))
            })?;
        }
        Ok(Dim::Known(p))
    };
    let out = vec![prod(&s[..axis as usize])?, prod(&s[axis as usize..])?];
    match static_dims(&out) {
        Some(d) => Ok(vec![with_data(c, d)]),
        None => Ok(vec![OutInfo::new(dt, out)]),
    }
}

pub fn transpose(c: &OpCtx) -> RuleResult {
    let dt = c.dtype(0)?;
    let s = c.shape(0)?;
    let perm = c
        .attr_ints("perm")
        .unwrap_or_else(|| (0..s.len() as i64).rev().collect());
    if perm.len() != s.len() {
        return Err(RuleError(format!(
            "perm {perm:?} does not match rank {}",
            s.len()
        )));
    }
    let mut seen = vec![false; s.len()];
    let mut out = Vec::with_capacity(s.len());
    for &p in &perm {
        let a = norm_axis(p, s.len())?;
        if std::mem::replace(&mut seen[a], true) {
            return Err(RuleError(format!("perm {perm:?} repeats axis {a}")));
        }
        out.push(s[a].clone());
    }
    if let (Some(t), Some(dims)) = (c.constant(0), static_dims(&out)) {
        // Integer values only (shape computations): a float initializer may be a trained
        // weight (GPT-2's tied lm_head reads Transpose(wte)), which is no constant.
        // Input and output hold the same (small) number of elements.
        if t.dtype.is_int() && fold::small(t) && static_dims(s).as_deref() == Some(&t.dims[..]) {
            let in_strides = fold::strides(&t.dims);
            let out_strides = fold::strides(&dims);
            let axes: Vec<usize> = perm
                .iter()
                .map(|&p| norm_axis(p, s.len()))
                .collect::<Result<_, _>>()?;
            let n = fold::numel(&dims).unwrap_or(0) as usize;
            let flat: Vec<usize> = (0..n)
                .map(|f| {
                    out_strides
                        .iter()
                        .zip(&axes)
                        .map(|(&os, &a)| (f / os) % (t.dims[a].max(1) as usize) * in_strides[a])
                        .sum()
                })
                .collect();
            if let Some(t) = fold::take(t, dims, &flat) {
                return Ok(vec![OutInfo::constant(t)]);
            }
        }
    }
    Ok(vec![OutInfo::new(dt, out)])
}

fn axes_of(c: &OpCtx) -> Option<Vec<i64>> {
    if c.has_input(1) {
        c.const_ints(1)
    } else {
        c.attr_ints("axes")
    }
}

pub fn squeeze(c: &OpCtx) -> RuleResult {
    let dt = c.dtype(0)?;
    let s = c.shape(0)?;
    let out: Shape = match axes_of(c) {
        Some(axes) => {
            let axes: Vec<usize> = axes
                .iter()
                .map(|&a| norm_axis(a, s.len()))
                .collect::<Result<_, _>>()?;
            for &a in &axes {
                if let Dim::Known(d) = s[a] {
                    if d != 1 {
                        return Err(RuleError(format!("Squeeze axis {a} has size {d}, not 1")));
                    }
                }
            }
            s.iter()
                .enumerate()
                .filter(|(i, _)| !axes.contains(i))
                .map(|(_, d)| d.clone())
                .collect()
        }
        None if c.has_input(1) => return Ok(vec![OutInfo::unranked(dt)]),
        None => {
            if s.iter().any(|d| d.known().is_none()) {
                return Ok(vec![OutInfo::unranked(dt)]);
            }
            s.iter().filter(|d| **d != Dim::Known(1)).cloned().collect()
        }
    };
    match static_dims(&out) {
        Some(d) => Ok(vec![with_data(c, d)]),
        None => Ok(vec![OutInfo::new(dt, out)]),
    }
}

pub fn unsqueeze(c: &OpCtx) -> RuleResult {
    let dt = c.dtype(0)?;
    let s = c.shape(0)?;
    let axes = axes_of(c).ok_or_else(|| RuleError("Unsqueeze axes are not constant".into()))?;
    let rank = rank_from_len((s.len() + axes.len()) as i64, "the output rank")?;
    let mut axes: Vec<usize> = axes
        .iter()
        .map(|&a| norm_axis(a, rank))
        .collect::<Result<_, _>>()?;
    axes.sort_unstable();
    let mut out = Vec::with_capacity(rank);
    let mut it = s.iter();
    for k in 0..rank {
        if axes.binary_search(&k).is_ok() {
            out.push(Dim::Known(1));
        } else {
            out.push(
                it.next()
                    .cloned()
                    .ok_or_else(|| RuleError("Unsqueeze axes repeat".into()))?,
            );
        }
    }
    match static_dims(&out) {
        Some(d) => Ok(vec![with_data(c, d)]),
        None => Ok(vec![OutInfo::new(dt, out)]),
    }
}

// Gradient rules.

pub fn reshape_like_grad(c: &mut GradCtx, dys: &[Option<ValueId>]) -> Grads {
    let xd = c.dims(c.x(0)?)?;
    let g = c.b.reshape(dy0(dys)?, &xd)?;
    Ok(pad_none(vec![Some(g)], c.node.inputs.len()))
}

pub fn transpose_grad(c: &mut GradCtx, dys: &[Option<ValueId>]) -> Grads {
    let r = c.dims(c.x(0)?)?.len();
    let perm = c
        .node
        .attr_ints("perm")
        .map(|p| p.to_vec())
        .unwrap_or_else(|| (0..r as i64).rev().collect());
    let mut inv = vec![0i64; r];
    for (i, &p) in perm.iter().enumerate() {
        let p = if p < 0 { p + r as i64 } else { p };
        inv[p as usize] = i as i64;
    }
    Ok(vec![Some(c.b.transpose(dy0(dys)?, &inv)?)])
}

#[cfg(test)]
mod tests {
    use crate::infer::infer_shapes;
    use crate::ir::{shape_string, Attribute, DType, Graph, Node, Tensor};

    /// Transpose of a small constant is folded (the ts17 exporter's F.pad pads go through
    /// one); above the fold cap only the shape is inferred.
    #[test]
    fn transpose_of_a_constant_folds() {
        let run = |dims: Vec<i64>, vals: Vec<i64>, perm: Option<Vec<i64>>| {
            let mut g = Graph::default();
            let x = g.add_initializer("x", Tensor::from_i64(dims, &vals));
            let y = g.new_value("y");
            let mut n = Node::new("Transpose", vec![Some(x)], vec![Some(y)]);
            if let Some(p) = perm {
                n.attrs.push(Attribute::ints("perm", p));
            }
            g.add_node(n);
            infer_shapes(&mut g, 13).unwrap();
            let v = g.value(y);
            (
                shape_string(v.shape.as_ref()),
                v.constant
                    .as_ref()
                    .map(|t| (t.dims.clone(), t.as_i64().unwrap())),
            )
        };
        // [[0,1,2],[3,4,5]] → [[0,3],[1,4],[2,5]]
        let (s, c) = run(vec![2, 3], (0..6).collect(), Some(vec![1, 0]));
        assert_eq!(s, "[3,2]");
        assert_eq!(c, Some((vec![3, 2], vec![0, 3, 1, 4, 2, 5])));
        // No perm: axes reversed.
        let (_, c) = run(vec![2, 1, 3], (0..6).collect(), None);
        assert_eq!(c, Some((vec![3, 1, 2], vec![0, 3, 1, 4, 2, 5])));
        // [2,3,2] with perm [2,0,1]: y[k,i,j] = x[i,j,k].
        let (s, c) = run(vec![2, 3, 2], (0..12).collect(), Some(vec![2, 0, 1]));
        assert_eq!(s, "[2,2,3]");
        assert_eq!(
            c,
            Some((vec![2, 2, 3], vec![0, 2, 4, 6, 8, 10, 1, 3, 5, 7, 9, 11]))
        );
        // A float initializer (maybe a trained weight) is not folded.
        let mut g = Graph::default();
        let w = g.add_initializer(
            "w",
            Tensor::from_f64_as(DType::Float, vec![2, 3], &[0.0; 6]).unwrap(),
        );
        let wt = g.new_value("wt");
        g.add_node(Node::new("Transpose", vec![Some(w)], vec![Some(wt)]));
        infer_shapes(&mut g, 13).unwrap();
        assert_eq!(shape_string(g.value(wt).shape.as_ref()), "[3,2]");
        assert!(g.value(wt).constant.is_none());
        let big = crate::ops::fold::MAX_FOLD_ELEMENTS as i64 + 1;
        let (s, c) = run(vec![1, big], vec![0; big as usize], Some(vec![1, 0]));
        assert_eq!(s, format!("[{big},1]"));
        assert_eq!(c, None);
    }
}
