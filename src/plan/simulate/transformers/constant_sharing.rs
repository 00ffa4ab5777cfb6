//! ConstantSharing (level 1, onnxruntime/core/optimizer/constant_sharing.cc): single-element
//! constants of equal type, rank and value become one initializer. It changes no node, only
//! the small-initializer bytes the run counts ([`super::super::alloc`]).

use onnx_ac_passes::ir::{DType, Graph, ValueId};

/// ConstantSharing's key of a single-element constant.
/// What makes two single-element constants one for ConstantSharing.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub(in crate::plan::simulate) struct SharingKey<'g> {
    /// The ONNX data type.
    dtype: i32,
    rank: usize,
    /// The value's raw bytes.
    bytes: &'g [u8],
}

pub(in crate::plan::simulate) fn sharing_key(g: &Graph, v: ValueId) -> Option<SharingKey<'_>> {
    let val = g.value(v);
    let t = val.initializer.as_ref().or(val.constant.as_ref())?;
    if t.numel() != 1
        || !matches!(
            t.dtype,
            DType::Float | DType::Double | DType::Int32 | DType::Int64 | DType::Float16
        )
    {
        return None;
    }
    match &t.data {
        onnx_ac_passes::ir::TensorData::Raw(b) => Some(SharingKey {
            dtype: t.dtype.to_onnx(),
            rank: t.dims.len(),
            bytes: b.as_slice(),
        }),
        _ => None,
    }
}
