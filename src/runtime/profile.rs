//! Per-node times from ONNX Runtime's per-run profile (Chrome-trace JSON).
//!
//! Each executed node gives one event with `"cat": "Node"`, name `<node name>_kernel_time`,
//! `dur` in microseconds and `args` holding `op_name`, `provider`, `output_size`, ...
//! Fused nodes carry the fused name (e.g. `.../MatMulAddFusion`); profile with graph
//! optimizations disabled to map times back to the model's own nodes exactly.

use super::error::RuntimeError;
use serde_json::Value;
use std::path::{Path, PathBuf};

/// Time of one executed node in one run.
#[derive(Clone, Debug, PartialEq)]
pub struct NodeTime {
    /// The node's name in the (possibly optimized) graph ONNX Runtime ran.
    pub node_name: String,
    pub op_type: String,
    /// The execution provider that ran it, e.g. "CPUExecutionProvider".
    pub provider: String,
    pub duration_us: f64,
    /// Bytes of the node's outputs (the profiler's `output_size`), when reported.
    pub output_bytes: Option<u64>,
}

const KERNEL_SUFFIX: &str = "_kernel_time";

/// Parses a profile and returns the kernel events in the order they appear (execution order).
pub fn parse_profile(json: &str) -> Result<Vec<NodeTime>, RuntimeError> {
    let doc: Value = serde_json::from_str(json).map_err(|e| RuntimeError::Profile {
        reason: format!("the profile is not valid JSON: {e}"),
    })?;
    let events = match &doc {
        Value::Array(a) => a,
        Value::Object(o) => match o.get("traceEvents") {
            Some(Value::Array(a)) => a,
            _ => {
                return Err(RuntimeError::Profile {
                    reason: "the profile has no event list".to_string(),
                })
            }
        },
        _ => {
            return Err(RuntimeError::Profile {
                reason: "the profile is neither a list nor an object".to_string(),
            })
        }
    };
    let mut out = Vec::new();
    for ev in events {
        if ev.get("cat").and_then(Value::as_str) != Some("Node") {
            continue;
        }
        let Some(name) = ev.get("name").and_then(Value::as_str) else {
            continue;
        };
        let Some(node_name) = name.strip_suffix(KERNEL_SUFFIX) else {
            continue;
        };
        let args = ev.get("args");
        let arg_str = |k: &str| {
            args.and_then(|a| a.get(k))
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string()
        };
        out.push(NodeTime {
            node_name: node_name.to_string(),
            op_type: arg_str("op_name"),
            provider: arg_str("provider"),
            duration_us: ev.get("dur").and_then(number).unwrap_or(0.0),
            output_bytes: args
                .and_then(|a| a.get("output_size"))
                .and_then(number)
                .filter(|v| *v >= 0.0)
                .map(|v| v as u64),
        });
    }
    Ok(out)
}

/// A JSON number, or a string holding one (ONNX Runtime writes `args` values as strings).
fn number(v: &Value) -> Option<f64> {
    match v {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// Reads and parses the single profile file written into `dir`.
pub(crate) fn read_profile_dir(dir: &Path) -> Result<Vec<NodeTime>, RuntimeError> {
    let entries = std::fs::read_dir(dir).map_err(|source| RuntimeError::Io {
        path: dir.to_path_buf(),
        source,
    })?;
    let mut files: Vec<PathBuf> = entries
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    files.sort();
    let Some(file) = files.last() else {
        return Err(RuntimeError::Profile {
            reason: format!(
                "ONNX Runtime wrote no profile into {}; run again with profiling enabled",
                dir.display()
            ),
        });
    };
    let text = std::fs::read_to_string(file).map_err(|source| RuntimeError::Io {
        path: file.clone(),
        source,
    })?;
    parse_profile(&text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_kernel_events() {
        let json = r#"[
          {"cat":"Session","name":"model_run","dur":100,"ts":1,"args":{}},
          {"cat":"Node","name":"mul_0_fence_before","dur":0,"ts":2,"args":{"op_name":"Mul"}},
          {"cat":"Node","name":"mul_0_kernel_time","dur":42,"ts":3,
           "args":{"op_name":"Mul","provider":"CPUExecutionProvider","output_size":"4194304"}},
          {"cat":"Node","name":"_kernel_time","dur":7,"ts":4,"args":{"op_name":"Relu"}}
        ]"#;
        let t = parse_profile(json).unwrap();
        assert_eq!(t.len(), 2);
        assert_eq!(t[0].node_name, "mul_0");
        assert_eq!(t[0].op_type, "Mul");
        assert_eq!(t[0].provider, "CPUExecutionProvider");
        assert_eq!(t[0].duration_us, 42.0);
        assert_eq!(t[0].output_bytes, Some(4_194_304));
        assert_eq!(t[1].node_name, "");
        assert_eq!(t[1].output_bytes, None);
    }

    #[test]
    fn rejects_garbage() {
        assert!(matches!(
            parse_profile("not json"),
            Err(RuntimeError::Profile { .. })
        ));
    }
}
