//! What the CPU kernels allocate or share: weights they prepack when the session is created,
//! scratch buffers they allocate while they run (MLAS), and the outputs they alias to or write
//! in place of an input (the kernels' `Alias` and `MayInplace` declarations).

use super::ids::VValId;
use super::view::{dims, VNode, VVal, Vals, View};
use onnx_ac_passes::ir::{DType, Dim, Graph, Node};

pub(super) fn align(x: u64, a: u64) -> u64 {
    x.div_ceil(a) * a
}

/// Prepacked bytes of a MatMul-like kernel with B = `b` (transposed when `trans_b`).
pub(super) fn pack_b(view: &View, b: Option<VValId>, trans_b: bool) -> u64 {
    let Some(b) = b else { return 0 };
    let v = &view.vals[b];
    if !v.constant || v.elem != Some(4) || v.string {
        return 0;
    }
    match v.known_dims().as_deref() {
        Some(&[r, c]) if r > 0 && c > 0 => {
            let (k, n) = if trans_b { (c, r) } else { (r, c) };
            sgemm_pack_b_size(n as u64, k as u64)
        }
        _ => 0,
    }
}

/// MLAS's packed-B size for an N x K float matrix (N padded to 16 columns).
pub(super) fn sgemm_pack_b_size(n: u64, k: u64) -> u64 {
    align(align(n, 16) * k * 4, 64)
}

/// Bytes the kernel of `n` prepacks from its constant weights when the session is created.
pub(super) fn prepack_bytes(g: &Graph, n: &Node, vals: &Vals<'_>) -> u64 {
    let Some(b) = n.input(1) else { return 0 };
    if !vals[VValId::from(b)].constant || g.value(b).dtype != Some(DType::Float) {
        return 0;
    }
    let Some(d) = dims(g, b) else { return 0 };
    let std_or_ms = n.is_standard_domain() || n.domain == "com.microsoft";
    match n.op_type.as_str() {
        "MatMul" | "Gemm" | "FusedMatMul" | "FusedGemm" if std_or_ms && d.len() == 2 => {
            let tb = n.attr_int("transB").unwrap_or(0) != 0;
            let (k, nn) = if tb { (d[1], d[0]) } else { (d[0], d[1]) };
            if k <= 0 || nn <= 0 {
                return 0;
            }
            sgemm_pack_b_size(nn as u64, k as u64)
        }
        "ConvTranspose" if n.is_standard_domain() && d.len() >= 3 => {
            let group = n.attr_int("group").unwrap_or(1).max(1) as u64;
            let k = d[0].max(0) as u64 / group;
            let nn: u64 = d[1..].iter().map(|&x| x.max(0) as u64).product();
            if k <= 1 || nn <= 1 {
                return 0;
            }
            4 * nn * k * group
        }
        _ => 0,
    }
}

/// Buffers a kernel allocates while it runs.
pub(super) fn scratch_bytes(g: &Graph, n: &Node, threads: u64) -> Vec<u64> {
    if !n.is_standard_domain() {
        return Vec::new();
    }
    let out = || n.output(0).and_then(|o| g.value_bytes(o)).unwrap_or(0);
    let v = match n.op_type.as_str() {
        // Sums pairwise through one temporary of the output's size.
        "Sum" if n.inputs.iter().flatten().count() > 2 => vec![out()],
        // Selects through two temporaries of the output's size.
        "Where" => vec![out(), out()],
        // Softmax over an inner axis transposes the input and the result (opset 13 and
        // later, which every graph onnx-ac writes uses).
        "Softmax" | "LogSoftmax" => {
            let rank = n
                .input(0)
                .and_then(|x| dims(g, x))
                .map_or(0, |d| d.len() as i64);
            let axis = n.attr_int("axis").unwrap_or(-1);
            let axis = if axis < 0 { axis + rank } else { axis };
            if rank > 0 && axis != rank - 1 {
                vec![out(), out()]
            } else {
                Vec::new()
            }
        }
        "Conv" => vec![conv_scratch(g, n, threads)],
        "ConvTranspose" => vec![conv_transpose_scratch(g, n)],
        _ => Vec::new(),
    };
    v.into_iter().filter(|&b| b > 0).collect()
}

/// Elements of MLAS's per-thread convolution working buffer (SGEMM strides N x K).
pub(super) const MLAS_CONV_WORKING_BUFFER_PER_THREAD: u64 = 128 * 128;
pub(super) const MLAS_SGEMM_THREAD_COMPLEXITY: f64 = 64.0 * 1024.0;
pub(super) const MLAS_MAXIMUM_THREAD_COUNT: u64 = 16;

/// MLAS's convolution working buffer (MlasConvPrepare), in bytes.
pub(super) fn conv_scratch(g: &Graph, n: &Node, threads: u64) -> u64 {
    let (Some(x), Some(w), Some(y)) = (
        n.input(0).and_then(|v| dims(g, v)),
        n.input(1).and_then(|v| dims(g, v)),
        n.output(0).and_then(|v| dims(g, v)),
    ) else {
        return 0;
    };
    if x.len() < 3 || w.len() != x.len() || y.len() != x.len() {
        return 0;
    }
    if g.value(n.input(0).unwrap()).dtype != Some(DType::Float) {
        return 0;
    }
    let u = |v: i64| v.max(0) as u64;
    let group = n.attr_int("group").unwrap_or(1).max(1) as u64;
    let ones = |name: &str| n.attr_ints(name).is_none_or(|v| v.iter().all(|&s| s == 1));
    let zero_pads = n
        .attr_ints("pads")
        .is_none_or(|v| v.iter().all(|&p| p == 0))
        && n.attr_string("auto_pad")
            .is_none_or(|a| a == "NOTSET" || a == "VALID");
    let kernel: u64 = w[2..].iter().map(|&d| u(d)).product();
    let batch = u(x[0]);
    let in_channels = u(x[1]) / group;
    let filter_count = u(w[0]) / group;
    let output_size: u64 = y[2..].iter().map(|&d| u(d)).product();
    let k = in_channels * kernel;
    if ones("strides") && zero_pads && kernel == 1 {
        return 0; // pointwise: a direct GEMM
    }
    let elems = if filter_count > output_size {
        output_size * k
    } else if batch * group > 1 {
        threads.min(batch * group) * MLAS_CONV_WORKING_BUFFER_PER_THREAD
    } else {
        let complexity = (filter_count * output_size * k) as f64;
        let mut target =
            if complexity < MLAS_SGEMM_THREAD_COMPLEXITY * MLAS_MAXIMUM_THREAD_COUNT as f64 {
                (complexity / MLAS_SGEMM_THREAD_COMPLEXITY) as u64 + 1
            } else {
                MLAS_MAXIMUM_THREAD_COUNT
            };
        target = target.min(threads).max(1);
        let mut stride_n = output_size.div_ceil(target);
        if target > 1 {
            stride_n = align(stride_n, 16);
            if stride_n >= output_size {
                target = 1;
            } else if stride_n * (target - 1) >= output_size {
                target -= 1;
            }
        }
        target * MLAS_CONV_WORKING_BUFFER_PER_THREAD
    };
    elems * 4
}

/// ConvTranspose's column buffer: (output channels per group x kernel) x input image.
pub(super) fn conv_transpose_scratch(g: &Graph, n: &Node) -> u64 {
    let (Some(x), Some(w)) = (
        n.input(0).and_then(|v| dims(g, v)),
        n.input(1).and_then(|v| dims(g, v)),
    ) else {
        return 0;
    };
    if x.len() < 3 || w.len() != x.len() {
        return 0;
    }
    let u = |v: i64| v.max(0) as u64;
    let kernel_dim = u(w[1]) * w[2..].iter().map(|&d| u(d)).product::<u64>();
    let image: u64 = x[2..].iter().map(|&d| u(d)).product();
    let elem = g
        .value(n.input(0).unwrap())
        .dtype
        .and_then(DType::size_bytes)
        .unwrap_or(4);
    kernel_dim * image * elem
}

// Buffer sharing: the kernels' `Alias` and `MayInplace` declarations.

/// The input whose buffer output `oi` must share (`Alias` in the kernel definition).
pub(super) fn alias_input(n: &VNode, oi: usize) -> Option<usize> {
    (n.std() && oi == 0 && onnx_ac_passes::ops::is_view_op(n.op)).then_some(0)
}

/// The input output `oi` may be written into in place (`MayInplace`).
pub(super) fn inplace_input(n: &VNode, oi: usize) -> Option<usize> {
    if oi != 0 {
        return None;
    }
    if n.domain == "com.microsoft.nchwc" {
        // NCHWc Conv accumulates into its Sum input.
        return (n.op == "Conv" && n.inputs.len() > 3).then_some(3);
    }
    (n.std()
        && onnx_ac_passes::ops::lookup(n.op)
            .is_some_and(|d| d.memory == onnx_ac_passes::ops::MemoryClass::InPlace))
    .then_some(0)
}

/// The planner's SameSize: same element size and the same shape, dimension by dimension.
pub(super) fn same_shape(a: &VVal, b: &VVal) -> bool {
    if a.hidden || b.hidden || a.string || b.string || a.elem.is_none() || a.elem != b.elem {
        return false;
    }
    let (Some(sa), Some(sb)) = (a.dims.as_deref(), b.dims.as_deref()) else {
        return false;
    };
    sa.len() == sb.len()
        && sa.iter().zip(sb).all(|(x, y)| match (x, y) {
            (Dim::Known(p), Dim::Known(q)) => p == q,
            (Dim::Sym(p), Dim::Sym(q)) => p == q && !p.is_empty(),
            _ => false,
        })
}
