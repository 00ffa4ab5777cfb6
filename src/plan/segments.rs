//! Segment plans: whole stretches of the forward recomputed from checkpoints.
//!
//! Dropping one saved activation at a time cannot reach deep savings: a recompute keeps its
//! sources alive, and the sources of a transformer's saved values are other large
//! intermediates (a Softmax from its masked scores, GELU's pieces from each other, a view
//! from the MatMul it reshapes). Min-cut partitioners and `full` recomputation instead keep
//! a few small checkpoints and recompute everything between them. This module finds the
//! checkpoints from the graph's structure and builds, per segment between two of them, drop
//! sets of increasing cost:
//!
//! 1. **cheap**: everything but the outputs of MatMul-class ops (MatMul, Gemm, Conv,
//!    ConvTranspose, Einsum) and their views — pointwise ops, normalizations, Softmax,
//!    data movement: PyTorch's default min-cut with compute-heavy ops banned;
//! 2. **attention**: also the MatMuls of two activations (attention's scores and context,
//!    Megatron's selective recomputation);
//! 3. **full**: everything between the checkpoints, MatMuls with weights included.
//!
//! A 4th step drops the checkpoints inside a layer (a layer is the repeating unit of
//! segments), leaving about one layer input per layer, as full recomputation does.
//!
//! Checkpoints (segment boundaries): a forward activation is one when it is the only
//! activation that carries a gradient alive after its producer (weight-like values, computed
//! from parameters and constants only, do not count) — the points where a sequential
//! network's state is a single tensor, such as the residual stream between transformer
//! sub-blocks — and it starts something: it is read by a node with a trainable parameter
//! (a LayerNorm, MatMul, Gemm or Conv) or by two nodes (a residual stream, read by the
//! block and by the addition after it), so the cut points inside a chain of pointwise ops
//! are not boundaries. Values that depend only on graph inputs (attention
//! masks, position ids) are never dropped: they cost no parameter work and most are not
//! float.

use crate::cost::is_matmul_class;
use onnx_ac_passes::autodiff::TrainingInfo;
use onnx_ac_passes::ir::{Graph, ValueId};
use onnx_ac_passes::recompute::{is_view, not_recomputable};
use std::collections::HashSet;

/// How expensive recomputing a forward node is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Class {
    /// Pointwise, normalization, Softmax, data movement.
    Cheap = 1,
    /// A MatMul of two activations (attention).
    Attention = 2,
    /// A MatMul-class op with a weight.
    Linear = 3,
}

/// The forward cut into segments between checkpoints.
pub struct Segments {
    /// Per segment, its droppable values with their class: (value, class).
    segs: Vec<Vec<(ValueId, Class)>>,
    /// The checkpoints inside a layer (every boundary that does not start a layer), each
    /// with the index of the segment it ends.
    inner_checkpoints: Vec<(usize, ValueId)>,
}

/// Forward values that depend on a trainable parameter.
pub fn param_dependent(g: &Graph, info: &TrainingInfo) -> Vec<bool> {
    let mut dep = vec![false; g.values.len()];
    for &p in &info.params {
        dep[p.index()] = true;
    }
    for n in g.forward_nodes() {
        if n.inputs.iter().flatten().any(|i| dep[i.index()]) {
            for o in n.outputs.iter().flatten() {
                dep[o.index()] = true;
            }
        }
    }
    dep
}

/// Forward values computed from parameters and constants only (a transposed weight, rotary
/// tables from a trained frequency buffer): weights in all but name. They are alive across
/// many layers without being part of the state a layer passes on.
pub fn weight_like(g: &Graph, info: &TrainingInfo) -> Vec<bool> {
    let mut wl = vec![false; g.values.len()];
    for &p in &info.params {
        wl[p.index()] = true;
    }
    for n in g.forward_nodes() {
        let mut any = false;
        let all = n.inputs.iter().flatten().all(|&i| {
            let v = g.value(i);
            any |= wl[i.index()];
            wl[i.index()]
                || v.constant.is_some()
                || (v.initializer.is_some() && v.producer.is_none())
        });
        if all && any {
            for o in n.outputs.iter().flatten() {
                wl[o.index()] = true;
            }
        }
    }
    wl
}

/// The checkpoints, in forward order (see the module's comment).
pub fn boundaries(g: &Graph, info: &TrainingInfo) -> Vec<ValueId> {
    let mut dep = param_dependent(g, info);
    // Weight-like values cross layers without carrying their state.
    for (d, w) in dep.iter_mut().zip(weight_like(g, info)) {
        *d &= !w;
    }
    let fe = g.backward_start();
    // For each forward activation: produced at p, last forward read at l; it is alive
    // after each step p..l-1.
    let mut last_read = vec![None::<usize>; g.values.len()];
    let mut readers = vec![0u32; g.values.len()];
    for (k, n) in g.nodes[..fe].iter().enumerate() {
        for i in n.inputs.iter().flatten() {
            last_read[i.index()] = Some(k);
            readers[i.index()] += 1;
        }
    }
    let mut delta = vec![0i64; fe + 1];
    for (k, n) in g.nodes[..fe].iter().enumerate() {
        for o in n.outputs.iter().flatten() {
            if !dep[o.index()] || g.value(*o).constant.is_some() {
                continue;
            }
            if let Some(l) = last_read[o.index()].filter(|&l| l > k) {
                delta[k] += 1;
                delta[l] -= 1;
            }
        }
    }
    let params: HashSet<ValueId> = info.params.iter().copied().collect();
    let consumers = g.consumers();
    let feeds_layer = |v: ValueId| {
        consumers[v.index()].iter().any(|c| {
            c.index() < fe
                && g.node(*c)
                    .inputs
                    .iter()
                    .flatten()
                    .any(|i| params.contains(i))
        })
    };
    let mut boundary = Vec::new();
    let mut alive = 0i64;
    for (k, n) in g.nodes[..fe].iter().enumerate() {
        alive += delta[k];
        // The node's output is a boundary if it is the only activation alive after it, and
        // it starts something: read by a node with a parameter, or forked (a residual
        // stream, read by a block and by the addition after it). Single values inside a
        // chain of pointwise ops are not.
        if alive != 1 {
            continue;
        }
        for o in n.outputs.iter().flatten() {
            let starts = feeds_layer(*o) || readers[o.index()] >= 2;
            if dep[o.index()] && last_read[o.index()].is_some_and(|l| l > k) && starts {
                boundary.push(*o);
            }
        }
    }
    boundary
}

impl Segments {
    pub fn new(g: &Graph, info: &TrainingInfo) -> Segments {
        let fe = g.backward_start();
        let dep = param_dependent(g, info);
        let wl = weight_like(g, info);
        let bounds = boundaries(g, info);
        let is_boundary: HashSet<ValueId> = bounds.iter().copied().collect();
        // Each forward value's class: its producer's, a view's that of its base.
        let mut class: Vec<Option<Class>> = vec![None; g.values.len()];
        let mut segs: Vec<Vec<(ValueId, Class)>> = vec![Vec::new()];
        // Per segment, its op types (to find the layer's period).
        let mut sigs: Vec<Vec<&str>> = vec![Vec::new()];
        let mut seg_of_boundary = Vec::new();
        // The segment of each forward node (a boundary's producer ends its segment).
        let mut seg_of_node = Vec::with_capacity(fe);
        for n in &g.nodes[..fe] {
            seg_of_node.push(segs.len() - 1);
            let c = if is_view(n) {
                n.input(0)
                    .and_then(|i| class[i.index()])
                    .unwrap_or(Class::Cheap)
            } else if is_matmul_class(&n.op_type) {
                if n.inputs.iter().flatten().any(|i| wl[i.index()]) {
                    Class::Linear
                } else {
                    Class::Attention
                }
            } else {
                Class::Cheap
            };
            sigs.last_mut().expect("one segment").push(&n.op_type);
            let mut ends_segment = false;
            for &o in n.outputs.iter().flatten() {
                class[o.index()] = Some(c);
                if is_boundary.contains(&o) {
                    ends_segment = true;
                    continue;
                }
                let droppable = dep[o.index()]
                    && !g.outputs.contains(&o)
                    && g.value(o).constant.is_none()
                    && g.value_bytes(o).unwrap_or(0) > 0
                    && not_recomputable(g, o).is_none();
                if droppable {
                    segs.last_mut().expect("one segment").push((o, c));
                }
            }
            if ends_segment {
                let b = n
                    .outputs
                    .iter()
                    .flatten()
                    .copied()
                    .find(|o| is_boundary.contains(o))
                    .expect("a boundary output");
                seg_of_boundary.push((segs.len() - 1, b));
                segs.push(Vec::new());
                sigs.push(Vec::new());
            }
        }
        let period = layer_period(&sigs);
        // The checkpoints that start a layer: every `period`-th, in the phase whose
        // checkpoints most often outlive the segment after them (a residual stream, from
        // which the whole layer is recomputed without reaching into the previous one), then
        // the smallest, then the first.
        let consumers = g.consumers();
        let outlives = |seg: usize, b: ValueId| {
            consumers[b.index()]
                .iter()
                .any(|c| c.index() < fe && seg_of_node[c.index()] > seg + 1)
        };
        let phase = (0..period)
            .min_by_key(|&ph| {
                let mine = seg_of_boundary.iter().filter(|(s, _)| s % period == ph);
                let long = mine.clone().filter(|(s, b)| outlives(*s, *b)).count();
                let bytes: u64 = mine.map(|(_, b)| g.value_bytes(*b).unwrap_or(0)).sum();
                (std::cmp::Reverse(long), bytes)
            })
            .unwrap_or(0);
        let inner_checkpoints = seg_of_boundary
            .iter()
            .filter(|(s, _)| s % period != phase)
            .copied()
            .collect();
        Segments {
            segs,
            inner_checkpoints,
        }
    }

    /// The drop sets, cheapest first: each segment raised to the next level in turn (in
    /// forward order), then the inner checkpoints dropped layer by layer. At most about
    /// `max_plans` of them (segments are raised in groups on large graphs). Each plan
    /// contains the previous one.
    pub fn plans(&self, max_plans: usize) -> Vec<Vec<ValueId>> {
        let n = self.segs.len();
        // (levels, inner checkpoints dropped) of every step.
        let mut steps: Vec<(Vec<u8>, usize)> = Vec::new();
        let mut level = vec![0u8; n];
        for l in 1..=3u8 {
            for s in 0..n {
                level[s] = l;
                steps.push((level.clone(), 0));
            }
        }
        for i in 1..=self.inner_checkpoints.len() {
            steps.push((level.clone(), i));
        }
        let stride = steps.len().div_ceil(max_plans.max(1)).max(1);
        let last = steps.len().saturating_sub(1);
        steps
            .iter()
            .enumerate()
            .filter(|(k, _)| (k + 1) % stride == 0 || *k == last)
            .map(|(_, (l, i))| self.drops(l, *i))
            .collect()
    }

    /// What segments at `level` (per segment) drop, with the first `inner` inner
    /// checkpoints.
    fn drops(&self, level: &[u8], inner: usize) -> Vec<ValueId> {
        let mut v: Vec<ValueId> = Vec::new();
        for (seg, &l) in self.segs.iter().zip(level) {
            v.extend(seg.iter().filter(|(_, c)| *c as u8 <= l).map(|(x, _)| *x));
        }
        v.extend(self.inner_checkpoints[..inner].iter().map(|(_, b)| *b));
        v
    }

    /// One line per segment: its droppable values by class, and the inner checkpoints.
    pub fn describe(&self, g: &Graph) -> String {
        let mut out = String::new();
        for (k, seg) in self.segs.iter().enumerate() {
            let mut by = [(0usize, 0u64); 3];
            for &(v, c) in seg {
                by[c as usize - 1].0 += 1;
                by[c as usize - 1].1 += g.value_bytes(v).unwrap_or(0);
            }
            out.push_str(&format!(
                "segment {k}: cheap {:?} attention {:?} linear {:?}\n",
                by[0], by[1], by[2]
            ));
        }
        for (s, b) in &self.inner_checkpoints {
            out.push_str(&format!(
                "inner checkpoint after segment {s}: {}\n",
                g.value(*b).name
            ));
        }
        out
    }

    /// Full recomputation: everything but about one layer input per layer.
    pub fn full(&self) -> Vec<ValueId> {
        self.drops(&vec![3; self.segs.len()], self.inner_checkpoints.len())
    }
}

/// The number of segments a layer spans: the smallest period (up to [`MAX_PERIOD`]) with
/// which the segments' op sequences repeat, over the middle segments (the first and the last
/// hold the embeddings and the head), seen at least twice; 1 when nothing repeats.
const MAX_PERIOD: usize = 16;

fn layer_period(sigs: &[Vec<&str>]) -> usize {
    if sigs.len() < 4 {
        return 1;
    }
    let mid = &sigs[1..sigs.len() - 1];
    for p in 1..=MAX_PERIOD {
        if mid.len() < 3 * p {
            break;
        }
        let pairs = mid.len() - p;
        let same = (0..pairs).filter(|&i| mid[i] == mid[i + p]).count();
        if same * 4 >= pairs * 3 {
            return p;
        }
    }
    1
}
