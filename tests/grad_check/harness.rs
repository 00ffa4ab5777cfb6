//! The finite-difference gradient check: builds each case twice and compares the training
//! graph's gradients with central differences, both computed by ONNX Runtime.
//!
//! (T) the op with its differentiable inputs as float initializers, then
//!     `loss = Σ_k ReduceSum(Cast⁽ᶠ⁶⁴⁾(y_k) · R_k)` with random constants `R_k`, so the upstream
//!     gradient is non-uniform; `build_training_graph` turns it into [loss, <param>.grad...],
//!     which runs once.
//! (F) the same forward and loss with those inputs as graph inputs, run twice per element
//!     with `x ± h` (central differences).
//!
//! Per element: |analytic − numeric| ≤ atol + rtol·|numeric|. The tolerances are in
//! [`F64`] and [`F32`] and documented in docs/gradients.md.

use onnx_ac::onnx::{save, SaveOptions};
use onnx_ac::runtime::{GraphOpt, HostTensor, ModelSession, RunOptions};
use onnx_ac_passes::autodiff::{build_training_graph, saved_activations, Loss, TrainOptions};
use onnx_ac_passes::infer::infer_shapes;
use onnx_ac_passes::ir::{
    known_shape, static_dims, Attribute, DType, Graph, Model, Node, Tensor, ValueId,
};
use onnx_ac_passes::ops::norm::switch_batch_norm_to_training;
use std::collections::BTreeMap;
use std::path::Path;

/// Step and tolerance of one precision class.
#[derive(Clone, Copy, Debug)]
pub struct Precision {
    pub label: &'static str,
    /// Central-difference step.
    pub h: f64,
    pub atol: f64,
    pub rtol: f64,
}

/// Float64 cases: h = 1e-6 leaves a truncation error ~h²·f''' ≈ 1e-12 and a rounding error
/// ~ε·|loss|/h ≈ 1e-10; the worst measured error is ~4e-9.
pub const F64: Precision = Precision {
    label: "f64",
    h: 1e-6,
    atol: 1e-7,
    rtol: 1e-6,
};

/// Float32 cases (ops ONNX Runtime's CPU provider runs in float32 only): the loss is still
/// summed in float64, so the noise is the op's own float32 rounding (~6e-8 relative) over
/// 2h (~1e-5 here), plus h²·f''' (~1e-5); the worst measured error is ~3e-5.
pub const F32: Precision = Precision {
    label: "f32",
    h: 1e-2,
    atol: 2e-4,
    rtol: 2e-3,
};

/// splitmix64: a fixed-seed generator, so every run checks the same values.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    /// Uniform in [0, 1).
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
    pub fn uniform(&mut self, lo: f64, hi: f64) -> f64 {
        lo + (hi - lo) * self.unit()
    }
    /// Uniform in [lo, hi] at least `margin` away from every point of `kinks`.
    pub fn away(&mut self, lo: f64, hi: f64, kinks: &[f64], margin: f64) -> f64 {
        loop {
            let v = self.uniform(lo, hi);
            if kinks.iter().all(|k| (v - k).abs() >= margin) {
                return v;
            }
        }
    }
    /// Uniform in ±[lo, hi] (away from zero).
    pub fn signed(&mut self, lo: f64, hi: f64) -> f64 {
        let v = self.uniform(lo, hi);
        if self.unit() < 0.5 {
            -v
        } else {
            v
        }
    }
    /// `n` values spaced `gap` apart in random order, centred on zero, plus a little noise
    /// (for max-pooling: every window has one clear maximum).
    pub fn distinct(&mut self, n: usize, gap: f64) -> Vec<f64> {
        let mut v: Vec<f64> = (0..n)
            .map(|i| (i as f64 - n as f64 / 2.0) * gap + self.uniform(0.0, gap / 4.0))
            .collect();
        for i in (1..n).rev() {
            let j = (self.next_u64() % (i as u64 + 1)) as usize;
            v.swap(i, j);
        }
        v
    }
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Mode {
    /// Differentiable inputs are initializers (the training graph's parameters).
    Train,
    /// Differentiable inputs are graph inputs (perturbed run by run).
    Numeric,
}

/// One differentiable input of a case.
pub struct Param {
    pub name: String,
    pub dtype: DType,
    pub dims: Vec<i64>,
    pub vals: Vec<f64>,
}

fn numel(dims: &[i64]) -> usize {
    dims.iter().product::<i64>() as usize
}

/// Rounds to what a tensor of `dtype` holds.
fn stored(dtype: DType, v: f64) -> f64 {
    if dtype == DType::Float {
        f64::from(v as f32)
    } else {
        v
    }
}

/// Builds a case's forward. Both modes draw the same random numbers in the same order, so
/// the (T) and (F) models hold the same values.
pub struct Gb {
    pub g: Graph,
    mode: Mode,
    /// The float type of parameters and float constants.
    pub dt: DType,
    pub rng: Rng,
    pub params: Vec<Param>,
    count: usize,
}

impl Gb {
    fn new(mode: Mode, dt: DType, seed: u64) -> Gb {
        Gb {
            g: Graph {
                name: "grad_check".into(),
                ..Graph::default()
            },
            mode,
            dt,
            rng: Rng::new(seed),
            params: Vec::new(),
            count: 0,
        }
    }

    fn fresh(&mut self, prefix: &str) -> String {
        self.count += 1;
        format!("{prefix}{}", self.count)
    }

    /// A differentiable input of type `dtype` holding `vals`.
    pub fn param_as(&mut self, dtype: DType, dims: &[i64], vals: Vec<f64>) -> ValueId {
        assert_eq!(vals.len(), numel(dims), "param values vs dims {dims:?}");
        let vals: Vec<f64> = vals.into_iter().map(|v| stored(dtype, v)).collect();
        let name = self.fresh("p");
        let id = match self.mode {
            Mode::Train => {
                let t = Tensor::from_f64_as(dtype, dims.to_vec(), &vals).expect("float tensor");
                self.g.add_initializer(name.clone(), t)
            }
            Mode::Numeric => {
                let id = self.g.new_value(name.clone());
                let v = self.g.value_mut(id);
                v.dtype = Some(dtype);
                v.shape = Some(known_shape(dims));
                self.g.inputs.push(id);
                id
            }
        };
        // An Identity in between makes the value the op reads an activation, so that
        // `saved_activations` shows whether the rule keeps it.
        let act = self.g.new_value(format!("{name}.act"));
        let mut node = Node::new("Identity", vec![Some(id)], vec![Some(act)]);
        node.name = format!("{name}.Identity");
        self.g.add_node(node);
        self.params.push(Param {
            name,
            dtype,
            dims: dims.to_vec(),
            vals,
        });
        act
    }

    pub fn param_vals(&mut self, dims: &[i64], vals: Vec<f64>) -> ValueId {
        self.param_as(self.dt, dims, vals)
    }

    pub fn param_with(&mut self, dims: &[i64], mut f: impl FnMut(&mut Rng) -> f64) -> ValueId {
        let vals = (0..numel(dims)).map(|_| f(&mut self.rng)).collect();
        self.param_vals(dims, vals)
    }

    /// Uniform in [-1, 1].
    pub fn param(&mut self, dims: &[i64]) -> ValueId {
        self.param_with(dims, |r| r.uniform(-1.0, 1.0))
    }

    /// A frozen constant (an initializer named `k…`, excluded from training by `--freeze`).
    pub fn konst(&mut self, t: Tensor) -> ValueId {
        let name = self.fresh("k");
        self.g.add_initializer(name, t)
    }

    /// A frozen float constant of the case's type.
    pub fn fconst(&mut self, dims: &[i64], vals: &[f64]) -> ValueId {
        let t = Tensor::from_f64_as(self.dt, dims.to_vec(), vals).expect("float tensor");
        self.konst(t)
    }

    pub fn fconst_with(&mut self, dims: &[i64], mut f: impl FnMut(&mut Rng) -> f64) -> ValueId {
        let vals: Vec<f64> = (0..numel(dims)).map(|_| f(&mut self.rng)).collect();
        self.fconst(dims, &vals)
    }

    /// A 1-D int64 constant (shapes, axes, starts, repeats).
    pub fn ints(&mut self, vals: &[i64]) -> ValueId {
        self.konst(Tensor::from_i64(vec![vals.len() as i64], vals))
    }

    pub fn ints_shaped(&mut self, dims: &[i64], vals: &[i64]) -> ValueId {
        self.konst(Tensor::from_i64(dims.to_vec(), vals))
    }

    pub fn bools(&mut self, dims: &[i64], vals: &[bool]) -> ValueId {
        let bytes = vals.iter().map(|&b| u8::from(b)).collect();
        self.konst(Tensor::raw(DType::Bool, dims.to_vec(), bytes))
    }

    /// `op(inputs) {attrs}` with `n_out` outputs.
    pub fn node(
        &mut self,
        op: &str,
        inputs: &[Option<ValueId>],
        attrs: Vec<Attribute>,
        n_out: usize,
    ) -> Vec<ValueId> {
        let outs: Vec<ValueId> = (0..n_out)
            .map(|_| {
                let n = self.fresh("v");
                self.g.new_value(n)
            })
            .collect();
        let mut node = Node::new(op, inputs.to_vec(), outs.iter().map(|&o| Some(o)).collect());
        node.name = self.fresh(op);
        node.attrs = attrs;
        self.g.add_node(node);
        outs
    }

    pub fn op(&mut self, op: &str, inputs: &[ValueId], attrs: Vec<Attribute>) -> ValueId {
        let ins: Vec<Option<ValueId>> = inputs.iter().map(|&v| Some(v)).collect();
        self.node(op, &ins, attrs, 1)[0]
    }
}

type Build = Box<dyn Fn(&mut Gb) -> Vec<ValueId>>;

/// One gradient-check case: a forward whose outputs feed the random-weighted loss.
pub struct Case {
    pub name: String,
    /// The op under test (for the per-op summary).
    pub op: String,
    pub opset: i64,
    pub dt: DType,
    pub prec: Precision,
    pub bn_train: bool,
    build: Build,
}

/// A float64 case at opset 18.
pub fn case(op: &str, name: &str, build: impl Fn(&mut Gb) -> Vec<ValueId> + 'static) -> Case {
    Case {
        name: name.to_string(),
        op: op.to_string(),
        opset: 18,
        dt: DType::Double,
        prec: F64,
        bn_train: false,
        build: Box::new(build),
    }
}

impl Case {
    pub fn opset(mut self, opset: i64) -> Case {
        self.opset = opset;
        self
    }
    /// Runs in float32, with the float32 tolerances: ONNX Runtime's CPU provider has no
    /// float64 kernel for the op (or the case is about float32). `GRAD_CHECK_PROBE_F64=1`
    /// ignores this, to see which ops still lack float64 kernels.
    pub fn f32(mut self) -> Case {
        if std::env::var("GRAD_CHECK_PROBE_F64").is_ok() {
            return self;
        }
        self.dt = DType::Float;
        self.prec = F32;
        self
    }
    /// Float32 tolerances with float64 parameters (a float32 value on the path).
    pub fn loose(mut self) -> Case {
        self.prec = F32;
        self
    }
    /// `TrainOptions { batch_norm_train: true }`, and the same switch in the (F) model.
    pub fn bn_train(mut self) -> Case {
        self.bn_train = true;
        self
    }
}

/// What one case measured.
pub struct Outcome {
    pub name: String,
    pub op: String,
    pub prec: Precision,
    /// Elements checked.
    pub checked: usize,
    pub max_abs: f64,
    /// max over elements of |a − n| / (atol + rtol·|n|); ≤ 1 passes.
    pub worst_ratio: f64,
    /// Why the case failed (empty when it passed).
    pub problems: Vec<String>,
    /// The forward values the backward reads (`saved_activations`): `in:<param>` for an
    /// input of the op under test, `<Op>:out<k>` for a node output.
    pub saved: Vec<String>,
}

fn seed_of(name: &str) -> u64 {
    // FNV-1a
    name.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// Runs the build, appends the loss and infers shapes.
fn forward(case: &Case, mode: Mode) -> Result<(Model, Vec<Param>), String> {
    let mut gb = Gb::new(mode, case.dt, seed_of(&case.name));
    let outs = (case.build)(&mut gb);
    if case.bn_train && mode == Mode::Numeric {
        switch_batch_norm_to_training(&mut gb.g);
    }
    infer_shapes(&mut gb.g, case.opset).map_err(|e| format!("shape inference: {e}"))?;
    let mut terms = Vec::new();
    for y in outs {
        let v = gb.g.value(y);
        let dims = v
            .shape
            .as_ref()
            .and_then(|s| static_dims(s))
            .ok_or_else(|| format!("output '{}' has no static shape", v.name))?;
        let y64 = if v.dtype == Some(DType::Double) {
            y
        } else {
            gb.op("Cast", &[y], vec![Attribute::int("to", 11)])
        };
        let n = numel(&dims);
        let r: Vec<f64> = (0..n).map(|_| gb.rng.uniform(-1.0, 1.0)).collect();
        let r = gb.konst(Tensor::from_f64_as(DType::Double, dims, &r).unwrap());
        let m = gb.op("Mul", &[y64, r], vec![]);
        terms.push(gb.op("ReduceSum", &[m], vec![Attribute::int("keepdims", 0)]));
    }
    let loss = match terms.as_slice() {
        [one] => *one,
        many => gb.op("Sum", many, vec![]),
    };
    gb.g.value_mut(loss).name = "loss".into();
    gb.g.outputs = vec![loss];
    infer_shapes(&mut gb.g, case.opset).map_err(|e| format!("shape inference: {e}"))?;
    // Shape inference folds float ops over initializers; in a real model these values
    // depend on the inputs, so they are activations (what `saved_activations` reports).
    for v in &mut gb.g.values {
        if v.producer.is_some() && v.dtype.is_some_and(|d| d.is_float()) {
            v.constant = None;
        }
    }
    let model = Model {
        ir_version: 10,
        opset_imports: vec![(String::new(), case.opset)],
        producer_name: "grad_check".into(),
        graph: gb.g,
        ..Model::default()
    };
    Ok((model, gb.params))
}

fn session(model: &Model, path: &Path) -> Result<ModelSession, String> {
    save(model, path, &SaveOptions::default()).map_err(|e| format!("save: {e}"))?;
    let opts = RunOptions {
        // The graph as built, not ONNX Runtime's fusions of it.
        graph_opt: GraphOpt::Disabled,
        intra_threads: Some(1),
        ..RunOptions::default()
    };
    ModelSession::prepare(path, &opts).map_err(|e| format!("{e}"))
}

fn host(p: &Param, vals: &[f64]) -> HostTensor {
    match p.dtype {
        DType::Float => {
            let v: Vec<f32> = vals.iter().map(|&x| x as f32).collect();
            HostTensor::from_f32(p.name.clone(), &p.dims, &v)
        }
        _ => HostTensor::from_f64(p.name.clone(), &p.dims, vals),
    }
    .expect("host tensor")
}

fn scalar_loss(s: &mut ModelSession, inputs: &[HostTensor]) -> Result<f64, String> {
    let out = s.run(inputs).map_err(|e| format!("{e}"))?;
    let v = out.outputs[0].to_f64().map_err(|e| format!("{e}"))?;
    Ok(v[0])
}

/// Checks one case; never panics on a rule or runtime failure (it is reported).
pub fn run_case(case: &Case, dir: &Path) -> Outcome {
    let mut out = Outcome {
        name: case.name.clone(),
        op: case.op.clone(),
        prec: case.prec,
        checked: 0,
        max_abs: 0.0,
        worst_ratio: 0.0,
        problems: Vec::new(),
        saved: Vec::new(),
    };
    if let Err(e) = check(case, dir, &mut out) {
        out.problems.push(e);
    }
    out
}

fn check(case: &Case, dir: &Path, out: &mut Outcome) -> Result<(), String> {
    let file = |tag: &str| {
        let safe: String = case
            .name
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
            .collect();
        dir.join(format!("{safe}.{tag}.onnx"))
    };
    // (T): the training graph, run once.
    let (model, params) = forward(case, Mode::Train)?;
    let opts = TrainOptions {
        loss: Loss::Auto,
        freeze: vec!["k*".into()],
        batch_norm_train: case.bn_train,
        ..Default::default()
    };
    let (train, _) =
        build_training_graph(&model, &opts).map_err(|e| format!("training graph: {e}"))?;
    out.saved = saved_activations(&train.graph)
        .into_iter()
        .map(|v| {
            let g = &train.graph;
            let val = g.value(v);
            match (val.name.strip_suffix(".act"), val.producer) {
                (Some(p), _) => format!("in:{p}"),
                (None, Some(n)) => {
                    let node = g.node(n);
                    let k = node.outputs.iter().position(|&o| o == Some(v)).unwrap_or(0);
                    format!("{}:out{k}", node.op_type)
                }
                (None, None) => val.name.clone(),
            }
        })
        .collect();
    let mut ts = session(&train, &file("train")).map_err(|e| format!("(T) session: {e}"))?;
    let names = ts.output_names().to_vec();
    let res = ts.run(&[]).map_err(|e| format!("(T) run: {e}"))?;
    let by_name: BTreeMap<&str, &HostTensor> = names
        .iter()
        .map(String::as_str)
        .zip(res.outputs.iter())
        .collect();
    let loss_t = res.outputs[0].to_f64().map_err(|e| e.to_string())?[0];

    // (F): the forward with the parameters as inputs.
    let (fmodel, fparams) = forward(case, Mode::Numeric)?;
    assert_eq!(fparams.len(), params.len());
    let mut fs = session(&fmodel, &file("fd")).map_err(|e| format!("(F) session: {e}"))?;
    let mut inputs: Vec<HostTensor> = params.iter().map(|p| host(p, &p.vals)).collect();
    let loss_f = scalar_loss(&mut fs, &inputs)?;
    let fwd_tol = if case.prec.label == "f64" { 1e-9 } else { 1e-5 };
    if (loss_t - loss_f).abs() > fwd_tol * (1.0 + loss_f.abs()) {
        out.problems.push(format!(
            "forward mismatch: training graph loss {loss_t} vs forward {loss_f}"
        ));
    }

    let p = case.prec;
    for (k, param) in params.iter().enumerate() {
        let gname = format!("{}.grad", param.name);
        let Some(g) = by_name.get(gname.as_str()) else {
            out.problems.push(format!(
                "no gradient output for {} {:?} (outputs: {names:?})",
                param.name, param.dims
            ));
            continue;
        };
        if g.dims != param.dims {
            out.problems.push(format!(
                "{gname} has dims {:?}, the parameter {:?}",
                g.dims, param.dims
            ));
            continue;
        }
        let analytic = g.to_f64().map_err(|e| e.to_string())?;
        let mut worst: Option<(usize, f64, f64, f64)> = None;
        for j in 0..param.vals.len() {
            let x = param.vals[j];
            let (xp, xm) = (stored(param.dtype, x + p.h), stored(param.dtype, x - p.h));
            let mut v = param.vals.clone();
            v[j] = xp;
            inputs[k] = host(param, &v);
            let lp = scalar_loss(&mut fs, &inputs)?;
            v[j] = xm;
            inputs[k] = host(param, &v);
            let lm = scalar_loss(&mut fs, &inputs)?;
            let numeric = (lp - lm) / (xp - xm);
            let a = analytic[j];
            let err = (a - numeric).abs();
            let ratio = if err.is_nan() || a.is_nan() {
                f64::INFINITY
            } else {
                err / (p.atol + p.rtol * numeric.abs())
            };
            out.checked += 1;
            out.max_abs = out
                .max_abs
                .max(if err.is_nan() { f64::INFINITY } else { err });
            if worst.is_none_or(|w| ratio > w.3) {
                worst = Some((j, a, numeric, ratio));
            }
            out.worst_ratio = out.worst_ratio.max(ratio);
        }
        inputs[k] = host(param, &param.vals);
        if let Some((j, a, n, ratio)) = worst {
            if ratio > 1.0 {
                out.problems.push(format!(
                    "{} {:?} element {j}: analytic {a:.9e} vs numeric {n:.9e} (|err| {:.2e}, {ratio:.1}× the tolerance)",
                    param.name,
                    param.dims,
                    (a - n).abs()
                ));
            }
        }
    }
    Ok(())
}

/// Runs every case (filtered by the `GRAD_CHECK_FILTER` substring when set), prints one
/// line per case and fails listing every failing case.
pub fn run_family(family: &str, cases: Vec<Case>) {
    let filter = std::env::var("GRAD_CHECK_FILTER").unwrap_or_default();
    let dir = tempfile::Builder::new()
        .prefix("grad-check-")
        .tempdir()
        .expect("temp dir");
    let mut failed = Vec::new();
    let mut lines = Vec::new();
    let mut run = 0;
    for c in cases.iter().filter(|c| c.name.contains(&filter)) {
        run += 1;
        let o = run_case(c, dir.path());
        lines.push(format!(
            "GRADCHECK op={} case={} prec={} elems={} max_abs={:.3e} worst_ratio={:.3e} saved=[{}] {}",
            o.op,
            o.name,
            o.prec.label,
            o.checked,
            o.max_abs,
            o.worst_ratio,
            o.saved.join(","),
            if o.problems.is_empty() { "ok" } else { "FAIL" }
        ));
        if !o.problems.is_empty() {
            failed.push(format!(
                "  {} ({}): {}",
                o.name,
                o.op,
                o.problems.join("; ")
            ));
        }
    }
    println!("{}", lines.join("\n"));
    assert!(
        failed.is_empty(),
        "{family}: {} of {run} gradient checks failed:\n{}",
        failed.len(),
        failed.join("\n")
    );
    println!("{family}: {run} gradient checks passed");
}
