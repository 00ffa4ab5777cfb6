//! Gradients of data-movement ops: Reshape/Flatten/Squeeze/Unsqueeze (reshape back),
//! Transpose (inverse permutation), Expand and Tile (sum back), Concat (Split), Split
//! (Concat, zeros for unused pieces), Slice (Pad; other steps first reversed and
//! interleaved with zeros), Gather (ScatterElements with reduction add, so repeated
//! indices accumulate, in order), GatherElements (ScatterElements add). None of these saves
//! a float forward value; Gather and GatherElements keep their indices. Spec: https://onnx.ai/onnx/operators/.

use super::{GradCtx, GradResult};
use crate::ir::{Attribute, ValueId};

type Grads = GradResult<Vec<Option<ValueId>>>;

fn dy0(dys: &[Option<ValueId>]) -> GradResult<ValueId> {
    dys.first()
        .copied()
        .flatten()
        .ok_or_else(|| "no gradient for the output".to_string())
}

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
    let dt = c.b.dtype(g)?;
    // Negative indices wrap, as Gather allows: idx + d * (idx < 0).
    let idx64 = if c.b.dtype(idx)? == crate::ir::DType::Int64 {
        idx
    } else {
        c.b.node("Cast", &[idx], vec![Attribute::int("to", 7)])?
    };
    let zero = c.b.constant(crate::ir::Tensor::from_i64(vec![], &[0]));
    let neg = c.b.op("Less", &[idx64, zero])?;
    let dimc =
        c.b.constant(crate::ir::Tensor::from_i64(vec![], &[dd[axis]]));
    let wrapped = c.b.op("Add", &[idx64, dimc])?;
    let idx_ok = c.b.op("Where", &[neg, wrapped, idx64])?;
    // dy dims: data[..axis] ++ idx ++ data[axis+1..]; bring the idx dims to the front.
    let ni = id.len();
    let mut perm: Vec<i64> = (axis as i64..(axis + ni) as i64).collect();
    perm.extend(0..axis as i64);
    perm.extend((axis + ni) as i64..(r - 1 + ni) as i64);
    let gt = c.b.transpose(g, &perm)?;
    let mut moved: Vec<i64> = vec![dd[axis]];
    moved.extend(&dd[..axis]);
    moved.extend(&dd[axis + 1..]);
    // ScatterElements along axis 0 of [n, inner], not ScatterND: ONNX Runtime runs
    // ScatterND's additions in parallel over the indices, so repeated indices race and the
    // gradient changes from run to run; ScatterElements accumulates each column in order.
    let n: i64 = id.iter().product();
    let inner: i64 = moved[1..].iter().product();
    let rows = c.b.reshape(gt, &[n, inner])?;
    let col = c.b.reshape(idx_ok, &[n, 1])?;
    let shape = c.b.const_i64(&[n, inner]);
    let idx_rows = c.b.node("Expand", &[col, shape], vec![])?;
    let z = c.b.zeros(dt, &[dd[axis], inner])?;
    let flat = c.b.node(
        "ScatterElements",
        &[z, idx_rows, rows],
        vec![
            Attribute::int("axis", 0),
            Attribute::string("reduction", "add"),
        ],
    )?;
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
