//! Table 1: the fixture models under every planner and budget.

use super::*;

/// Where `ac` and `optimal` both ran at one budget.
pub(super) struct Pair {
    pub(super) fixture: String,
    pub(super) keep: f64,
    pub(super) ac: Option<(bool, f64)>,
    pub(super) optimal: Result<(bool, f64), String>,
}

/// Writes one fixture's table; records `ac`/`optimal` per budget in `pairs`, and in `misses`
/// the plans whose simulated peak fits but whose measured peak does not.
pub(super) fn fixture_section(
    s: &mut Setup,
    md: &mut String,
    pairs: &mut Vec<Pair>,
    misses: &mut Vec<String>,
) {
    let g = s.g();
    let _ = writeln!(
        md,
        "### {}\n\n{} nodes in the training graph ({} forward), {} saved activations. Plain \
         training graph: simulated peak {} MiB, of which {} MiB are the activations the \
         backward reads and {} MiB are not seen by ONNX Runtime's allocator (weights used in \
         place, graph inputs); estimated step {:.2} ms (sum of the profiled per-node times). \
         Timed rounds per plan: {}.\n",
        s.label,
        g.nodes.len(),
        g.backward_start(),
        s.n_saved,
        mib(s.sim.peak_bytes),
        mib(s.saved),
        mib(s.unallocated()),
        s.step_est_s * 1e3,
        s.runs
    );
    let mut rows = String::new();
    let _ = writeln!(
        rows,
        "| keep | budget (MiB) | planner | recomputed | added, ms (% of step) | simulated peak (MiB) | fits (simulated) | measured peak (MiB) | within budget (measured) | step (ms) | overhead | plan time (s) |\n|---|---|---|---|---|---|---|---|---|---|---|---|"
    );
    for keep in KEEP {
        let budget = s.budget(keep);
        let mut pair = Pair {
            fixture: s.label.clone(),
            keep,
            ac: None,
            optimal: Err("not run".into()),
        };
        for planner in PLANNERS {
            eprintln!("{} {keep}% {planner}", s.label);
            let (out, secs) = s.plan(planner, budget);
            let o = match out {
                Ok(o) => o,
                Err(e) => {
                    if planner == "optimal" {
                        pair.optimal = Err(e.clone());
                    }
                    let _ = writeln!(
                        rows,
                        "| {keep}% | {} | {planner} | – | – | – | planner error: {} | – | – | – | – | {secs:.2} |",
                        mib(budget),
                        cell(&e)
                    );
                    continue;
                }
            };
            let fits = o.eval.peak_bytes <= budget;
            if planner == "ac" {
                pair.ac = Some((fits, o.eval.added_time_s));
            }
            if planner == "optimal" {
                pair.optimal = Ok((fits, o.eval.added_time_s));
            }
            let m = if fits || planner == "ac" {
                Some(s.measure(&o))
            } else {
                s.measured(&o)
            };
            let fits_txt = match (fits, planner) {
                (true, _) => "yes".to_string(),
                (false, "ac") => "no: unreachable (best effort)".to_string(),
                (false, "none" | "selective" | "full") => "no (preset)".to_string(),
                (false, _) => "no: unreachable".to_string(),
            };
            let (peak, within, step, over) = match &m {
                Some(m) => (
                    m.peak.map(mib).unwrap_or_else(|| "–".into()),
                    match m.peak {
                        Some(p) if p <= budget => "yes".to_string(),
                        Some(p) => {
                            let over = 100.0 * (p as f64 - budget as f64) / budget as f64;
                            if fits {
                                misses.push(format!(
                                    "{} at {keep}% kept, {planner} (+{over:.1}%)",
                                    s.label
                                ));
                            }
                            format!("no (+{over:.1}%)")
                        }
                        None => "–".into(),
                    },
                    format!("{:.2}", m.step_s * 1e3),
                    format!("{:+.1}%", m.overhead()),
                ),
                None => ("not run".into(), "–".into(), "–".into(), "–".into()),
            };
            let _ = writeln!(
                rows,
                "| {keep}% | {} | {planner} | {} | {:.3} ({:.1}%) | {} | {fits_txt} | {peak} | {within} | {step} | {over} | {secs:.2} |",
                mib(budget),
                o.values,
                o.eval.added_time_s * 1e3,
                100.0 * o.eval.added_time_s / s.step_est_s,
                mib(o.eval.peak_bytes),
            );
        }
        pairs.push(pair);
    }
    let _ = writeln!(
        md,
        "Original training graph, measured: peak {} MiB; best step {} ms (fastest of its \
         runs in the {} timing sessions, one per distinct plan run).\n",
        s.orig_peak.map(mib).unwrap_or_else(|| "–".into()),
        s.orig_steps
            .iter()
            .cloned()
            .reduce(f64::min)
            .map(|t| format!("{:.2}", t * 1e3))
            .unwrap_or_else(|| "–".into()),
        s.orig_steps.len()
    );
    md.push_str(&rows);
    md.push('\n');
}
