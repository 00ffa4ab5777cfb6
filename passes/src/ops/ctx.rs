//! What a shape rule sees of its node, and what it returns.

use crate::error::RuleError;
use crate::ir::{DType, Dim, Graph, Node, Shape, Tensor, TensorData, ValueId};

/// A node's view of the graph for its shape rule.
pub struct OpCtx<'a> {
    pub graph: &'a Graph,
    pub node: &'a Node,
    /// The model's ai.onnx opset version.
    pub opset: i64,
}

/// One output's inferred type, and its value when it is known at compile time.
#[derive(Clone, Debug, PartialEq)]
pub struct OutInfo {
    pub dtype: DType,
    pub shape: Option<Shape>,
    pub constant: Option<Tensor>,
}

impl OutInfo {
    pub fn new(dtype: DType, shape: Shape) -> OutInfo {
        OutInfo {
            dtype,
            shape: Some(shape),
            constant: None,
        }
    }
    pub fn unranked(dtype: DType) -> OutInfo {
        OutInfo {
            dtype,
            shape: None,
            constant: None,
        }
    }
    pub fn constant(t: Tensor) -> OutInfo {
        OutInfo {
            dtype: t.dtype,
            shape: Some(crate::ir::known_shape(&t.dims)),
            constant: Some(t),
        }
    }
}

pub type RuleResult = Result<Vec<OutInfo>, RuleError>;

impl<'a> OpCtx<'a> {
    pub fn num_inputs(&self) -> usize {
        self.node.inputs.len()
    }

    pub fn has_input(&self, i: usize) -> bool {
        self.node.input(i).is_some()
    }

    fn input_id(&self, i: usize) -> Result<ValueId, RuleError> {
        self.node
            .input(i)
            .ok_or_else(|| RuleError(format!("input {i} is missing")))
    }

    pub fn dtype(&self, i: usize) -> Result<DType, RuleError> {
        let id = self.input_id(i)?;
        let v = self.graph.value(id);
        v.dtype
            .ok_or_else(|| RuleError(format!("input '{}' has no known element type", v.name)))
    }

    /// The input's shape, if its rank is known.
    pub fn shape_opt(&self, i: usize) -> Option<&'a Shape> {
        let id = self.node.input(i)?;
        self.graph.value(id).shape.as_ref()
    }

    pub fn shape(&self, i: usize) -> Result<&'a Shape, RuleError> {
        let id = self.input_id(i)?;
        let v = self.graph.value(id);
        v.shape
            .as_ref()
            .ok_or_else(|| RuleError(format!("input '{}' has unknown rank", v.name)))
    }

    pub fn rank(&self, i: usize) -> Result<usize, RuleError> {
        Ok(self.shape(i)?.len())
    }

    /// The input's value when known at compile time (initializer or folded constant).
    pub fn constant(&self, i: usize) -> Option<&'a Tensor> {
        let id = self.node.input(i)?;
        let v = self.graph.value(id);
        let t = v.constant.as_ref().or(v.initializer.as_ref())?;
        // Graph inputs with a default initializer can be overridden at run time.
        if self.graph.inputs.contains(&id) {
            return None;
        }
        matches!(t.data, TensorData::Raw(_)).then_some(t)
    }

    /// The input's integer values when constant and small enough to read (at most
    /// [`fold::MAX_FOLD_ELEMENTS`](super::fold::MAX_FOLD_ELEMENTS)); `None` otherwise.
    pub fn const_ints(&self, i: usize) -> Option<Vec<i64>> {
        self.constant(i).filter(|t| super::fold::small(t))?.as_i64()
    }

    /// The input's first value as f64, when constant and small enough to read.
    pub fn const_f64_first(&self, i: usize) -> Option<f64> {
        self.constant(i)
            .filter(|t| super::fold::small(t))?
            .as_f64()?
            .first()
            .copied()
    }

    pub fn input_name(&self, i: usize) -> String {
        self.node
            .input(i)
            .map(|v| self.graph.value(v).name.clone())
            .unwrap_or_else(|| format!("#{i}"))
    }

    pub fn attr_int(&self, name: &str, default: i64) -> i64 {
        self.node.attr_int(name).unwrap_or(default)
    }

    pub fn attr_float(&self, name: &str, default: f32) -> f32 {
        self.node.attr_float(name).unwrap_or(default)
    }

    pub fn attr_ints(&self, name: &str) -> Option<Vec<i64>> {
        self.node.attr_ints(name).map(|v| v.to_vec())
    }

    pub fn num_outputs(&self) -> usize {
        self.node.outputs.len()
    }
}

/// The largest rank a rule gives an output whose rank comes from data in the file (the
/// length of a shape vector: Reshape, Expand, ConstantOfShape, AffineGrid, Col2Im,
/// MaxUnpool). ONNX sets no limit, but any rank above 63 overflows int64 unless nearly every
/// dim is 0 or 1, and a crafted length (2^40) must not allocate a shape of 2^40 dims.
pub const MAX_RANK: usize = 1024;

/// Checks a rank `n` read from the data before a shape of that rank is allocated; `what`
/// says where it comes from ("the length of shape input 'x'").
pub fn rank_from_len(n: i64, what: &str) -> Result<usize, RuleError> {
    usize::try_from(n)
        .ok()
        .filter(|&r| r <= MAX_RANK)
        .ok_or_else(|| {
            RuleError(format!(
                "{what} is {n}, above the largest rank onnx-ac supports ({MAX_RANK})"
            ))
        })
}

/// Normalizes a possibly negative axis against `rank`.
pub fn norm_axis(axis: i64, rank: usize) -> Result<usize, RuleError> {
    let r = rank as i64;
    let a = if axis < 0 { axis + r } else { axis };
    if a < 0 || a >= r {
        return Err(RuleError(format!(
            "axis {axis} is out of range for rank {rank}"
        )));
    }
    Ok(a as usize)
}

/// Numpy-style broadcast of several shapes.
pub fn broadcast(shapes: &[&Shape]) -> Result<Shape, RuleError> {
    let rank = shapes.iter().map(|s| s.len()).max().unwrap_or(0);
    let mut out = Vec::with_capacity(rank);
    for k in 0..rank {
        let mut d = Dim::Known(1);
        for s in shapes {
            let off = rank - s.len();
            if k < off {
                continue;
            }
            let e = &s[k - off];
            d = match (&d, e) {
                (Dim::Known(1), x) => x.clone(),
                (x, Dim::Known(1)) => x.clone(),
                (Dim::Known(a), Dim::Known(b)) if a == b => Dim::Known(*a),
                (Dim::Known(a), Dim::Known(b)) => {
                    return Err(RuleError(format!(
                        "cannot broadcast dimension {a} with {b} at axis {k}"
                    )))
                }
                (Dim::Sym(a), Dim::Sym(b)) if a == b => Dim::Sym(a.clone()),
                (Dim::Known(a), _) | (_, Dim::Known(a)) => Dim::Known(*a),
                _ => Dim::Unknown,
            };
        }
        out.push(d);
    }
    Ok(out)
}

/// `a + b` when both are known (saturating: an overflow becomes a size that shape
/// inference refuses as too large, naming the node).
pub fn dim_add(a: &Dim, b: &Dim) -> Dim {
    match (a, b) {
        (Dim::Known(x), Dim::Known(y)) => Dim::Known(x.saturating_add(*y)),
        _ => Dim::Unknown,
    }
}

/// `a * b` when both are known (saturating, as [`dim_add`]).
pub fn dim_mul(a: &Dim, b: &Dim) -> Dim {
    match (a, b) {
        (Dim::Known(x), Dim::Known(y)) => Dim::Known(x.saturating_mul(*y)),
        _ => Dim::Unknown,
    }
}

/// `a / b` when `a` is known (`b` must be positive).
pub fn dim_div(a: &Dim, b: i64) -> Dim {
    match a {
        Dim::Known(x) if b > 0 => Dim::Known(x / b),
        _ => Dim::Unknown,
    }
}

/// The element type named by an integer attribute (`to`, `dtype`, `output_datatype`).
pub fn dtype_attr(c: &OpCtx, name: &str) -> Result<Option<DType>, RuleError> {
    match c.node.attr_int(name) {
        None => Ok(None),
        Some(code) => DType::from_onnx(code as i32)
            .map(Some)
            .ok_or_else(|| RuleError(format!("bad element type {name}={code}"))),
    }
}

/// Input `i`'s shape with element type `dt` (shape-preserving rules).
pub fn same(c: &OpCtx, i: usize, dt: DType) -> OutInfo {
    OutInfo {
        dtype: dt,
        shape: c.shape_opt(i).cloned(),
        constant: None,
    }
}

/// Input 0's type, input 1's shape: GatherElements takes the shape of its indices.
pub fn like_input1(c: &OpCtx) -> RuleResult {
    Ok(vec![OutInfo {
        dtype: c.dtype(0)?,
        shape: c.shape_opt(1).cloned(),
        constant: None,
    }])
}

/// Input 0's type and shape (Scatter*, TensorScatter, Trilu, RotaryEmbedding, CumSum).
pub fn like_input0(c: &OpCtx) -> RuleResult {
    Ok(vec![OutInfo {
        dtype: c.dtype(0)?,
        shape: c.shape_opt(0).cloned(),
        constant: None,
    }])
}
