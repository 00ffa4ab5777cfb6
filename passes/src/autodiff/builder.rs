//! Emitting new nodes into the training graph: fresh names, constants, and the small
//! helpers every gradient rule needs (reduce a broadcast gradient back to its input's shape,
//! transpose the last two axes, zeros of a shape).

use crate::ir::{
    known_shape, static_dims, AttrValue, Attribute, DType, Graph, Names, Node, NodeId, Tensor,
    ValueId,
};

/// A gradient rule's failure: the message names what is unsupported.
pub type GradResult<T> = Result<T, String>;

/// What a gradient rule sees: the builder, the forward node and which inputs need a
/// gradient.
pub struct GradCtx<'a, 'g> {
    pub b: &'a mut Builder<'g>,
    pub node: &'a Node,
    pub node_id: NodeId,
    /// Which inputs need a gradient.
    pub needs: &'a [bool],
}

impl GradCtx<'_, '_> {
    pub fn x(&self, i: usize) -> GradResult<ValueId> {
        self.node
            .input(i)
            .ok_or_else(|| format!("input {i} is missing"))
    }
    pub fn y(&self, i: usize) -> GradResult<ValueId> {
        self.node
            .output(i)
            .ok_or_else(|| format!("output {i} is missing"))
    }
    pub fn need(&self, i: usize) -> bool {
        self.needs.get(i).copied().unwrap_or(false)
    }
    pub fn dims(&self, v: ValueId) -> GradResult<Vec<i64>> {
        self.b.dims(v)
    }
    pub fn const_ints(&self, i: usize) -> Option<Vec<i64>> {
        let v = self.node.input(i)?;
        let val = self.b.graph.value(v);
        val.constant.as_ref().or(val.initializer.as_ref())?.as_i64()
    }
}

/// A gradient rule (`OpDef::grad`): emits the backward of `ctx.node` and returns one gradient
/// per input (None where not needed).
pub type GradRule = fn(&mut GradCtx, &[Option<ValueId>]) -> GradResult<Vec<Option<ValueId>>>;

/// The result of a gradient rule: one gradient per input.
pub type Grads = GradResult<Vec<Option<ValueId>>>;

/// The gradient of a single-output op's output.
pub fn dy0(dys: &[Option<ValueId>]) -> GradResult<ValueId> {
    dys.first()
        .copied()
        .flatten()
        .ok_or_else(|| "no gradient for the output".to_string())
}

/// `v` extended with None to `n` gradients (inputs without one).
pub fn pad_none(mut v: Vec<Option<ValueId>>, n: usize) -> Vec<Option<ValueId>> {
    v.resize(n, None);
    v
}

/// The node's `axis` attribute (or `default`), made non-negative for `rank`.
pub fn axis_of(c: &GradCtx, rank: usize, default: i64) -> usize {
    let a = c.node.attr_int("axis").unwrap_or(default);
    (if a < 0 { a + rank as i64 } else { a }) as usize
}

pub struct Builder<'g> {
    pub graph: &'g mut Graph,
    pub opset: i64,
    /// Names of the graph and of what the builder emitted (one counter numbers them all).
    names: Names<'static>,
    /// Prefix of the names of emitted nodes and values (`grad/` for the backward).
    pub prefix: String,
    consts: std::collections::HashMap<(DType, Vec<i64>, Vec<u8>), ValueId>,
}

/// The nearest node upstream of `v` (through values of unknown shape) whose output size
/// depends on the data, if any: then `--dim` cannot make `v` static.
fn data_dependent_source(g: &Graph, v: ValueId) -> Option<NodeId> {
    let mut stack = vec![v];
    let mut seen = std::collections::HashSet::new();
    while let Some(x) = stack.pop() {
        let Some(p) = g.value(x).producer else {
            continue;
        };
        if !seen.insert(p) || seen.len() > 10_000 {
            continue;
        }
        let n = g.node(p);
        if crate::ops::lookup(&n.op_type).is_some_and(|d| d.data_dependent) {
            return Some(p);
        }
        // Only values of unknown size can carry the data dependence.
        stack.extend(n.inputs.iter().flatten().copied().filter(|&i| {
            let val = g.value(i);
            val.shape.as_ref().and_then(|s| static_dims(s)).is_none()
                || val.constant.is_none()
                    && val.initializer.is_none()
                    && val.dtype == Some(DType::Int64)
        }));
    }
    None
}

impl<'g> Builder<'g> {
    pub fn new(graph: &'g mut Graph, opset: i64, prefix: &str) -> Builder<'g> {
        let names = Names::of_graph(graph);
        Builder {
            graph,
            opset,
            names,
            prefix: prefix.to_string(),
            consts: Default::default(),
        }
    }

    /// A fresh name `{prefix}{hint}_{k}` (one counter for every hint).
    pub fn fresh(&mut self, hint: &str) -> String {
        self.names.numbered(&format!("{}{hint}", self.prefix))
    }

    /// Reserves an exact name (e.g. `<param>.grad`); falls back to a fresh one if taken.
    pub fn named(&mut self, name: &str) -> String {
        self.names
            .exact_or_numbered(name, &format!("{}{name}", self.prefix))
    }

    /// Emits `op_type(inputs) {attrs}` with `n_out` outputs; returns the outputs. Types and
    /// shapes are filled in by running the op's shape rule at once.
    pub fn node_n(
        &mut self,
        op_type: &str,
        inputs: &[Option<ValueId>],
        attrs: Vec<Attribute>,
        n_out: usize,
    ) -> GradResult<Vec<ValueId>> {
        let outs: Vec<ValueId> = (0..n_out)
            .map(|_| {
                let name = self.fresh(&op_type.to_ascii_lowercase());
                self.graph.new_value(name)
            })
            .collect();
        let mut node = Node::new(
            op_type,
            inputs.to_vec(),
            outs.iter().map(|&o| Some(o)).collect(),
        );
        node.name = self.fresh(op_type);
        node.attrs = attrs;
        let nid = self.graph.add_node(node);
        let rule = crate::ops::shape_rule(op_type)
            .ok_or_else(|| format!("internal: no shape rule for emitted op {op_type}"))?;
        let ctx = crate::ops::OpCtx {
            graph: self.graph,
            node: self.graph.node(nid),
            opset: self.opset,
        };
        let infos = rule(&ctx).map_err(|e| format!("emitted {op_type}: {}", e.0))?;
        for (o, info) in outs.iter().zip(infos) {
            let v = self.graph.value_mut(*o);
            v.dtype = Some(info.dtype);
            v.shape = info.shape;
            // Folded values stay computed by their node: the emitted graph must run as is.
            v.constant = info.constant;
        }
        Ok(outs)
    }

    pub fn node(
        &mut self,
        op_type: &str,
        inputs: &[ValueId],
        attrs: Vec<Attribute>,
    ) -> GradResult<ValueId> {
        let ins: Vec<Option<ValueId>> = inputs.iter().map(|&v| Some(v)).collect();
        Ok(self.node_n(op_type, &ins, attrs, 1)?[0])
    }

    pub fn op(&mut self, op_type: &str, inputs: &[ValueId]) -> GradResult<ValueId> {
        self.node(op_type, inputs, Vec::new())
    }

    /// An initializer holding `t`, shared between identical constants.
    pub fn constant(&mut self, t: Tensor) -> ValueId {
        let key = match &t.data {
            crate::ir::TensorData::Raw(b) => Some((t.dtype, t.dims.clone(), b.to_vec())),
            _ => None,
        };
        if let Some(k) = &key {
            if let Some(&id) = self.consts.get(k) {
                return id;
            }
        }
        let name = self.fresh("const");
        let id = self.graph.add_initializer(name, t);
        if let Some(k) = key {
            self.consts.insert(k, id);
        }
        id
    }

    pub fn const_i64(&mut self, vals: &[i64]) -> ValueId {
        self.constant(Tensor::from_i64(vec![vals.len() as i64], vals))
    }

    pub fn scalar(&mut self, dtype: DType, v: f64) -> GradResult<ValueId> {
        let t = Tensor::scalar_of(dtype, v).ok_or_else(|| format!("no scalar of type {dtype}"))?;
        Ok(self.constant(t))
    }

    pub fn dtype(&self, v: ValueId) -> GradResult<DType> {
        self.graph
            .value(v)
            .dtype
            .ok_or_else(|| format!("value '{}' has no known type", self.graph.value(v).name))
    }

    /// Static dims of a value; every gradient shape is static once `--dim`s are bound.
    pub fn dims(&self, v: ValueId) -> GradResult<Vec<i64>> {
        let val = self.graph.value(v);
        val.shape
            .as_ref()
            .and_then(|s| static_dims(s))
            .ok_or_else(|| match data_dependent_source(self.graph, v) {
                Some(n) => format!(
                    "value '{}' has no static shape: its size depends on the data through \
                     {}, and gradients need static shapes",
                    val.name,
                    crate::error::NodeRef::of(self.graph, n)
                ),
                None => format!(
                    "value '{}' has no static shape (bind symbolic dims with --dim)",
                    val.name
                ),
            })
    }

    /// `x * s` for a scalar `s` (skipped when `s == 1`).
    pub fn scale(&mut self, x: ValueId, s: f64) -> GradResult<ValueId> {
        if s == 1.0 {
            return Ok(x);
        }
        let c = self.scalar(self.dtype(x)?, s)?;
        self.op("Mul", &[x, c])
    }

    pub fn neg(&mut self, x: ValueId) -> GradResult<ValueId> {
        self.op("Neg", &[x])
    }

    pub fn reshape(&mut self, x: ValueId, dims: &[i64]) -> GradResult<ValueId> {
        if self.dims(x)? == dims {
            return Ok(x);
        }
        let s = self.const_i64(dims);
        self.op("Reshape", &[x, s])
    }

    pub fn transpose(&mut self, x: ValueId, perm: &[i64]) -> GradResult<ValueId> {
        if perm.iter().enumerate().all(|(i, &p)| p == i as i64) {
            return Ok(x);
        }
        if perm == [1, 0] && self.swap_own_gemm(x)? {
            return Ok(x);
        }
        self.node(
            "Transpose",
            &[x],
            vec![Attribute::ints("perm", perm.to_vec())],
        )
    }

    /// (A'B')ᵀ = B'ᵀA'ᵀ: transposes the product of a Gemm this builder emitted, and nothing
    /// reads yet, by swapping its operands. Left to ONNX Runtime, that fusion creates a node
    /// its execution order runs at the very end of the step (a linear layer's weight gradient,
    /// `Gemm` then `Transpose`), holding the activation gradients it reads until then.
    fn swap_own_gemm(&mut self, x: ValueId) -> GradResult<bool> {
        let Some(nid) = self.graph.value(x).producer else {
            return Ok(false);
        };
        let node = self.graph.node(nid);
        let own = node.op_type == "Gemm"
            && node.inputs.len() == 2
            && node.name.starts_with(&self.prefix)
            && !self.graph.outputs.contains(&x)
            && !self.graph.nodes[nid.index() + 1..]
                .iter()
                .any(|n| n.inputs.contains(&Some(x)));
        if !own {
            return Ok(false);
        }
        let node = self.graph.node_mut(nid);
        let flag = |n: &Node, a: &str| n.attr_int(a).unwrap_or(0) != 0;
        let (ta, tb) = (flag(node, "transA"), flag(node, "transB"));
        node.inputs.swap(0, 1);
        node.attrs
            .retain(|a| a.name != "transA" && a.name != "transB");
        node.attrs.push(Attribute::int("transA", i64::from(!tb)));
        node.attrs.push(Attribute::int("transB", i64::from(!ta)));
        let v = self.graph.value_mut(x);
        if let Some(shape) = v.shape.as_mut() {
            shape.reverse();
        }
        Ok(true)
    }

    /// Swaps the last two axes (matrix transpose of a batched matrix).
    pub fn transpose_last2(&mut self, x: ValueId) -> GradResult<ValueId> {
        let r = self.dims(x)?.len() as i64;
        let mut perm: Vec<i64> = (0..r).collect();
        perm.swap(r as usize - 2, r as usize - 1);
        self.transpose(x, &perm)
    }

    /// ReduceSum over `axes` with keepdims; axes are an input from opset 13.
    pub fn reduce_sum(&mut self, x: ValueId, axes: &[i64], keepdims: bool) -> GradResult<ValueId> {
        if axes.is_empty() {
            return Ok(x);
        }
        let a = self.const_i64(axes);
        self.node(
            "ReduceSum",
            &[x, a],
            vec![Attribute::int("keepdims", i64::from(keepdims))],
        )
    }

    /// ReduceMean honouring the opset: axes are an attribute before 18, an input from 18.
    pub fn reduce_mean(&mut self, x: ValueId, axes: &[i64], keepdims: bool) -> GradResult<ValueId> {
        let keep = Attribute::int("keepdims", i64::from(keepdims));
        if self.opset >= 18 {
            let a = self.const_i64(axes);
            self.node("ReduceMean", &[x, a], vec![keep])
        } else {
            self.node(
                "ReduceMean",
                &[x],
                vec![keep, Attribute::ints("axes", axes.to_vec())],
            )
        }
    }

    /// Sums a gradient of broadcast shape back to `target` dims (numpy broadcasting rules).
    pub fn unbroadcast(&mut self, g: ValueId, target: &[i64]) -> GradResult<ValueId> {
        let gd = self.dims(g)?;
        if gd == target {
            return Ok(g);
        }
        let off = gd
            .len()
            .checked_sub(target.len())
            .ok_or_else(|| format!("cannot reduce a gradient of shape {gd:?} to {target:?}"))?;
        let mut axes: Vec<i64> = (0..off as i64).collect();
        for (k, &t) in target.iter().enumerate() {
            if t == 1 && gd[off + k] != 1 {
                axes.push((off + k) as i64);
            }
        }
        let r = self.reduce_sum(g, &axes, true)?;
        self.reshape(r, target)
    }

    /// Zeros of the given dtype and dims.
    pub fn zeros(&mut self, dtype: DType, dims: &[i64]) -> GradResult<ValueId> {
        let shape = self.const_i64(dims);
        let zero = Tensor::scalar_of(dtype, 0.0).ok_or_else(|| format!("no zero of {dtype}"))?;
        let mut zero = zero;
        zero.dims = vec![1];
        self.node(
            "ConstantOfShape",
            &[shape],
            vec![Attribute::new("value", AttrValue::Tensor(zero))],
        )
    }

    /// Zeros shaped like `v`.
    pub fn zeros_like(&mut self, v: ValueId) -> GradResult<ValueId> {
        let (dt, d) = (self.dtype(v)?, self.dims(v)?);
        self.zeros(dt, &d)
    }

    /// Sums contributions (one `Sum` node for several).
    pub fn sum(&mut self, parts: &[ValueId]) -> GradResult<ValueId> {
        match parts {
            [] => Err("internal: empty gradient sum".into()),
            [one] => Ok(*one),
            many => self.op("Sum", many),
        }
    }

    pub fn known_shape_of(dims: &[i64]) -> crate::ir::Shape {
        known_shape(dims)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ir::{Dim, Value};

    /// A value sized by NonZero names that node (no `--dim` can help); a value with a
    /// symbolic dim only keeps the `--dim` hint.
    #[test]
    fn unknown_size_names_its_data_dependent_source() {
        let mut g = Graph::default();
        let x = g.add_value(Value {
            name: "x".into(),
            dtype: Some(DType::Float),
            shape: Some(known_shape(&[4])),
            ..Value::default()
        });
        let idx = g.add_value(Value {
            name: "idx".into(),
            dtype: Some(DType::Int64),
            shape: Some(vec![Dim::Known(1), Dim::Unknown]),
            ..Value::default()
        });
        let mut nz = Node::new("NonZero", vec![Some(x)], vec![Some(idx)]);
        nz.name = "router/NonZero".into();
        g.add_node(nz);
        let picked = g.add_value(Value {
            name: "picked".into(),
            dtype: Some(DType::Float),
            shape: Some(vec![Dim::Unknown]),
            ..Value::default()
        });
        g.add_node(Node::new(
            "Gather",
            vec![Some(x), Some(idx)],
            vec![Some(picked)],
        ));
        let sym = g.add_value(Value {
            name: "sym".into(),
            dtype: Some(DType::Float),
            shape: Some(vec![Dim::Sym("batch".into())]),
            ..Value::default()
        });
        let b = Builder::new(&mut g, 17, "grad/");
        let e = b.dims(picked).unwrap_err();
        assert!(e.contains("router/NonZero") && !e.contains("--dim"), "{e}");
        let e = b.dims(sym).unwrap_err();
        assert!(e.contains("--dim"), "{e}");
    }
}
