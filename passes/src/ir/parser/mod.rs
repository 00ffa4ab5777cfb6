//! The printer's inverse: the text of [`super::print_model`] or [`super::print_model_with_data`]
//! back into a [`Model`], so that a pass test can start from a hand-written graph
//! (`passes/tests/filetests.rs`, docs/filetests.md).
//!
//! What the text does not hold is rebuilt deterministically:
//! - a tensor printed without contents holds zeros (empty strings for a string tensor): in
//!   the snapshot form every tensor, in the data form one of more than
//!   [`super::MAX_PRINTED_ELEMENTS`] elements or whose bytes were not in memory (external
//!   data; the parsed graph then prints them: the data form round-trips from the second
//!   print on). `[3 strings]` and `[2 tensors]` attributes hold empty strings and zero f32
//!   scalars. Passes do not read weights' values, so zeros change no pass's output but
//!   shape arithmetic on a tensor left out, which a hand-written case prints in full;
//! - node names, doc strings and metadata are empty, folded constants unset (shape
//!   inference folds again);
//! - `[?]` is an unknown shape, never a rank-1 shape with an unknown dim (both print so);
//! - `opaque` is a non-tensor type with an empty type description;
//! - a list of numbers written without a point (`[1,2]`) is ints, unless the attribute is one
//!   of ONNX's float lists ([`FLOAT_LIST_ATTRS`]); `1` is an int, `1.0` a float.
//!
//! The fillers of one parse hold at most 256 MiB together (a few lines of text must not
//! allocate gigabytes); more is an error. A graph attribute (`<opaque>`) cannot be rebuilt
//! and is an error. Every error names the line and column at fault. Lines starting with `;`
//! and blank lines are comments.

use super::graph::{AttrValue, Attribute, Graph, Model, Node, ValueId};
use super::tensor::{f32_to_f16, Tensor, TensorData};
use super::types::{DType, Dim, Shape};
use std::cell::Cell;
use std::collections::HashMap;
use std::sync::Arc;
use thiserror::Error;

mod cursor;
mod literals;

use cursor::*;
use literals::*;

#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("line {line}, column {column}: {message}")]
pub struct ParseError {
    /// 1-based.
    pub line: usize,
    /// 1-based, in characters.
    pub column: usize,
    pub message: String,
}

/// Float-list attributes of ONNX ops (and of `ai.onnx.ml`): read as floats even when every
/// element is written without a point, as the snapshot form writes `[1,2]` for `[1.0, 2.0]`.
pub const FLOAT_LIST_ATTRS: &[&str] = &[
    "scales",
    "value_floats",
    "activation_alpha",
    "activation_beta",
    "bias",
    "base_values",
    "class_weights",
    "coefficients",
    "intercepts",
    "kernel_params",
    "nodes_hitrates",
    "nodes_values",
    "offset",
    "prob_a",
    "prob_b",
    "rho",
    "scale",
    "support_vectors",
    "target_weights",
];

/// Parses a whole model: a `model ir=N opsets=[...] graph=NAME` line, then the graph.
pub fn parse_model(text: &str) -> Result<Model, ParseError> {
    let mut header: Option<Model> = None;
    let mut b = GraphBuilder::default();
    let budget = Cell::new(MAX_FILLER_BYTES);
    for (i, line) in text.lines().enumerate() {
        if is_comment(line) {
            continue;
        }
        let mut c = Cursor::new(line, i + 1, &budget);
        if header.is_none() {
            header = Some(parse_header(&mut c)?);
            continue;
        }
        b.line(&mut c)?;
    }
    let Some(mut m) = header else {
        return Err(ParseError {
            line: text.lines().count().max(1),
            column: 1,
            message: "no 'model ir=N opsets=[...] graph=NAME' line".into(),
        });
    };
    let name = std::mem::take(&mut m.graph.name);
    m.graph = b.finish()?;
    m.graph.name = name;
    Ok(m)
}

/// Parses the text of [`super::print_graph`] (no `model` line).
pub fn parse_graph(text: &str) -> Result<Graph, ParseError> {
    let mut b = GraphBuilder::default();
    let budget = Cell::new(MAX_FILLER_BYTES);
    for (i, line) in text.lines().enumerate() {
        if !is_comment(line) {
            b.line(&mut Cursor::new(line, i + 1, &budget))?;
        }
    }
    b.finish()
}

#[derive(Clone, Copy, PartialEq)]
enum Def {
    Input,
    Init,
    InputInit,
    Node,
}

#[derive(Default)]
struct GraphBuilder {
    g: Graph,
    ids: HashMap<String, ValueId>,
    /// How and where (line) each value was defined, and its printed type.
    defs: HashMap<ValueId, (Def, usize, Ty)>,
    /// Where each value was read (line, column), for "read but never defined".
    uses: Vec<(ValueId, usize, usize)>,
}

impl GraphBuilder {
    fn value(&mut self, name: &str) -> ValueId {
        if let Some(&v) = self.ids.get(name) {
            return v;
        }
        let v = self.g.new_value(name);
        self.ids.insert(name.to_string(), v);
        v
    }

    fn set_type(&mut self, v: ValueId, ty: &Ty) {
        let val = self.g.value_mut(v);
        val.dtype = ty.dtype;
        val.shape = ty.shape.clone();
        val.opaque_type = ty.opaque.then(Vec::new);
        val.hide_shape = ty.hidden;
    }

    /// Defines `name` (typed `ty`) as `how` on line `c.lineno`.
    fn define(
        &mut self,
        c: &Cursor,
        at: usize,
        name: &str,
        ty: &Ty,
        how: Def,
    ) -> Result<ValueId, ParseError> {
        let v = self.value(name);
        let how = match (self.defs.get(&v), how) {
            (None, how) => how,
            // An initializer that is also an input: the input's default.
            (Some((Def::Input, _, prev)), Def::Init) if prev == ty => Def::InputInit,
            (Some((_, line, _)), _) => {
                return Err(c.err_at(at, format!("'{name}' is already defined on line {line}")))
            }
        };
        self.set_type(v, ty);
        self.defs.insert(v, (how, c.lineno, ty.clone()));
        Ok(v)
    }

    fn line(&mut self, c: &mut Cursor) -> Result<(), ParseError> {
        if c.eat("input  ") {
            let at = c.pos;
            let (name, ty) = parse_named(c, &[""])?;
            let v = self.define(c, at, &name, &ty, Def::Input)?;
            self.g.inputs.push(v);
        } else if c.eat("init   ") {
            let at = c.pos;
            let (name, ty) = parse_named(c, &["", " = "])?;
            let (dtype, dims) = static_type(c, at, &ty)?;
            let t = if c.eat(" = ") {
                let data_at = c.pos;
                let items = parse_items(c)?;
                c.end()?;
                tensor_from_items(c, data_at, dtype, dims, &items)?
            } else {
                filler(c, at, dtype, dims)?
            };
            let v = self.define(c, at, &name, &ty, Def::Init)?;
            self.g.value_mut(v).initializer = Some(t);
            self.g.initializers.push(v);
        } else if c.eat("output ") {
            let at = c.pos;
            let (name, ty) = parse_named(c, &[""])?;
            let v = self.value(&name);
            match self.defs.get(&v) {
                Some((_, line, prev)) if *prev != ty => {
                    return Err(c.err_at(
                        at,
                        format!("output '{name}' has another type than on line {line}"),
                    ))
                }
                Some(_) => {}
                None => {
                    self.uses.push((v, c.lineno, c.err_at(at, "").column));
                    self.set_type(v, &ty);
                }
            }
            self.g.outputs.push(v);
        } else {
            self.node(c)?;
        }
        Ok(())
    }

    /// `OUT: TYPE, _ = [DOMAIN::]Op(IN, _) {attr=value, ...}`
    fn node(&mut self, c: &mut Cursor) -> Result<(), ParseError> {
        let mut outs: Vec<(usize, Option<(String, Ty)>)> = Vec::new();
        if !c.eat(" = ") {
            loop {
                let at = c.pos;
                if c.rest().starts_with("_, ") || c.rest().starts_with("_ = ") {
                    c.pos += 1;
                    outs.push((at, None));
                } else {
                    outs.push((at, Some(parse_named(c, &[", ", " = "])?)));
                }
                if c.eat(" = ") {
                    break;
                }
                c.expect(", ")?;
            }
        }
        let op_at = c.pos;
        let op = c.until(&['(']);
        if c.at_end() {
            return Err(c.err_at(op_at, "expected 'OUTPUTS = Op(INPUTS)'"));
        }
        let (domain, op) = match op.rfind("::") {
            Some(k) => (&op[..k], &op[k + 2..]),
            None => ("", op),
        };
        if op.is_empty() || op.contains(' ') {
            return Err(c.err_at(op_at, format!("'{op}' is not an op name")));
        }
        c.expect("(")?;
        // The input list ends at the first `)` ending the line or followed by attributes.
        let r = c.rest();
        let close = r
            .match_indices(')')
            .map(|(k, _)| k)
            .find(|&k| r[k + 1..].is_empty() || r[k + 1..].starts_with(" {"))
            .ok_or_else(|| c.err("expected ')' closing the inputs"))?;
        let mut inputs = Vec::new();
        if close > 0 {
            let mut at = c.pos;
            for name in r[..close].split(", ") {
                if name == "_" {
                    inputs.push(None);
                } else {
                    let v = self.value(name);
                    self.uses.push((v, c.lineno, c.err_at(at, "").column));
                    inputs.push(Some(v));
                }
                at += name.len() + 2;
            }
        }
        c.pos += close + 1;
        let mut attrs = Vec::new();
        if c.eat(" {") {
            loop {
                attrs.push(parse_attr(c)?);
                if c.eat("}") {
                    break;
                }
                c.expect(", ")?;
            }
        }
        c.end()?;
        let mut outputs = Vec::with_capacity(outs.len());
        for (at, o) in outs {
            outputs.push(match o {
                Some((name, ty)) => Some(self.define(c, at, &name, &ty, Def::Node)?),
                None => None,
            });
        }
        let mut n = Node::new(op, inputs, outputs);
        n.domain = domain.to_string();
        n.attrs = attrs;
        self.g.add_node(n);
        Ok(())
    }

    fn finish(self) -> Result<Graph, ParseError> {
        for &(v, line, column) in &self.uses {
            if !self.defs.contains_key(&v) {
                let name = &self.g.value(v).name;
                return Err(ParseError {
                    line,
                    column,
                    message: format!(
                        "'{name}' is read but no input, initializer or node defines it"
                    ),
                });
            }
        }
        Ok(self.g)
    }
}
