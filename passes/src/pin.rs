//! Pinning a computation late: `Reshape(x, shape(x) + 0 * int64(late.flat[0]))` is `x`
//! itself, but cannot be computed before `late` exists, cannot be constant-folded (it reads
//! a value), and is a different value from `x` for common-subexpression elimination.
//! Integer arithmetic keeps it exact whatever `late` holds, Inf and NaN included.
//!
//! Used by the recompute rewrite (copies must run in the backward and must not merge with
//! their originals) and by the training-graph scheduler (backward nodes that read only
//! forward values must not run during the forward).

use crate::ir::{
    known_shape, Attribute, DType, Graph, Names, Node, Origin, Patch, Region, Tensor, Value,
    ValueId,
};
use std::collections::HashMap;

/// Whether ONNX Runtime merges a Reshape into a following node of op `reader_op`
/// (Reshape, Squeeze, Unsqueeze, Flatten: `MemoryClass::ReshapeView`), dropping the
/// Reshape's shape input and with it a Reshape pin's dependency.
pub fn merges_a_reshape(reader_op: &str) -> bool {
    crate::ops::lookup(reader_op).is_some_and(|d| d.memory == crate::ops::MemoryClass::ReshapeView)
}

/// Emits pins into node lists; shares the zero dependency made from each late value. It
/// reads the graph and queues the values and initializers it adds into the caller's
/// [`Patch`] (read back through it: a pin may read a value an earlier pin made); the caller
/// places the nodes.
pub struct Pinner<'a> {
    names: Names<'a>,
    late_zeros: HashMap<ValueId, Option<ValueId>>,
    /// The provenance of the nodes it emits.
    origin: Origin,
}

impl Pinner<'static> {
    /// A pinner for `g`, which the caller may change: it copies every name of `g`.
    pub fn new(g: &Graph) -> Pinner<'static> {
        Pinner::with_names(Names::of_graph(g))
    }
}

impl<'a> Pinner<'a> {
    /// A pinner making its names with `names`.
    pub fn with_names(names: Names<'a>) -> Pinner<'a> {
        Pinner {
            names,
            late_zeros: HashMap::new(),
            origin: Origin::Defence {
                pass: "pin",
                region: Region::Backward,
            },
        }
    }

    /// Its name service, for the next pass.
    pub fn into_names(self) -> Names<'a> {
        self.names
    }

    /// Marks the nodes it emits as made by the pass named `pass`, to run in `region`.
    pub fn made_by(mut self, pass: &'static str, region: Region) -> Pinner<'a> {
        self.origin = Origin::Defence { pass, region };
        self
    }

    /// A name unused by values and nodes (both must be unique: profiles key on node names).
    pub fn fresh(&mut self, base: &str) -> String {
        self.names.fresh(base)
    }

    /// `0 * int64(late.flat[0])`, an int64 `[1]` that is always zero but cannot be known
    /// before `late` exists; emitted into `out` once per late value.
    pub fn late_zero(
        &mut self,
        g: &Graph,
        patch: &mut Patch,
        late: ValueId,
        out: &mut Vec<Node>,
    ) -> Option<ValueId> {
        if let Some(&d) = self.late_zeros.get(&late) {
            return d;
        }
        let d = self.make_late_zero(g, patch, late, out);
        self.late_zeros.insert(late, d);
        d
    }

    fn make_late_zero(
        &mut self,
        g: &Graph,
        patch: &mut Patch,
        late: ValueId,
        out: &mut Vec<Node>,
    ) -> Option<ValueId> {
        let lv = patch.read(g, late);
        let late_numel = crate::ir::static_numel(lv.shape.as_ref()?)?;
        let ldt = lv.dtype?;
        if late_numel == 0 || ldt == DType::String {
            return None;
        }
        let base = format!("{}/late", lv.name);
        let flat_shape = self.init(
            patch,
            &format!("{base}/flat_shape"),
            Tensor::from_i64(vec![1], &[-1]),
        );
        let start = self.init(
            patch,
            &format!("{base}/start"),
            Tensor::from_i64(vec![1], &[0]),
        );
        let end = self.init(
            patch,
            &format!("{base}/end"),
            Tensor::from_i64(vec![1], &[1]),
        );
        let zero = self.init(
            patch,
            &format!("{base}/zero"),
            Tensor::from_i64(vec![1], &[0]),
        );
        let flat = self.val(patch, &format!("{base}/flat"), ldt, &[late_numel as i64]);
        let first = self.val(patch, &format!("{base}/first"), ldt, &[1]);
        let as_int = self.val(patch, &format!("{base}/int"), DType::Int64, &[1]);
        let dep = self.val(patch, &format!("{base}/zero_dep"), DType::Int64, &[1]);
        self.emit(out, &base, "Reshape", &[late, flat_shape], flat, vec![]);
        self.emit(out, &base, "Slice", &[flat, start, end], first, vec![]);
        self.emit(
            out,
            &base,
            "Cast",
            &[first],
            as_int,
            vec![Attribute::int("to", 7)],
        );
        self.emit(out, &base, "Mul", &[as_int, zero], dep, vec![]);
        Some(dep)
    }

    /// `Reshape(x, shape(x) + dep)`: `x` itself, read only after `dep` exists.
    pub fn pin(
        &mut self,
        g: &Graph,
        patch: &mut Patch,
        x: ValueId,
        dep: ValueId,
        out: &mut Vec<Node>,
    ) -> Option<ValueId> {
        let xv = patch.read(g, x);
        let dims = crate::ir::static_dims(xv.shape.as_ref()?)?;
        let base = format!("{}/pin", xv.name);
        let new_shape = self.shape_plus(patch, &base, &dims, dep, out);
        Some(self.reshape_to(g, patch, x, new_shape, "pinned", &base, out))
    }

    /// `dims + dep`: an int64 shape equal to `dims` that is not known before `dep` exists.
    pub fn dims_plus(
        &mut self,
        patch: &mut Patch,
        dims: &[i64],
        dep: ValueId,
        out: &mut Vec<Node>,
    ) -> ValueId {
        let text: Vec<String> = dims.iter().map(|d| d.to_string()).collect();
        let base = format!("hidden_shape/{}", text.join("x"));
        self.shape_plus(patch, &base, dims, dep, out)
    }

    fn shape_plus(
        &mut self,
        patch: &mut Patch,
        base: &str,
        dims: &[i64],
        dep: ValueId,
        out: &mut Vec<Node>,
    ) -> ValueId {
        let shape = self.init(
            patch,
            &format!("{base}/shape"),
            Tensor::from_i64(vec![dims.len() as i64], dims),
        );
        let new_shape = self.val(
            patch,
            &format!("{base}/shape_dep"),
            DType::Int64,
            &[dims.len() as i64],
        );
        self.emit(out, base, "Add", &[shape, dep], new_shape, vec![]);
        new_shape
    }

    /// `Reshape(x, shape)`, a value named `<x>/<label>` with `x`'s dtype and true dims, made
    /// by a node named `<node_base>/Reshape`.
    #[allow(clippy::too_many_arguments)]
    pub fn reshape_to(
        &mut self,
        g: &Graph,
        patch: &mut Patch,
        x: ValueId,
        shape: ValueId,
        label: &str,
        node_base: &str,
        out: &mut Vec<Node>,
    ) -> ValueId {
        let xv = patch.read(g, x);
        let (dtype, xshape) = (xv.dtype, xv.shape.clone());
        let name = format!("{}/{label}", xv.name);
        let out_v = self.fresh(&name);
        let outv = patch.add_value(Value {
            name: out_v,
            dtype,
            shape: xshape,
            ..Default::default()
        });
        self.emit(out, node_base, "Reshape", &[x, shape], outv, vec![]);
        outv
    }

    /// Pins `x` for a reader of op `reader_op`. ONNX Runtime merges a Reshape into a
    /// following Reshape, Squeeze, Unsqueeze or Flatten and drops its shape input, which
    /// would drop the dependency: for such readers the pin is `x * (1 + dep)` instead
    /// (exact for every value, −0, Inf and NaN included; it costs a copy of `x`). Other
    /// readers get the zero-copy Reshape pin.
    pub fn pin_for(
        &mut self,
        g: &Graph,
        patch: &mut Patch,
        x: ValueId,
        dep: ValueId,
        reader_op: &str,
        out: &mut Vec<Node>,
    ) -> Option<ValueId> {
        if !merges_a_reshape(reader_op) {
            return self.pin(g, patch, x, dep, out);
        }
        let xv = patch.read(g, x);
        let dt = xv.dtype?;
        if !(dt.is_float() || dt.is_int()) {
            return None;
        }
        let dims = crate::ir::static_dims(xv.shape.as_ref()?)?;
        let base = format!("{}/pin", xv.name);
        let xname = xv.name.clone();
        let one = self.init(
            patch,
            &format!("{base}/one"),
            Tensor::from_i64(vec![1], &[1]),
        );
        let one_dep = self.val(patch, &format!("{base}/one_dep"), DType::Int64, &[1]);
        let factor = self.val(patch, &format!("{base}/factor"), dt, &[1]);
        let pinned = self.val(patch, &format!("{xname}/pinned"), dt, &dims);
        self.emit(out, &base, "Add", &[one, dep], one_dep, vec![]);
        self.emit(
            out,
            &base,
            "Cast",
            &[one_dep],
            factor,
            vec![Attribute::int("to", i64::from(dt.to_onnx()))],
        );
        self.emit(out, &base, "Mul", &[x, factor], pinned, vec![]);
        Some(pinned)
    }

    fn init(&mut self, patch: &mut Patch, name: &str, t: Tensor) -> ValueId {
        let name = self.fresh(name);
        patch.add_initializer(name, t)
    }

    fn val(&mut self, patch: &mut Patch, name: &str, dtype: DType, dims: &[i64]) -> ValueId {
        let name = self.fresh(name);
        patch.add_value(Value {
            name,
            dtype: Some(dtype),
            shape: Some(known_shape(dims)),
            ..Default::default()
        })
    }

    fn emit(
        &mut self,
        out: &mut Vec<Node>,
        base: &str,
        op: &str,
        ins: &[ValueId],
        outv: ValueId,
        attrs: Vec<Attribute>,
    ) {
        let mut n = Node::new(op, ins.iter().map(|&i| Some(i)).collect(), vec![Some(outv)]);
        n.name = self.fresh(&format!("{base}/{op}"));
        n.attrs = attrs;
        n.origin = self.origin;
        out.push(n);
    }
}
