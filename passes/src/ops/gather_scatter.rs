//! Indexing: Gather, GatherElements, GatherND, ScatterElements, ScatterND, OneHot, NonZero
//! (and Compress, Unique: data-dependent sizes).
//! Spec: https://onnx.ai/onnx/operators/onnx__Gather.html,
//! https://onnx.ai/onnx/operators/onnx__GatherND.html,
//! https://onnx.ai/onnx/operators/onnx__ScatterElements.html.
//!
//! Gradients: Gather → ScatterElements with reduction add (repeated indices accumulate, in
//! order), GatherND the same on linearized index tuples, GatherElements → ScatterElements
//! add; they keep their indices, no float forward value.

use super::ctx::{norm_axis, OpCtx, OutInfo, RuleResult};
use super::fold;
use crate::autodiff::{axis_of, dy0, GradCtx, GradResult, Grads};
use crate::error::RuleError;
use crate::ir::{static_dims, Attribute, DType, Dim, Shape, Tensor, ValueId};

// Shape and type rules.

pub fn gather(c: &OpCtx) -> RuleResult {
    let dt = c.dtype(0)?;
    let data = c.shape(0)?;
    let idx = c.shape(1)?;
    let axis = norm_axis(c.attr_int("axis", 0), data.len())?;
    let mut out: Shape = data[..axis].to_vec();
    out.extend(idx.iter().cloned());
    out.extend(data[axis + 1..].iter().cloned());
    // Indices known at compile time (positions from `Range(0, seq)`) must address the data:
    // ONNX Runtime fails the run otherwise, e.g. a sequence longer than a position table.
    if let (Some(iv), Some(d)) = (c.const_ints(1), data[axis].known()) {
        if let Some(&i) = iv.iter().find(|&&i| i < -d || i >= d) {
            return Err(RuleError(format!(
                "index {i} is out of range for axis {axis} of '{}', of size {d} (ONNX Runtime would \
                 fail the run)",
                c.input_name(0)
            )));
        }
    }
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

// Gradient rules.

/// Gather(data, indices, axis): scatter-add the gradient into zeros of data's shape.
/// The axis is moved to the front and the rest flattened, so that one ScatterElements
/// (reduction add, axis 0) covers any axis.
pub fn gather_grad(c: &mut GradCtx, dys: &[Option<ValueId>]) -> Grads {
    let (data, idx) = (c.x(0)?, c.x(1)?);
    let dd = c.dims(data)?;
    let id = c.dims(idx)?;
    let r = dd.len();
    let axis = axis_of(c, r, 0);
    let g = dy0(dys)?;
    // Negative indices wrap, as Gather allows: idx + d * (idx < 0).
    let dimc = crate::ir::Tensor::from_i64(vec![], &[dd[axis]]);
    let idx_ok = wrap_indices(c, idx, dimc)?;
    // dy dims: data[..axis] ++ idx ++ data[axis+1..]; bring the idx dims to the front.
    let ni = id.len();
    let mut perm: Vec<i64> = (axis as i64..(axis + ni) as i64).collect();
    perm.extend(0..axis as i64);
    perm.extend((axis + ni) as i64..(r - 1 + ni) as i64);
    let gt = c.b.transpose(g, &perm)?;
    let mut moved: Vec<i64> = vec![dd[axis]];
    moved.extend(&dd[..axis]);
    moved.extend(&dd[axis + 1..]);
    let n: i64 = id.iter().product();
    let inner: i64 = moved[1..].iter().product();
    let rows = c.b.reshape(gt, &[n, inner])?;
    let flat = scatter_rows(c, rows, idx_ok, n, dd[axis], inner)?;
    let s = c.b.reshape(flat, &moved)?;
    // Move the axis back: moved = [axis, 0..axis, axis+1..].
    let mut back: Vec<i64> = (1..=axis as i64).collect();
    back.push(0);
    back.extend((axis + 1) as i64..r as i64);
    Ok(vec![Some(c.b.transpose(s, &back)?), None])
}

pub fn gather_elements_grad(c: &mut GradCtx, dys: &[Option<ValueId>]) -> Grads {
    let (data, idx) = (c.x(0)?, c.x(1)?);
    let dd = c.dims(data)?;
    let axis = axis_of(c, dd.len(), 0);
    let g = dy0(dys)?;
    let z = c.b.zeros(c.b.dtype(g)?, &dd)?;
    let s = c.b.node(
        "ScatterElements",
        &[z, idx, g],
        vec![
            Attribute::int("axis", axis as i64),
            Attribute::string("reduction", "add"),
        ],
    )?;
    Ok(vec![Some(s), None])
}

/// ScatterElements: dupdates = GatherElements(dy, indices); ddata = dy with the scattered
/// positions zeroed (`reduction="none"`: indices assumed unique, as the spec requires) or
/// dy itself (`reduction="add"`). Other reductions are not supported.
pub fn scatter_elements_grad(c: &mut GradCtx, dys: &[Option<ValueId>]) -> Grads {
    let (idx, upd) = (c.x(1)?, c.x(2)?);
    let rank =
        c.b.graph
            .value(idx)
            .shape
            .as_ref()
            .map(|s| s.len())
            .ok_or("ScatterElements indices of unknown rank")?;
    let axis = axis_of(c, rank, 0) as i64;
    let reduction = c
        .node
        .attr_string("reduction")
        .unwrap_or_else(|| "none".into());
    if reduction != "none" && reduction != "add" {
        return Err(format!("ScatterElements reduction '{reduction}'"));
    }
    let g = dy0(dys)?;
    let gd = if !c.need(0) {
        None
    } else if reduction == "add" {
        Some(g)
    } else {
        let z = c.b.zeros_like(upd)?;
        Some(c.b.node(
            "ScatterElements",
            &[g, idx, z],
            vec![Attribute::int("axis", axis)],
        )?)
    };
    let gu = if c.need(2) {
        Some(c.b.node(
            "GatherElements",
            &[g, idx],
            vec![Attribute::int("axis", axis)],
        )?)
    } else {
        None
    };
    Ok(vec![gd, None, gu])
}

/// Indices as int64 with negative values wrapped: idx + d * (idx < 0), `d` broadcasting.
fn wrap_indices(c: &mut GradCtx, idx: ValueId, d: crate::ir::Tensor) -> GradResult<ValueId> {
    let idx64 = if c.b.dtype(idx)? == crate::ir::DType::Int64 {
        idx
    } else {
        c.b.node("Cast", &[idx], vec![Attribute::int("to", 7)])?
    };
    let zero = c.b.constant(crate::ir::Tensor::from_i64(vec![], &[0]));
    let neg = c.b.op("Less", &[idx64, zero])?;
    let d = c.b.constant(d);
    let wrapped = c.b.op("Add", &[idx64, d])?;
    c.b.op("Where", &[neg, wrapped, idx64])
}

/// Scatter-adds `rows` [n, inner] into zeros [m, inner] at row `lin` (n int64 values), with
/// ScatterElements along axis 0 rather than ScatterND: ONNX Runtime runs ScatterND's
/// additions in parallel over the indices, so repeated indices race and the gradient
/// changes from run to run; ScatterElements accumulates each column in order.
fn scatter_rows(
    c: &mut GradCtx,
    rows: ValueId,
    lin: ValueId,
    n: i64,
    m: i64,
    inner: i64,
) -> GradResult<ValueId> {
    let dt = c.b.dtype(rows)?;
    let col = c.b.reshape(lin, &[n, 1])?;
    let shape = c.b.const_i64(&[n, inner]);
    let idx_rows = c.b.node("Expand", &[col, shape], vec![])?;
    let z = c.b.zeros(dt, &[m, inner])?;
    c.b.node(
        "ScatterElements",
        &[z, idx_rows, rows],
        vec![
            Attribute::int("axis", 0),
            Attribute::string("reduction", "add"),
        ],
    )
}

/// GatherND(data, indices, batch_dims): each index tuple (negatives wrapped) becomes a
/// linear row of data viewed as [B * d_b * … * d_{b+k-1}, rest] (batch offsets added as a
/// constant), and the gradient is scatter-added into those rows as in Gather's rule.
pub fn gather_nd_grad(c: &mut GradCtx, dys: &[Option<ValueId>]) -> Grads {
    let (data, idx) = (c.x(0)?, c.x(1)?);
    let dd = c.dims(data)?;
    let id = c.dims(idx)?;
    let b = c.node.attr_int("batch_dims").unwrap_or(0).max(0) as usize;
    let k = *id.last().ok_or("GatherND indices are a scalar")? as usize;
    if id.len() < b + 1 || b + k > dd.len() || id[..b] != dd[..b] {
        return Err(format!(
            "GatherND indices {id:?} do not fit data {dd:?} with batch_dims {b}"
        ));
    }
    let g = dy0(dys)?;
    let lead: Vec<i64> = id[..id.len() - 1].to_vec();
    let n: i64 = lead.iter().product();
    let inner: i64 = dd[b + k..].iter().product();
    let block: i64 = dd[b..b + k].iter().product();
    let nb: i64 = dd[..b].iter().product();
    let mut lin = if k == 0 {
        c.b.constant(crate::ir::Tensor::from_i64(
            lead.clone(),
            &vec![0; n as usize],
        ))
    } else {
        let dk = crate::ir::Tensor::from_i64(vec![k as i64], &dd[b..b + k]);
        let ok = wrap_indices(c, idx, dk)?;
        let mut strides = vec![1i64; k];
        for j in (0..k - 1).rev() {
            strides[j] = strides[j + 1] * dd[b + j + 1];
        }
        let sc = c.b.const_i64(&strides);
        let m = c.b.op("Mul", &[ok, sc])?;
        let s = c.b.reduce_sum(m, &[id.len() as i64 - 1], false)?;
        c.b.reshape(s, &lead)?
    };
    if b > 0 {
        // Batch i's rows start at i * block.
        let mut od = dd[..b].to_vec();
        od.extend(std::iter::repeat_n(1, lead.len() - b));
        let offs: Vec<i64> = (0..nb).map(|i| i * block).collect();
        let o = c.b.constant(crate::ir::Tensor::from_i64(od, &offs));
        lin = c.b.op("Add", &[lin, o])?;
    }
    let rows = c.b.reshape(g, &[n, inner])?;
    let flat = scatter_rows(c, rows, lin, n, nb * block, inner)?;
    Ok(vec![Some(c.b.reshape(flat, &dd)?), None])
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
}
