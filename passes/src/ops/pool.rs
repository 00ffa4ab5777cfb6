//! Pooling: MaxPool, AveragePool, LpPool, the global pools, MaxUnpool.
//! Spec: https://onnx.ai/onnx/operators/onnx__MaxPool.html,
//! https://onnx.ai/onnx/operators/onnx__AveragePool.html,
//! https://onnx.ai/onnx/operators/onnx__GlobalAveragePool.html.
//!
//! Gradients: MaxPool through the node's Indices output (added when missing; saves the
//! int64 Indices); AveragePool and GlobalAveragePool save nothing.

use super::conv::{geometry, ints, spatial_out, transpose_back, window};
use super::cost::{numel, product};
use super::ctx::{rank_from_len, OpCtx, OutInfo, RuleResult};
use crate::autodiff::{GradCtx, GradResult, Grads};
use crate::error::RuleError;
use crate::ir::{known_shape, Attribute, DType, Dim, Graph, Node, Tensor, ValueId};

// Shape and type rules.

pub fn pool(c: &OpCtx) -> RuleResult {
    let dt = c.dtype(0)?;
    let x = c.shape(0)?;
    let kernel = c
        .attr_ints("kernel_shape")
        .ok_or_else(|| RuleError("pool has no kernel_shape".into()))?;
    if kernel.len() + 2 != x.len() {
        return Err(RuleError(
            "kernel_shape does not match the input rank".into(),
        ));
    }
    let w = window(c, kernel)?;
    let mut out = vec![x[0].clone(), x[1].clone()];
    out.extend(spatial_out(&w, &x[2..]));
    let mut res = vec![OutInfo::new(dt, out.clone())];
    if c.num_outputs() > 1 {
        res.push(OutInfo::new(DType::Int64, out));
    }
    Ok(res)
}

pub fn global_pool(c: &OpCtx) -> RuleResult {
    let dt = c.dtype(0)?;
    let x = c.shape(0)?;
    if x.len() < 2 {
        return Err(RuleError("global pooling needs rank >= 2".into()));
    }
    let mut out = x[..2].to_vec();
    out.extend(std::iter::repeat_n(Dim::Known(1), x.len() - 2));
    Ok(vec![OutInfo::new(dt, out)])
}

/// MaxUnpool(X, I, output_shape?): the given output shape, else per spatial dim
/// `(in - 1) * stride + kernel - pad_begin - pad_end`.
pub fn max_unpool(c: &OpCtx) -> RuleResult {
    let dt = c.dtype(0)?;
    let x = c.shape(0)?;
    if c.has_input(2) {
        return Ok(vec![match c.const_ints(2) {
            Some(s) => {
                rank_from_len(
                    s.len() as i64,
                    &format!("the length of output_shape '{}'", c.input_name(2)),
                )?;
                OutInfo::new(dt, known_shape(&s))
            }
            None => OutInfo::new(dt, vec![Dim::Unknown; x.len()]),
        }]);
    }
    let kernel = c
        .attr_ints("kernel_shape")
        .ok_or_else(|| RuleError("MaxUnpool has no kernel_shape".into()))?;
    if kernel.len() + 2 != x.len() {
        return Err(RuleError(
            "kernel_shape does not match the input rank".into(),
        ));
    }
    let n = kernel.len();
    let w = window(c, kernel)?;
    let mut out = x[..2].to_vec();
    for i in 0..n {
        // Saturating: an overflow is refused as too large by shape inference.
        out.push(x[2 + i].known().map_or(Dim::Unknown, |d| {
            Dim::Known(
                (d - 1)
                    .saturating_mul(w.strides[i])
                    .saturating_add(w.kernel[i] - w.pads[i] - w.pads[i + n]),
            )
        }));
    }
    Ok(vec![OutInfo::new(dt, out)])
}

// Gradient rules.

pub fn max_pool_grad(c: &mut GradCtx, dys: &[Option<ValueId>]) -> Grads {
    let g = dys[0].ok_or("no gradient for the output")?;
    let x = c.x(0)?;
    let xd = c.dims(x)?;
    if c.node.attr_int("storage_order").unwrap_or(0) != 0 {
        return Err("MaxPool with storage_order=1 is not differentiated".into());
    }
    // The indices of the maxima: the node's second output, added to it when absent.
    let idx = match c.node.output(1) {
        Some(i) => i,
        None => {
            let name = c.b.fresh("maxpool_indices");
            let i = c.b.graph.new_value(name);
            let yv = c.b.graph.value(c.y(0)?).clone();
            let v = c.b.graph.value_mut(i);
            v.dtype = Some(DType::Int64);
            v.shape = yv.shape;
            v.producer = Some(c.node_id);
            let fw = c.b.graph.node_mut(c.node_id);
            fw.outputs.truncate(1);
            fw.outputs.push(Some(i));
            i
        }
    };
    let total: i64 = xd.iter().product();
    let flat_i = c.b.reshape(idx, &[c.dims(idx)?.iter().product::<i64>()])?;
    let flat_g = c.b.reshape(g, &[c.dims(g)?.iter().product::<i64>()])?;
    let z = c.b.zeros(c.b.dtype(g)?, &[total])?;
    let s = c.b.node(
        "ScatterElements",
        &[z, flat_i, flat_g],
        vec![
            Attribute::int("axis", 0),
            Attribute::string("reduction", "add"),
        ],
    )?;
    Ok(vec![Some(c.b.reshape(s, &xd)?)])
}

pub fn average_pool_grad(c: &mut GradCtx, dys: &[Option<ValueId>]) -> Grads {
    let g = dys[0].ok_or("no gradient for the output")?;
    let x = c.x(0)?;
    let (xd, gd) = (c.dims(x)?, c.dims(g)?);
    if c.node.attr_int("ceil_mode").unwrap_or(0) != 0 {
        return Err("AveragePool with ceil_mode=1 is not differentiated yet".into());
    }
    let kernel = c
        .node
        .attr_ints("kernel_shape")
        .ok_or("AveragePool without kernel_shape")?
        .to_vec();
    let n_sp = kernel.len();
    let geo = geometry(c, &xd[2..], kernel.clone())?;
    let dt = c.b.dtype(g)?;
    let include_pad = c.node.attr_int("count_include_pad").unwrap_or(0) != 0;
    let ones_k = |c: &mut GradCtx, lead: [i64; 2]| -> GradResult<ValueId> {
        let mut d = lead.to_vec();
        d.extend(&kernel);
        let n: i64 = d.iter().product();
        let t = Tensor::from_f64_as(dt, d, &vec![1.0; n as usize]).ok_or("unsupported dtype")?;
        Ok(c.b.constant(t))
    };
    let scaled = if include_pad || geo.pads.iter().all(|&p| p == 0) {
        let k: i64 = kernel.iter().product();
        c.b.scale(g, 1.0 / k as f64)?
    } else {
        // Window sizes without padding: a Conv of ones over ones with the same geometry.
        let mut od = vec![1, 1];
        od.extend(&xd[2..]);
        let n: i64 = od.iter().product();
        let ones = c.b.constant(
            Tensor::from_f64_as(dt, od, &vec![1.0; n as usize]).ok_or("unsupported dtype")?,
        );
        let wk = ones_k(c, [1, 1])?;
        let cnt = c.b.node(
            "Conv",
            &[ones, wk],
            vec![
                ints("strides", &geo.strides),
                ints("dilations", &geo.dilations),
                ints("pads", &geo.pads),
            ],
        )?;
        c.b.op("Div", &[g, cnt])?
    };
    let channels = xd[1];
    let w = ones_k(c, [channels, 1])?;
    debug_assert_eq!(n_sp, xd.len() - 2);
    Ok(vec![Some(transpose_back(
        c,
        scaled,
        w,
        &geo,
        &xd[2..],
        &gd[2..],
        channels,
    )?)])
}

pub fn global_average_pool_grad(c: &mut GradCtx, dys: &[Option<ValueId>]) -> Grads {
    let g = dys[0].ok_or("no gradient for the output")?;
    let xd = c.dims(c.x(0)?)?;
    let n: i64 = xd[2..].iter().product();
    let shape = c.b.const_i64(&xd);
    let e = c.b.op("Expand", &[g, shape])?;
    Ok(vec![Some(c.b.scale(e, 1.0 / n as f64)?)])
}

// Cost rules.

/// Windowed pools: one operation per output element and kernel element.
pub fn pool_flops(g: &Graph, node: &Node) -> f64 {
    let out = numel(g, node.output(0));
    let k = node.attr_ints("kernel_shape").map_or(1.0, product);
    out * k
}
