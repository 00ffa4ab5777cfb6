//! Concat, Split, Slice (and SplitToSequence, lowered to Split: `lower.rs`).
//! Spec: https://onnx.ai/onnx/operators/onnx__Concat.html,
//! https://onnx.ai/onnx/operators/onnx__Split.html,
//! https://onnx.ai/onnx/operators/onnx__Slice.html.
//!
//! Gradients: Concat → Split, Split → Concat (zeros for unused pieces), Slice → Pad (other
//! steps first reversed and interleaved with zeros); none saves a forward value.

use super::ctx::{norm_axis, OpCtx, OutInfo, RuleResult};
use super::fold;
use crate::autodiff::{axis_of, dy0, pad_none, GradCtx, Grads};
use crate::error::RuleError;
use crate::ir::{static_dims, Attribute, Dim, Shape, Tensor, ValueId};

// Shape and type rules.

pub fn concat(c: &OpCtx) -> RuleResult {
    let dt = c.dtype(0)?;
    let shapes: Vec<&Shape> = (0..c.num_inputs())
        .filter(|&i| c.has_input(i))
        .map(|i| c.shape(i))
        .collect::<Result<_, _>>()?;
    let rank = shapes[0].len();
    let axis = norm_axis(
        c.node
            .attr_int("axis")
            .ok_or_else(|| RuleError("Concat has no axis".into()))?,
        rank,
    )?;
    let mut out = shapes[0].clone();
    let mut sum = Some(0i64);
    for s in &shapes {
        if s.len() != rank {
            return Err(RuleError("Concat inputs have different ranks".into()));
        }
        sum =
            match (sum, s[axis].known()) {
                (Some(a), Some(d)) => Some(a.checked_add(d).ok_or_else(|| {
                    RuleError(format!("Concat along axis {axis} overflows int64"))
                })?),
                _ => None,
            };
        for k in 0..rank {
            if k != axis {
                if let (Dim::Known(a), Dim::Known(b)) = (&out[k], &s[k]) {
                    if a != b {
                        return Err(RuleError(format!(
                            "Concat inputs differ at axis {k}: {a} vs {b}"
                        )));
                    }
                } else if out[k] == Dim::Unknown {
                    out[k] = s[k].clone();
                }
            }
        }
    }
    out[axis] = sum.map_or(Dim::Unknown, Dim::Known);
    // Fold 1-D concatenations of constants: the shape vectors of Reshape and Expand. Every
    // part is small, of the output's type and 1-D, and their total is checked before any
    // byte is copied, so the buffer stays within MAX_FOLD_ELEMENTS.
    if rank == 1 {
        let parts: Option<Vec<&Tensor>> = (0..c.num_inputs())
            .filter(|&i| c.has_input(i))
            .map(|i| c.constant(i).filter(|t| t.dtype == dt && t.dims.len() == 1))
            .collect();
        let total = parts.as_ref().and_then(|parts| {
            parts.iter().try_fold(0u64, |a, t| {
                a.checked_add(fold::numel(&t.dims)?)
                    .filter(|&n| n <= fold::MAX_FOLD_ELEMENTS)
            })
        });
        if let (Some(parts), Some(n), Some(w)) = (parts, total, dt.size_bytes()) {
            let mut bytes = Vec::with_capacity((n * w) as usize);
            for p in &parts {
                if let crate::ir::TensorData::Raw(b) = &p.data {
                    bytes.extend_from_slice(b);
                }
            }
            if bytes.len() as u64 == n * w && out[0].known() == Some(n as i64) {
                let t = Tensor::raw(dt, vec![n as i64], bytes);
                return Ok(vec![OutInfo::constant(t)]);
            }
        }
    }
    Ok(vec![OutInfo::new(dt, out)])
}

pub fn split(c: &OpCtx) -> RuleResult {
    let dt = c.dtype(0)?;
    let s = c.shape(0)?;
    let axis = norm_axis(c.attr_int("axis", 0), s.len())?;
    let n = c.num_outputs();
    let sizes: Option<Vec<i64>> = if c.has_input(1) {
        c.const_ints(1)
    } else if let Some(v) = c.attr_ints("split") {
        Some(v)
    } else {
        s[axis].known().map(|d| {
            let parts = c.attr_int("num_outputs", n as i64).max(1);
            // ceil(d / parts) without overflow (d >= 0).
            let chunk = if d <= 0 { 0 } else { (d - 1) / parts + 1 };
            (0..n as i64)
                .map(|i| chunk.min(d.saturating_sub(chunk.saturating_mul(i))).max(0))
                .collect()
        })
    };
    let mut out = Vec::with_capacity(n);
    for i in 0..n {
        let mut sh = s.clone();
        sh[axis] = match &sizes {
            Some(v) => Dim::Known(*v.get(i).ok_or_else(|| {
                RuleError(format!("Split has {n} outputs but {} sizes", v.len()))
            })?),
            None => Dim::Unknown,
        };
        out.push(OutInfo::new(dt, sh));
    }
    Ok(out)
}

/// Normalized (start, end, step) per axis for Slice with known dim `d`.
fn slice_range(start: i64, end: i64, step: i64, d: i64) -> (i64, i64, i64) {
    let clampi = |x: i64, lo: i64, hi: i64| x.max(lo).min(hi);
    let fix = |x: i64| if x < 0 { x.saturating_add(d) } else { x };
    // Extreme steps cannot overflow the length arithmetic below.
    let step = step.clamp(-(1 << 62), 1 << 62);
    let (s, e) = if step > 0 {
        (clampi(fix(start), 0, d), clampi(fix(end), 0, d))
    } else {
        (clampi(fix(start), -1, d - 1), clampi(fix(end), -1, d - 1))
    };
    let len = if step > 0 {
        ((e - s).saturating_add(step - 1) / step).max(0)
    } else {
        ((s - e).saturating_add(-step - 1) / (-step)).max(0)
    };
    (s, len, step)
}

pub fn slice(c: &OpCtx) -> RuleResult {
    let dt = c.dtype(0)?;
    let s = c.shape(0)?;
    let (starts, ends) = match (c.const_ints(1), c.const_ints(2)) {
        (Some(a), Some(b)) => (a, b),
        _ => {
            // Unknown bounds: rank is kept, sliced dims become unknown.
            let axes = if c.has_input(3) {
                c.const_ints(3)
            } else {
                Some((0..s.len() as i64).collect())
            };
            let mut out = s.clone();
            match axes {
                Some(axes) => {
                    for a in axes {
                        out[norm_axis(a, s.len())?] = Dim::Unknown;
                    }
                }
                None => out = vec![Dim::Unknown; s.len()],
            }
            return Ok(vec![OutInfo::new(dt, out)]);
        }
    };
    let axes = if c.has_input(3) {
        c.const_ints(3)
            .ok_or_else(|| RuleError("Slice axes must be constant".into()))?
    } else {
        (0..starts.len() as i64).collect()
    };
    let steps = if c.has_input(4) {
        c.const_ints(4)
            .ok_or_else(|| RuleError("Slice steps must be constant".into()))?
    } else {
        vec![1; starts.len()]
    };
    if starts.len() != ends.len() || axes.len() != starts.len() || steps.len() != starts.len() {
        return Err(RuleError(
            "Slice starts/ends/axes/steps differ in length".into(),
        ));
    }
    let mut out = s.clone();
    let mut ranges: Vec<(i64, i64, i64)> =
        s.iter().map(|d| (0, d.known().unwrap_or(-1), 1)).collect();
    for k in 0..axes.len() {
        let a = norm_axis(axes[k], s.len())?;
        if steps[k] == 0 {
            return Err(RuleError("Slice step is 0".into()));
        }
        match s[a].known() {
            Some(d) => {
                let r = slice_range(starts[k], ends[k], steps[k], d);
                out[a] = Dim::Known(r.1);
                ranges[a] = r;
            }
            None => out[a] = Dim::Unknown,
        }
    }
    if let (Some(t), Some(dims)) = (c.constant(0), static_dims(&out)) {
        let n = fold::numel(&dims).filter(|&n| n <= fold::MAX_FOLD_ELEMENTS);
        if let (true, Some(n), true) = (fold::small(t), n, t.dims.len() == dims.len()) {
            let in_strides = fold::strides(&t.dims);
            let out_strides = fold::strides(&dims);
            let flat: Vec<usize> = (0..n as usize)
                .map(|f| {
                    (0..dims.len())
                        .map(|k| {
                            let coord = (f / out_strides[k]) % dims[k].max(1) as usize;
                            let (st, _, sp) = ranges[k];
                            ((st + coord as i64 * sp) as usize) * in_strides[k]
                        })
                        .sum()
                })
                .collect();
            if let Some(t) = fold::take(t, dims.clone(), &flat) {
                return Ok(vec![OutInfo::constant(t)]);
            }
        }
    }
    Ok(vec![OutInfo::new(dt, out)])
}

// Gradient rules.

pub fn concat_grad(c: &mut GradCtx, dys: &[Option<ValueId>]) -> Grads {
    let g = dy0(dys)?;
    let rank = c.dims(g)?.len();
    let axis = axis_of(c, rank, 0);
    let mut sizes = Vec::new();
    for i in 0..c.node.inputs.len() {
        sizes.push(c.dims(c.x(i)?)?[axis]);
    }
    let split = c.b.const_i64(&sizes);
    let n = sizes.len();
    let parts = c.b.node_n(
        "Split",
        &[Some(g), Some(split)],
        vec![Attribute::int("axis", axis as i64)],
        n,
    )?;
    Ok((0..n).map(|i| c.need(i).then_some(parts[i])).collect())
}

pub fn split_grad(c: &mut GradCtx, dys: &[Option<ValueId>]) -> Grads {
    let x = c.x(0)?;
    let rank = c.dims(x)?.len();
    let axis = axis_of(c, rank, 0);
    let mut parts = Vec::with_capacity(dys.len());
    for (i, dy) in dys.iter().enumerate() {
        parts.push(match dy {
            Some(d) => *d,
            None => {
                let y = c.y(i)?;
                c.b.zeros_like(y)?
            }
        });
    }
    let g =
        c.b.node("Concat", &parts, vec![Attribute::int("axis", axis as i64)])?;
    Ok(pad_none(vec![Some(g)], c.node.inputs.len()))
}

pub fn slice_grad(c: &mut GradCtx, dys: &[Option<ValueId>]) -> Grads {
    let x = c.x(0)?;
    let xd = c.dims(x)?;
    let mut g = dy0(dys)?;
    let starts = c.const_ints(1).ok_or("Slice starts are not constant")?;
    let ends = c.const_ints(2).ok_or("Slice ends are not constant")?;
    let axes = match c.node.input(3) {
        Some(_) => c.const_ints(3).ok_or("Slice axes are not constant")?,
        None => (0..starts.len() as i64).collect(),
    };
    let steps = match c.node.input(4) {
        Some(_) => c.const_ints(4).ok_or("Slice steps are not constant")?,
        None => vec![1; starts.len()],
    };
    let r = xd.len();
    let mut begin = vec![0i64; r];
    let mut after = vec![0i64; r];
    for k in 0..axes.len() {
        let a = (if axes[k] < 0 {
            axes[k] + r as i64
        } else {
            axes[k]
        }) as usize;
        let d = xd[a];
        let step = steps[k];
        if step == 0 {
            return Err("Slice with step 0".into());
        }
        let fix = |v: i64| if v < 0 { v.saturating_add(d) } else { v };
        // The selected indices, as the spec clamps them: s, s + step, ... (n of them).
        let (s, n) = if step > 0 {
            let s = fix(starts[k]).clamp(0, d);
            let e = fix(ends[k]).clamp(0, d);
            (s, ((e - s).max(0) + step - 1) / step)
        } else {
            let s = fix(starts[k]).clamp(0, d - 1);
            let e = fix(ends[k]).clamp(-1, d - 1);
            (s, ((s - e).max(0) - step - 1) / -step)
        };
        if n == 0 {
            return Ok(pad_none(
                vec![Some(c.b.zeros_like(x)?)],
                c.node.inputs.len(),
            ));
        }
        // Non-unit steps: spread the gradient back to the ascending, dense positions
        // lo, lo + t, ... (reverse it for a negative step; interleave t - 1 zeros).
        let (lo, t) = if step > 0 {
            (s, step)
        } else {
            (s + (n - 1) * step, -step)
        };
        if step < 0 {
            let (st, en, ax, sp) = (
                c.b.const_i64(&[-1]),
                c.b.const_i64(&[i64::MIN]),
                c.b.const_i64(&[a as i64]),
                c.b.const_i64(&[-1]),
            );
            g = c.b.op("Slice", &[g, st, en, ax, sp])?;
        }
        let mut len = n;
        if t > 1 {
            let mut gd = c.dims(g)?;
            let mut unsq = gd.clone();
            unsq.insert(a + 1, 1);
            let u = c.b.reshape(g, &unsq)?;
            let mut pads = vec![0i64; 2 * (r + 1)];
            pads[r + 1 + a + 1] = t - 1;
            let p = c.b.const_i64(&pads);
            let u =
                c.b.node("Pad", &[u, p], vec![Attribute::string("mode", "constant")])?;
            gd[a] = n * t;
            g = c.b.reshape(u, &gd)?;
            len = (n * t).min(d - lo);
            if len < n * t {
                let (st, en, ax) = (
                    c.b.const_i64(&[0]),
                    c.b.const_i64(&[len]),
                    c.b.const_i64(&[a as i64]),
                );
                g = c.b.op("Slice", &[g, st, en, ax])?;
            }
        }
        begin[a] = lo;
        after[a] = d - lo - len;
    }
    let mut pads = begin;
    pads.extend(after);
    let out = if pads.iter().all(|&p| p == 0) {
        g
    } else {
        let p = c.b.const_i64(&pads);
        c.b.node("Pad", &[g, p], vec![Attribute::string("mode", "constant")])?
    };
    Ok(pad_none(vec![Some(out)], c.node.inputs.len()))
}
