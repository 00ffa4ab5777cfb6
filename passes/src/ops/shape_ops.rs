//! Ops that move data or compute shapes: Shape, Size, Constant, ConstantOfShape, Range,
//! Reshape, Flatten, Transpose, Concat, Split, Slice, Gather, GatherElements, Expand,
//! Squeeze, Unsqueeze, Tile, Pad, CenterCropPad, Trilu, ScatterND, ScatterElements,
//! TensorScatter, CumSum, NonZero, OneHot; and the generators whose shape is an input's value
//! (BlackmanWindow, HannWindow, HammingWindow, MelWeightMatrix).
//! All fold on constants where exported transformers use them for shapes.
//! Spec: https://onnx.ai/onnx/operators/ (opsets 13–24).

use super::ctx::{norm_axis, rank_from_len, OpCtx, OutInfo, RuleResult};
use super::fold;
use crate::error::RuleError;
use crate::ir::{known_shape, static_dims, AttrValue, DType, Dim, Shape, Tensor};

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

pub fn constant(c: &OpCtx) -> RuleResult {
    let a = c
        .node
        .attrs
        .first()
        .ok_or_else(|| RuleError("Constant has no value attribute".into()))?;
    let t = match (&a.name[..], &a.value) {
        ("value", AttrValue::Tensor(t)) => t.clone(),
        ("value_float", AttrValue::Float(f)) => Tensor::from_f32(vec![], &[*f]),
        ("value_floats", AttrValue::Floats(f)) => Tensor::from_f32(vec![f.len() as i64], f),
        ("value_int", AttrValue::Int(i)) => Tensor::from_i64(vec![], &[*i]),
        ("value_ints", AttrValue::Ints(i)) => Tensor::from_i64(vec![i.len() as i64], i),
        _ => {
            return Err(RuleError(format!(
                "Constant with attribute '{}' is not supported",
                a.name
            )))
        }
    };
    if matches!(t.data, crate::ir::TensorData::Raw(_)) {
        Ok(vec![OutInfo::constant(t)])
    } else {
        Ok(vec![OutInfo::new(t.dtype, known_shape(&t.dims))])
    }
}

pub fn constant_of_shape(c: &OpCtx) -> RuleResult {
    let value = c
        .node
        .attr_tensor("value")
        .cloned()
        .unwrap_or_else(|| Tensor::from_f32(vec![1], &[0.0]));
    let what = || format!("the length of shape input '{}'", c.input_name(0));
    let Some(dims) = c.const_ints(0) else {
        let n = c.shape(0)?.first().and_then(Dim::known);
        let shape = match n {
            Some(n) => vec![Dim::Unknown; rank_from_len(n, &what())?],
            None => return Ok(vec![OutInfo::unranked(value.dtype)]),
        };
        return Ok(vec![OutInfo::new(value.dtype, shape)]);
    };
    rank_from_len(dims.len() as i64, &what())?;
    if dims.iter().any(|&d| d < 0) {
        return Err(RuleError(format!("negative dimension in shape {dims:?}")));
    }
    // Folded only when small: the element count is checked before the index buffer exists.
    if let Some(n) = fold::numel(&dims).filter(|&n| n <= fold::MAX_FOLD_ELEMENTS) {
        if let Some(t) = fold::take(&value, dims.clone(), &vec![0; n as usize]) {
            return Ok(vec![OutInfo::constant(t)]);
        }
    }
    Ok(vec![OutInfo::new(value.dtype, known_shape(&dims))])
}

pub fn range(c: &OpCtx) -> RuleResult {
    let dt = c.dtype(0)?;
    // Scalars: a big constant is not read (its first value would do, but it is not a
    // valid Range input anyway).
    let vals = (
        c.const_f64_first(0),
        c.const_f64_first(1),
        c.const_f64_first(2),
    );
    if let (Some(s), Some(l), Some(d)) = vals {
        if d == 0.0 {
            return Err(RuleError("Range delta is 0".into()));
        }
        // A saturating cast: NaN gives 0, an infinite or huge count i64::MAX, which shape
        // inference then refuses as too large. Folded only when small.
        let n = ((l - s) / d).ceil().max(0.0) as i64;
        if n as u64 <= fold::MAX_FOLD_ELEMENTS {
            let v: Vec<f64> = (0..n).map(|i| s + i as f64 * d).collect();
            if let Some(t) = Tensor::from_f64_as(dt, vec![n], &v) {
                return Ok(vec![OutInfo::constant(t)]);
            }
        }
        return Ok(vec![OutInfo::new(dt, vec![Dim::Known(n)])]);
    }
    Ok(vec![OutInfo::new(dt, vec![Dim::Unknown])])
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

pub fn gather(c: &OpCtx) -> RuleResult {
    let dt = c.dtype(0)?;
    let data = c.shape(0)?;
    let idx = c.shape(1)?;
    let axis = norm_axis(c.attr_int("axis", 0), data.len())?;
    let mut out: Shape = data[..axis].to_vec();
    out.extend(idx.iter().cloned());
    out.extend(data[axis + 1..].iter().cloned());
    if let (Some(t), Some(iv), Some(dims)) = (c.constant(0), c.const_ints(1), static_dims(&out)) {
        let d = data[axis].known().unwrap_or(0);
        // The input and the output are both small, so every product below is too.
        if fold::small(t)
            && fold::small_dims(&dims)
            && static_dims(data).as_deref() == Some(&t.dims[..])
            && iv.iter().all(|&i| i >= -d && i < d)
        {
            let outer: i64 = t.dims[..axis].iter().product();
            let inner: i64 = t.dims[axis + 1..].iter().product();
            let mut flat = Vec::new();
            for o in 0..outer {
                for &i in &iv {
                    let i = if i < 0 { i + d } else { i };
                    for k in 0..inner {
                        flat.push(((o * d + i) * inner + k) as usize);
                    }
                }
            }
            if let Some(t) = fold::take(t, dims, &flat) {
                return Ok(vec![OutInfo::constant(t)]);
            }
        }
    }
    Ok(vec![OutInfo::new(dt, out)])
}

/// Output takes the shape of the indices (GatherElements) or of the data (Scatter*).
pub fn like_input1(c: &OpCtx) -> RuleResult {
    Ok(vec![OutInfo {
        dtype: c.dtype(0)?,
        shape: c.shape_opt(1).cloned(),
        constant: None,
    }])
}

pub fn like_input0(c: &OpCtx) -> RuleResult {
    Ok(vec![OutInfo {
        dtype: c.dtype(0)?,
        shape: c.shape_opt(0).cloned(),
        constant: None,
    }])
}

/// CumSum: the output is like the input; a constant `axis` must be one value in
/// [-rank, rank-1] (ONNX Runtime refuses the model otherwise).
pub fn cum_sum(c: &OpCtx) -> RuleResult {
    if let (Some(axis), Some(s)) = (c.const_ints(1), c.shape_opt(0)) {
        match axis[..] {
            [a] => {
                norm_axis(a, s.len())?;
            }
            _ => {
                return Err(RuleError(format!(
                    "axis input '{}' must hold one value, not {}",
                    c.input_name(1),
                    axis.len()
                )))
            }
        }
    }
    like_input0(c)
}

pub fn expand(c: &OpCtx) -> RuleResult {
    let dt = c.dtype(0)?;
    let s = c.shape(0)?;
    let what = || format!("the length of shape input '{}'", c.input_name(1));
    let Some(target) = c.const_ints(1) else {
        // The target's length gives the rank; an input dim other than 1 survives.
        let Some(n) = c.shape_opt(1).and_then(|t| t.first()).and_then(Dim::known) else {
            return Ok(vec![OutInfo::unranked(dt)]);
        };
        // The rank is the length of the target, a value from the file: checked before the
        // shape is allocated (a target of shape [2^40] would ask for 24 TiB).
        let r = s.len().max(rank_from_len(n, &what())?);
        let mut out = vec![Dim::Unknown; r];
        for (o, d) in out[r - s.len()..].iter_mut().zip(s) {
            if d.known().is_some_and(|d| d != 1) {
                *o = d.clone();
            }
        }
        return Ok(vec![OutInfo::new(dt, out)]);
    };
    rank_from_len(target.len() as i64, &what())?;
    let out = super::ctx::broadcast(&[s, &known_shape(&target)])?;
    if let (Some(t), Some(dims)) = (c.constant(0), static_dims(&out)) {
        // broadcast_index refuses an output above MAX_FOLD_ELEMENTS before allocating.
        if let (true, Some(idx)) = (fold::small(t), fold::broadcast_index(&dims, &t.dims)) {
            if let Some(t) = fold::take(t, dims, &idx) {
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

pub fn tile(c: &OpCtx) -> RuleResult {
    let dt = c.dtype(0)?;
    let s = c.shape(0)?;
    let Some(rep) = c.const_ints(1) else {
        return Ok(vec![OutInfo::new(dt, vec![Dim::Unknown; s.len()])]);
    };
    if rep.len() != s.len() {
        return Err(RuleError("Tile repeats do not match the rank".into()));
    }
    let out = s
        .iter()
        .zip(&rep)
        .map(|(d, &r)| match d.known() {
            Some(d) => d
                .checked_mul(r)
                .filter(|&x| x >= 0)
                .map(Dim::Known)
                .ok_or_else(|| RuleError(format!("Tile of dim {d} by {r} is out of range"))),
            None => Ok(Dim::Unknown),
        })
        .collect::<Result<_, _>>()?;
    Ok(vec![OutInfo::new(dt, out)])
}

pub fn pad(c: &OpCtx) -> RuleResult {
    let dt = c.dtype(0)?;
    let s = c.shape(0)?;
    let Some(pads) = c.const_ints(1) else {
        return Ok(vec![OutInfo::new(dt, vec![Dim::Unknown; s.len()])]);
    };
    let axes: Vec<usize> = if c.has_input(3) {
        c.const_ints(3)
            .ok_or_else(|| RuleError("Pad axes are not constant".into()))?
            .iter()
            .map(|&a| norm_axis(a, s.len()))
            .collect::<Result<_, _>>()?
    } else {
        (0..s.len()).collect()
    };
    if pads.len() != 2 * axes.len() {
        return Err(RuleError("Pad pads do not match the axes".into()));
    }
    let mut out = s.clone();
    for (k, &a) in axes.iter().enumerate() {
        out[a] = match out[a].known() {
            Some(d) => d
                .checked_add(pads[k])
                .and_then(|x| x.checked_add(pads[k + axes.len()]))
                .filter(|&x| x >= 0)
                .map(Dim::Known)
                .ok_or_else(|| {
                    RuleError(format!(
                        "Pad of dim {d} gives a negative or overflowing size"
                    ))
                })?,
            None => Dim::Unknown,
        };
    }
    Ok(vec![OutInfo::new(dt, out)])
}

/// GatherND: indices[:-1] ++ data[batch_dims + indices[-1]:].
pub fn gather_nd(c: &OpCtx) -> RuleResult {
    let dt = c.dtype(0)?;
    let data = c.shape(0)?;
    let idx = c.shape(1)?;
    let b = c.attr_int("batch_dims", 0);
    let Some(last) = idx.last().and_then(Dim::known) else {
        return Ok(vec![OutInfo::unranked(dt)]);
    };
    let end = usize::try_from(b)
        .ok()
        .zip(usize::try_from(last).ok())
        .and_then(|(b, l)| b.checked_add(l))
        .filter(|&e| e <= data.len())
        .ok_or_else(|| {
            RuleError(format!(
                "GatherND indexes {last} dims after {b} batch dims of a rank-{} input",
                data.len()
            ))
        })?;
    let mut out: Shape = idx[..idx.len() - 1].to_vec();
    out.extend(data[end..].iter().cloned());
    Ok(vec![OutInfo::new(dt, out)])
}

/// CenterCropPad(input, shape): the dims on `axes` (default all) become `shape`.
pub fn center_crop_pad(c: &OpCtx) -> RuleResult {
    let dt = c.dtype(0)?;
    let s = c.shape(0)?;
    let axes: Vec<usize> = match c.attr_ints("axes") {
        Some(a) => a
            .iter()
            .map(|&a| norm_axis(a, s.len()))
            .collect::<Result<_, _>>()?,
        None => (0..s.len()).collect(),
    };
    let target = c.const_ints(1);
    if target.as_ref().is_some_and(|t| t.len() != axes.len()) {
        return Err(RuleError(
            "CenterCropPad shape does not match the axes".into(),
        ));
    }
    let mut out = s.clone();
    for (k, &a) in axes.iter().enumerate() {
        out[a] = target.as_ref().map_or(Dim::Unknown, |t| Dim::Known(t[k]));
    }
    Ok(vec![OutInfo::new(dt, out)])
}

/// The scalar value of integer input `i`, if constant.
fn const_scalar(c: &OpCtx, i: usize) -> Option<i64> {
    match c.const_ints(i).as_deref() {
        Some([v]) => Some(*v),
        _ => None,
    }
}

fn output_datatype(c: &OpCtx) -> Result<DType, RuleError> {
    Ok(super::ctx::dtype_attr(c, "output_datatype")?.unwrap_or(DType::Float))
}

/// BlackmanWindow, HannWindow, HammingWindow(size) -> [size] of `output_datatype`.
pub fn window(c: &OpCtx) -> RuleResult {
    let n = const_scalar(c, 0).map_or(Dim::Unknown, Dim::Known);
    Ok(vec![OutInfo::new(output_datatype(c)?, vec![n])])
}

/// MelWeightMatrix(num_mel_bins, dft_length, ...) -> [dft_length / 2 + 1, num_mel_bins].
pub fn mel_weight_matrix(c: &OpCtx) -> RuleResult {
    let bins = const_scalar(c, 1).map_or(Dim::Unknown, |n| Dim::Known(n / 2 + 1));
    let mel = const_scalar(c, 0).map_or(Dim::Unknown, Dim::Known);
    Ok(vec![OutInfo::new(output_datatype(c)?, vec![bins, mel])])
}

/// OneHot(indices, depth, values): the indices' shape with a `depth` dim inserted at `axis`
/// (default −1, the last), of the values' type. `depth` (a scalar or one-element tensor of
/// any numeric type) gives a static dim when it is constant.
pub fn one_hot(c: &OpCtx) -> RuleResult {
    let dt = c.dtype(2)?;
    let s = c.shape(0)?;
    let axis = norm_axis(c.attr_int("axis", -1), s.len() + 1)?;
    let depth = match c.const_f64_first(1) {
        Some(d) if d >= 1.0 && d <= i64::MAX as f64 => Dim::Known(d as i64),
        Some(d) => return Err(RuleError(format!("OneHot depth {d} is not positive"))),
        None => Dim::Unknown,
    };
    let mut out = s.clone();
    out.insert(axis, depth);
    Ok(vec![OutInfo::new(dt, out)])
}

/// NonZero(X) -> int64 [rank, count]; the count (and the indices) when X is constant.
pub fn non_zero(c: &OpCtx) -> RuleResult {
    let s = c.shape(0)?;
    let r = s.len() as i64;
    if let Some(t) = c
        .constant(0)
        .filter(|t| fold::small(t) && t.dims.len() == s.len())
    {
        if let Some(v) = t.as_f64() {
            let strides = fold::strides(&t.dims);
            let hits: Vec<usize> = (0..v.len()).filter(|&i| v[i] != 0.0).collect();
            let mut idx = Vec::with_capacity(hits.len() * r as usize);
            for (k, &st) in strides.iter().enumerate() {
                let d = t.dims[k].max(1) as usize;
                idx.extend(hits.iter().map(|&f| ((f / st) % d) as i64));
            }
            let dims = vec![r, hits.len() as i64];
            return Ok(vec![OutInfo::constant(Tensor::from_i64(dims, &idx))]);
        }
    }
    Ok(vec![OutInfo::new(
        DType::Int64,
        vec![Dim::Known(r), Dim::Unknown],
    )])
}

#[cfg(test)]
mod tests {
    use crate::infer::infer_shapes;
    use crate::ir::{known_shape, shape_string, Attribute, DType, Graph, Node, Tensor};

    /// OneHot: depth inserted at `axis`, the values' type; unknown depth gives an unknown dim.
    #[test]
    fn one_hot_inserts_depth_at_axis() {
        let run = |axis: Option<i64>, depth: Option<Tensor>| {
            let mut g = Graph::default();
            let idx = g.new_value("idx");
            g.value_mut(idx).dtype = Some(DType::Int64);
            g.value_mut(idx).shape = Some(known_shape(&[2, 3]));
            g.inputs.push(idx);
            let d = match depth {
                Some(t) => g.add_initializer("depth", t),
                None => {
                    let d = g.new_value("depth");
                    g.value_mut(d).dtype = Some(DType::Int64);
                    g.value_mut(d).shape = Some(known_shape(&[]));
                    g.inputs.push(d);
                    d
                }
            };
            let vals = g.add_initializer(
                "vals",
                Tensor::from_f64_as(DType::Float16, vec![2], &[0.0, 1.0]).unwrap(),
            );
            let y = g.new_value("y");
            let mut n = Node::new(
                "OneHot",
                vec![Some(idx), Some(d), Some(vals)],
                vec![Some(y)],
            );
            n.name = "oh".into();
            if let Some(a) = axis {
                n.attrs.push(Attribute::int("axis", a));
            }
            g.add_node(n);
            infer_shapes(&mut g, 13).map_err(|e| e.to_string())?;
            let v = g.value(y);
            Ok::<_, String>((v.dtype, shape_string(v.shape.as_ref())))
        };
        let eight = || Some(Tensor::from_i64(vec![], &[8]));
        assert_eq!(
            run(None, eight()).unwrap(),
            (Some(DType::Float16), "[2,3,8]".into())
        );
        assert_eq!(run(Some(0), eight()).unwrap().1, "[8,2,3]");
        assert_eq!(run(Some(-2), eight()).unwrap().1, "[2,8,3]");
        assert_eq!(run(Some(2), eight()).unwrap().1, "[2,3,8]");
        let fdepth = Tensor::from_f64_as(DType::Float, vec![1], &[5.0]);
        assert_eq!(run(Some(1), fdepth).unwrap().1, "[2,5,3]");
        assert_eq!(run(None, None).unwrap().1, "[2,3,?]");
        assert!(run(Some(3), eight()).unwrap_err().contains("out of range"));
        let zero = Some(Tensor::from_i64(vec![], &[0]));
        assert!(run(None, zero).unwrap_err().contains("not positive"));
    }

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
