//! Element types and shapes of values.

use serde::{Deserialize, Serialize};
use std::fmt;

/// ONNX `TensorProto.DataType`, by its wire number. Unknown numbers are kept so that a newer
/// file still round-trips; they only become errors when a stage needs the element size.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum DType {
    Float,
    Uint8,
    Int8,
    Uint16,
    Int16,
    Int32,
    Int64,
    String,
    Bool,
    Float16,
    Double,
    Uint32,
    Uint64,
    Complex64,
    Complex128,
    BFloat16,
    /// Float8 variants, 4-bit and other recent types: carried, never computed on.
    Other(i32),
}

impl DType {
    pub fn from_onnx(code: i32) -> Option<DType> {
        Some(match code {
            0 => return None,
            1 => DType::Float,
            2 => DType::Uint8,
            3 => DType::Int8,
            4 => DType::Uint16,
            5 => DType::Int16,
            6 => DType::Int32,
            7 => DType::Int64,
            8 => DType::String,
            9 => DType::Bool,
            10 => DType::Float16,
            11 => DType::Double,
            12 => DType::Uint32,
            13 => DType::Uint64,
            14 => DType::Complex64,
            15 => DType::Complex128,
            16 => DType::BFloat16,
            other => DType::Other(other),
        })
    }

    pub fn to_onnx(self) -> i32 {
        match self {
            DType::Float => 1,
            DType::Uint8 => 2,
            DType::Int8 => 3,
            DType::Uint16 => 4,
            DType::Int16 => 5,
            DType::Int32 => 6,
            DType::Int64 => 7,
            DType::String => 8,
            DType::Bool => 9,
            DType::Float16 => 10,
            DType::Double => 11,
            DType::Uint32 => 12,
            DType::Uint64 => 13,
            DType::Complex64 => 14,
            DType::Complex128 => 15,
            DType::BFloat16 => 16,
            DType::Other(c) => c,
        }
    }

    /// Bytes per element; `None` for strings and sub-byte or unknown types.
    pub fn size_bytes(self) -> Option<u64> {
        Some(match self {
            DType::Bool | DType::Uint8 | DType::Int8 => 1,
            DType::Uint16 | DType::Int16 | DType::Float16 | DType::BFloat16 => 2,
            DType::Float | DType::Int32 | DType::Uint32 => 4,
            DType::Double | DType::Int64 | DType::Uint64 | DType::Complex64 => 8,
            DType::Complex128 => 16,
            DType::Other(17..=20) | DType::Other(23) => 1, // float8 variants, float8e8m0
            DType::String | DType::Other(_) => return None,
        })
    }

    pub fn is_float(self) -> bool {
        matches!(
            self,
            DType::Float | DType::Double | DType::Float16 | DType::BFloat16
        )
    }

    pub fn is_int(self) -> bool {
        matches!(
            self,
            DType::Uint8
                | DType::Int8
                | DType::Uint16
                | DType::Int16
                | DType::Int32
                | DType::Int64
                | DType::Uint32
                | DType::Uint64
        )
    }

    pub fn name(self) -> String {
        match self {
            DType::Float => "f32".into(),
            DType::Uint8 => "u8".into(),
            DType::Int8 => "i8".into(),
            DType::Uint16 => "u16".into(),
            DType::Int16 => "i16".into(),
            DType::Int32 => "i32".into(),
            DType::Int64 => "i64".into(),
            DType::String => "string".into(),
            DType::Bool => "bool".into(),
            DType::Float16 => "f16".into(),
            DType::Double => "f64".into(),
            DType::Uint32 => "u32".into(),
            DType::Uint64 => "u64".into(),
            DType::Complex64 => "c64".into(),
            DType::Complex128 => "c128".into(),
            DType::BFloat16 => "bf16".into(),
            DType::Other(c) => format!("dtype{c}"),
        }
    }
}

impl fmt::Display for DType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name())
    }
}

/// One dimension of a shape.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Dim {
    Known(i64),
    /// A named symbolic dimension (`dim_param`), e.g. `batch`.
    Sym(String),
    /// Neither a value nor a name is known.
    Unknown,
}

impl Dim {
    pub fn known(&self) -> Option<i64> {
        match self {
            Dim::Known(v) => Some(*v),
            _ => None,
        }
    }
}

impl fmt::Display for Dim {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Dim::Known(v) => write!(f, "{v}"),
            Dim::Sym(s) => f.write_str(s),
            Dim::Unknown => f.write_str("?"),
        }
    }
}

pub type Shape = Vec<Dim>;

/// Number of elements of a shape whose dims are all known.
pub fn static_numel(shape: &[Dim]) -> Option<u64> {
    shape.iter().try_fold(1u64, |acc, d| {
        let v = d.known()?;
        acc.checked_mul(u64::try_from(v).ok()?)
    })
}

/// Concrete dims, if every dim is known.
pub fn static_dims(shape: &[Dim]) -> Option<Vec<i64>> {
    shape.iter().map(Dim::known).collect()
}

pub fn known_shape(dims: &[i64]) -> Shape {
    dims.iter().map(|&d| Dim::Known(d)).collect()
}

pub fn shape_string(shape: Option<&Shape>) -> String {
    match shape {
        None => "[?]".into(),
        Some(s) => {
            let parts: Vec<String> = s.iter().map(|d| d.to_string()).collect();
            format!("[{}]", parts.join(","))
        }
    }
}
