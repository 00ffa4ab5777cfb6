//! `--report report.html`: the main command's result as one self-contained HTML page (inline
//! CSS and SVG, no script, no network: a Content-Security-Policy forbids every fetch). It
//! shows the summary; the simulated (and, with `--verify`, measured) peaks; live memory over
//! the step's schedule before and after, stacked by category, with the budget and the peak;
//! the tensors live at each peak; the recomputed and retained activations folded per repeated
//! layer; and the planner and cost model. The same inputs give the same bytes: no time, no
//! path but the model's file name, every list sorted.
//!
//! docs/report.md describes the page.

pub mod layers;
pub mod svg;
pub mod trace;

use crate::pipeline::{Planned, PLAN_MARGIN_DIVISOR, RUNTIME_WEIGHTS_MARGIN_DIVISOR};
use crate::report::Summary;
use onnx_ac_passes::autodiff::TrainingInfo;
use onnx_ac_passes::ir::Graph;
use onnx_ac_passes::recompute::is_recompute_work;
use std::fmt::Write;
use std::path::Path;
use trace::{total, Category, LiveTensor, Trace, CATEGORIES};

/// Columns of a chart at most (a larger schedule is shown by groups of steps, each by its
/// highest step, so the peak stays visible).
const MAX_COLUMNS: usize = 900;
/// Rows of a live-at-the-peak table before "and N more".
const LIVE_ROWS: usize = 25;
/// Rows of the table of activations in no repeated layer before "and N more".
const OUTSIDE_ROWS: usize = 60;

/// Escapes text for HTML and SVG (element content and quoted attributes).
pub fn escape(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&#39;"),
            c if c.is_control() && c != '\n' && c != '\t' => o.push('\u{fffd}'),
            c => o.push(c),
        }
    }
    o
}

/// What the page is made from: the model file, its training graph (`plain`, `info`) and the
/// main command's result (its summary as printed, measured figures included with `--verify`).
pub struct ReportInput<'a> {
    pub model_path: &'a Path,
    pub plain: &'a Graph,
    pub info: &'a TrainingInfo,
    pub planned: &'a Planned,
    /// `ac`'s trade-off curve on the same training graph, when computed.
    pub tradeoff: Option<&'a crate::tradeoff::Tradeoff>,
}

/// Budgets on the report's trade-off curve (`tradeoff.rs`; the references come on top).
pub const CURVE_POINTS: usize = 6;

/// The page.
pub fn render(input: &ReportInput) -> String {
    let planned = input.planned;
    let s = &planned.summary;
    let before = trace::trace(input.plain, input.info);
    let after = trace::trace(&planned.rewritten.graph, input.info);
    let scale = s.byte_scale();
    let fmt = |b: u64| scale.format(b);
    let optimizer = input.info.optimizer.is_some();
    let model = input
        .model_path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();

    let mut h = String::new();
    let _ = write!(
        h,
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <title>onnx-ac report: {}</title>\n<style>{CSS}</style>\n</head>\n<body>\n",
        escape(&model)
    );
    let _ = writeln!(
        h,
        "<h1>onnx-ac report: <code>{}</code></h1>\n<p class=\"sub\">planner <b>{}</b>, budget <b>{}</b>{}: step peak {} &rarr; <b>{}</b> {}</p>",
        escape(&model),
        escape(&s.planner),
        fmt(s.budget_bytes),
        requested(s),
        fmt(s.initial_peak_bytes),
        fmt(s.final_peak_bytes),
        escape(&s.peak_source)
    );
    section_summary(&mut h, s);
    section_peaks(&mut h, s, &before, &after, &fmt);
    section_timeline(&mut h, s, &before, &after, optimizer, &fmt);
    section_at_peak(&mut h, s, &before, &after, optimizer, &fmt);
    section_layers(&mut h, planned, input.plain, &fmt);
    if let Some(curve) = input.tradeoff {
        section_tradeoff(&mut h, curve, &fmt);
    }
    section_details(&mut h, input, &before, &after, &fmt);
    let _ = writeln!(
        h,
        "<footer>Written by onnx-ac {} (docs/report.md). Self-contained: no script, nothing fetched.</footer>\n</body>\n</html>",
        env!("CARGO_PKG_VERSION")
    );
    h
}

/// The planner's trade-off curve (`onnx-ac tradeoff`): the chart and its points.
fn section_tradeoff(
    h: &mut String,
    curve: &crate::tradeoff::Tradeoff,
    fmt: &dyn Fn(u64) -> String,
) {
    let _ = writeln!(
        h,
        "<section id=\"tradeoff\"><h2>Trade-off curve</h2>\n<p>{} plans at budgets evenly spaced from the lowest peak it reaches ({}) to none ({}), and the presets and μ-TWO's lowest-peak plan as points; simulated, recompute time by the cost model. On the Pareto front, a higher peak always costs strictly less recomputation{}.</p>",
        escape(&curve.planner),
        fmt(curve.lowest_peak_bytes),
        fmt(curve.plain_peak_bytes),
        if curve.planner_monotone {
            format!("; {}'s own points are monotone", escape(&curve.planner))
        } else {
            format!("; {}'s own points are not monotone", escape(&curve.planner))
        }
    );
    h.push_str("<div class=\"chart\">");
    // Inline SVG needs no namespace (and the page names no URL at all).
    h.push_str(&curve.to_svg().replacen(
        "<svg xmlns=\"http://www.w3.org/2000/svg\"",
        "<svg id=\"chart-tradeoff\"",
        1,
    ));
    h.push_str("</div>\n<table><tr><th>source</th><th>budget</th><th>peak</th><th>kept</th><th>recomputed</th><th>recompute time</th><th>matmul FLOPs</th><th>front</th></tr>\n");
    for p in &curve.points {
        let _ = writeln!(
            h,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{:.2}</td><td>{}</td><td>{:.2} ms</td><td>{:.1}%</td><td>{}</td></tr>",
            escape(&p.source),
            p.budget_bytes.map(fmt).unwrap_or_else(|| "-".into()),
            fmt(p.peak_bytes),
            p.kept_fraction,
            p.recomputed,
            p.recompute_time_s * 1e3,
            p.added_matmul_flops_percent,
            if p.on_front { "yes" } else { "" }
        );
    }
    h.push_str("</table></section>\n");
}

/// ` (30%act)` for a relative budget.
fn requested(s: &Summary) -> String {
    if s.budget_requested.ends_with('%') || s.budget_requested.ends_with("act") {
        format!(" ({})", escape(&s.budget_requested))
    } else {
        String::new()
    }
}

/// The text summary, line by line, as the command prints it (without the files written).
fn section_summary(h: &mut String, s: &Summary) {
    h.push_str("<section id=\"summary\"><h2>Summary</h2><table class=\"kv\">\n");
    for line in s.to_text().lines() {
        if line.starts_with("wrote ") {
            continue;
        }
        if line.starts_with("warning:") {
            let _ = writeln!(
                h,
                "<tr class=\"warning\"><td colspan=\"2\">{}</td></tr>",
                escape(line)
            );
            continue;
        }
        // `{key:<12} {value}`: the key is ASCII, the value may not be.
        let cut = line.len().min(13);
        let (k, v) = if line.is_char_boundary(cut) {
            let (k, v) = line.split_at(cut);
            (k.trim(), v)
        } else {
            ("", line)
        };
        let _ = writeln!(h, "<tr><th>{}</th><td>{}</td></tr>", escape(k), escape(v));
    }
    h.push_str("</table></section>\n");
}

/// Simulated and measured peaks side by side.
fn section_peaks(
    h: &mut String,
    s: &Summary,
    before: &Trace,
    after: &Trace,
    fmt: &dyn Fn(u64) -> String,
) {
    let measured = s.peak_source == "measured";
    let change = |x: u64, y: u64| {
        let d = y as i64 - x as i64;
        format!(
            "{}{} ({:+.1}%)",
            if d < 0 { "-" } else { "+" },
            fmt(d.unsigned_abs()),
            100.0 * d as f64 / x.max(1) as f64
        )
    };
    h.push_str(
        "<section id=\"peaks\"><h2>Step peak: simulated and measured</h2>\n<table class=\"num\">\
         <tr><th></th><th>before (training graph)</th><th>after (rewritten)</th><th>change</th></tr>\n",
    );
    let _ = writeln!(
        h,
        "<tr><th>simulated</th><td>{}</td><td>{}</td><td>{}</td></tr>",
        fmt(s.simulated_initial_peak_bytes),
        fmt(s.simulated_final_peak_bytes),
        change(s.simulated_initial_peak_bytes, s.simulated_final_peak_bytes)
    );
    if measured {
        let _ = writeln!(
            h,
            "<tr id=\"measured\"><th>measured (--verify)</th><td>{}</td><td>{}</td><td>{}</td></tr>",
            fmt(s.initial_peak_bytes),
            fmt(s.final_peak_bytes),
            change(s.initial_peak_bytes, s.final_peak_bytes)
        );
        let err = |m: u64, sim: u64| {
            format!(
                "{:+.1}%",
                100.0 * (m as f64 - sim as f64) / sim.max(1) as f64
            )
        };
        let _ = writeln!(
            h,
            "<tr><th>measured vs simulated</th><td>{}</td><td>{}</td><td></td></tr>",
            err(s.initial_peak_bytes, s.simulated_initial_peak_bytes),
            err(s.final_peak_bytes, s.simulated_final_peak_bytes)
        );
    } else {
        h.push_str(
            "<tr id=\"measured\"><th>measured</th><td colspan=\"3\" class=\"note\">not measured: run with <code>--verify</code> \
             to run both graphs in ONNX Runtime and measure their peaks</td></tr>\n",
        );
    }
    let fits = if s.within_budget {
        format!(
            "yes, {} under",
            fmt(s.budget_bytes.saturating_sub(s.final_peak_bytes))
        )
    } else {
        format!(
            "<b class=\"bad\">no</b>, {} over",
            fmt(s.final_peak_bytes.saturating_sub(s.budget_bytes))
        )
    };
    let _ = writeln!(
        h,
        "<tr><th>budget</th><td colspan=\"2\">{}{}</td><td>{}</td></tr>\n</table>",
        fmt(s.budget_bytes),
        requested(s),
        if measured {
            format!("measured peak fits: {fits}")
        } else {
            format!("simulated peak fits: {fits}")
        }
    );
    let _ = writeln!(
        h,
        "<p class=\"note\">The step peak is what the budget bounds: weights, prepacked weights, inputs, activations, \
         gradients and transients as ONNX Runtime allocates them{}. The simulation replays ONNX Runtime's \
         execution order and allocation planner (docs/memory-model.md); its peaks are at step {} (before) and {} (after).</p></section>",
        if measured {
            format!(
                "; measured = ONNX Runtime's allocator peak + {} of weights and inputs it uses in place",
                fmt(s.unallocated_bytes)
            )
        } else {
            String::new()
        },
        before.peak_step,
        after.peak_step
    );
}

/// The legend of the category colours, for the categories present.
fn legend(h: &mut String, present: &[Category], optimizer: bool) {
    h.push_str("<ul class=\"legend\">");
    for c in present {
        let _ = write!(
            h,
            "<li><span class=\"swatch\" style=\"background:{}\"></span>{}</li>",
            c.color(),
            escape(c.label(optimizer))
        );
    }
    h.push_str(
        "<li><span class=\"swatch line budget-swatch\"></span>budget</li>\
         <li><span class=\"swatch dot\"></span>peak</li></ul>\n",
    );
}

fn present(traces: &[&Trace]) -> Vec<Category> {
    CATEGORIES
        .into_iter()
        .filter(|c| {
            traces
                .iter()
                .any(|t| t.columns.iter().any(|b| b[c.index()] > 0))
        })
        .collect()
}

fn section_timeline(
    h: &mut String,
    s: &Summary,
    before: &Trace,
    after: &Trace,
    optimizer: bool,
    fmt: &dyn Fn(u64) -> String,
) {
    let unit = svg::Unit::of(s.byte_scale());
    let top = total(&before.peak)
        .max(total(&after.peak))
        .max(s.budget_bytes);
    // Headroom above the highest figure for the labels.
    let step = svg::tick_step(unit_value(top, unit) * 1.12, 6);
    let y_max = ((unit_value(top, unit) * 1.12 / step).ceil() * step * unit.div) as u64;
    h.push_str("<section id=\"timeline\"><h2>Live memory over the step</h2>\n");
    let _ = writeln!(
        h,
        "<p class=\"note\">Bytes live at each step of ONNX Runtime's execution order (one step per kernel it runs), \
         stacked by what holds them, as the simulator replays the step (ONNX Runtime reports no per-step trace: \
         <code>--verify</code> measures the peak alone); the same scale for both charts. {}</p>",
        if before.columns.len().max(after.columns.len()) > MAX_COLUMNS {
            format!("Each column shows the highest of about {} consecutive steps.", before.columns.len().max(after.columns.len()).div_ceil(MAX_COLUMNS))
        } else {
            String::new()
        }
    );
    legend(h, &present(&[before, after]), optimizer);
    for (id, title, t) in [
        (
            "chart-before",
            "Before: the training graph without recomputation",
            before,
        ),
        ("chart-after", "After: the rewritten graph", after),
    ] {
        let cols = trace::downsample(&t.columns, MAX_COLUMNS);
        let chart = svg::AreaChart {
            id,
            title,
            columns: &cols,
            positions: t.columns.len(),
            y_max,
            budget: s.budget_bytes,
            peak_step: t.peak_step,
            peak_bytes: total(&t.peak),
            peak_node: &t.peak_node.1,
            backward_start: t.backward_start,
            unit,
            format: fmt,
            optimizer,
        };
        let (svg, _, _) = svg::area_chart(&chart);
        let _ = writeln!(
            h,
            "<figure><figcaption>{} &mdash; simulated peak {} at step {} of {}</figcaption>\n{svg}\n</figure>",
            escape(title),
            fmt(total(&t.peak)),
            t.peak_step,
            t.columns.len()
        );
    }
    h.push_str("</section>\n");
}

fn unit_value(b: u64, unit: svg::Unit) -> f64 {
    b as f64 / unit.div
}

fn section_at_peak(
    h: &mut String,
    s: &Summary,
    before: &Trace,
    after: &Trace,
    optimizer: bool,
    fmt: &dyn Fn(u64) -> String,
) {
    let unit = svg::Unit::of(s.byte_scale());
    h.push_str("<section id=\"at-peak\"><h2>What is live at the peak</h2>\n");
    let bars = svg::peak_bars(
        &[("before", &before.peak), ("after", &after.peak)],
        s.budget_bytes,
        unit,
        fmt,
    );
    let _ = writeln!(h, "<figure>{bars}</figure>");
    h.push_str("<table class=\"num\"><tr><th>category</th><th>before</th><th>after</th></tr>\n");
    for c in CATEGORIES {
        let (x, y) = (before.peak[c.index()], after.peak[c.index()]);
        if x == 0 && y == 0 {
            continue;
        }
        let _ = writeln!(
            h,
            "<tr><th><span class=\"swatch\" style=\"background:{}\"></span>{}</th><td>{}</td><td>{}</td></tr>",
            c.color(),
            escape(c.label(optimizer)),
            fmt(x),
            fmt(y)
        );
    }
    let _ = writeln!(
        h,
        "<tr class=\"total\"><th>step peak (simulated)</th><td>{}</td><td>{}</td></tr></table>",
        fmt(total(&before.peak)),
        fmt(total(&after.peak))
    );
    live_table(
        h,
        "live-after",
        "Tensors live at the peak after the rewrite",
        after,
        fmt,
        true,
    );
    live_table(
        h,
        "live-before",
        "Tensors live at the peak before",
        before,
        fmt,
        false,
    );
    h.push_str("</section>\n");
}

fn live_table(
    h: &mut String,
    id: &str,
    title: &str,
    t: &Trace,
    fmt: &dyn Fn(u64) -> String,
    open: bool,
) {
    let rows: &[LiveTensor] = &t.at_peak;
    let _ = writeln!(
        h,
        "<details id=\"{id}\"{}><summary>{} (step {}, node <code>{}</code>, {}): {} buffers</summary>",
        if open { " open" } else { "" },
        escape(title),
        t.peak_step,
        escape(&t.peak_node.0),
        escape(&t.peak_node.1),
        rows.len()
    );
    h.push_str(
        "<table class=\"live\"><tr><th>value</th><th>size</th><th>what</th><th>producer</th><th>last reader</th></tr>\n",
    );
    for r in rows.iter().take(LIVE_ROWS) {
        let producer = match r.producer_step {
            Some(p) => format!(
                "<code>{}</code> ({}, step {p})",
                escape(&r.producer),
                escape(&r.producer_op)
            ),
            None if r.producer.is_empty() => "&ndash;".into(),
            None => format!("<code>{}</code>", escape(&r.producer)),
        };
        let reader = match &r.last_reader {
            Some((n, op, step)) => format!(
                "<code>{}</code> ({}, step {step}){}",
                escape(n),
                escape(op),
                if r.idle {
                    " <b>idle</b>: read before the peak, the buffer is reused later"
                } else {
                    ""
                }
            ),
            None => "none: an output, alive to the end".into(),
        };
        let _ = writeln!(
            h,
            "<tr><td><code>{}</code></td><td class=\"r\">{}</td><td><span class=\"swatch\" style=\"background:{}\"></span>{}</td><td>{producer}</td><td>{reader}</td></tr>",
            escape(&r.name),
            fmt(r.bytes),
            r.category.color(),
            r.category.short()
        );
    }
    if rows.len() > LIVE_ROWS {
        let rest = &rows[LIVE_ROWS..];
        let _ = writeln!(
            h,
            "<tr><td colspan=\"5\">and {} smaller buffers ({} in all)</td></tr>",
            rest.len(),
            fmt(rest.iter().map(|r| r.bytes).sum())
        );
    }
    h.push_str("</table></details>\n");
}

fn section_layers(h: &mut String, planned: &Planned, plain: &Graph, fmt: &dyn Fn(u64) -> String) {
    let f = layers::fold(&planned.decisions, plain);
    let ms = |t: f64| format!("{:.3} ms", t * 1e3);
    h.push_str("<section id=\"layers\"><h2>Recomputed and retained activations, per layer</h2>\n");
    h.push_str(
        "<p class=\"note\">Every forward buffer the backward keeps before or after the rewrite (decisions.csv), \
         grouped by repeated layer: consecutive layers with the same pattern of decisions are shown once. \
         RECOMPUTE: dropped after the forward and recomputed for the backward; RETAINED: kept; \
         SOURCE: kept only by the rewrite, because a recomputation reads it.</p>\n",
    );
    if f.runs.is_empty() {
        h.push_str("<p>No repeated layers found in the value names.</p>\n");
    }
    for run in &f.runs {
        let same = if run.layers() > 1 {
            ": same pattern"
        } else {
            ""
        };
        let _ = writeln!(
            h,
            "<h3>{} ({} layer{}){same}: per layer {} recomputed, {} retained{}</h3>",
            escape(&run.title()),
            run.layers(),
            if run.layers() == 1 { "" } else { "s" },
            fmt(run.bytes("RECOMPUTE")),
            fmt(run.bytes("RETAINED")),
            match run.bytes("SOURCE") {
                0 => String::new(),
                b => format!(", {} kept as recompute sources", fmt(b)),
            }
        );
        h.push_str(
            "<table class=\"layer\"><tr><th>activation (layer index as *)</th><th>decision</th><th>size per layer</th><th>recompute time per layer</th></tr>\n",
        );
        for p in &run.pattern {
            let _ = writeln!(
                h,
                "<tr class=\"{}\"><td><code>{}</code></td><td>{}</td><td class=\"r\">{}</td><td class=\"r\">{}</td></tr>",
                p.decision.to_ascii_lowercase(),
                escape(&p.key),
                p.decision,
                fmt(p.bytes),
                if p.decision == "RECOMPUTE" { ms(p.recomp_time_s) } else { String::new() }
            );
        }
        h.push_str("</table>\n");
    }
    if !f.outside.is_empty() {
        let _ = writeln!(
            h,
            "<h3>Outside the repeated layers ({} activations)</h3>",
            f.outside.len()
        );
        h.push_str("<table class=\"layer\"><tr><th>activation</th><th>decision</th><th>size</th><th>recompute time</th></tr>\n");
        for r in f.outside.iter().take(OUTSIDE_ROWS) {
            let _ = writeln!(
                h,
                "<tr class=\"{}\"><td><code>{}</code></td><td>{}</td><td class=\"r\">{}</td><td class=\"r\">{}</td></tr>",
                r.decision.to_ascii_lowercase(),
                escape(&r.activation_name),
                r.decision,
                fmt(r.median_mem_size_bytes),
                if r.decision == "RECOMPUTE" { ms(r.recomp_time_s) } else { String::new() }
            );
        }
        if f.outside.len() > OUTSIDE_ROWS {
            let _ = writeln!(
                h,
                "<tr><td colspan=\"4\">and {} more (--decisions writes every row)</td></tr>",
                f.outside.len() - OUTSIDE_ROWS
            );
        }
        h.push_str("</table>\n");
    }
    h.push_str("</section>\n");
}

fn section_details(
    h: &mut String,
    input: &ReportInput,
    before: &Trace,
    after: &Trace,
    fmt: &dyn Fn(u64) -> String,
) {
    let planned = input.planned;
    let s = &planned.summary;
    let host = crate::plan::host::current();
    let new_nodes = planned.rewritten.graph.nodes.len();
    let recompute_nodes = planned
        .rewritten
        .graph
        .nodes
        .iter()
        .filter(|n| is_recompute_work(&planned.rewritten.graph, n))
        .count();
    let margin = if s.budget_bytes >= s.simulated_initial_peak_bytes {
        "none: the budget covers the plain peak, nothing needs recomputing".to_string()
    } else if planned.plan.runtime_weights {
        format!("1/{RUNTIME_WEIGHTS_MARGIN_DIVISOR} (weights read at run time: the simulator is less exact there)")
    } else {
        format!("1/{PLAN_MARGIN_DIVISOR} (a bound on the simulator's error against ONNX Runtime)")
    };
    let mut rows: Vec<(&str, String)> = vec![
        ("planner", escape(&s.planner)),
        (
            "plan",
            format!(
                "{} forward values named to recompute{}",
                planned.plan.recompute.len(),
                if planned.plan.runtime_weights { "; the forward reads its weights at run time" } else { "" }
            ),
        ),
        (
            "budget",
            format!("{} (asked for: <code>{}</code>)", fmt(s.budget_bytes), escape(&s.budget_requested)),
        ),
        ("planning margin", margin),
        (
            "graph",
            format!(
                "{} forward and loss nodes, {} backward nodes before; {} nodes after, {} of them recomputation",
                input.plain.backward_start(),
                input.plain.backward_nodes().len(),
                new_nodes,
                recompute_nodes
            ),
        ),
        (
            "simulated host",
            format!(
                "{} ({} core{}, NCHWc block {}); ONNX Runtime 1.31, CPU execution provider, all graph optimizations",
                escape(host.name),
                host.cores,
                if host.cores == 1 { "" } else { "s" },
                host.nchwc_block
            ),
        ),
        (
            "simulated peaks",
            format!(
                "before {} at step {} of {} (node <code>{}</code>); after {} at step {} of {} (node <code>{}</code>)",
                fmt(before.sim.peak_bytes),
                before.peak_step,
                before.columns.len(),
                escape(&before.peak_node.0),
                fmt(after.sim.peak_bytes),
                after.peak_step,
                after.columns.len(),
                escape(&after.peak_node.0)
            ),
        ),
    ];
    rows.push(("cost model", escape(&s.cost_model)));
    // One time unit, as the text summary: ms below a one-second step, else s.
    let ms = s.initial_step_time_s < 1.0;
    let t = |x: f64| {
        if ms {
            format!("{:.2} ms", x * 1e3)
        } else {
            format!("{x:.3} s")
        }
    };
    rows.push((
        "step time",
        format!(
            "{} &rarr; {} {} ({:+.1}%); recomputation estimated {}",
            t(s.initial_step_time_s),
            t(s.final_step_time_s),
            escape(&s.step_time_source),
            s.overhead_percent,
            t(s.recompute_time_s)
        ),
    ));
    rows.push((
        "matmul FLOPs",
        format!(
            "{:.3} GFLOP recomputed, {:.1}% of the step's {:.3} GFLOP",
            s.added_matmul_flops / 1e9,
            s.added_matmul_flops_percent,
            s.step_matmul_flops / 1e9
        ),
    ));
    h.push_str("<section id=\"details\"><h2>Planner and cost model</h2><table class=\"kv\">\n");
    for (k, v) in rows {
        let _ = writeln!(h, "<tr><th>{k}</th><td>{v}</td></tr>");
    }
    h.push_str("</table>\n");
    // The costliest recomputations: where the added time goes.
    let mut costly: Vec<&crate::report::Decision> = planned
        .decisions
        .iter()
        .filter(|d| d.decision == "RECOMPUTE")
        .collect();
    costly.sort_by(|a, b| {
        b.recomp_time_s
            .total_cmp(&a.recomp_time_s)
            .then_with(|| a.creation_rank.cmp(&b.creation_rank))
    });
    if !costly.is_empty() {
        h.push_str("<h3>Costliest recomputations (cost model)</h3><table class=\"layer\"><tr><th>activation</th><th>size</th><th>recompute time</th><th>recomputed from</th></tr>\n");
        for d in costly.iter().take(10) {
            let _ = writeln!(
                h,
                "<tr><td><code>{}</code></td><td class=\"r\">{}</td><td class=\"r\">{:.3} ms</td><td><code>{}</code></td></tr>",
                escape(&d.activation_name),
                fmt(d.median_mem_size_bytes),
                d.recomp_time_s * 1e3,
                escape(&d.recompute_sources.replace(';', "; "))
            );
        }
        h.push_str("</table>\n");
    }
    h.push_str("</section>\n");
}

const CSS: &str = "\
body{font-family:system-ui,-apple-system,'Segoe UI',Roboto,'DejaVu Sans',sans-serif;margin:24px auto;max-width:1140px;padding:0 16px;color:#1b1b1b;background:#fff;font-size:14px;line-height:1.45}\
h1{font-size:22px;margin:0 0 4px}h2{font-size:18px;margin:28px 0 8px;border-bottom:1px solid #ddd;padding-bottom:4px}h3{font-size:15px;margin:18px 0 6px}\
.sub{color:#444;margin:0 0 12px}.note{color:#555}code{font-family:'DejaVu Sans Mono',Menlo,Consolas,monospace;font-size:12.5px;overflow-wrap:anywhere}\
table{border-collapse:collapse;margin:6px 0}th,td{border:1px solid #ddd;padding:3px 8px;text-align:left;vertical-align:top}th{background:#f6f6f6;font-weight:600}\
table.kv th{white-space:nowrap}table.num td{text-align:right;white-space:nowrap}td.r{text-align:right;white-space:nowrap}\
tr.warning td{background:#fff3cd}tr.total th,tr.total td{font-weight:600}.bad{color:#b00020}\
tr.recompute td:nth-child(2){color:#a15c00;font-weight:600}tr.retained td:nth-child(2){color:#00558a}tr.source td:nth-child(2){color:#555}\
figure{margin:10px 0}figcaption{font-weight:600;margin-bottom:4px}svg.chart{display:block;max-width:100%;height:auto}\
svg text{font-family:system-ui,'DejaVu Sans',sans-serif;font-size:12px;fill:#222}svg .tick{fill:#444}svg .axis-title{font-size:12px;fill:#333}\
svg .grid{stroke:#e6e6e6;stroke-width:1}svg .axis{stroke:#555;stroke-width:1}svg .area{stroke:none}\
svg .budget{stroke:#d00000;stroke-width:2;stroke-dasharray:7 4}svg .budget-label{fill:#b00000;font-weight:600}\
svg .boundary{stroke:#333;stroke-width:1;stroke-dasharray:3 3}svg .phase-label{fill:#333;font-style:italic}\
svg .peak{fill:#fff;stroke:#000;stroke-width:2.5}svg .peak-drop{stroke:#000;stroke-width:1;stroke-dasharray:2 2}svg .peak-label{font-weight:700}\
svg .bar-total{font-weight:600}svg .peak-label,svg .budget-label,svg .phase-label{paint-order:stroke;stroke:#fff;stroke-width:3px;stroke-linejoin:round}\
.legend{list-style:none;padding:0;margin:6px 0;display:flex;flex-wrap:wrap;gap:4px 18px}.legend li{display:flex;align-items:center}\
.swatch{display:inline-block;width:12px;height:12px;margin-right:6px;border:1px solid #0003;vertical-align:-1px}\
.swatch.line{height:0;border:0;border-top:2px dashed #d00000;width:18px}.swatch.dot{border-radius:50%;border:2px solid #000;background:#fff;width:9px;height:9px}\
details{margin:10px 0}summary{cursor:pointer;font-weight:600}table.live td{font-size:13px}table.live td:nth-child(3){white-space:nowrap}\
footer{margin:32px 0 8px;color:#666;font-size:12px}";
