//! Compile-time evaluation of small tensors: the shape sub-graphs that exported
//! transformers compute at run time (Shape → Gather → Concat → Reshape, masks from Range).

use crate::ir::{DType, Tensor};

/// Tensors above this many elements are never folded (a folded value is kept in memory and
/// may be written to the output), nor read as values by a shape rule: a rule that would
/// need a bigger constant leaves its output unfolded (shape only) or its value unknown.
/// Every buffer folding allocates is bounded by this count, whatever the dims in the file.
pub const MAX_FOLD_ELEMENTS: u64 = 1 << 16;

/// The element count of `dims`; `None` for a negative dim or when the count overflows.
/// (`Tensor::numel` wraps on crafted dims: folding must use this.)
pub fn numel(dims: &[i64]) -> Option<u64> {
    dims.iter()
        .try_fold(1u64, |a, &d| a.checked_mul(u64::try_from(d).ok()?))
}

/// Whether a tensor of `dims` is small enough to fold (at most [`MAX_FOLD_ELEMENTS`]).
pub fn small_dims(dims: &[i64]) -> bool {
    numel(dims).is_some_and(|n| n <= MAX_FOLD_ELEMENTS)
}

/// Whether `t` is small enough to read or fold (at most [`MAX_FOLD_ELEMENTS`]).
pub fn small(t: &Tensor) -> bool {
    small_dims(&t.dims)
}

/// Row-major strides (of a tensor small enough to fold; saturating otherwise).
pub fn strides(dims: &[i64]) -> Vec<usize> {
    let mut s = vec![1usize; dims.len()];
    for i in (0..dims.len().saturating_sub(1)).rev() {
        s[i] = s[i + 1].saturating_mul(dims[i + 1].max(0) as usize);
    }
    s
}

/// Numpy broadcast of concrete dims.
pub fn broadcast_dims(a: &[i64], b: &[i64]) -> Option<Vec<i64>> {
    let r = a.len().max(b.len());
    (0..r)
        .map(|k| {
            let x = if k + a.len() >= r {
                a[k + a.len() - r]
            } else {
                1
            };
            let y = if k + b.len() >= r {
                b[k + b.len() - r]
            } else {
                1
            };
            match (x, y) {
                (1, y) => Some(y),
                (x, 1) => Some(x),
                (x, y) if x == y => Some(x),
                _ => None,
            }
        })
        .collect()
}

/// Index into a broadcast input for each flat output index; `None` when the output has
/// more than [`MAX_FOLD_ELEMENTS`] elements (two small inputs can broadcast to a huge one).
pub fn broadcast_index(out_dims: &[i64], in_dims: &[i64]) -> Option<Vec<usize>> {
    let n = numel(out_dims).filter(|&n| n <= MAX_FOLD_ELEMENTS)?;
    if n == 0 || out_dims.len() < in_dims.len() {
        return Some(Vec::new());
    }
    let off = out_dims.len() - in_dims.len();
    let in_strides = strides(in_dims);
    let out_strides = strides(out_dims);
    let idx = (0..n as usize)
        .map(|flat| {
            let mut idx = 0;
            for (k, &os) in out_strides.iter().enumerate() {
                let coord = (flat / os) % out_dims[k].max(1) as usize;
                if k >= off && in_dims[k - off] != 1 {
                    idx += coord * in_strides[k - off];
                }
            }
            idx
        })
        .collect();
    Some(idx)
}

/// Elementwise binary op over constants, computed in f64 (exact for the integer ranges that
/// shapes use) or i64 for integer division and modulo.
pub fn binary(
    a: &Tensor,
    b: &Tensor,
    out_dtype: DType,
    f: impl Fn(f64, f64) -> f64,
    fi: Option<&dyn Fn(i64, i64) -> Option<i64>>,
) -> Option<Tensor> {
    if !small(a) || !small(b) {
        return None;
    }
    let dims = broadcast_dims(&a.dims, &b.dims)?;
    let ia = broadcast_index(&dims, &a.dims)?;
    let ib = broadcast_index(&dims, &b.dims)?;
    if let (Some(fi), true, true) = (fi, a.dtype.is_int(), b.dtype.is_int()) {
        let (va, vb) = (a.as_i64()?, b.as_i64()?);
        let out: Option<Vec<f64>> = ia
            .iter()
            .zip(&ib)
            .map(|(&i, &j)| fi(va[i], vb[j]).map(|x| x as f64))
            .collect();
        return Tensor::from_f64_as(out_dtype, dims, &out?);
    }
    let (va, vb) = (a.as_f64()?, b.as_f64()?);
    let out: Vec<f64> = ia.iter().zip(&ib).map(|(&i, &j)| f(va[i], vb[j])).collect();
    Tensor::from_f64_as(out_dtype, dims, &out)
}

pub fn unary(a: &Tensor, out_dtype: DType, f: impl Fn(f64) -> f64) -> Option<Tensor> {
    if !small(a) {
        return None;
    }
    let v: Vec<f64> = a.as_f64()?.into_iter().map(f).collect();
    Tensor::from_f64_as(out_dtype, a.dims.clone(), &v)
}

/// Gathers elements of `t` by flat indices into a new tensor of `dims` (same dtype).
/// `None` if `dims` is too big to fold or does not hold `flat.len()` elements.
pub fn take(t: &Tensor, dims: Vec<i64>, flat: &[usize]) -> Option<Tensor> {
    if !small_dims(&dims) || numel(&dims)? != flat.len() as u64 {
        return None;
    }
    let w = t.dtype.size_bytes()? as usize;
    let crate::ir::TensorData::Raw(b) = &t.data else {
        return None;
    };
    let mut out = Vec::with_capacity(flat.len() * w);
    for &i in flat {
        out.extend_from_slice(b.get(i * w..(i + 1) * w)?);
    }
    Some(Tensor::raw(t.dtype, dims, out))
}
