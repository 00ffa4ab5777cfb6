//! Gradients of data-movement ops: Reshape/Flatten/Squeeze/Unsqueeze (reshape back),
//! Transpose (inverse permutation), Expand and Tile (sum back), Concat (Split), Split
//! (Concat, zeros for unused pieces), Slice (Pad; other steps first reversed and
//! interleaved with zeros), Gather (ScatterElements with reduction add, so repeated
//! indices accumulate, in order), GatherND (the same, on linearized index tuples),
//! GatherElements (ScatterElements add), Pad (mode "constant": Slice, and Pad for negative
//! pads). None of these saves a float forward value; the gathers keep their indices.
//! Spec: https://onnx.ai/onnx/operators/.

use super::elementwise::dy0;
use super::{GradCtx, GradResult};
use crate::ir::{Attribute, ValueId};

type Grads = GradResult<Vec<Option<ValueId>>>;

fn pad_none(mut v: Vec<Option<ValueId>>, n: usize) -> Vec<Option<ValueId>> {
    v.resize(n, None);
    v
}

pub fn reshape_like(c: &mut GradCtx, dys: &[Option<ValueId>]) -> Grads {
    let xd = c.dims(c.x(0)?)?;
    let g = c.b.reshape(dy0(dys)?, &xd)?;
    Ok(pad_none(vec![Some(g)], c.node.inputs.len()))
}

pub fn transpose(c: &mut GradCtx, dys: &[Option<ValueId>]) -> Grads {
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

pub fn expand(c: &mut GradCtx, dys: &[Option<ValueId>]) -> Grads {
    let xd = c.dims(c.x(0)?)?;
    Ok(vec![Some(c.b.unbroadcast(dy0(dys)?, &xd)?), None])
}

/// Tile: view the gradient as [r0, d0, r1, d1, ...] and sum the repeat axes.
pub fn tile(c: &mut GradCtx, dys: &[Option<ValueId>]) -> Grads {
    let xd = c.dims(c.x(0)?)?;
    let reps = c.const_ints(1).ok_or("Tile repeats are not constant")?;
    let mut split = Vec::with_capacity(2 * xd.len());
    for (r, d) in reps.iter().zip(&xd) {
        split.push(*r);
        split.push(*d);
    }
    let g = c.b.reshape(dy0(dys)?, &split)?;
    let axes: Vec<i64> = (0..xd.len() as i64).map(|i| 2 * i).collect();
    let s = c.b.reduce_sum(g, &axes, false)?;
    Ok(vec![Some(c.b.reshape(s, &xd)?), None])
}

fn axis_of(c: &GradCtx, rank: usize, default: i64) -> usize {
    let a = c.node.attr_int("axis").unwrap_or(default);
    (if a < 0 { a + rank as i64 } else { a }) as usize
}

pub fn concat(c: &mut GradCtx, dys: &[Option<ValueId>]) -> Grads {
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

pub fn split(c: &mut GradCtx, dys: &[Option<ValueId>]) -> Grads {
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

pub fn slice(c: &mut GradCtx, dys: &[Option<ValueId>]) -> Grads {
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

/// Gather(data, indices, axis): scatter-add the gradient into zeros of data's shape.
/// The axis is moved to the front and the rest flattened, so that one ScatterElements
/// (reduction add, axis 0) covers any axis.
pub fn gather(c: &mut GradCtx, dys: &[Option<ValueId>]) -> Grads {
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

pub fn gather_elements(c: &mut GradCtx, dys: &[Option<ValueId>]) -> Grads {
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
pub fn scatter_elements(c: &mut GradCtx, dys: &[Option<ValueId>]) -> Grads {
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

/// Pad (mode "constant"): the gradient is dy with the padding removed. Positive pads are
/// sliced off; negative pads (which crop the input) are padded back with zeros. The pads
/// (and opset 18 axes) must be constants; the constant value carries no gradient.
pub fn pad(c: &mut GradCtx, dys: &[Option<ValueId>]) -> Grads {
    let x = c.x(0)?;
    let r = c.dims(x)?.len();
    let mode = c
        .node
        .attr_string("mode")
        .unwrap_or_else(|| "constant".into());
    if mode != "constant" {
        return Err(format!(
            "Pad mode '{mode}' has no gradient rule (only 'constant')"
        ));
    }
    let pads = match c.node.attr_ints("pads") {
        Some(p) if c.node.input(1).is_none() => p.to_vec(),
        _ => c.const_ints(1).ok_or("Pad pads are not constant")?,
    };
    let axes: Vec<usize> = match c.node.input(3) {
        Some(_) => {
            let a = c.const_ints(3).ok_or("Pad axes are not constant")?;
            a.iter()
                .map(|&a| (if a < 0 { a + r as i64 } else { a }) as usize)
                .collect()
        }
        None => (0..r).collect(),
    };
    let k = axes.len();
    if pads.len() != 2 * k || axes.iter().any(|&a| a >= r) {
        return Err(format!("Pad pads of length {} for {k} axes", pads.len()));
    }
    let g = dy0(dys)?;
    // Positive pads: slice them off dy.
    let (mut st, mut en, mut ax) = (vec![], vec![], vec![]);
    // Negative pads: zeros back in.
    let mut back = vec![0i64; 2 * r];
    for (j, &a) in axes.iter().enumerate() {
        let (b, e) = (pads[j], pads[k + j]);
        if b > 0 || e > 0 {
            st.push(b.max(0));
            en.push(if e > 0 { -e } else { i64::MAX });
            ax.push(a as i64);
        }
        back[a] += (-b).max(0);
        back[r + a] += (-e).max(0);
    }
    let mut out = g;
    if !ax.is_empty() {
        let (s, e, a) = (c.b.const_i64(&st), c.b.const_i64(&en), c.b.const_i64(&ax));
        out = c.b.op("Slice", &[out, s, e, a])?;
    }
    if back.iter().any(|&p| p != 0) {
        let p = c.b.const_i64(&back);
        out = c.b.node(
            "Pad",
            &[out, p],
            vec![Attribute::string("mode", "constant")],
        )?;
    }
    Ok(pad_none(vec![Some(out)], c.node.inputs.len()))
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
pub fn gather_nd(c: &mut GradCtx, dys: &[Option<ValueId>]) -> Grads {
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
    use crate::autodiff::{build_training_graph, Loss, TrainOptions};
    use crate::ir::{Attribute, Model, Node, Tensor};

    /// x [2,3] (trained) -> Pad(mode) -> ReduceSum: the training error, if any.
    fn pad_error(mode: &str) -> Option<String> {
        let mut m = Model {
            opset_imports: vec![(String::new(), 18)],
            ..Model::default()
        };
        let g = &mut m.graph;
        let x = g.add_initializer("x", Tensor::from_f32(vec![2, 3], &[1.0; 6]));
        let pads = g.add_initializer("pads", Tensor::from_i64(vec![4], &[0, 1, 0, 1]));
        let y = g.new_value("y");
        let mut pad = Node::new("Pad", vec![Some(x), Some(pads)], vec![Some(y)]);
        pad.name = "the_pad".into();
        pad.attrs = vec![Attribute::string("mode", mode)];
        g.add_node(pad);
        let loss = g.new_value("loss");
        let mut sum = Node::new("ReduceSum", vec![Some(y)], vec![Some(loss)]);
        sum.attrs = vec![Attribute::int("keepdims", 0)];
        g.add_node(sum);
        g.outputs = vec![loss];
        crate::infer::infer_shapes(&mut m.graph, 18).expect("infer");
        let opts = TrainOptions {
            loss: Loss::Auto,
            freeze: vec![],
            batch_norm_train: false,
            ..Default::default()
        };
        build_training_graph(&m, &opts).err().map(|e| e.to_string())
    }

    #[test]
    fn pad_modes() {
        assert_eq!(pad_error("constant"), None);
        let err = pad_error("reflect").expect("reflect has no rule");
        assert!(
            err.contains("the_pad") && err.contains("'reflect'"),
            "{err}"
        );
    }
}
