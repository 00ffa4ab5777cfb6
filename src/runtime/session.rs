//! One ONNX Runtime session, run as often as needed.

use super::alloc::MemoryMeter;
use super::error::RuntimeError;
use super::tensor::{from_ort_type, to_ort_type};
use super::{cuda, loader, profile, Ep, GraphOpt, HostTensor, RunOptions, RunResult};
use ort::memory::Allocator;
use ort::session::builder::{AutoDevicePolicy, GraphOptimizationLevel, SessionBuilder};
use ort::session::{OutputSelector, Session, SessionOutputs};
use ort::value::{DynTensor, DynTensorValueType, DynValue, ValueType};
use std::path::{Path, PathBuf};

/// A prepared session: [`ModelSession::prepare`] once, then [`ModelSession::run`] many times
/// (warm-up runs, then measured ones).
pub struct ModelSession {
    // Field order matters: the session is dropped before the meter it allocates through.
    session: Session,
    meter: Option<MemoryMeter>,
    path: PathBuf,
    options: RunOptions,
    input_names: Vec<String>,
    /// Initializers the caller may override (graph inputs with a default): optional inputs.
    overridable: Vec<String>,
    output_names: Vec<String>,
    warnings: Vec<String>,
    /// Bytes the session held through the counting allocator once created.
    resident_at_start: u64,
}

impl std::fmt::Debug for ModelSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ModelSession")
            .field("path", &self.path)
            .field("options", &self.options)
            .field("input_names", &self.input_names)
            .field("output_names", &self.output_names)
            .field("measuring_peak", &self.meter.is_some())
            .finish_non_exhaustive()
    }
}

fn option_error<R>(option: &str) -> impl FnOnce(ort::Error<R>) -> RuntimeError + '_ {
    move |e| RuntimeError::SessionOption {
        option: option.to_string(),
        reason: e.to_string(),
    }
}

impl ModelSession {
    /// Loads ONNX Runtime if needed and creates a session for the model at `model_path`.
    pub fn prepare(model_path: &Path, opts: &RunOptions) -> Result<ModelSession, RuntimeError> {
        let env = loader::environment(opts.ort_lib.as_deref())?;
        if !model_path.is_file() {
            return Err(RuntimeError::Io {
                path: model_path.to_path_buf(),
                source: std::io::Error::new(
                    std::io::ErrorKind::NotFound,
                    "model file not found; check the path",
                ),
            });
        }
        let mut warnings = Vec::new();
        if opts.measure_peak && opts.ep == Ep::Cuda {
            warnings.push(
                "peak_bytes counts host (CPU) allocations only; CUDA device memory is not counted"
                    .to_string(),
            );
        }
        let builder = configure(Session::builder(env), opts)?;
        let mut builder = builder;
        if opts.ep == Ep::Cuda {
            cuda::append_cuda(&mut builder)?;
        }

        let load_error = |e: ort::Error| {
            let reason = e.to_string();
            if opts.ep == Ep::Cuda && reason.to_ascii_lowercase().contains("cuda") {
                RuntimeError::CudaUnavailable { reason }
            } else {
                RuntimeError::ModelLoad {
                    path: model_path.to_path_buf(),
                    reason,
                }
            }
        };

        let mut meter = None;
        let session = if opts.measure_peak {
            let builder = builder
                .with_memory_pattern(false)
                .map_err(option_error("enable_mem_pattern=0"))?
                .with_env_allocators()
                .map_err(option_error("session.use_env_allocators=1"))?;
            match MemoryMeter::new() {
                Ok(mut m) => {
                    let mut builder = builder;
                    match m.with_registered(env, || builder.commit_from_file(model_path)) {
                        Ok(created) => {
                            meter = Some(m);
                            created.map_err(load_error)?
                        }
                        Err(why) => {
                            warnings.push(format!("peak memory not measured: {why}"));
                            builder.commit_from_file(model_path).map_err(load_error)?
                        }
                    }
                }
                Err(why) => {
                    warnings.push(format!(
                        "peak memory not measured: cannot create the counting allocator: {why}"
                    ));
                    let mut builder = builder;
                    builder.commit_from_file(model_path).map_err(load_error)?
                }
            }
        } else {
            builder.commit_from_file(model_path).map_err(load_error)?
        };

        let input_names = session
            .inputs()
            .iter()
            .map(|o| o.name().to_string())
            .collect();
        let overridable = session
            .overridable_initializers()
            .iter()
            .map(|o| o.name().to_string())
            .collect();
        let output_names = session
            .outputs()
            .iter()
            .map(|o| o.name().to_string())
            .collect();
        let resident_at_start = meter.as_ref().map_or(0, MemoryMeter::current_bytes);
        Ok(ModelSession {
            session,
            meter,
            path: model_path.to_path_buf(),
            options: opts.clone(),
            input_names,
            overridable,
            output_names,
            warnings,
            resident_at_start,
        })
    }

    /// The model's graph inputs (initializers excluded), in order.
    pub fn input_names(&self) -> &[String] {
        &self.input_names
    }

    /// The model's graph outputs, in order.
    pub fn output_names(&self) -> &[String] {
        &self.output_names
    }

    /// Bytes held by the session between runs (initializers, ...), when measuring.
    pub fn resident_bytes(&self) -> Option<u64> {
        self.meter.as_ref().map(MemoryMeter::current_bytes)
    }

    /// Runs the model once and returns all outputs.
    pub fn run(&mut self, inputs: &[HostTensor]) -> Result<RunResult, RuntimeError> {
        self.run_selected(inputs, None)
    }

    /// Runs the model once and returns the outputs named in `output_names` (all if `None`).
    /// ONNX Runtime skips nodes needed only by outputs not asked for.
    pub fn run_selected(
        &mut self,
        inputs: &[HostTensor],
        output_names: Option<&[String]>,
    ) -> Result<RunResult, RuntimeError> {
        let values = self.input_values(inputs)?;
        let wanted: Vec<String> = match output_names {
            Some(names) => {
                for n in names {
                    if !self.output_names.contains(n) {
                        return Err(RuntimeError::UnsupportedOutput {
                            name: n.clone(),
                            reason: format!(
                                "the model has no output of that name (outputs: {})",
                                self.output_names.join(", ")
                            ),
                        });
                    }
                }
                names.to_vec()
            }
            None => self.output_names.clone(),
        };

        let run_error = |e: ort::Error| RuntimeError::Run {
            path: self.path.clone(),
            reason: e.to_string(),
        };
        let mut run_options = ort::session::RunOptions::new().map_err(run_error)?;
        let profile_dir = if self.options.profile {
            let dir = tempfile::Builder::new()
                .prefix("onnx-ac-profile-")
                .tempdir()
                .map_err(|source| RuntimeError::Io {
                    path: std::env::temp_dir(),
                    source,
                })?;
            let guard = crate::output::TempGuard::new(dir.path());
            run_options
                .enable_profiling(dir.path().join("run"))
                .map_err(|e| RuntimeError::Profile {
                    reason: e.to_string(),
                })?;
            Some((dir, guard))
        } else {
            None
        };
        let mut selector = OutputSelector::no_default();
        for n in &wanted {
            selector = selector.with(n.clone());
        }
        let run_options = run_options.with_outputs(selector);

        let baseline = self.meter.as_ref().map(|m| {
            m.reset_peak();
            (m.current_bytes(), m.allocations())
        });
        let outputs = self
            .session
            .run_with_options(values, &run_options)
            .map_err(|e| RuntimeError::Run {
                path: self.path.clone(),
                reason: ort_message(&e),
            })?;
        let outputs = copy_outputs(outputs)?;

        let mut result = RunResult {
            outputs,
            warnings: self.warnings.clone(),
            ..RunResult::default()
        };
        if let (Some(m), Some((base, allocs_before))) = (&self.meter, baseline) {
            if m.allocations() == allocs_before && !result.outputs.is_empty() && base == 0 {
                result.warnings.push(format!(
                    "peak memory not measured: ONNX Runtime did not allocate through {}",
                    "the counting allocator"
                ));
            } else {
                result.peak_bytes = Some(m.peak_bytes());
                result.baseline_bytes = Some(base);
            }
        }
        if let Some((dir, _guard)) = profile_dir {
            result.node_times = profile::read_profile_dir(dir.path())?;
            // `dir` is deleted here, with the profile in it.
        }
        Ok(result)
    }

    /// Checks the inputs against the model and converts them to ONNX Runtime values.
    fn input_values(
        &self,
        inputs: &[HostTensor],
    ) -> Result<Vec<(String, DynTensor)>, RuntimeError> {
        let mut seen: Vec<&str> = Vec::new();
        for t in inputs {
            if !self.input_names.contains(&t.name) && !self.overridable.contains(&t.name) {
                return Err(RuntimeError::BadInput {
                    name: t.name.clone(),
                    reason: format!(
                        "the model has no input of that name (inputs: {})",
                        self.input_names.join(", ")
                    ),
                });
            }
            if seen.contains(&t.name.as_str()) {
                return Err(RuntimeError::BadInput {
                    name: t.name.clone(),
                    reason: "given twice".to_string(),
                });
            }
            seen.push(&t.name);
        }
        if let Some(missing) = self
            .input_names
            .iter()
            .find(|n| !seen.contains(&n.as_str()))
        {
            return Err(RuntimeError::BadInput {
                name: missing.clone(),
                reason: "the model needs this input but it was not given".to_string(),
            });
        }
        inputs
            .iter()
            .map(|t| Ok((t.name.clone(), to_value(t)?)))
            .collect()
    }
}

/// IO binding for a training step run in a loop (`onnx-ac train`): the carried inputs `X` (the
/// parameters and optimizer state) stay in ONNX Runtime's buffers between steps. Each run
/// writes its `X.next` outputs into buffers ONNX Runtime allocates as the step produces them,
/// and those buffers are bound as the next step's `X` inputs, while the previous inputs are
/// released: the two sets of buffers alternate (ping-pong) with no host copy, and only the
/// batch is copied in and the loss copied out.
///
/// Outputs are re-bound to the device before every run, so ONNX Runtime allocates fresh ones
/// instead of writing into the buffers the run reads (which a binding reuses by default).
/// Pre-allocating both sets instead would keep two full copies of the state alive through the
/// whole step: on the 6-layer GPT-2 fixture with AdamW that measured 3.4 MiB (21%) more.
pub struct PingPong {
    binding: ort::session::IoBinding,
    names: Vec<String>,
    /// The current state, bound as the inputs of the next run.
    state: Vec<DynTensor>,
}

impl ModelSession {
    /// Binds the carried inputs `state` (each input `X` with an output `X.next`) for
    /// [`ModelSession::run_ping_pong`].
    pub fn ping_pong(&mut self, state: &[HostTensor]) -> Result<PingPong, RuntimeError> {
        let run_error = |e: ort::Error| RuntimeError::Run {
            path: self.path.clone(),
            reason: ort_message(&e),
        };
        let mut binding = self.session.create_binding().map_err(run_error)?;
        let values: Vec<DynTensor> = state.iter().map(to_value).collect::<Result<_, _>>()?;
        for (t, v) in state.iter().zip(&values) {
            bind_input(&mut binding, &t.name, v)?;
        }
        Ok(PingPong {
            binding,
            names: state.iter().map(|t| t.name.clone()).collect(),
            state: values,
        })
    }

    /// Runs one step on `batch` (the inputs that are not carried), binding its `X.next`
    /// outputs as the next step's inputs; returns the outputs that are not carried (the loss).
    /// Its peak leaves out the state it starts from, as [`ModelSession::run`]'s does.
    pub fn run_ping_pong(
        &mut self,
        pp: &mut PingPong,
        batch: &[HostTensor],
    ) -> Result<RunResult, RuntimeError> {
        for t in batch {
            bind_input(&mut pp.binding, &t.name, &to_value(t)?)?;
        }
        let cpu = Allocator::default();
        for o in &self.output_names {
            pp.binding
                .bind_output_to_device(o.clone(), cpu.memory_info())
                .map_err(|e| RuntimeError::UnsupportedOutput {
                    name: o.clone(),
                    reason: format!("ONNX Runtime cannot bind it: {e}"),
                })?;
        }
        let baseline = self.meter.as_ref().map(|m| {
            m.reset_peak();
            m.current_bytes()
        });
        let outputs: Vec<(String, DynValue)> = self
            .session
            .run_binding(&pp.binding)
            .map_err(|e| RuntimeError::Run {
                path: self.path.clone(),
                reason: ort_message(&e),
            })?
            .into_iter()
            .map(|(n, v)| (n.to_string(), v))
            .collect();
        let mut host = Vec::new();
        let mut next: Vec<Option<DynTensor>> = vec![None; pp.names.len()];
        for (name, value) in outputs {
            match pp
                .names
                .iter()
                .position(|n| name.strip_suffix(".next") == Some(n.as_str()))
            {
                Some(i) => {
                    let t = value.downcast::<DynTensorValueType>().map_err(|e| {
                        RuntimeError::UnsupportedOutput {
                            name: name.clone(),
                            reason: e.to_string(),
                        }
                    })?;
                    next[i] = Some(t);
                }
                None => host.push(to_host(&name, value)?),
            }
        }
        let mut state = Vec::with_capacity(next.len());
        for (n, t) in pp.names.iter().zip(next) {
            let t = t.ok_or_else(|| RuntimeError::UnsupportedOutput {
                name: format!("{n}.next"),
                reason: "the run did not return it".to_string(),
            })?;
            bind_input(&mut pp.binding, n, &t)?;
            state.push(t);
        }
        // The previous state is released here (the binding now holds the new one).
        pp.state = state;
        let mut result = RunResult {
            outputs: host,
            warnings: self.warnings.clone(),
            ..RunResult::default()
        };
        if let (Some(m), Some(base)) = (&self.meter, baseline) {
            // Bytes held from this allocator when the run started beyond the session's own:
            // the state of the previous run's outputs, which `run`'s host inputs are not.
            let held = base.saturating_sub(self.resident_at_start);
            result.peak_bytes = Some(m.peak_bytes().saturating_sub(held));
            result.baseline_bytes = Some(base - held);
        }
        Ok(result)
    }
}

fn bind_input(
    binding: &mut ort::session::IoBinding,
    name: &str,
    value: &DynTensor,
) -> Result<(), RuntimeError> {
    // A tensor created by an allocator (as every one here) is bound without a copy.
    binding
        .bind_input(name.to_string(), value)
        .map_err(|e| RuntimeError::BadInput {
            name: name.to_string(),
            reason: format!("ONNX Runtime cannot bind it: {e}"),
        })
}

impl PingPong {
    /// Host copies of the carried inputs after the steps run so far (named as the inputs).
    pub fn state(&self) -> Result<Vec<HostTensor>, RuntimeError> {
        self.names
            .iter()
            .zip(&self.state)
            .map(|(n, v)| tensor_to_host(n, v))
            .collect()
    }
}

/// ONNX Runtime's message, without the escaped newline (`\\n`) some of its messages end with.
fn ort_message(e: &ort::Error) -> String {
    let s = e.to_string();
    s.trim_end().trim_end_matches("\\n").trim_end().to_string()
}

fn configure(
    builder: Result<SessionBuilder, ort::Error>,
    opts: &RunOptions,
) -> Result<SessionBuilder, RuntimeError> {
    let mut b = builder.map_err(|e| RuntimeError::Environment {
        reason: e.to_string(),
    })?;
    let level = match opts.graph_opt {
        GraphOpt::Disabled => GraphOptimizationLevel::Disable,
        GraphOpt::Basic => GraphOptimizationLevel::Level1,
        GraphOpt::Extended => GraphOptimizationLevel::Level2,
        GraphOpt::All => GraphOptimizationLevel::All,
    };
    b = b
        .with_optimization_level(level)
        .map_err(option_error("graph_optimization_level"))?;
    if opts.ep == Ep::Cpu {
        // `ort` sets the automatic device-selection policy to "max efficiency" (prefer an NPU)
        // on every builder; with no provider appended that policy picks the device. Pin CPU.
        b = b
            .with_auto_device(AutoDevicePolicy::PreferCPU)
            .map_err(option_error("ep_selection_policy=PREFER_CPU"))?;
    }
    if !opts.disabled_optimizers.is_empty() {
        b = b
            .with_disabled_optimizers(opts.disabled_optimizers.join(";"))
            .map_err(option_error("optimization.disable_specified_optimizers"))?;
    }
    if let Some(n) = opts.intra_threads {
        b = b
            .with_intra_threads(n)
            .map_err(option_error("intra_op_num_threads"))?;
    }
    Ok(b)
}

/// Copies a host tensor into a new ONNX Runtime tensor (ONNX Runtime's default CPU allocator).
fn to_value(t: &HostTensor) -> Result<DynTensor, RuntimeError> {
    t.validate()?;
    let ty = to_ort_type(t.dtype).ok_or_else(|| RuntimeError::UnsupportedDType {
        name: t.name.clone(),
        dtype: t.dtype,
    })?;
    let mut value = DynTensor::new(&Allocator::default(), ty, t.dims.clone()).map_err(|e| {
        RuntimeError::BadInput {
            name: t.name.clone(),
            reason: format!("ONNX Runtime cannot create the tensor: {e}"),
        }
    })?;
    if !t.data.is_empty() {
        let dst = value.data_ptr_mut().cast::<u8>();
        if dst.is_null() {
            return Err(RuntimeError::BadInput {
                name: t.name.clone(),
                reason: "ONNX Runtime gave the tensor no buffer".to_string(),
            });
        }
        // SAFETY: `dst` is the CPU buffer of a freshly created tensor of this type and shape,
        // whose byte size equals `t.data.len()` (checked by `validate`); the regions are
        // distinct allocations.
        unsafe { std::ptr::copy_nonoverlapping(t.data.as_ptr(), dst, t.data.len()) };
    }
    Ok(value)
}

/// Copies the run's outputs to host tensors (dropping ONNX Runtime's buffers).
fn copy_outputs(outputs: SessionOutputs<'_>) -> Result<Vec<HostTensor>, RuntimeError> {
    outputs
        .into_iter()
        .map(|(name, value)| to_host(name, value))
        .collect()
}

fn to_host(name: &str, value: DynValue) -> Result<HostTensor, RuntimeError> {
    let unsupported = |reason: String| RuntimeError::UnsupportedOutput {
        name: name.to_string(),
        reason,
    };
    let (ty, dims) = match value.dtype() {
        ValueType::Tensor { ty, shape, .. } => (*ty, shape.to_vec()),
        other => {
            return Err(unsupported(format!(
                "it is a {other}, only tensors are supported; make the graph output a tensor"
            )))
        }
    };
    let tensor = value
        .downcast::<DynTensorValueType>()
        .map_err(|e| unsupported(e.to_string()))?;
    host_copy(name, ty, dims, &tensor)
}

/// A host copy of an ONNX Runtime tensor.
fn tensor_to_host(name: &str, tensor: &DynTensor) -> Result<HostTensor, RuntimeError> {
    match tensor.dtype() {
        ValueType::Tensor { ty, shape, .. } => host_copy(name, *ty, shape.to_vec(), tensor),
        other => Err(RuntimeError::UnsupportedOutput {
            name: name.to_string(),
            reason: format!("it is a {other}, not a tensor"),
        }),
    }
}

fn host_copy(
    name: &str,
    ty: ort::value::TensorElementType,
    dims: Vec<i64>,
    tensor: &DynTensor,
) -> Result<HostTensor, RuntimeError> {
    let unsupported = |reason: String| RuntimeError::UnsupportedOutput {
        name: name.to_string(),
        reason,
    };
    let dtype = from_ort_type(ty)
        .ok_or_else(|| unsupported(format!("element type {ty} is not supported")))?;
    if !tensor.memory_info().is_cpu_accessible() {
        return Err(unsupported(
            "the tensor is in device memory, not host memory".to_string(),
        ));
    }
    let too_large = || unsupported("too large for this machine".to_string());
    let numel = dims
        .iter()
        .try_fold(1u64, |n, &d| n.checked_mul(u64::try_from(d).ok()?))
        .ok_or_else(too_large)?;
    let bytes = numel
        .checked_mul(dtype.size_bytes().unwrap_or(0))
        .ok_or_else(too_large)?;
    let len = usize::try_from(bytes).map_err(|_| too_large())?;
    let mut data = vec![0u8; len];
    if len > 0 {
        let src = tensor.data_ptr().cast::<u8>();
        if src.is_null() {
            return Err(unsupported("ONNX Runtime returned no data".to_string()));
        }
        // SAFETY: `src` is the host buffer of a tensor with `numel` elements of `size` bytes,
        // alive while `tensor` is; `data` is a distinct buffer of the same length.
        unsafe { std::ptr::copy_nonoverlapping(src, data.as_mut_ptr(), len) };
    }
    Ok(HostTensor {
        name: name.to_string(),
        dtype,
        dims,
        data,
    })
}
