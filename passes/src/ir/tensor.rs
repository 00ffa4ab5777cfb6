//! Tensor payloads: initializers, `Constant` values and folded constants.

use super::types::DType;
use std::sync::Arc;

/// Where an external tensor's bytes live. The path is relative to the model's folder and was
/// checked not to leave it when the model was loaded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExternalRef {
    pub location: String,
    pub offset: u64,
    pub length: Option<u64>,
    pub checksum: Option<String>,
    /// Other `external_data` keys, kept for the round trip.
    pub extra: Vec<(String, String)>,
}

#[derive(Clone, Debug, PartialEq)]
pub enum TensorData {
    /// Packed little-endian bytes, as in `TensorProto.raw_data`.
    Raw(Arc<Vec<u8>>),
    Strings(Vec<Vec<u8>>),
    /// Bytes in a side file, read only when a stage needs them.
    External(ExternalRef),
}

#[derive(Clone, Debug, PartialEq)]
pub struct Tensor {
    pub dtype: DType,
    pub dims: Vec<i64>,
    pub data: TensorData,
    pub doc_string: String,
}

impl Tensor {
    pub fn numel(&self) -> u64 {
        self.dims.iter().map(|&d| d.max(0) as u64).product()
    }

    pub fn size_bytes(&self) -> Option<u64> {
        Some(self.numel() * self.dtype.size_bytes()?)
    }

    pub fn raw(dtype: DType, dims: Vec<i64>, bytes: Vec<u8>) -> Tensor {
        Tensor {
            dtype,
            dims,
            data: TensorData::Raw(Arc::new(bytes)),
            doc_string: String::new(),
        }
    }

    pub fn from_i64(dims: Vec<i64>, vals: &[i64]) -> Tensor {
        let bytes = vals.iter().flat_map(|v| v.to_le_bytes()).collect();
        Tensor::raw(DType::Int64, dims, bytes)
    }

    pub fn from_f32(dims: Vec<i64>, vals: &[f32]) -> Tensor {
        let bytes = vals.iter().flat_map(|v| v.to_le_bytes()).collect();
        Tensor::raw(DType::Float, dims, bytes)
    }

    pub fn scalar_of(dtype: DType, v: f64) -> Option<Tensor> {
        let bytes: Vec<u8> = match dtype {
            DType::Float => (v as f32).to_le_bytes().to_vec(),
            DType::Double => v.to_le_bytes().to_vec(),
            DType::Int64 => (v as i64).to_le_bytes().to_vec(),
            DType::Int32 => (v as i32).to_le_bytes().to_vec(),
            DType::Bool => vec![u8::from(v != 0.0)],
            DType::Float16 => f32_to_f16(v as f32).to_le_bytes().to_vec(),
            DType::BFloat16 => ((((v as f32).to_bits()) >> 16) as u16)
                .to_le_bytes()
                .to_vec(),
            _ => return None,
        };
        Some(Tensor::raw(dtype, vec![], bytes))
    }

    fn raw_bytes(&self) -> Option<&[u8]> {
        match &self.data {
            TensorData::Raw(b) => Some(b.as_slice()),
            _ => None,
        }
    }

    /// Integer contents (any integer or bool type), for shape arithmetic.
    pub fn as_i64(&self) -> Option<Vec<i64>> {
        let b = self.raw_bytes()?;
        let n = self.numel() as usize;
        let w = self.dtype.size_bytes()? as usize;
        if b.len() != n * w {
            return None;
        }
        let out = match self.dtype {
            DType::Int64 => b
                .chunks_exact(8)
                .map(|c| i64::from_le_bytes(c.try_into().unwrap()))
                .collect(),
            DType::Int32 => b
                .chunks_exact(4)
                .map(|c| i64::from(i32::from_le_bytes(c.try_into().unwrap())))
                .collect(),
            DType::Uint64 => b
                .chunks_exact(8)
                .map(|c| u64::from_le_bytes(c.try_into().unwrap()) as i64)
                .collect(),
            DType::Uint32 => b
                .chunks_exact(4)
                .map(|c| i64::from(u32::from_le_bytes(c.try_into().unwrap())))
                .collect(),
            DType::Int16 => b
                .chunks_exact(2)
                .map(|c| i64::from(i16::from_le_bytes(c.try_into().unwrap())))
                .collect(),
            DType::Uint16 => b
                .chunks_exact(2)
                .map(|c| i64::from(u16::from_le_bytes(c.try_into().unwrap())))
                .collect(),
            DType::Int8 => b.iter().map(|&x| i64::from(x as i8)).collect(),
            DType::Uint8 | DType::Bool => b.iter().map(|&x| i64::from(x)).collect(),
            _ => return None,
        };
        Some(out)
    }

    /// Numeric contents widened to f64 (floats and integers).
    pub fn as_f64(&self) -> Option<Vec<f64>> {
        if !self.dtype.is_float() {
            return self
                .as_i64()
                .map(|v| v.into_iter().map(|x| x as f64).collect());
        }
        let b = self.raw_bytes()?;
        let n = self.numel() as usize;
        if b.len() != n * self.dtype.size_bytes()? as usize {
            return None;
        }
        Some(match self.dtype {
            DType::Float => b
                .chunks_exact(4)
                .map(|c| f64::from(f32::from_le_bytes(c.try_into().unwrap())))
                .collect(),
            DType::Double => b
                .chunks_exact(8)
                .map(|c| f64::from_le_bytes(c.try_into().unwrap()))
                .collect(),
            DType::Float16 => b
                .chunks_exact(2)
                .map(|c| f64::from(f16_to_f32(u16::from_le_bytes(c.try_into().unwrap()))))
                .collect(),
            DType::BFloat16 => b
                .chunks_exact(2)
                .map(|c| {
                    f64::from(f32::from_bits(
                        u32::from(u16::from_le_bytes(c.try_into().unwrap())) << 16,
                    ))
                })
                .collect(),
            _ => return None,
        })
    }

    /// Builds a tensor of `dtype` from f64 values (the inverse of `as_f64`), for folding.
    pub fn from_f64_as(dtype: DType, dims: Vec<i64>, vals: &[f64]) -> Option<Tensor> {
        let mut bytes = Vec::with_capacity(vals.len() * dtype.size_bytes()? as usize);
        for &v in vals {
            match dtype {
                DType::Float => bytes.extend((v as f32).to_le_bytes()),
                DType::Double => bytes.extend(v.to_le_bytes()),
                DType::Int64 => bytes.extend((v as i64).to_le_bytes()),
                DType::Int32 => bytes.extend((v as i32).to_le_bytes()),
                DType::Uint8 => bytes.push(v as u8),
                DType::Int8 => bytes.push(v as i8 as u8),
                DType::Bool => bytes.push(u8::from(v != 0.0)),
                DType::Float16 => bytes.extend(f32_to_f16(v as f32).to_le_bytes()),
                _ => return None,
            }
        }
        Some(Tensor::raw(dtype, dims, bytes))
    }
}

/// IEEE binary16 bits to f32 (exact).
pub fn f16_to_f32(h: u16) -> f32 {
    let sign = u32::from(h >> 15) << 31;
    let exp = u32::from((h >> 10) & 0x1f);
    let man = u32::from(h & 0x3ff);
    let bits = match (exp, man) {
        (0, 0) => sign,
        (0, m) => {
            // Subnormal: value = m * 2^-24; normalise.
            let shift = m.leading_zeros() - 21; // bring the top set bit to bit 10
            let m = (m << shift) & 0x3ff;
            let e = 127 - 15 + 1 - shift;
            sign | (e << 23) | (m << 13)
        }
        (0x1f, 0) => sign | 0x7f80_0000,
        (0x1f, m) => sign | 0x7fc0_0000 | (m << 13),
        (e, m) => sign | ((e + 127 - 15) << 23) | (m << 13),
    };
    f32::from_bits(bits)
}

/// f32 to IEEE binary16 bits, rounding to nearest-even; overflow gives infinity.
pub fn f32_to_f16(v: f32) -> u16 {
    let x = v.to_bits();
    let sign = ((x >> 16) & 0x8000) as u16;
    let exp = ((x >> 23) & 0xff) as i32;
    let man = x & 0x7f_ffff;
    if exp == 0xff {
        return sign | 0x7c00 | if man != 0 { 0x200 } else { 0 };
    }
    let e = exp - 127 + 15;
    if e >= 0x1f {
        return sign | 0x7c00;
    }
    if e <= 0 {
        if e < -10 {
            return sign;
        }
        let m = man | 0x80_0000;
        let shift = (14 - e) as u32;
        let half = 1u32 << (shift - 1);
        let rest = m & ((1u32 << shift) - 1);
        let mut r = m >> shift;
        if rest > half || (rest == half && (r & 1) == 1) {
            r += 1;
        }
        return sign | r as u16;
    }
    let mut r = ((e as u32) << 10) | (man >> 13);
    let rest = man & 0x1fff;
    if rest > 0x1000 || (rest == 0x1000 && (r & 1) == 1) {
        r += 1; // may carry into the exponent, up to infinity: still correct
    }
    sign | r as u16
}
