//! Random inputs for running a graph: deterministic for a seed, and in range for how each
//! input is used.
//!
//! * float inputs: uniform in [-1, 1);
//! * attention masks (named `*mask*`, or cast to bool, or subtracted from 1): all ones;
//! * `token_type_ids` (named `*token_type*`): zeros;
//! * other integer inputs: uniform in [0, bound), where the bound is found by following the
//!   input's consumers through value-preserving ops (Reshape, Cast to an integer type,
//!   Unsqueeze, Concat, ...) to the ops that index with it: Gather / GatherElements /
//!   ScatterElements (the data's dim at `axis`), GatherND / ScatterND (the smallest indexed
//!   dim) and OneHot (`depth`). Token ids get `[0, vocab)`, cross-entropy labels
//!   `[0, classes)` (our loss reads them with GatherElements on the `[N, C]` log-probabilities).
//!   Without such a consumer: [0, 2).
//! * bool inputs: random bits (true for masks).

use super::ProfileError;
use crate::runtime::HostTensor;
use onnx_ac_passes::ir::{static_dims, DType, Graph, NodeId, ValueId};
use onnx_ac_passes::ops::{self, IndexBound};

/// SplitMix64: a tiny, good-enough PRNG (Steele, Lea & Flood 2014), deterministic everywhere.
#[derive(Clone, Debug)]
pub struct SplitMix64(u64);

impl SplitMix64 {
    pub fn new(seed: u64) -> SplitMix64 {
        SplitMix64(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1) with 53 random bits.
    pub fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// Uniform in [0, n) for n > 0 (multiply-shift; the bias is below 2^-32 for our bounds).
    pub fn below(&mut self, n: u64) -> u64 {
        ((self.next_u64() as u128 * n as u128) >> 64) as u64
    }
}

/// FNV-1a, so that each input's stream depends on the seed and its name, not its position.
fn name_hash(name: &str) -> u64 {
    name.bytes().fold(0xCBF2_9CE4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01B3)
    })
}

/// What values an integer or bool input gets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InputKind {
    /// Uniform floats in [-1, 1).
    Float,
    /// All ones (attention masks).
    Ones,
    /// All zeros (token type ids).
    Zeros,
    /// Uniform integers in [0, bound).
    Below(i64),
}

/// Ops whose integer output holds (some of) the input's values unchanged, so an index bound
/// found past them applies to the input too (`OpDef::values`: which inputs carry them).
fn passes_values(op: &str, slot: usize) -> bool {
    ops::lookup(op).is_some_and(|d| d.values.contains(slot))
}

fn dims_of(g: &Graph, v: Option<ValueId>) -> Option<Vec<i64>> {
    static_dims(g.value(v?).shape.as_ref()?)
}

fn dim_at(dims: &[i64], axis: i64) -> Option<i64> {
    let r = dims.len() as i64;
    let a = if axis < 0 { axis + r } else { axis };
    (0..r).contains(&a).then(|| dims[a as usize])
}

fn const_i64(g: &Graph, v: Option<ValueId>) -> Option<Vec<i64>> {
    let v = g.value(v?);
    v.constant.as_ref().or(v.initializer.as_ref())?.as_i64()
}

/// The index bound a consumer imposes on its input `slot`, if it indexes with it.
fn bound_at(g: &Graph, n: NodeId, slot: usize) -> Option<i64> {
    let node = g.node(n);
    let axis = node.attr_int("axis").unwrap_or(0);
    let data = dims_of(g, node.input(0));
    let (index_slot, bound) = ops::lookup(&node.op_type)?.index_input?;
    if slot != index_slot {
        return None;
    }
    match bound {
        IndexBound::AxisDim => dim_at(&data?, axis),
        IndexBound::TupleDims => {
            let k = *dims_of(g, node.input(1))?.last()?;
            let b = node.attr_int("batch_dims").unwrap_or(0);
            let data = data?;
            let (lo, hi) = (b.max(0) as usize, (b + k).max(0) as usize);
            data.get(lo..hi)?.iter().copied().min()
        }
        IndexBound::Depth => const_i64(g, node.input(1))?.first().copied(),
    }
}

/// Follows `v`'s consumers through value-preserving ops; returns the smallest index bound
/// found, and whether the value is used as a mask (cast to bool, or `1 - v`).
fn walk(g: &Graph, consumers: &[Vec<NodeId>], v: ValueId, depth: usize) -> (Option<i64>, bool) {
    let mut bound: Option<i64> = None;
    let mut mask = false;
    if depth > 16 {
        return (None, false);
    }
    for &n in &consumers[v.index()] {
        let node = g.node(n);
        for (slot, _) in node
            .inputs
            .iter()
            .enumerate()
            .filter(|(_, i)| **i == Some(v))
        {
            if let Some(b) = bound_at(g, n, slot).filter(|&b| b > 0) {
                bound = Some(bound.map_or(b, |x| x.min(b)));
            }
            let op = node.op_type.as_str();
            let to = node.attr_int("to").and_then(|t| DType::from_onnx(t as i32));
            if op == "Cast" && to == Some(DType::Bool) {
                mask = true;
                continue;
            }
            if op == "Sub" && slot == 1 {
                let one = node.input(0).and_then(|a| {
                    let a = g.value(a);
                    a.constant.as_ref().or(a.initializer.as_ref())?.as_f64()
                });
                if one.is_some_and(|o| !o.is_empty() && o.iter().all(|&x| x == 1.0)) {
                    mask = true;
                }
            }
            let int_cast = op != "Cast" || to.is_some_and(DType::is_int);
            if passes_values(op, slot) && int_cast {
                for &o in node.outputs.iter().flatten() {
                    let (b, m) = walk(g, consumers, o, depth + 1);
                    if let Some(b) = b {
                        bound = Some(bound.map_or(b, |x| x.min(b)));
                    }
                    mask |= m;
                }
            }
        }
    }
    (bound, mask)
}

/// How the input `v` of `g` is filled by [`random_inputs`].
pub fn input_kind(g: &Graph, v: ValueId) -> InputKind {
    input_kind_with(g, &g.consumers(), v)
}

fn input_kind_with(g: &Graph, consumers: &[Vec<NodeId>], v: ValueId) -> InputKind {
    let value = g.value(v);
    if value.dtype.is_some_and(DType::is_float) {
        return InputKind::Float;
    }
    let name = value.name.to_ascii_lowercase();
    let (bound, used_as_mask) = walk(g, consumers, v, 0);
    if name.contains("mask") || (used_as_mask && bound.is_none()) {
        InputKind::Ones
    } else if name.contains("token_type") {
        InputKind::Zeros
    } else {
        InputKind::Below(bound.unwrap_or(2))
    }
}

/// Random values for every graph input of `g` (initializers excluded), in input order,
/// deterministic for `seed`. Every input needs a static shape and a numeric or bool type.
/// The most host memory one random input may take while it is filled (8 bytes per
/// element, then its own type): 4 GiB. A bound from `--dim` or the model that passes it
/// (say `--dim batch=1099511627776`) is refused before anything is allocated, not aborted
/// on by the allocator.
pub const MAX_INPUT_BYTES: u64 = 4 << 30;
/// The same for all random inputs of one graph together: 8 GiB.
pub const MAX_INPUTS_TOTAL_BYTES: u64 = 8 << 30;

pub fn random_inputs(g: &Graph, seed: u64) -> Result<Vec<HostTensor>, ProfileError> {
    let consumers = g.consumers();
    let mut out = Vec::new();
    let mut total = 0u64;
    for &v in &g.inputs {
        let value = g.value(v);
        if value.initializer.is_some() {
            continue;
        }
        let bad = |reason: String| ProfileError::Input {
            name: value.name.clone(),
            reason,
        };
        let dims = value
            .shape
            .as_ref()
            .and_then(|s| static_dims(s))
            .ok_or_else(|| {
                bad(format!(
                    "its shape {} is not static; bind symbolic dims with --dim NAME=VALUE",
                    onnx_ac_passes::ir::shape_string(value.shape.as_ref())
                ))
            })?;
        let dtype = value
            .dtype
            .ok_or_else(|| bad("its element type is unknown".into()))?;
        let numel = dims
            .iter()
            .try_fold(1usize, |n, &d| n.checked_mul(usize::try_from(d).ok()?))
            .ok_or_else(|| bad(format!("shape {dims:?} is too large")))?;
        // Refuse before allocating: filling goes through one f64 or i64 per element.
        let host_bytes = (numel as u64).saturating_mul(dtype.size_bytes().unwrap_or(1).max(8));
        if host_bytes > MAX_INPUT_BYTES {
            return Err(bad(format!(
                "shape {dims:?} of {dtype} needs {} of host memory to fill, above onnx-ac's limit of {} for one random input (lower the --dim values)",
                crate::size::human_bytes(host_bytes),
                crate::size::human_bytes(MAX_INPUT_BYTES)
            )));
        }
        total = total.saturating_add(host_bytes);
        if total > MAX_INPUTS_TOTAL_BYTES {
            return Err(bad(format!(
                "the random inputs up to this one need {} of host memory to fill, above onnx-ac's limit of {} for all of them (lower the --dim values)",
                crate::size::human_bytes(total),
                crate::size::human_bytes(MAX_INPUTS_TOTAL_BYTES)
            )));
        }
        let mut rng = SplitMix64::new(seed ^ name_hash(&value.name));
        let kind = input_kind_with(g, &consumers, v);
        let t = fill(&value.name, dtype, &dims, numel, kind, &mut rng).map_err(|reason| {
            ProfileError::Input {
                name: value.name.clone(),
                reason,
            }
        })?;
        out.push(t);
    }
    Ok(out)
}

fn fill(
    name: &str,
    dtype: DType,
    dims: &[i64],
    numel: usize,
    kind: InputKind,
    rng: &mut SplitMix64,
) -> Result<HostTensor, String> {
    let floats = |rng: &mut SplitMix64| -> Vec<f64> {
        (0..numel).map(|_| rng.next_f64() * 2.0 - 1.0).collect()
    };
    let ints = |rng: &mut SplitMix64| -> Vec<i64> {
        match kind {
            InputKind::Ones => vec![1; numel],
            InputKind::Zeros => vec![0; numel],
            InputKind::Below(b) => (0..numel)
                .map(|_| rng.below(b.max(1) as u64) as i64)
                .collect(),
            InputKind::Float => (0..numel).map(|_| rng.below(2) as i64).collect(),
        }
    };
    let data: Vec<u8> = match dtype {
        DType::Float => floats(rng)
            .into_iter()
            .flat_map(|x| (x as f32).to_le_bytes())
            .collect(),
        DType::Double => floats(rng)
            .into_iter()
            .flat_map(|x| x.to_le_bytes())
            .collect(),
        DType::Float16 => floats(rng)
            .into_iter()
            .flat_map(|x| crate::runtime::f32_to_f16_bits(x as f32).to_le_bytes())
            .collect(),
        DType::BFloat16 => floats(rng)
            .into_iter()
            .flat_map(|x| (((x as f32).to_bits() >> 16) as u16).to_le_bytes())
            .collect(),
        DType::Bool => match kind {
            InputKind::Ones => vec![1; numel],
            InputKind::Zeros => vec![0; numel],
            _ => (0..numel).map(|_| rng.below(2) as u8).collect(),
        },
        DType::Int64 => ints(rng).into_iter().flat_map(i64::to_le_bytes).collect(),
        DType::Uint64 => ints(rng)
            .into_iter()
            .flat_map(|x| (x as u64).to_le_bytes())
            .collect(),
        DType::Int32 | DType::Uint32 => ints(rng)
            .into_iter()
            .flat_map(|x| (x as i32).to_le_bytes())
            .collect(),
        DType::Int16 | DType::Uint16 => ints(rng)
            .into_iter()
            .flat_map(|x| (x as i16).to_le_bytes())
            .collect(),
        DType::Int8 | DType::Uint8 => ints(rng).into_iter().map(|x| x as u8).collect(),
        other => {
            return Err(format!(
                "element type {other} is not supported for random inputs"
            ))
        }
    };
    HostTensor::new(name, dtype, dims.to_vec(), data).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splitmix_is_deterministic_and_in_range() {
        let mut a = SplitMix64::new(7);
        let mut b = SplitMix64::new(7);
        for _ in 0..1000 {
            assert_eq!(a.next_u64(), b.next_u64());
            let f = a.next_f64();
            assert!((0.0..1.0).contains(&f));
            assert!(a.below(13) < 13);
            b.next_f64();
            b.below(13);
        }
        // Reference value of SplitMix64 seeded with 0.
        assert_eq!(SplitMix64::new(0).next_u64(), 0xE220_A839_7B1D_CDAF);
    }
}
