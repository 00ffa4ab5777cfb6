//! Training state files (issue #15): the parameters and optimizer state of a training step in
//! the safetensors format, one tensor per step input, named as the input (`fc1.weight`,
//! `fc1.weight.exp_avg`, `optimizer.step`).
//!
//! Why safetensors: it is read by numpy, torch and Hugging Face's tools without executing
//! code (unlike a pickled `.pt`), it is a JSON header plus raw little-endian bytes (so any
//! language reads it in a few lines), and it has no 2 GiB limit (unlike an ONNX file).
//!
//! A state file is untrusted input: it is read from one handle, bounded by the bytes the step's
//! state needs plus safetensors' own header limit, and every tensor is checked against the
//! step's inputs (name, element type, shape) before training starts; each error names the
//! tensor at fault.

use crate::runtime::HostTensor;
use onnx_ac_passes::ir::{DType, Model, TensorData};
use safetensors::tensor::{Dtype, SafeTensors, TensorView};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use thiserror::Error;

/// safetensors' own limit on a file's JSON header (its `MAX_HEADER_SIZE`).
const HEADER_LIMIT_BYTES: u64 = 100_000_000;

/// Metadata key naming the writer, in the file's `__metadata__`.
const FORMAT_KEY: &str = "format";

#[derive(Debug, Error)]
pub enum StateError {
    /// The file cannot be opened, read or parsed as safetensors.
    #[error("{}: cannot read the state file: {reason}", .path.display())]
    Read { path: PathBuf, reason: String },
    /// One tensor of the file does not fit the step.
    #[error("{}: tensor {tensor}: {reason}", .path.display())]
    Tensor {
        path: PathBuf,
        tensor: String,
        reason: String,
    },
    /// The step's state cannot be written (an element type safetensors has no code for, or a
    /// default that cannot be read).
    #[error("cannot write the state of {tensor}: {reason}")]
    Write { tensor: String, reason: String },
}

/// One tensor a state file must hold: a step input with a default.
#[derive(Debug, Clone, PartialEq)]
pub struct Slot {
    pub name: String,
    pub dtype: DType,
    pub dims: Vec<i64>,
}

impl Slot {
    fn bytes(&self) -> u64 {
        let n = self
            .dims
            .iter()
            .fold(1u64, |n, &d| n.saturating_mul(d.max(0) as u64));
        n.saturating_mul(self.dtype.size_bytes().unwrap_or(0))
    }
}

/// The step inputs named `names`, as their defaults give them (element type and shape).
pub fn slots(m: &Model, names: &[String]) -> Vec<Slot> {
    let by_name = m.graph.value_by_name();
    names
        .iter()
        .filter_map(|n| {
            let v = m.graph.value(*by_name.get(n.as_str())?);
            let init = v.initializer.as_ref()?;
            Some(Slot {
                name: n.clone(),
                dtype: init.dtype,
                dims: init.dims.clone(),
            })
        })
        .collect()
}

/// Every graph input of `m` with a default (the trained parameters and the optimizer state of
/// a step written with `--optimizer` or `--params-as-inputs`), in input order.
pub fn inputs_with_defaults(m: &Model) -> Vec<String> {
    m.graph
        .inputs
        .iter()
        .map(|&i| m.graph.value(i))
        .filter(|v| v.initializer.is_some())
        .map(|v| v.name.clone())
        .collect()
}

/// The defaults of `names` (inputs of `m`, loaded from `model_path`), read from external data
/// where they live there.
pub fn defaults(
    m: &Model,
    model_path: &Path,
    names: &[String],
) -> Result<Vec<HostTensor>, StateError> {
    let by_name = m.graph.value_by_name();
    let base = m.base_dir.clone().unwrap_or_else(|| {
        model_path
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_default()
    });
    names
        .iter()
        .map(|n| {
            let fail = |reason: String| StateError::Write {
                tensor: n.clone(),
                reason,
            };
            let init = by_name
                .get(n.as_str())
                .and_then(|&id| m.graph.value(id).initializer.as_ref())
                .ok_or_else(|| fail("the step has no input of that name with a default".into()))?;
            let data = match &init.data {
                TensorData::Raw(b) => b.as_ref().clone(),
                TensorData::External(ext) => {
                    crate::onnx::read_external(model_path, &base, n, ext, init.size_bytes())
                        .map_err(|e| fail(e.to_string()))?
                }
                TensorData::Strings(_) => return Err(fail("it is a string tensor".into())),
            };
            HostTensor::new(n.clone(), init.dtype, init.dims.clone(), data)
                .map_err(|e| fail(e.to_string()))
        })
        .collect()
}

fn to_safetensors_dtype(d: DType) -> Option<Dtype> {
    Some(match d {
        DType::Float => Dtype::F32,
        DType::Double => Dtype::F64,
        DType::Float16 => Dtype::F16,
        DType::BFloat16 => Dtype::BF16,
        DType::Int8 => Dtype::I8,
        DType::Int16 => Dtype::I16,
        DType::Int32 => Dtype::I32,
        DType::Int64 => Dtype::I64,
        DType::Uint8 => Dtype::U8,
        DType::Uint16 => Dtype::U16,
        DType::Uint32 => Dtype::U32,
        DType::Uint64 => Dtype::U64,
        DType::Bool => Dtype::BOOL,
        _ => return None,
    })
}

/// The safetensors bytes of `tensors` (in any order: the format sorts them itself).
pub fn to_bytes(tensors: &[HostTensor]) -> Result<Vec<u8>, StateError> {
    let views = tensors
        .iter()
        .map(|t| {
            let fail = |reason: String| StateError::Write {
                tensor: t.name.clone(),
                reason,
            };
            let dtype = to_safetensors_dtype(t.dtype)
                .ok_or_else(|| fail(format!("safetensors has no code for {}", t.dtype)))?;
            let shape = t
                .dims
                .iter()
                .map(|&d| usize::try_from(d).map_err(|_| fail(format!("dimension {d}"))))
                .collect::<Result<Vec<_>, _>>()?;
            let view = TensorView::new(dtype, shape, &t.data).map_err(|e| fail(e.to_string()))?;
            Ok((t.name.clone(), view))
        })
        .collect::<Result<Vec<_>, StateError>>()?;
    let meta = HashMap::from([(FORMAT_KEY.to_string(), "onnx-ac training state".to_string())]);
    safetensors::tensor::serialize(views, Some(meta)).map_err(|e| StateError::Write {
        tensor: "(the file)".into(),
        reason: e.to_string(),
    })
}

/// Reads the state file at `path`: exactly the tensors `slots` names, each of its element type
/// and shape. Returned in the order of `slots`.
pub fn read(path: &Path, slots: &[Slot]) -> Result<Vec<HostTensor>, StateError> {
    let read_err = |reason: String| StateError::Read {
        path: path.to_path_buf(),
        reason,
    };
    let need: u64 = slots.iter().map(Slot::bytes).fold(0, u64::saturating_add);
    let limit = need.saturating_add(8 + HEADER_LIMIT_BYTES);
    let bytes = crate::safefs::read_input(path, limit).map_err(|e| read_err(e.to_string()))?;
    let st = SafeTensors::deserialize(&bytes)
        .map_err(|e| read_err(format!("not a safetensors file: {e}")))?;
    let tensor_err = |tensor: &str, reason: String| StateError::Tensor {
        path: path.to_path_buf(),
        tensor: tensor.to_string(),
        reason,
    };
    let mut names = st.names();
    names.sort();
    for n in names {
        if !slots.iter().any(|s| s.name == n) {
            return Err(tensor_err(
                n,
                format!(
                    "the step has no such parameter or state input (it has {} of them{})",
                    slots.len(),
                    slots
                        .first()
                        .map(|s| format!(", such as {}", s.name))
                        .unwrap_or_default()
                ),
            ));
        }
    }
    // The tensors present are checked first (a wrong one says more than a missing one).
    let present: Vec<&Slot> = slots
        .iter()
        .filter(|s| st.tensor(&s.name).is_ok())
        .chain(slots.iter().filter(|s| st.tensor(&s.name).is_err()))
        .collect();
    let mut out = present
        .into_iter()
        .map(|s| {
            let view = st.tensor(&s.name).map_err(|_| {
                tensor_err(
                    &s.name,
                    "missing: the file must hold every parameter and optimizer state input of \
                     the step (write one with --init-state)"
                        .into(),
                )
            })?;
            let want = to_safetensors_dtype(s.dtype);
            if want != Some(view.dtype()) {
                return Err(tensor_err(
                    &s.name,
                    format!(
                        "element type {:?}, the step's input is {}",
                        view.dtype(),
                        s.dtype
                    ),
                ));
            }
            let dims: Vec<i64> = view.shape().iter().map(|&d| d as i64).collect();
            if dims != s.dims {
                return Err(tensor_err(
                    &s.name,
                    format!("shape {:?}, the step's input is {:?}", dims, s.dims),
                ));
            }
            HostTensor::new(s.name.clone(), s.dtype, dims, view.data().to_vec())
                .map_err(|e| tensor_err(&s.name, e.to_string()))
        })
        .collect::<Result<Vec<_>, _>>()?;
    // In the order of `slots`.
    out.sort_by_key(|t| slots.iter().position(|s| s.name == t.name));
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn slot(name: &str, dims: &[i64]) -> Slot {
        Slot {
            name: name.into(),
            dtype: DType::Float,
            dims: dims.to_vec(),
        }
    }

    #[test]
    fn a_state_round_trips_and_a_wrong_one_names_its_tensor() {
        let t = tempfile::tempdir().unwrap();
        let p = t.path().join("s.safetensors");
        let a = HostTensor::from_f32("w", &[2], &[1.0, 2.0]).unwrap();
        let b = HostTensor::from_i64("optimizer.step", &[], &[3]).unwrap();
        std::fs::write(&p, to_bytes(&[a.clone(), b.clone()]).unwrap()).unwrap();
        let step = Slot {
            name: "optimizer.step".into(),
            dtype: DType::Int64,
            dims: vec![],
        };
        let got = read(&p, &[slot("w", &[2]), step.clone()]).unwrap();
        assert_eq!(got, vec![a, b]);
        let msg = |slots: &[Slot]| read(&p, slots).unwrap_err().to_string();
        assert!(msg(&[slot("w", &[3]), step.clone()]).contains("tensor w: shape [2]"));
        assert!(msg(&[slot("w", &[2])]).contains("tensor optimizer.step: the step has no"));
        assert!(
            msg(&[slot("w", &[2]), step.clone(), slot("v", &[1])]).contains("tensor v: missing")
        );
        let mut wrong_type = step;
        wrong_type.dtype = DType::Float;
        assert!(msg(&[slot("w", &[2]), wrong_type]).contains("optimizer.step: element type I64"));
    }

    #[test]
    fn a_truncated_or_oversized_file_is_refused_before_parsing_tensors() {
        let t = tempfile::tempdir().unwrap();
        let p = t.path().join("s.safetensors");
        let a = HostTensor::from_f32("w", &[2], &[1.0, 2.0]).unwrap();
        let bytes = to_bytes(&[a]).unwrap();
        std::fs::write(&p, &bytes[..bytes.len() - 1]).unwrap();
        let e = read(&p, &[slot("w", &[2])]).unwrap_err().to_string();
        assert!(e.contains("not a safetensors file"), "{e}");
        // A header length field claiming more than the bound.
        let mut huge = (u64::MAX / 2).to_le_bytes().to_vec();
        huge.extend_from_slice(b"{}");
        std::fs::write(&p, &huge).unwrap();
        let e = read(&p, &[slot("w", &[2])]).unwrap_err().to_string();
        assert!(e.contains("not a safetensors file"), "{e}");
    }
}
