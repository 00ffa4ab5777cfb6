//! Command-line arguments (clap). Kept apart from main.rs so tests can parse them.

use crate::size::Budget;
use clap::{Args, Parser, Subcommand, ValueEnum};
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
    #[command(flatten)]
    pub main: MainArgs,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Show a model's ops, parameters, inputs, outputs and activation memory.
    Inspect(InspectArgs),
    /// Write the training graph (forward + loss + backward) of a model.
    TrainGraph(TrainGraphArgs),
}

#[derive(Args, Debug, Clone)]
pub struct ModelArgs {
    /// The ONNX model.
    pub model: PathBuf,
    /// Bind a symbolic input dimension: --dim batch=8 (repeatable).
    #[arg(long = "dim", value_name = "NAME=VALUE", value_parser = crate::parse_dim)]
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
}

#[derive(Args, Debug)]
pub struct MainArgs {
    /// The ONNX model.
    #[arg(required = true)]
    pub model: Option<PathBuf>,
    /// Memory budget: 2GB, 1.5GiB, 512MiB, 1000000B, or a percentage of the peak without
    /// recomputation (60%).
    #[arg(long, required = true)]
    pub budget: Option<Budget>,
    /// Where to write the rewritten training graph.
    #[arg(short = 'o', long = "output-file", value_name = "OUT", required = true)]
    pub out: Option<PathBuf>,
    /// Bind a symbolic input dimension: --dim batch=8 (repeatable).
    #[arg(long = "dim", value_name = "NAME=VALUE", value_parser = crate::parse_dim)]
    pub dims: Vec<(String, i64)>,
    #[command(flatten)]
    pub loss: LossArgs,
}
