//! Planning time on synthetic training graphs of ~1k to ~50k nodes.

use super::*;

/// Child mode: one planner on a synthetic transformer; prints
/// `RESULT secs values peak budget nodes`.
pub(super) fn synth_plan(target: usize, planner: &str) {
    let m = synth::transformer_with_nodes(target);
    let (tm, info) = build_training_graph(&m, &synth::cross_entropy()).unwrap();
    let g = &tm.graph;
    let (sim, saved) = plain(g, &info);
    let budget = budget_for(sim.peak_bytes, saved, SYNTH_KEEP);
    let (out, secs) = run_planner(planner, g, &info, &onnx_ac::cost::fixed_time, budget);
    let o = out.unwrap();
    println!(
        "RESULT {secs} {} {} {budget} {}",
        o.values,
        o.eval.peak_bytes,
        g.nodes.len()
    );
}

pub(super) fn synth_section(md: &mut String) -> String {
    let exe = std::env::current_exe().unwrap();
    let limit = Duration::from_secs_f64(SYNTH_STOP_S);
    // planner -> (target, seconds) of its last finished run.
    let mut last: HashMap<&str, (usize, f64)> = HashMap::new();
    let mut cells: HashMap<(&str, usize), String> = HashMap::new();
    let mut nodes: HashMap<usize, usize> = HashMap::new();
    // "planner time" of the finished runs, for the summary.
    let mut short: HashMap<(&str, usize), String> = HashMap::new();
    for (target, skip_s) in SYNTH_SIZES.into_iter().zip(SYNTH_SKIP_S) {
        for planner in SYNTH_PLANNERS {
            let predicted = last
                .get(planner)
                .map(|&(t0, s0)| s0 * (target as f64 / t0 as f64).powi(2));
            if let Some(predicted) = predicted {
                if predicted > skip_s {
                    eprintln!(
                        "synthetic ~{target}: {planner} skipped (predicted {predicted:.0} s)"
                    );
                    cells.insert(
                        (planner, target),
                        format!("skipped (predicted ~{predicted:.0} s)"),
                    );
                    continue;
                }
            }
            eprintln!("synthetic ~{target}: {planner}");
            let mut child = Command::new(&exe)
                .args(["--synth-plan", &target.to_string(), planner])
                .stdout(Stdio::piped())
                .spawn()
                .unwrap();
            let t0 = Instant::now();
            let status = loop {
                if let Some(st) = child.try_wait().unwrap() {
                    break Some(st);
                }
                if t0.elapsed() > limit {
                    let _ = child.kill();
                    let _ = child.wait();
                    break None;
                }
                std::thread::sleep(Duration::from_millis(50));
            };
            let mut text = String::new();
            if let Some(mut out) = child.stdout.take() {
                let _ = std::io::Read::read_to_string(&mut out, &mut text);
            }
            let parsed = text
                .lines()
                .find_map(|l| l.strip_prefix("RESULT "))
                .map(|l| l.split(' ').map(str::to_string).collect::<Vec<_>>());
            let c = match (status, parsed) {
                (None, _) => {
                    last.insert(planner, (target, limit.as_secs_f64()));
                    format!("stopped after {:.0} s", limit.as_secs_f64())
                }
                (Some(st), Some(f)) if st.success() && f.len() == 5 => {
                    let secs: f64 = f[0].parse().unwrap();
                    let peak: u64 = f[2].parse().unwrap();
                    let budget: u64 = f[3].parse().unwrap();
                    nodes.insert(target, f[4].parse().unwrap());
                    last.insert(planner, (target, secs));
                    let t = if secs >= 1.0 {
                        format!("{secs:.1} s")
                    } else {
                        format!("{:.1} ms", secs * 1e3)
                    };
                    let pred = match predicted {
                        Some(p) if p >= 1.0 => format!("; predicted {p:.0} s"),
                        Some(p) => format!("; predicted {:.0} ms", p * 1e3),
                        None => String::new(),
                    };
                    let fit = if peak <= budget { "fits" } else { "over" };
                    short.insert(
                        (planner, target),
                        if fit == "over" {
                            format!("{planner} {t} (over the budget)")
                        } else {
                            format!("{planner} {t}")
                        },
                    );
                    format!("{t} ({} values, {fit}{pred})", f[1])
                }
                (Some(st), _) => format!("failed ({st})"),
            };
            cells.insert((planner, target), c);
        }
    }
    let _ = writeln!(
        md,
        "## Planning time\n\nSynthetic GPT-style transformers (`synth::transformer_with_nodes`: \
         hidden 64, 4 heads, seq 128, batch 4, vocab 256), cross-entropy training graph, \
         fixed cost table (`--cost fixed`: 1e-5 s per MatMul/Gemm/Conv, 1e-6 s per other \
         node), budget keeping {SYNTH_KEEP}% of the activations. One plan per cell, in a \
         child process, wall-clock time of `Planner::plan` alone (not the graph build); \
         \"fits\"/\"over\": the plan's simulated peak against the budget. A planner is skipped \
         at a size when its previous size's time × (size ratio)² (\"predicted\") exceeds \
         {} s at ~10k and {} s at ~50k (that size is optional), and stopped after {:.0} s.\n",
        SYNTH_SKIP_S[1],
        SYNTH_SKIP_S[2],
        limit.as_secs_f64()
    );
    let head: Vec<String> = SYNTH_SIZES
        .iter()
        .map(|t| match nodes.get(t) {
            Some(n) => format!("~{}k ({n} nodes)", t / 1000),
            None => format!("~{}k", t / 1000),
        })
        .collect();
    let _ = writeln!(
        md,
        "| planner | {} |\n|---|{}",
        head.join(" | "),
        "---|".repeat(SYNTH_SIZES.len())
    );
    for planner in SYNTH_PLANNERS {
        let row: Vec<String> = SYNTH_SIZES
            .iter()
            .map(|t| cells.get(&(planner, *t)).cloned().unwrap_or_default())
            .collect();
        let _ = writeln!(md, "| {planner} | {} |", row.join(" | "));
    }
    md.push('\n');
    let mut note = Vec::new();
    for t in SYNTH_SIZES {
        let ran: Vec<String> = SYNTH_PLANNERS
            .iter()
            .filter_map(|p| short.get(&(*p, t)).cloned())
            .collect();
        let not: Vec<String> = SYNTH_PLANNERS
            .iter()
            .filter(|p| !short.contains_key(&(**p, t)))
            .map(|p| format!("{p} {}", cells.get(&(*p, t)).cloned().unwrap_or_default()))
            .collect();
        let mut line = format!(
            "~{}k nodes: {}",
            t / 1000,
            if ran.is_empty() {
                "none ran".to_string()
            } else {
                ran.join(", ")
            }
        );
        if !not.is_empty() {
            let _ = write!(line, "; {}", not.join(", "));
        }
        note.push(line);
    }
    note.join("; ")
}
