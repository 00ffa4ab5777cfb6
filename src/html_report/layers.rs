//! The decisions folded per repeated layer: rows are grouped by the layer their value belongs
//! to (found from its name, `/transformer/h.3/attn/...`, else from the exporter's module
//! namespace of its producer, `transformer.h.3.attn`), and consecutive layers whose pattern of
//! recomputed and retained activations is the same are shown once ("h.1–h.5: same pattern").
//! Values in no repeated layer (no index, or an index no other layer shares) are listed as they
//! are.

use crate::report::Decision;
use onnx_ac_passes::ir::Graph;
use std::collections::BTreeMap;

/// Where a value sits in a repeated layer.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Place {
    /// What comes before the layer index (`/transformer/h.`), which names the layer stack.
    prefix: String,
    index: u64,
    /// The value's name with the index replaced by `*`, the same in every layer.
    key: String,
}

/// The first layer index of `s`: a run of digits right after a `.` that follows a name
/// character, and followed by `/` (a scope in a value name, `h.3/`) or, with `module`, by `.`
/// or the end (a module path, `h.3.attn`). Returns (prefix, index, rest).
fn layer_index(s: &str, module: bool) -> Option<(&str, u64, &str)> {
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if !b[i].is_ascii_digit() {
            i += 1;
            continue;
        }
        let start = i;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        let after_dot = start >= 2
            && b[start - 1] == b'.'
            && (b[start - 2].is_ascii_alphanumeric() || b[start - 2] == b'_');
        let ends = match b.get(i) {
            Some(b'/') => true,
            Some(b'.') | None => module,
            _ => false,
        };
        if after_dot && ends && i - start <= 6 {
            if let Ok(n) = s[start..i].parse() {
                return Some((&s[..start], n, &s[i..]));
            }
        }
    }
    None
}

/// The deepest module of a torch.export node's `namespace` metadata
/// (`: Root/transformer: GPT2Model/transformer.h.0: GPT2Block/softmax: aten.softmax.int`):
/// its entries are `name: class`, the last one the node itself.
fn deepest_module(namespace: &str) -> Option<&str> {
    let entries: Vec<&str> = namespace.split('/').collect();
    if entries.len() < 3 {
        return None;
    }
    entries[entries.len() - 2].split(": ").next()
}

/// The place of each decision's value (`None`: no layer index found).
fn places(rows: &[Decision], g: &Graph) -> Vec<Option<Place>> {
    let by_name = g.value_by_name();
    // Repeated (module, op) within one layer are numbered in creation order.
    let mut seen: BTreeMap<(String, u64, String), usize> = BTreeMap::new();
    rows.iter()
        .map(|r| {
            if let Some((prefix, index, rest)) = layer_index(&r.activation_name, false) {
                return Some(Place {
                    prefix: prefix.to_string(),
                    index,
                    key: format!("{prefix}*{rest}"),
                });
            }
            let p = by_name
                .get(r.activation_name.as_str())
                .and_then(|&v| g.value(v).producer)?;
            let node = g.node(p);
            let ns = node
                .metadata
                .iter()
                .find(|(k, _)| k == "namespace")
                .map(|(_, v)| v.as_str())?;
            let module = deepest_module(ns)?;
            let (prefix, index, rest) = layer_index(module, true)?;
            let base = format!("{prefix}*{rest}: {}", node.op_type);
            let n = seen
                .entry((prefix.to_string(), index, base.clone()))
                .or_default();
            *n += 1;
            let key = if *n > 1 { format!("{base} #{n}") } else { base };
            Some(Place {
                prefix: prefix.to_string(),
                index,
                key,
            })
        })
        .collect()
}

/// One activation of a layer's pattern.
#[derive(Clone, Debug, PartialEq)]
pub struct PatternRow {
    /// The value's name with the layer index as `*`.
    pub key: String,
    pub decision: &'static str,
    /// Per layer.
    pub bytes: u64,
    /// Mean over the folded layers.
    pub recomp_time_s: f64,
}

/// Consecutive layers with one pattern.
#[derive(Clone, Debug, PartialEq)]
pub struct LayerRun {
    /// How a layer is named: the last part of the prefix (`h.`).
    pub label: String,
    pub first: u64,
    pub last: u64,
    pub pattern: Vec<PatternRow>,
}

impl LayerRun {
    pub fn layers(&self) -> u64 {
        self.last - self.first + 1
    }

    /// `h.1–h.5`, or `h.3` for one layer.
    pub fn title(&self) -> String {
        if self.first == self.last {
            format!("{}{}", self.label, self.first)
        } else {
            format!(
                "{}{}\u{2013}{}{}",
                self.label, self.first, self.label, self.last
            )
        }
    }

    /// Bytes per layer with the given decision.
    pub fn bytes(&self, decision: &str) -> u64 {
        self.pattern
            .iter()
            .filter(|p| p.decision == decision)
            .map(|p| p.bytes)
            .sum()
    }
}

/// The decisions, folded.
#[derive(Clone, Debug, Default)]
pub struct Folded {
    /// In the order of the layers' first activation.
    pub runs: Vec<LayerRun>,
    /// Rows in no repeated layer, in creation order.
    pub outside: Vec<Decision>,
}

/// A layer's pattern: (key, decision, bytes) per row.
type Pattern = Vec<(String, &'static str, u64)>;

/// A run being folded: first and last layer index, their pattern, their rows.
type Pending = (u64, u64, Pattern, Vec<usize>);

/// Folds `rows` (decisions of the training graph `g`, in creation order).
pub fn fold(rows: &[Decision], g: &Graph) -> Folded {
    let places = places(rows, g);
    // Layers per stack: prefix → index → row numbers.
    let mut stacks: BTreeMap<&str, BTreeMap<u64, Vec<usize>>> = BTreeMap::new();
    for (k, p) in places.iter().enumerate() {
        if let Some(p) = p {
            stacks
                .entry(p.prefix.as_str())
                .or_default()
                .entry(p.index)
                .or_default()
                .push(k);
        }
    }
    // A stack of one layer is not a repeated layer.
    stacks.retain(|_, layers| layers.len() >= 2);
    let mut in_layer = vec![false; rows.len()];
    // (first row of the run, run)
    let mut runs: Vec<(usize, LayerRun)> = Vec::new();
    for (prefix, layers) in &stacks {
        let label = prefix.rsplit('/').next().unwrap_or(prefix).to_string();
        let pattern_of = |ks: &[usize]| -> Pattern {
            ks.iter()
                .map(|&k| {
                    let p = places[k].as_ref().expect("placed");
                    (
                        p.key.clone(),
                        rows[k].decision,
                        rows[k].median_mem_size_bytes,
                    )
                })
                .collect()
        };
        let mut current: Option<Pending> = None;
        let mut flush = |c: Pending| {
            let (first, last, pattern, ks) = c;
            let n = (last - first + 1) as f64;
            let per = pattern.len();
            let pattern = pattern
                .into_iter()
                .enumerate()
                .map(|(j, (key, decision, bytes))| {
                    // The j-th row of each folded layer.
                    let time: f64 = ks
                        .chunks(per)
                        .filter_map(|c| c.get(j))
                        .map(|&k| rows[k].recomp_time_s)
                        .sum();
                    PatternRow {
                        key,
                        decision,
                        bytes,
                        recomp_time_s: time / n,
                    }
                })
                .collect();
            runs.push((
                ks.iter().copied().min().unwrap_or(0),
                LayerRun {
                    label: label.clone(),
                    first,
                    last,
                    pattern,
                },
            ));
        };
        for (&index, ks) in layers {
            for &k in ks {
                in_layer[k] = true;
            }
            let pattern = pattern_of(ks);
            current = match current.take() {
                Some((first, last, p, mut all)) if last + 1 == index && p == pattern => {
                    all.extend(ks);
                    Some((first, index, p, all))
                }
                other => {
                    if let Some(c) = other {
                        flush(c);
                    }
                    Some((index, index, pattern, ks.clone()))
                }
            };
        }
        if let Some(c) = current {
            flush(c);
        }
    }
    runs.sort_by_key(|(first_row, _)| *first_row);
    Folded {
        runs: runs.into_iter().map(|(_, r)| r).collect(),
        outside: rows
            .iter()
            .zip(&in_layer)
            .filter(|(_, &l)| !l)
            .map(|(r, _)| r.clone())
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layer_indices_in_names_and_module_paths() {
        assert_eq!(
            layer_index("/transformer/h.3/attn/Softmax_output_0", false),
            Some(("/transformer/h.", 3, "/attn/Softmax_output_0"))
        );
        assert_eq!(
            layer_index("/model/layers.12/mlp/Mul_output_0", false),
            Some(("/model/layers.", 12, "/mlp/Mul_output_0"))
        );
        // Op counters and names without a scope index are not layers.
        assert_eq!(layer_index("/h/MatMul_1_output_0", false), None);
        assert_eq!(layer_index("/conv1/Conv_output_0", false), None);
        assert_eq!(layer_index("onnx::Add.3", false), None);
        assert_eq!(layer_index("val_188", false), None);
        assert_eq!(layer_index("add_5", false), None);
        assert_eq!(
            layer_index("transformer.h.0.attn", true),
            Some(("transformer.h.", 0, ".attn"))
        );
        assert_eq!(
            layer_index("transformer.h.11", true),
            Some(("transformer.h.", 11, ""))
        );
        assert_eq!(
            deepest_module(": Root/transformer: M/transformer.h.0: B/softmax: aten.softmax.int"),
            Some("transformer.h.0")
        );
    }

    fn row(name: &str, decision: &'static str, bytes: u64) -> Decision {
        Decision {
            activation_name: name.into(),
            decision,
            median_mem_size_bytes: bytes,
            recomp_time_s: 1e-3,
            creation_rank: 0,
            first_bw_use_rank: 0,
            last_fw_use_rank: 0,
            recompute_sources: String::new(),
        }
    }

    #[test]
    fn consecutive_layers_with_one_pattern_fold() {
        let mut rows = vec![row("/emb/Add_output_0", "RETAINED", 10)];
        for l in 0..8 {
            rows.push(row(&format!("/m/layers.{l}/Add_output_0"), "RETAINED", 4));
            // Layer 3 keeps its softmax: it breaks the run.
            let d = if l == 3 { "RETAINED" } else { "RECOMPUTE" };
            rows.push(row(&format!("/m/layers.{l}/Softmax_output_0"), d, 16));
        }
        rows.push(row("/lonely.0/X_output_0", "RECOMPUTE", 1));
        let f = fold(&rows, &Graph::default());
        let titles: Vec<String> = f.runs.iter().map(LayerRun::title).collect();
        assert_eq!(
            titles,
            ["layers.0–layers.2", "layers.3", "layers.4–layers.7"]
        );
        assert_eq!(f.runs[0].bytes("RECOMPUTE"), 16);
        assert_eq!(f.runs[1].bytes("RECOMPUTE"), 0);
        assert_eq!(f.runs[2].pattern[1].key, "/m/layers.*/Softmax_output_0");
        assert!((f.runs[2].pattern[1].recomp_time_s - 1e-3).abs() < 1e-12);
        // Rows in no repeated layer stay as they are.
        let outside: Vec<&str> = f
            .outside
            .iter()
            .map(|r| r.activation_name.as_str())
            .collect();
        assert_eq!(outside, ["/emb/Add_output_0", "/lonely.0/X_output_0"]);
    }
}
