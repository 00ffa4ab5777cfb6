//! Host-side tensors: a name, an element type, a shape and packed little-endian bytes.

use super::error::RuntimeError;
use onnx_ac_passes::ir::DType;
pub use onnx_ac_passes::ir::{f16_to_f32 as f16_bits_to_f32, f32_to_f16 as f32_to_f16_bits};
use ort::value::TensorElementType;

/// A dense tensor in host memory, as passed to and returned from ONNX Runtime.
///
/// `data` holds the elements packed in row-major order, little-endian; booleans are one byte
/// (0 or 1) each. A scalar has `dims == []` and one element.
#[derive(Clone, Debug, PartialEq)]
pub struct HostTensor {
    pub name: String,
    pub dtype: DType,
    pub dims: Vec<i64>,
    pub data: Vec<u8>,
}

macro_rules! from_slice {
    ($(#[$m:meta])* $fn:ident, $t:ty, $dt:expr) => {
        $(#[$m])*
        pub fn $fn(name: impl Into<String>, dims: &[i64], values: &[$t]) -> Result<HostTensor, RuntimeError> {
            let data = values.iter().flat_map(|v| v.to_le_bytes()).collect();
            HostTensor::new(name, $dt, dims.to_vec(), data)
        }
    };
}

impl HostTensor {
    /// Checks that `data` holds exactly the bytes `dims` and `dtype` call for.
    pub fn new(
        name: impl Into<String>,
        dtype: DType,
        dims: Vec<i64>,
        data: Vec<u8>,
    ) -> Result<HostTensor, RuntimeError> {
        let t = HostTensor {
            name: name.into(),
            dtype,
            dims,
            data,
        };
        t.validate()?;
        Ok(t)
    }

    from_slice!(
        /// A float32 tensor.
        from_f32, f32, DType::Float
    );
    from_slice!(
        /// A float64 tensor.
        from_f64, f64, DType::Double
    );
    from_slice!(
        /// An int64 tensor.
        from_i64, i64, DType::Int64
    );
    from_slice!(
        /// An int32 tensor.
        from_i32, i32, DType::Int32
    );
    from_slice!(
        /// An int8 tensor.
        from_i8, i8, DType::Int8
    );
    from_slice!(
        /// A uint8 tensor.
        from_u8, u8, DType::Uint8
    );

    /// A bool tensor (one byte per element).
    pub fn from_bool(
        name: impl Into<String>,
        dims: &[i64],
        values: &[bool],
    ) -> Result<HostTensor, RuntimeError> {
        let data = values.iter().map(|&b| u8::from(b)).collect();
        HostTensor::new(name, DType::Bool, dims.to_vec(), data)
    }

    /// A float16 tensor from f32 values, rounded to nearest-even.
    pub fn from_f32_as_f16(
        name: impl Into<String>,
        dims: &[i64],
        values: &[f32],
    ) -> Result<HostTensor, RuntimeError> {
        let data = values
            .iter()
            .flat_map(|&v| f32_to_f16_bits(v).to_le_bytes())
            .collect();
        HostTensor::new(name, DType::Float16, dims.to_vec(), data)
    }

    /// A tensor of `dtype` filled with zero bytes.
    pub fn zeros(
        name: impl Into<String>,
        dtype: DType,
        dims: &[i64],
    ) -> Result<HostTensor, RuntimeError> {
        let name = name.into();
        let n = element_count(&name, dims)?;
        let size = element_size(&name, dtype)?;
        let bytes = n
            .checked_mul(size)
            .and_then(|b| usize::try_from(b).ok())
            .ok_or_else(|| RuntimeError::BadInput {
                name: name.clone(),
                reason: format!("shape {dims:?} is too large for this machine"),
            })?;
        HostTensor::new(name, dtype, dims.to_vec(), vec![0; bytes])
    }

    /// Number of elements (1 for a scalar); negative dims count as 0, overflow saturates.
    pub fn numel(&self) -> u64 {
        self.dims
            .iter()
            .fold(1u64, |n, &d| n.saturating_mul(d.max(0) as u64))
    }

    /// Checks dims (non-negative), element type (fixed size) and byte count.
    pub fn validate(&self) -> Result<(), RuntimeError> {
        let n = element_count(&self.name, &self.dims)?;
        let size = element_size(&self.name, self.dtype)?;
        let want = n.checked_mul(size);
        if want != Some(self.data.len() as u64) {
            return Err(RuntimeError::BadInput {
                name: self.name.clone(),
                reason: format!(
                    "{:?} of shape {:?} needs {} bytes but {} were given; {}",
                    self.dtype,
                    self.dims,
                    want.map_or("too many".to_string(), |w| w.to_string()),
                    self.data.len(),
                    "build it with HostTensor::from_* or fix dims"
                ),
            });
        }
        Ok(())
    }

    /// The values as f32: exact for float and float16 (widened); other types are an error.
    pub fn to_f32(&self) -> Result<Vec<f32>, RuntimeError> {
        match self.dtype {
            DType::Float => Ok(chunks::<4>(&self.data).map(f32::from_le_bytes).collect()),
            DType::Float16 => Ok(chunks::<2>(&self.data)
                .map(|b| f16_bits_to_f32(u16::from_le_bytes(b)))
                .collect()),
            DType::BFloat16 => Ok(chunks::<2>(&self.data)
                .map(|b| f32::from_bits(u32::from(u16::from_le_bytes(b)) << 16))
                .collect()),
            _ => Err(self.mismatch("f32 (float, float16 or bfloat16)")),
        }
    }

    /// The values as f64: exact for double, float, float16 and bfloat16 (widened).
    pub fn to_f64(&self) -> Result<Vec<f64>, RuntimeError> {
        match self.dtype {
            DType::Double => Ok(chunks::<8>(&self.data).map(f64::from_le_bytes).collect()),
            DType::Float | DType::Float16 | DType::BFloat16 => {
                Ok(self.to_f32()?.into_iter().map(f64::from).collect())
            }
            _ => Err(self.mismatch("f64 (a floating-point type)")),
        }
    }

    /// The values as i64: exact for int64 and every narrower integer type and bool.
    /// uint64 values above i64::MAX are an error.
    pub fn to_i64(&self) -> Result<Vec<i64>, RuntimeError> {
        let d = &self.data;
        Ok(match self.dtype {
            DType::Int64 => chunks::<8>(d).map(i64::from_le_bytes).collect(),
            DType::Int32 => chunks::<4>(d)
                .map(|b| i64::from(i32::from_le_bytes(b)))
                .collect(),
            DType::Int16 => chunks::<2>(d)
                .map(|b| i64::from(i16::from_le_bytes(b)))
                .collect(),
            DType::Int8 => d.iter().map(|&b| i64::from(b as i8)).collect(),
            DType::Uint8 | DType::Bool => d.iter().map(|&b| i64::from(b)).collect(),
            DType::Uint16 => chunks::<2>(d)
                .map(|b| i64::from(u16::from_le_bytes(b)))
                .collect(),
            DType::Uint32 => chunks::<4>(d)
                .map(|b| i64::from(u32::from_le_bytes(b)))
                .collect(),
            DType::Uint64 => {
                let mut out = Vec::with_capacity(d.len() / 8);
                for b in chunks::<8>(d) {
                    let v = u64::from_le_bytes(b);
                    out.push(
                        i64::try_from(v)
                            .map_err(|_| self.mismatch("i64 (uint64 value too large)"))?,
                    );
                }
                out
            }
            _ => return Err(self.mismatch("i64 (an integer or bool type)")),
        })
    }

    /// The values as bools (bool tensors only).
    pub fn to_bool(&self) -> Result<Vec<bool>, RuntimeError> {
        match self.dtype {
            DType::Bool => Ok(self.data.iter().map(|&b| b != 0).collect()),
            _ => Err(self.mismatch("bool")),
        }
    }

    fn mismatch(&self, wanted: &'static str) -> RuntimeError {
        RuntimeError::DTypeMismatch {
            name: self.name.clone(),
            actual: self.dtype,
            wanted,
        }
    }
}

fn chunks<const N: usize>(data: &[u8]) -> impl Iterator<Item = [u8; N]> + '_ {
    data.chunks_exact(N).map(|c| {
        let mut a = [0u8; N];
        a.copy_from_slice(c);
        a
    })
}

fn element_count(name: &str, dims: &[i64]) -> Result<u64, RuntimeError> {
    let mut n: u64 = 1;
    for &d in dims {
        let d = u64::try_from(d).map_err(|_| RuntimeError::BadInput {
            name: name.to_string(),
            reason: format!("shape {dims:?} has a negative dimension; give concrete sizes"),
        })?;
        n = n.checked_mul(d).ok_or_else(|| RuntimeError::BadInput {
            name: name.to_string(),
            reason: format!("shape {dims:?} overflows"),
        })?;
    }
    Ok(n)
}

fn element_size(name: &str, dtype: DType) -> Result<u64, RuntimeError> {
    to_ort_type(dtype)
        .and(dtype.size_bytes())
        .ok_or_else(|| RuntimeError::UnsupportedDType {
            name: name.to_string(),
            dtype,
        })
}

/// The `ort` element type of a supported IR type.
pub(crate) fn to_ort_type(dtype: DType) -> Option<TensorElementType> {
    Some(match dtype {
        DType::Float => TensorElementType::Float32,
        DType::Double => TensorElementType::Float64,
        DType::Float16 => TensorElementType::Float16,
        DType::BFloat16 => TensorElementType::Bfloat16,
        DType::Int8 => TensorElementType::Int8,
        DType::Int16 => TensorElementType::Int16,
        DType::Int32 => TensorElementType::Int32,
        DType::Int64 => TensorElementType::Int64,
        DType::Uint8 => TensorElementType::Uint8,
        DType::Uint16 => TensorElementType::Uint16,
        DType::Uint32 => TensorElementType::Uint32,
        DType::Uint64 => TensorElementType::Uint64,
        DType::Bool => TensorElementType::Bool,
        _ => return None,
    })
}

/// The IR type of an `ort` element type (None for the ones not supported here).
pub(crate) fn from_ort_type(t: TensorElementType) -> Option<DType> {
    Some(match t {
        TensorElementType::Float32 => DType::Float,
        TensorElementType::Float64 => DType::Double,
        TensorElementType::Float16 => DType::Float16,
        TensorElementType::Bfloat16 => DType::BFloat16,
        TensorElementType::Int8 => DType::Int8,
        TensorElementType::Int16 => DType::Int16,
        TensorElementType::Int32 => DType::Int32,
        TensorElementType::Int64 => DType::Int64,
        TensorElementType::Uint8 => DType::Uint8,
        TensorElementType::Uint16 => DType::Uint16,
        TensorElementType::Uint32 => DType::Uint32,
        TensorElementType::Uint64 => DType::Uint64,
        TensorElementType::Bool => DType::Bool,
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn f16_round_trip() {
        for v in [
            0.0f32,
            -0.0,
            1.0,
            -2.5,
            65504.0,
            6.103_515_6e-5,
            5.960_464_5e-8,
            0.333_251_95,
        ] {
            assert_eq!(f16_bits_to_f32(f32_to_f16_bits(v)), v, "{v}");
        }
        assert_eq!(f32_to_f16_bits(1.0), 0x3c00);
        assert_eq!(f32_to_f16_bits(65520.0), 0x7c00);
        assert!(f16_bits_to_f32(f32_to_f16_bits(f32::NAN)).is_nan());
        assert_eq!(f16_bits_to_f32(0x0001), 5.960_464_5e-8);
        assert_eq!(f16_bits_to_f32(0x03ff), 6.097_555e-5);
    }
}
