//! Appending ONNX Runtime's CUDA execution provider through the raw C API (the `ort` crate
//! only wraps it behind its `cuda` feature).

use super::alloc::status_to_result;
use super::error::RuntimeError;
use ort::session::builder::SessionBuilder;
use ort::AsPointer;
use std::ffi::{c_char, c_int, CStr};
use std::ptr;

const CUDA_EP: &str = "CUDAExecutionProvider";

/// The execution providers compiled into the loaded library, e.g. `["CPUExecutionProvider"]`.
/// Loads ONNX Runtime first if needed (see [`super::init`]).
pub fn available_providers() -> Result<Vec<String>, RuntimeError> {
    // `ort::api()` panics when no library can be loaded: make sure one is.
    super::loader::init(None)?;
    let api = ort::api();
    let mut list: *mut *mut c_char = ptr::null_mut();
    let mut n: c_int = 0;
    // SAFETY: writes a pointer to an array of `n` C strings into the two valid locals.
    let status = unsafe { (api.GetAvailableProviders)(&mut list, &mut n) };
    status_to_result(status).map_err(|reason| RuntimeError::Environment { reason })?;
    if list.is_null() {
        return Ok(Vec::new());
    }
    let count = usize::try_from(n).unwrap_or(0);
    let mut names = Vec::with_capacity(count);
    for i in 0..count {
        // SAFETY: `list` holds `n` valid NUL-terminated strings until it is released below.
        let s = unsafe { *list.add(i) };
        if !s.is_null() {
            // SAFETY: as above.
            names.push(unsafe { CStr::from_ptr(s) }.to_string_lossy().into_owned());
        }
    }
    // SAFETY: releases exactly the array returned above, with its length.
    let status = unsafe { (api.ReleaseAvailableProviders)(list, n) };
    let _ = status_to_result(status);
    Ok(names)
}

/// Appends the CUDA execution provider (device 0, default options) to `builder`.
pub(crate) fn append_cuda(builder: &mut SessionBuilder) -> Result<(), RuntimeError> {
    let providers = available_providers()?;
    if !providers.iter().any(|p| p == CUDA_EP) {
        let lib = super::loader::loaded_library()
            .map(|l| l.to_string())
            .unwrap_or_else(|| "the loaded ONNX Runtime".to_string());
        return Err(RuntimeError::CudaUnavailable {
            reason: format!(
                "{lib} has no CUDA execution provider (it offers: {})",
                providers.join(", ")
            ),
        });
    }
    let api = ort::api();
    let mut options: *mut ort::sys::OrtCUDAProviderOptionsV2 = ptr::null_mut();
    // SAFETY: writes one pointer into the valid local.
    let status = unsafe { (api.CreateCUDAProviderOptions)(&mut options) };
    status_to_result(status).map_err(|reason| RuntimeError::CudaUnavailable { reason })?;
    if options.is_null() {
        return Err(RuntimeError::CudaUnavailable {
            reason: "CreateCUDAProviderOptions returned nothing".to_string(),
        });
    }
    // SAFETY: `builder` owns live session options; `options` is valid until released below,
    // and ONNX Runtime copies what it needs while appending.
    let status =
        unsafe { (api.SessionOptionsAppendExecutionProvider_CUDA_V2)(builder.ptr_mut(), options) };
    // SAFETY: releases the options created above, once.
    unsafe { (api.ReleaseCUDAProviderOptions)(options) };
    status_to_result(status).map_err(|reason| RuntimeError::CudaUnavailable {
        reason: format!(
            "{reason} (is an NVIDIA GPU with its driver, CUDA 13 and cuDNN 9 present?)"
        ),
    })
}
