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

fn is_comment(line: &str) -> bool {
    let t = line.trim_start();
    t.is_empty() || t.starts_with(';')
}

/// A position in one line.
struct Cursor<'a> {
    line: &'a str,
    lineno: usize,
    pos: usize,
    /// Bytes of filler tensors the rest of the parse may still allocate.
    budget: &'a Cell<u64>,
}

impl<'a> Cursor<'a> {
    fn new(line: &'a str, lineno: usize, budget: &'a Cell<u64>) -> Self {
        Cursor {
            line: line.trim_end(),
            lineno,
            pos: 0,
            budget,
        }
    }
    fn rest(&self) -> &'a str {
        self.line.get(self.pos..).unwrap_or("")
    }
    fn at_end(&self) -> bool {
        self.pos >= self.line.len()
    }
    fn err_at(&self, pos: usize, message: impl Into<String>) -> ParseError {
        ParseError {
            line: self.lineno,
            column: self.line[..pos.min(self.line.len())].chars().count() + 1,
            message: message.into(),
        }
    }
    fn err(&self, message: impl Into<String>) -> ParseError {
        self.err_at(self.pos, message)
    }
    fn eat(&mut self, s: &str) -> bool {
        if self.rest().starts_with(s) {
            self.pos += s.len();
            true
        } else {
            false
        }
    }
    fn expect(&mut self, s: &str) -> Result<(), ParseError> {
        if self.eat(s) {
            Ok(())
        } else {
            Err(self.err(format!("expected '{s}'")))
        }
    }
    fn skip_spaces(&mut self) {
        while self.rest().starts_with(' ') {
            self.pos += 1;
        }
    }
    /// The text up to (not including) the first char in `stops`, or to the end.
    fn until(&mut self, stops: &[char]) -> &'a str {
        let r = self.rest();
        let n = r.find(|ch| stops.contains(&ch)).unwrap_or(r.len());
        self.pos += n;
        &r[..n]
    }
    fn end(&self) -> Result<(), ParseError> {
        if self.at_end() {
            Ok(())
        } else {
            Err(self.err("unexpected text at the end of the line"))
        }
    }
}

fn parse_header(c: &mut Cursor) -> Result<Model, ParseError> {
    c.expect("model ir=")
        .map_err(|_| c.err("expected the header 'model ir=N opsets=[...] graph=NAME'"))?;
    let at = c.pos;
    let ir_version = c
        .until(&[' '])
        .parse::<i64>()
        .map_err(|_| c.err_at(at, "the IR version is not an integer"))?;
    c.expect(" opsets=[")?;
    let mut opset_imports = Vec::new();
    while !c.eat("]") {
        if !opset_imports.is_empty() {
            c.expect(",")?;
        }
        let at = c.pos;
        let dom = c.until(&['=', ',', ']']);
        c.expect("=")?;
        let vat = c.pos;
        let v = c
            .until(&[',', ']'])
            .parse::<i64>()
            .map_err(|_| c.err_at(vat, "the opset version is not an integer"))?;
        if dom.is_empty() {
            return Err(c.err_at(at, "an opset without a domain"));
        }
        let dom = if dom == "ai.onnx" { "" } else { dom };
        opset_imports.push((dom.to_string(), v));
        if c.at_end() {
            return Err(c.err("expected ']'"));
        }
    }
    c.expect(" graph=")?;
    let name = c.rest().to_string();
    Ok(Model {
        ir_version,
        opset_imports,
        graph: Graph {
            name,
            ..Graph::default()
        },
        ..Model::default()
    })
}

/// A value's type as printed.
#[derive(Clone, Debug, PartialEq)]
struct Ty {
    dtype: Option<DType>,
    shape: Option<Shape>,
    opaque: bool,
    hidden: bool,
}

fn dtype_named(s: &str) -> Option<DType> {
    if let Some(code) = s.strip_prefix("dtype") {
        return code.parse::<i32>().ok().and_then(DType::from_onnx);
    }
    (1..=16)
        .filter_map(DType::from_onnx)
        .find(|d| d.name() == s)
}

/// `f32[8,batch,?]`, `?[4]`, `f32[?]` (unknown shape) or `opaque`, then ` hidden`.
fn parse_type(c: &mut Cursor) -> Result<Ty, ParseError> {
    let mut ty = if c.eat("opaque") {
        Ty {
            dtype: None,
            shape: None,
            opaque: true,
            hidden: false,
        }
    } else {
        let at = c.pos;
        let d = c.until(&['[', ',', ' ']);
        let dtype = match d {
            "?" => None,
            _ => Some(
                dtype_named(d)
                    .ok_or_else(|| c.err_at(at, format!("unknown element type '{d}'")))?,
            ),
        };
        c.expect("[")?;
        let at = c.pos;
        let dims = c.until(&[']']);
        c.expect("]")?;
        let shape = match dims {
            "?" => None,
            "" => Some(Vec::new()),
            _ => Some(
                dims.split(',')
                    .map(|d| match d {
                        "?" => Ok(Dim::Unknown),
                        "" => Err(c.err_at(at, "an empty dim")),
                        _ if d.starts_with(|ch: char| ch == '-' || ch.is_ascii_digit()) => d
                            .parse::<i64>()
                            .map(Dim::Known)
                            .map_err(|_| c.err_at(at, format!("dim '{d}' is not an integer"))),
                        _ => Ok(Dim::Sym(d.to_string())),
                    })
                    .collect::<Result<Shape, _>>()?,
            ),
        };
        Ty {
            dtype,
            shape,
            opaque: false,
            hidden: false,
        }
    };
    ty.hidden = c.eat(" hidden");
    Ok(ty)
}

/// `NAME: TYPE` whose type is followed by one of `ends` (or the end of the line when
/// `ends` holds `""`). A name may hold `: `: each `: ` is tried in turn.
fn parse_named(c: &mut Cursor, ends: &[&str]) -> Result<(String, Ty), ParseError> {
    let start = c.pos;
    let mut from = start;
    while let Some(k) = c.line[from..].find(": ") {
        let colon = from + k;
        let mut t = Cursor {
            pos: colon + 2,
            ..*c
        };
        if let Ok(ty) = parse_type(&mut t) {
            let r = t.rest();
            if ends.iter().any(|e| {
                if e.is_empty() {
                    r.is_empty()
                } else {
                    r.starts_with(e)
                }
            }) {
                c.pos = t.pos;
                return Ok((c.line[start..colon].to_string(), ty));
            }
        }
        from = colon + 2;
    }
    // Report the type error of the first candidate, which is what a reader meant.
    if let Some(k) = c.line[start..].find(": ") {
        let mut t = Cursor {
            pos: start + k + 2,
            ..*c
        };
        parse_type(&mut t)?;
        let want: Vec<String> = ends
            .iter()
            .map(|e| {
                if e.is_empty() {
                    "the end of the line".to_string()
                } else {
                    format!("'{}'", e.trim())
                }
            })
            .collect();
        return Err(t.err(format!("expected {} after the type", want.join(" or "))));
    }
    Err(c.err("expected 'NAME: TYPE'"))
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

/// The element type and dims of an initializer's printed type.
fn static_type(c: &Cursor, at: usize, ty: &Ty) -> Result<(DType, Vec<i64>), ParseError> {
    let (Some(dtype), Some(shape)) = (ty.dtype, &ty.shape) else {
        return Err(c.err_at(at, "an initializer needs an element type and a shape"));
    };
    let dims = shape
        .iter()
        .map(|d| d.known().filter(|&x| x >= 0))
        .collect::<Option<Vec<i64>>>()
        .ok_or_else(|| c.err_at(at, "an initializer's dims must be known and non-negative"))?;
    Ok((dtype, dims))
}

/// Bounds the filler tensors of one parse: a text of a few lines must not allocate
/// gigabytes (every fixture model's weights together are a few MiB).
const MAX_FILLER_BYTES: u64 = 256 << 20;

/// The zeros standing for a tensor printed without contents (module doc).
fn filler(c: &Cursor, at: usize, dtype: DType, dims: Vec<i64>) -> Result<Tensor, ParseError> {
    let numel = dims
        .iter()
        .try_fold(1u64, |a, &d| a.checked_mul(u64::try_from(d).ok()?));
    let bytes = numel.and_then(|n| n.checked_mul(dtype.size_bytes().unwrap_or(0)));
    let (Some(numel), Some(bytes)) = (numel, bytes) else {
        return Err(c.err_at(at, "the tensor's size overflows"));
    };
    // A string counts a byte.
    let cost = bytes.max(numel);
    if cost > c.budget.get() {
        return Err(c.err_at(
            at,
            "the tensors printed without contents exceed 256 MiB together",
        ));
    }
    c.budget.set(c.budget.get() - cost);
    let data = if dtype == DType::String {
        TensorData::Strings(vec![Vec::new(); numel as usize])
    } else {
        TensorData::Raw(Arc::new(vec![0u8; bytes as usize]))
    };
    Ok(Tensor {
        dtype,
        dims,
        data,
        doc_string: String::new(),
    })
}

/// One element of a printed list.
#[derive(Debug)]
enum Item {
    /// A number or `true`/`false`, as written.
    Word(String, usize),
    Str(Vec<u8>),
    Tensor(Tensor),
}

/// `[item, item]`: numbers, quoted strings or tensors, separated by `,` and optional spaces.
fn parse_items(c: &mut Cursor) -> Result<Vec<Item>, ParseError> {
    c.expect("[")?;
    let mut items = Vec::new();
    c.skip_spaces();
    if c.eat("]") {
        return Ok(items);
    }
    loop {
        c.skip_spaces();
        if c.rest().starts_with('"') {
            items.push(Item::Str(parse_string(c)?));
        } else if c.rest().starts_with("tensor<") {
            items.push(Item::Tensor(parse_tensor(c)?));
        } else {
            let at = c.pos;
            let w = c.until(&[',', ']', ' ']);
            if w.is_empty() {
                return Err(c.err("expected a list element"));
            }
            items.push(Item::Word(w.to_string(), at));
        }
        c.skip_spaces();
        if c.eat("]") {
            return Ok(items);
        }
        c.expect(",")?;
    }
}

/// A Rust-escaped string literal, as `{:?}` prints it.
fn parse_string(c: &mut Cursor) -> Result<Vec<u8>, ParseError> {
    c.expect("\"")?;
    let mut out = String::new();
    let mut chars = c.rest().char_indices();
    let start = c.pos;
    while let Some((k, ch)) = chars.next() {
        match ch {
            '"' => {
                c.pos = start + k + 1;
                return Ok(out.into_bytes());
            }
            '\\' => {
                let bad = |c: &Cursor| c.err_at(start + k, "unknown escape in a string");
                let Some((_, e)) = chars.next() else {
                    return Err(bad(c));
                };
                out.push(match e {
                    'n' => '\n',
                    'r' => '\r',
                    't' => '\t',
                    '0' => '\0',
                    '\\' | '"' | '\'' => e,
                    'u' => {
                        let hex: String = chars
                            .by_ref()
                            .map(|(_, h)| h)
                            .take_while(|&h| h != '}')
                            .collect();
                        hex.strip_prefix('{')
                            .and_then(|h| u32::from_str_radix(h, 16).ok())
                            .and_then(char::from_u32)
                            .ok_or_else(|| bad(c))?
                    }
                    _ => return Err(bad(c)),
                });
            }
            _ => out.push(ch),
        }
    }
    Err(c.err_at(start - 1, "the string is not closed"))
}

/// `tensor<f32[2, 3]>`, then its contents if printed.
fn parse_tensor(c: &mut Cursor) -> Result<Tensor, ParseError> {
    let at = c.pos;
    c.expect("tensor<")?;
    let dat = c.pos;
    let d = c.until(&['[']);
    let dtype =
        dtype_named(d).ok_or_else(|| c.err_at(dat, format!("unknown element type '{d}'")))?;
    c.expect("[")?;
    let mut dims = Vec::new();
    while !c.eat("]") {
        if !dims.is_empty() {
            c.expect(", ")?;
        }
        let dat = c.pos;
        let w = c.until(&[',', ']']);
        dims.push(
            w.parse::<i64>()
                .ok()
                .filter(|&x| x >= 0)
                .ok_or_else(|| c.err_at(dat, format!("dim '{w}' is not a non-negative integer")))?,
        );
        if c.at_end() {
            return Err(c.err("expected ']'"));
        }
    }
    c.expect(">")?;
    if c.rest().starts_with('[') {
        let data_at = c.pos;
        let items = parse_items(c)?;
        tensor_from_items(c, data_at, dtype, dims, &items)
    } else {
        filler(c, at, dtype, dims)
    }
}

/// The tensor of `dtype` and `dims` holding `items` (row-major).
fn tensor_from_items(
    c: &Cursor,
    at: usize,
    dtype: DType,
    dims: Vec<i64>,
    items: &[Item],
) -> Result<Tensor, ParseError> {
    let numel: u64 = dims.iter().map(|&d| d.max(0) as u64).product();
    if items.len() as u64 != numel {
        return Err(c.err_at(
            at,
            format!("{} elements for a tensor of {numel}", items.len()),
        ));
    }
    if dtype == DType::String {
        let strings = items
            .iter()
            .map(|i| match i {
                Item::Str(s) => Ok(s.clone()),
                _ => Err(c.err_at(at, "a string tensor holds quoted strings")),
            })
            .collect::<Result<Vec<_>, _>>()?;
        return Ok(Tensor {
            dtype,
            dims,
            data: TensorData::Strings(strings),
            doc_string: String::new(),
        });
    }
    let mut bytes = Vec::with_capacity(items.len() * 8);
    for item in items {
        let Item::Word(w, wat) = item else {
            return Err(c.err_at(at, format!("a {dtype} tensor holds numbers")));
        };
        let bad = || c.err_at(*wat, format!("'{w}' is not a {dtype} value"));
        let int = || -> Result<i128, ParseError> { w.parse::<i128>().map_err(|_| bad()) };
        let float = || -> Result<f64, ParseError> { w.parse::<f64>().map_err(|_| bad()) };
        macro_rules! int_as {
            ($t:ty) => {
                bytes.extend(<$t>::try_from(int()?).map_err(|_| bad())?.to_le_bytes())
            };
        }
        match dtype {
            DType::Float => bytes.extend(w.parse::<f32>().map_err(|_| bad())?.to_le_bytes()),
            DType::Double => bytes.extend(float()?.to_le_bytes()),
            DType::Float16 => {
                let x = w.parse::<f32>().map_err(|_| bad())?;
                bytes.extend(f32_to_f16(x).to_le_bytes())
            }
            DType::BFloat16 => {
                let x = w.parse::<f32>().map_err(|_| bad())?;
                bytes.extend(((x.to_bits() >> 16) as u16).to_le_bytes())
            }
            DType::Bool => bytes.push(match w.as_str() {
                "true" | "1" => 1,
                "false" | "0" => 0,
                _ => return Err(bad()),
            }),
            DType::Int8 => int_as!(i8),
            DType::Uint8 => int_as!(u8),
            DType::Int16 => int_as!(i16),
            DType::Uint16 => int_as!(u16),
            DType::Int32 => int_as!(i32),
            DType::Uint32 => int_as!(u32),
            DType::Int64 => int_as!(i64),
            DType::Uint64 => int_as!(u64),
            _ => {
                return Err(c.err_at(at, format!("{dtype} tensors have no text form")));
            }
        }
    }
    Ok(Tensor::raw(dtype, dims, bytes))
}

fn is_int_word(w: &str) -> bool {
    let digits = w.strip_prefix('-').unwrap_or(w);
    !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit())
}

/// `name=value`, the value as [`super::print_model_with_data`] or [`super::print_model`]
/// wrote it.
fn parse_attr(c: &mut Cursor) -> Result<Attribute, ParseError> {
    let at = c.pos;
    let name = c.until(&['=', ',', '}']);
    if name.is_empty() || !c.eat("=") {
        return Err(c.err_at(at, "expected 'name=value'"));
    }
    let vat = c.pos;
    let value = if c.rest().starts_with('"') {
        AttrValue::String(parse_string(c)?)
    } else if c.rest().starts_with("tensor<") {
        AttrValue::Tensor(parse_tensor(c)?)
    } else if c.rest().starts_with("<opaque>") {
        return Err(c.err_at(
            vat,
            format!("attribute '{name}' is a graph or another payload the text does not hold"),
        ));
    } else if c.rest().starts_with('[') {
        // The snapshot form's placeholders: `[3 strings]`, `[2 tensors]`.
        let r = c.rest();
        let close = r.find(']').unwrap_or(0);
        let placeholder = r[1..close.max(1)]
            .split_once(' ')
            .and_then(|(n, what)| Some((n.parse::<u64>().ok()?, what)))
            .filter(|(_, what)| matches!(*what, "strings" | "tensors"));
        let placeholder = match placeholder {
            Some((n, what)) => {
                // Each element costs its struct (and a tensor its scalar): bounded like a
                // filler tensor.
                let cost = n.saturating_mul(64);
                if cost > c.budget.get() {
                    return Err(c.err_at(vat, format!("[{n} {what}] is too long")));
                }
                c.budget.set(c.budget.get() - cost);
                let n = n as usize;
                Some(if what == "strings" {
                    AttrValue::Strings(vec![Vec::new(); n])
                } else {
                    AttrValue::Tensors(vec![Tensor::from_f32(vec![], &[0.0]); n])
                })
            }
            None => None,
        };
        if let Some(p) = placeholder {
            c.pos += close + 1;
            p
        } else {
            let items = parse_items(c)?;
            list_value(c, vat, name, items)?
        }
    } else {
        let w = c.until(&[',', '}']);
        if is_int_word(w) {
            AttrValue::Int(
                w.parse()
                    .map_err(|_| c.err_at(vat, format!("'{w}' does not fit in an int")))?,
            )
        } else {
            AttrValue::Float(
                w.parse()
                    .map_err(|_| c.err_at(vat, format!("'{w}' is not an attribute value")))?,
            )
        }
    };
    Ok(Attribute::new(name, value))
}

fn list_value(
    c: &Cursor,
    at: usize,
    name: &str,
    items: Vec<Item>,
) -> Result<AttrValue, ParseError> {
    let mixed = || c.err_at(at, format!("attribute '{name}' mixes element kinds"));
    match items.first() {
        Some(Item::Str(_)) => items
            .into_iter()
            .map(|i| match i {
                Item::Str(s) => Ok(s),
                _ => Err(mixed()),
            })
            .collect::<Result<_, _>>()
            .map(AttrValue::Strings),
        Some(Item::Tensor(_)) => items
            .into_iter()
            .map(|i| match i {
                Item::Tensor(t) => Ok(t),
                _ => Err(mixed()),
            })
            .collect::<Result<_, _>>()
            .map(AttrValue::Tensors),
        _ => {
            let mut words = Vec::with_capacity(items.len());
            for i in items {
                match i {
                    Item::Word(w, wat) => words.push((w, wat)),
                    _ => return Err(mixed()),
                }
            }
            let floats =
                FLOAT_LIST_ATTRS.contains(&name) || words.iter().any(|(w, _)| !is_int_word(w));
            if floats {
                words
                    .iter()
                    .map(|(w, wat)| {
                        w.parse::<f32>()
                            .map_err(|_| c.err_at(*wat, format!("'{w}' is not a float")))
                    })
                    .collect::<Result<_, _>>()
                    .map(AttrValue::Floats)
            } else {
                words
                    .iter()
                    .map(|(w, wat)| {
                        w.parse::<i64>()
                            .map_err(|_| c.err_at(*wat, format!("'{w}' does not fit in an int")))
                    })
                    .collect::<Result<_, _>>()
                    .map(AttrValue::Ints)
            }
        }
    }
}
