//! Command-line arguments (clap), in the binary only: the library takes typed options.

use clap::{Args, Parser, Subcommand, ValueEnum};
use onnx_ac::size::Budget;
use std::path::PathBuf;

#[derive(Parser, Debug)]
#[command(
    name = "onnx-ac",
    version,
    about = "Activation checkpointing for ONNX training graphs",
    long_about = "Reads an ONNX model, builds its training graph (loss + backward in standard ONNX ops), \
plans which forward activations to drop and recompute under a memory budget, and writes a new ONNX graph.\n\n\
Main command: onnx-ac MODEL --budget SIZE -o OUT\n\n\
Exit codes: 0 success, 1 internal failure, 2 bad input or usage, 3 budget unreachable.",
    args_conflicts_with_subcommands = true,
    subcommand_negates_reqs = true
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    /// The machine the memory simulation models: `auto` (this one) or NAME[:CORES], NAME one
    /// of x86-64-avx512, x86-64-avx2, x86-64, aarch64 (CORES: its physical cores, default 1).
    /// Default: the ONNX_AC_HOST environment variable, else auto.
    #[arg(long, global = true, value_name = "PROFILE", value_parser = parse_host)]
    pub host: Option<onnx_ac::plan::host::Host>,
    /// Show ONNX Runtime's own log messages of this severity and above on stderr (default:
    /// none; its failures are reported as onnx-ac errors either way).
    #[arg(long, global = true, value_name = "LEVEL", value_enum)]
    pub ort_log: Option<onnx_ac::runtime::LogLevel>,
    #[command(flatten)]
    pub main: MainArgs,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Show a model's ops, parameters, inputs, outputs and activation memory.
    Inspect(InspectArgs),
    /// Write the training graph (forward + loss + backward) of a model.
    TrainGraph(TrainGraphArgs),
    /// Profile a model's training graph with ONNX Runtime: per-node times, bytes per value,
    /// measured peak (JSON for --profile).
    Profile(ProfileArgs),
    /// Run two training graphs (original and rewritten) in ONNX Runtime: the same loss and
    /// gradients? Reports each one's measured peak and step time.
    Verify(VerifyArgs),
    /// Run a training step (from `train-graph --optimizer` or the main command with
    /// --optimizer) in a loop on batches from a file or random ones; write the final state.
    Train(TrainArgs),
    /// The trade-off curve: added recomputation against peak memory, from the lowest peak the
    /// planner reaches to none, with the presets and μ-TWO as points (CSV with -o).
    Tradeoff(TradeoffArgs),
    /// Plan every combination of symbolic dims (--dim batch=1,2,4 --dim seq=128,256) under one
    /// budget: recompute cost per configuration as a heatmap (CSV with -o).
    Sweep(SweepArgs),
    /// Estimate a training step's memory by category (parameters, gradients, optimizer
    /// state, activations) per sequence length and plan (none, selective, full, --budget),
    /// structure only: weights may be absent (docs/estimate.md).
    Estimate(EstimateArgs),
}

#[derive(Args, Debug)]
pub struct SweepArgs {
    /// The ONNX model.
    pub model: PathBuf,
    /// A symbolic input dimension and its values: --dim batch=1,2,4,8 (repeatable; the
    /// first is the heatmap's rows, the second its columns; at most 1024 combinations).
    #[arg(long = "dim", value_name = "NAME=V1,V2,...", value_parser = onnx_ac::sweep::parse_dim_values, required = true)]
    pub dims: Vec<onnx_ac::sweep::DimValues>,
    /// Memory budget, as for the main command: absolute (80GB: which configurations fit) or
    /// relative to each configuration (50%, 30%act).
    #[arg(long)]
    pub budget: Budget,
    #[command(flatten)]
    pub loss: LossArgs,
    /// The planner (or a preset policy, which ignores the budget).
    #[arg(long, default_value = "ac", value_parser = ["ac", "optimal", "mutwo", "none", "selective", "full"])]
    pub planner: String,
    /// Cost model: analytic (the default; configurations planned in parallel), fixed, or
    /// measured (each configuration profiled in ONNX Runtime, one at a time).
    #[arg(long, value_parser = ["measured", "analytic", "fixed"])]
    pub cost: Option<String>,
    /// The device the analytic model describes.
    #[arg(long, default_value = "cpu", value_parser = ["cpu", "a100", "h100"])]
    pub device: String,
    #[command(flatten)]
    pub runtime: RuntimeArgs,
    /// Write one CSV row per configuration here.
    #[arg(short = 'o', long = "output-file", value_name = "CSV")]
    pub out: Option<PathBuf>,
    /// Write the heatmap as an SVG image here.
    #[arg(long, value_name = "SVG")]
    pub heatmap: Option<PathBuf>,
    /// Print the configurations as JSON (docs/cli.md) instead of the heatmap.
    #[arg(long)]
    pub json: bool,
}

#[derive(Args, Debug)]
pub struct TradeoffArgs {
    #[command(flatten)]
    pub model: ModelArgs,
    #[command(flatten)]
    pub loss: LossArgs,
    /// The planner whose curve it is.
    #[arg(long, default_value = "ac", value_parser = ["ac", "optimal", "mutwo"])]
    pub planner: String,
    /// Budgets on the curve, evenly spaced in peak from the lowest the planner reaches to the
    /// peak without recomputation (2 to 64).
    #[arg(long, default_value_t = 9, value_parser = clap::value_parser!(u32).range(2..=64))]
    pub points: u32,
    /// Leave out the reference points (none, selective, full and μ-TWO's lowest-peak plan).
    #[arg(long)]
    pub no_references: bool,
    /// Cost model: analytic (FLOPs and bytes, the default), fixed (a table), or measured
    /// (profiles the step in ONNX Runtime first).
    #[arg(long, value_parser = ["measured", "analytic", "fixed"])]
    pub cost: Option<String>,
    /// The device the analytic model describes.
    #[arg(long, default_value = "cpu", value_parser = ["cpu", "a100", "h100"])]
    pub device: String,
    /// Use this profile (from `onnx-ac profile`) for node times (measured cost model).
    #[arg(long, value_name = "PROFILE.json")]
    pub profile: Option<PathBuf>,
    #[command(flatten)]
    pub runtime: RuntimeArgs,
    /// Write the curve as CSV here.
    #[arg(short = 'o', long = "output-file", value_name = "CSV")]
    pub out: Option<PathBuf>,
    /// Write the curve as an SVG image here.
    #[arg(long, value_name = "SVG")]
    pub chart: Option<PathBuf>,
    /// Print the curve as JSON (docs/cli.md) instead of a table.
    #[arg(long)]
    pub json: bool,
}

#[derive(Args, Debug)]
#[command(group(clap::ArgGroup::new("batches").required(true).args(["random", "data"])))]
pub struct TrainArgs {
    /// The training step: parameters and optimizer state in, loss and `X.next` out.
    pub model: PathBuf,
    /// Steps to run (1 to 1000000).
    #[arg(long, default_value_t = 10, value_parser = parse_runs)]
    pub steps: usize,
    /// Train on the batches of a numpy .npz archive: one array per data input of the step,
    /// named as the input, its leading axis the batch index (cycled when --steps is larger).
    #[arg(long, value_name = "NPZ")]
    pub data: Option<PathBuf>,
    /// Train on random batches (a new one per step, from --seed).
    #[arg(long)]
    pub random: bool,
    /// Seed of the random batches.
    #[arg(long, default_value_t = 0, requires = "random")]
    pub seed: u64,
    /// One random batch for every step (a check that the step learns: the loss must fall).
    #[arg(long, requires = "random")]
    pub same_batch: bool,
    /// Start from this state file (safetensors, from --init-state or --save-state) instead of
    /// the step's defaults.
    #[arg(long, value_name = "FILE")]
    pub state: Option<PathBuf>,
    /// Write the final parameters and optimizer state here (safetensors, the format of
    /// --init-state; training resumes from it with --state).
    #[arg(long, value_name = "FILE")]
    pub save_state: Option<PathBuf>,
    /// Copy the parameters and optimizer state out of ONNX Runtime and back in every step
    /// instead of keeping them in its buffers (IO binding, the default).
    #[arg(long)]
    pub no_io_binding: bool,
    /// Bind a symbolic input dimension: --dim batch=8 (repeatable).
    #[arg(long = "dim", value_name = "NAME=VALUE", value_parser = onnx_ac::parse_dim)]
    pub dims: Vec<(String, i64)>,
    /// Write the trained step: the same graph with the final parameters and optimizer state
    /// as its defaults (training resumes from it).
    #[arg(short = 'o', long = "output-file", value_name = "OUT")]
    pub out: Option<PathBuf>,
    #[command(flatten)]
    pub runtime: RuntimeArgs,
}

#[derive(Args, Debug)]
pub struct VerifyArgs {
    /// The training graph without recomputation (from `train-graph`).
    pub original: PathBuf,
    /// The rewritten training graph (from the main command).
    pub rewritten: PathBuf,
    #[command(flatten)]
    pub runtime: RuntimeArgs,
    /// The report as JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Args, Debug, Clone)]
pub struct ModelArgs {
    /// The ONNX model.
    pub model: PathBuf,
    /// Bind a symbolic input dimension: --dim batch=8 (repeatable).
    #[arg(long = "dim", value_name = "NAME=VALUE", value_parser = onnx_ac::parse_dim)]
    pub dims: Vec<(String, i64)>,
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq)]
pub enum LossKind {
    /// The model's single scalar float output.
    Output,
    /// Mean softmax cross-entropy of --logits against a new int64 input (--labels).
    CrossEntropy,
    /// Mean squared error of the output (--output) against a new input (--target).
    Mse,
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq)]
pub enum BatchNormMode {
    /// Differentiate the graph as written (an eval-mode export uses running statistics).
    AsExported,
    /// Use batch statistics, as torch's train() does.
    Train,
}

#[derive(Args, Debug, Clone)]
pub struct LossArgs {
    /// The loss; default: the model's scalar output if it has one, else cross-entropy.
    #[arg(long, value_enum)]
    pub loss: Option<LossKind>,
    /// Logits output for --loss cross-entropy (default: the first float output).
    #[arg(long, value_name = "OUTPUT")]
    pub logits: Option<String>,
    /// Name of the new labels input for --loss cross-entropy.
    #[arg(long, value_name = "NAME", default_value = "labels")]
    pub labels: String,
    /// Name of the new target input for --loss mse.
    #[arg(long, value_name = "NAME", default_value = "target")]
    pub target: String,
    /// Output compared with the target for --loss mse (default: the single output).
    #[arg(long, value_name = "OUTPUT")]
    pub output: Option<String>,
    /// Do not train initializers matching this glob (repeatable): --freeze 'embed.*'.
    #[arg(long, value_name = "GLOB")]
    pub freeze: Vec<String>,
    /// BatchNormalization statistics in the training graph.
    #[arg(long, value_enum, default_value = "as-exported")]
    pub batch_norm: BatchNormMode,
    /// Append an optimizer step: the graph then takes the trained parameters and the
    /// optimizer state as inputs (their initial values as defaults) and returns the loss, the
    /// updated parameters (`P.next`) and the updated state, as torch.optim computes them
    /// (docs/cli.md, "Training step").
    #[arg(long, value_enum, help_heading = "Training step")]
    pub optimizer: Option<OptimizerKind>,
    /// Learning rate of --optimizer.
    #[arg(long, default_value_t = 1e-3, help_heading = "Training step")]
    pub lr: f64,
    /// Momentum of --optimizer momentum.
    #[arg(long, default_value_t = 0.9, help_heading = "Training step")]
    pub momentum: f64,
    /// Weight decay of --optimizer (default: 0 for sgd and momentum, 0.01 for adamw, as
    /// torch.optim).
    #[arg(long, help_heading = "Training step")]
    pub weight_decay: Option<f64>,
    /// AdamW's β1,β2.
    #[arg(long, value_name = "B1,B2", value_delimiter = ',', num_args = 1, default_values_t = [0.9, 0.999], help_heading = "Training step")]
    pub betas: Vec<f64>,
    /// AdamW's ε.
    #[arg(long, default_value_t = 1e-8, help_heading = "Training step")]
    pub eps: f64,
    /// Trained parameters as graph inputs (their initial values as defaults) and gradients as
    /// outputs, for a loop that applies its own update (implied by --optimizer).
    #[arg(long, help_heading = "Training step")]
    pub params_as_inputs: bool,
}

/// The optimizer step of `--optimizer`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum OptimizerKind {
    /// Plain SGD: p − lr·(g + wd·p).
    Sgd,
    /// SGD with momentum (torch.optim.SGD, no dampening).
    Momentum,
    /// AdamW (torch.optim.AdamW, decoupled weight decay, bias correction).
    Adamw,
}

#[derive(Args, Debug)]
pub struct InspectArgs {
    #[command(flatten)]
    pub model: ModelArgs,
    #[command(flatten)]
    pub loss: LossArgs,
    /// Machine-readable JSON (documented in docs/cli.md).
    #[arg(long)]
    pub json: bool,
}

#[derive(Args, Debug)]
pub struct TrainGraphArgs {
    #[command(flatten)]
    pub model: ModelArgs,
    #[command(flatten)]
    pub loss: LossArgs,
    /// Where to write the training graph.
    #[arg(short = 'o', long = "output-file", value_name = "OUT")]
    pub out: PathBuf,
    /// Also write the step's initial parameters and optimizer state (zeros) to FILE, in the
    /// safetensors format (for `onnx-ac train --state`; needs --optimizer or
    /// --params-as-inputs).
    #[arg(long, value_name = "FILE", help_heading = "Training step")]
    pub init_state: Option<PathBuf>,
}

#[derive(Args, Debug)]
pub struct MainArgs {
    /// The ONNX model.
    #[arg(required = true)]
    pub model: Option<PathBuf>,
    /// Memory budget. It bounds the peak of the whole training step as ONNX Runtime allocates
    /// it (weights, prepacked weights, inputs, activations, gradients, transients), not the
    /// process's code, the allocator's arena slack or Python; the summary's "step peak" is in
    /// the same terms. 2GB, 1.5GiB, 512MiB, 1000000B; a percentage of the peak without
    /// recomputation (60%); or the share of activation memory to keep (30%act: the peak
    /// without recomputation with only 30% of the forward buffers its backward keeps, plus the
    /// gradients that peak has not allocated yet; docs/cli.md).
    #[arg(
        long,
        required_unless_present = "stop_after",
        allow_hyphen_values = true
    )]
    pub budget: Option<Budget>,
    /// Where to write the rewritten training graph.
    #[arg(
        short = 'o',
        long = "output-file",
        value_name = "OUT",
        required_unless_present = "stop_after"
    )]
    pub out: Option<PathBuf>,
    /// Bind a symbolic input dimension: --dim batch=8 (repeatable).
    #[arg(long = "dim", value_name = "NAME=VALUE", value_parser = onnx_ac::parse_dim)]
    pub dims: Vec<(String, i64)>,
    #[command(flatten)]
    pub loss: LossArgs,
    #[command(flatten)]
    pub plan: PlanArgs,
    #[command(flatten)]
    pub runtime: RuntimeArgs,
    /// Write the per-activation decisions (CSV) here.
    #[arg(long, value_name = "CSV")]
    pub decisions: Option<PathBuf>,
    /// Also write the step's initial parameters and optimizer state (zeros) to FILE, in the
    /// safetensors format (for `onnx-ac train --state`; needs --optimizer or
    /// --params-as-inputs).
    #[arg(long, value_name = "FILE", help_heading = "Training step")]
    pub init_state: Option<PathBuf>,
    /// Print the summary as JSON (documented in docs/cli.md) instead of a table.
    #[arg(long)]
    pub json: bool,
    /// Run the original and the rewritten graph in ONNX Runtime: same loss and gradients,
    /// measured peak and step time.
    #[arg(long)]
    pub verify: bool,
    /// Also write a self-contained HTML report here: the summary, live memory over the step
    /// before and after by category with the budget and the peak, the tensors live at the
    /// peak, the decisions folded per layer, simulated vs measured peaks (docs/report.md).
    #[arg(long, value_name = "HTML")]
    pub report: Option<PathBuf>,
    /// Print the IR text of the graph after pass NAME to standard error, or into --dump-dir
    /// (repeatable; the passes in pipeline order: lower, infer-shapes, autodiff,
    /// order-backward, runtime-weights, recompute, pin-late, hide-backward-shapes;
    /// docs/cli.md, *Passes*).
    #[arg(long, value_name = "NAME", value_parser = pass_names(), help_heading = "Passes")]
    pub dump_after: Vec<String>,
    /// Stop after pass NAME: dump the IR after it (as --dump-after) and exit 0 without
    /// writing any output (-o and --budget are then needed only from runtime-weights on).
    #[arg(long, value_name = "NAME", value_parser = pass_names(), help_heading = "Passes")]
    pub stop_after: Option<String>,
    /// Write each dump to DIR/NN-NAME.ir (NN: the pass's place in the pipeline, from 01)
    /// instead of standard error.
    #[arg(long, value_name = "DIR", help_heading = "Passes")]
    pub dump_dir: Option<PathBuf>,
}

/// The names `--dump-after` and `--stop-after` accept: every pass of the pipeline.
fn pass_names() -> clap::builder::PossibleValuesParser {
    clap::builder::PossibleValuesParser::new(onnx_ac_passes::pass::pass_names())
}

#[derive(Args, Debug, Clone)]
pub struct PlanArgs {
    /// The planner: ac (the cheapest fitting plan of a pool of simulated plans, the default),
    /// optimal (integer program solved by microlp, the quality reference; 60 s per solve,
    /// docs/cli.md), mutwo (μ-TWO's greedy recompute selection), or a preset policy (none,
    /// selective, full: they ignore the budget).
    #[arg(long, default_value = "ac", value_parser = ["ac", "optimal", "mutwo", "none", "selective", "full"])]
    pub planner: String,
    /// A preset policy instead of a planner (same as --planner none|selective|full; not
    /// with --planner).
    #[arg(long, value_parser = ["none", "selective", "full"], conflicts_with_all = ["plan_file", "planner"])]
    pub policy: Option<String>,
    /// Apply a saved plan (JSON from --save-plan) instead of planning.
    #[arg(long = "plan", value_name = "PLAN.json")]
    pub plan_file: Option<PathBuf>,
    /// Save the plan as JSON.
    #[arg(long, value_name = "PLAN.json")]
    pub save_plan: Option<PathBuf>,
    /// When the budget is unreachable, write the planner's lowest-peak plan anyway (exit code
    /// 0, with a warning) instead of exiting 3.
    #[arg(long)]
    pub best_effort: bool,
    /// Cost model: analytic (FLOPs and bytes on --device, the default: the same command gives
    /// the same outputs on every run), measured (profile with ONNX Runtime now and calibrate
    /// the analytic model per op type with it: follows this run's timings), or fixed (a
    /// constant table, for tests).
    #[arg(long, value_parser = ["measured", "analytic", "fixed"])]
    pub cost: Option<String>,
    /// A profile written by `onnx-ac profile`: calibrates the analytic model as --cost
    /// measured does, without running (reproducible measured costs).
    #[arg(long, value_name = "PROFILE.json")]
    pub profile: Option<PathBuf>,
    /// The most memory the default profiling may give the step it runs (its simulated peak
    /// without recomputation, in the budget's terms); default: the budget, or no limit with
    /// --verify (which runs that step anyway). A step above it is profiled at halved --dim
    /// values (batch first), its node times scaled back by the analytic model; with no --dim
    /// to halve, node times are estimated (analytic).
    #[arg(long, value_name = "SIZE", value_parser = parse_size)]
    pub profile_limit: Option<u64>,
    /// Device of the analytic cost model.
    #[arg(long, default_value = "cpu", value_parser = ["cpu", "a100", "h100"])]
    pub device: String,
    /// Emit the rewrite without its defences against ONNX Runtime (the late data dependency
    /// and the hidden backward dims), for measuring their effect: ONNX Runtime then undoes
    /// most of the saving.
    #[arg(long, hide = true)]
    pub no_pin: bool,
}

impl PlanArgs {
    /// The cost model these flags ask for.
    pub fn cost_choice(&self) -> onnx_ac::pipeline::CostChoice {
        onnx_ac::pipeline::CostChoice {
            cost: self.cost.clone(),
            profile: self.profile.clone(),
            device: self.device.clone(),
        }
    }
}

impl RuntimeArgs {
    /// How these flags run ONNX Runtime.
    pub fn choice(&self) -> onnx_ac::runtime::RuntimeChoice {
        onnx_ac::runtime::RuntimeChoice {
            ort_lib: self.ort_lib.clone(),
            ep: if self.ep == "cuda" {
                onnx_ac::runtime::Ep::Cuda
            } else {
                onnx_ac::runtime::Ep::Cpu
            },
            runs: self.runs,
        }
    }
}

#[derive(Args, Debug, Clone)]
pub struct RuntimeArgs {
    /// libonnxruntime to load (default: ORT_DYLIB_PATH, else the onnxruntime package of the
    /// python3 on PATH, else the .venv of the project the binary was built in; never the
    /// current directory).
    #[arg(long, value_name = "PATH")]
    pub ort_lib: Option<PathBuf>,
    /// Execution provider for profiling and --verify.
    #[arg(long, default_value = "cpu", value_parser = ["cpu", "cuda"])]
    pub ep: String,
    /// Measured runs for profiling, --verify and verify timing (1 to 1000000).
    #[arg(long, default_value_t = 5, value_parser = parse_runs)]
    pub runs: usize,
}

/// The most measured or warm-up runs a command accepts: bounds the time buffers
/// (`Vec::with_capacity(runs)`) and the `warmup + runs` count, which once overflowed for
/// `--runs 18446744073709551615`. A million runs of even a tiny model take hours.
pub const MAX_RUNS: usize = 1_000_000;

/// `--runs` of every command (profile, verify, the main command): an integer in
/// 1..=[`MAX_RUNS`]. Zero measured runs has no median, so it is a usage error (exit 2) in
/// every command, from this one parser.
pub fn parse_runs(s: &str) -> Result<usize, String> {
    match parse_count(s)? {
        0 => Err("--runs must be at least 1 (the step time is a median over the runs)".into()),
        n => Ok(n),
    }
}

/// `profile --warmup`: an integer in 0..=[`MAX_RUNS`] (no warm-up is allowed).
pub fn parse_warmup(s: &str) -> Result<usize, String> {
    parse_count(s)
}

fn parse_count(s: &str) -> Result<usize, String> {
    let n: u64 = s
        .parse()
        .map_err(|_| format!("'{s}' is not a non-negative integer"))?;
    usize::try_from(n)
        .ok()
        .filter(|&n| n <= MAX_RUNS)
        .ok_or_else(|| format!("{n} is above the most runs onnx-ac accepts ({MAX_RUNS})"))
}

/// A size in bytes (`2GB`, `512MiB`, `1000000`): a budget that is neither a percentage.
pub fn parse_size(s: &str) -> Result<u64, String> {
    match s.parse::<Budget>().map_err(|e| e.to_string())? {
        Budget::Bytes(b) => Ok(b),
        _ => Err(format!("'{s}' is not a size in bytes (e.g. 2GB, 512MiB)")),
    }
}

fn parse_host(s: &str) -> Result<onnx_ac::plan::host::Host, String> {
    onnx_ac::plan::host::Host::parse(s).map_err(|e| e.to_string())
}

/// Execution provider on the command line.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum EpArg {
    #[default]
    Cpu,
    Cuda,
}

impl From<EpArg> for onnx_ac::runtime::Ep {
    fn from(e: EpArg) -> onnx_ac::runtime::Ep {
        match e {
            EpArg::Cpu => onnx_ac::runtime::Ep::Cpu,
            EpArg::Cuda => onnx_ac::runtime::Ep::Cuda,
        }
    }
}

/// `onnx-ac profile`: build the training graph, run it with ONNX Runtime, write the profile.
#[derive(clap::Args, Debug)]
pub struct ProfileArgs {
    #[command(flatten)]
    pub model: ModelArgs,
    #[command(flatten)]
    pub loss: LossArgs,
    /// Where to write the profile (JSON, see docs/profiling.md).
    #[arg(short = 'o', long = "output-file", value_name = "OUT")]
    pub out: PathBuf,
    /// Measured runs; per-node times are medians over them (1 to 1000000).
    #[arg(long, default_value_t = 5, value_parser = parse_runs)]
    pub runs: usize,
    /// Unmeasured warm-up runs before them (0 to 1000000).
    #[arg(long, default_value_t = 1, value_parser = parse_warmup)]
    pub warmup: usize,
    /// Execution provider.
    #[arg(long, value_enum, default_value = "cpu")]
    pub ep: EpArg,
    /// The libonnxruntime to use (file or folder); default: ORT_DYLIB_PATH, else the
    /// onnxruntime package of the python3 on PATH, else the .venv of the project the binary
    /// was built in; never the current directory.
    #[arg(long, value_name = "PATH")]
    pub ort_lib: Option<PathBuf>,
    /// Seed of the random inputs.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// ONNX Runtime intra-op threads (default: one per physical core).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    pub threads: Option<u64>,
}

impl ProfileArgs {
    pub fn options(&self) -> onnx_ac::profile::ProfileOptions {
        onnx_ac::profile::ProfileOptions {
            runs: self.runs,
            warmup: self.warmup,
            ep: self.ep.into(),
            ort_lib: self.ort_lib.clone(),
            seed: self.seed,
            intra_threads: self.threads.map(|t| t as usize),
            progress: true,
        }
    }
}

/// `onnx-ac estimate` (docs/estimate.md).
#[derive(Args, Debug)]
pub struct EstimateArgs {
    /// The ONNX model. Weights may be absent: an initializer whose external data file is
    /// missing or too short, or that holds no data, counts by its shape and dtype.
    pub model: PathBuf,
    /// Bind a symbolic input dimension: --dim batch=1; one --dim may list values, one
    /// column group each: --dim seq=512,1024,2048 (repeatable).
    #[arg(long = "dim", value_name = "NAME=VALUE[,VALUE...]", value_parser = parse_dim_list)]
    pub dims: Vec<(String, Vec<i64>)>,
    #[command(flatten)]
    pub loss: LossArgs,
    /// Also estimate the `ac` planner's plan under this budget (the main command's --budget:
    /// 80GB, 60%, 30%act), per value of the listed dimension.
    #[arg(long)]
    pub budget: Option<Budget>,
    /// Graph inputs whose names match GLOB (float, static shape after --dim) are parameters:
    /// trained, with gradients and optimizer state, as if they were initializers without data
    /// (repeatable; '*' takes every float input).
    #[arg(long, value_name = "GLOB")]
    pub params_from_inputs: Vec<String>,
    /// Device of the analytic cost model (the recompute time column).
    #[arg(long, default_value = "cpu", value_parser = ["cpu", "a100", "h100"])]
    pub device: String,
    /// Print the estimate as JSON (docs/estimate.md) instead of a table.
    #[arg(long)]
    pub json: bool,
    /// Write the stacked-bar chart here (a self-contained SVG file).
    #[arg(long, value_name = "SVG")]
    pub chart: Option<PathBuf>,
}

/// `NAME=V` or `NAME=V1,V2,...` (positive, distinct; the sweep's parser).
pub fn parse_dim_list(s: &str) -> std::result::Result<(String, Vec<i64>), String> {
    let d = onnx_ac::sweep::parse_dim_values(s)?;
    if d.values.len() > onnx_ac::estimate::MAX_SWEEP_VALUES {
        return Err(format!(
            "--dim {}: {} values, at most {}",
            d.name,
            d.values.len(),
            onnx_ac::estimate::MAX_SWEEP_VALUES
        ));
    }
    Ok((d.name, d.values))
}
