//! The model header, value types, tensors and attributes of the IR text.

use super::*;

pub(super) fn parse_header(c: &mut Cursor) -> Result<Model, ParseError> {
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
pub(super) struct Ty {
    pub(super) dtype: Option<DType>,
    pub(super) shape: Option<Shape>,
    pub(super) opaque: bool,
    pub(super) hidden: bool,
}

pub(super) fn dtype_named(s: &str) -> Option<DType> {
    if let Some(code) = s.strip_prefix("dtype") {
        return code.parse::<i32>().ok().and_then(DType::from_onnx);
    }
    (1..=16)
        .filter_map(DType::from_onnx)
        .find(|d| d.name() == s)
}

/// `f32[8,batch,?]`, `?[4]`, `f32[?]` (unknown shape) or `opaque`, then ` hidden`.
pub(super) fn parse_type(c: &mut Cursor) -> Result<Ty, ParseError> {
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
pub(super) fn parse_named(c: &mut Cursor, ends: &[&str]) -> Result<(String, Ty), ParseError> {
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

/// The element type and dims of an initializer's printed type.
pub(super) fn static_type(c: &Cursor, at: usize, ty: &Ty) -> Result<(DType, Vec<i64>), ParseError> {
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
pub(super) const MAX_FILLER_BYTES: u64 = 256 << 20;

/// The zeros standing for a tensor printed without contents (module doc).
pub(super) fn filler(
    c: &Cursor,
    at: usize,
    dtype: DType,
    dims: Vec<i64>,
) -> Result<Tensor, ParseError> {
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

/// `tensor<f32[2, 3]>`, then its contents if printed.
pub(super) fn parse_tensor(c: &mut Cursor) -> Result<Tensor, ParseError> {
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
pub(super) fn tensor_from_items(
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

pub(super) fn is_int_word(w: &str) -> bool {
    let digits = w.strip_prefix('-').unwrap_or(w);
    !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit())
}

/// `name=value`, the value as [`super::print_model_with_data`] or [`super::print_model`]
/// wrote it.
pub(super) fn parse_attr(c: &mut Cursor) -> Result<Attribute, ParseError> {
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

pub(super) fn list_value(
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
