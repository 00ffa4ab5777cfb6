//! The estimate as a self-contained SVG: one group of bars per point (value of the listed
//! dimension), one bar per plan (none, selective, full, budget), each stacked parameters /
//! gradients / optimizer state / activations, with the simulated step peak marked on it.
//! One unit on the axis (the table's). Hand-written: a few rectangles and labels need no
//! plotting crate.

use super::table::{scale_of, unit_bytes};
use super::Estimate;
use std::fmt::Write;

const CATEGORIES: [(&str, &str); 4] = [
    ("parameters", "#4c72b0"),
    ("gradients", "#55a868"),
    ("optimizer state", "#c44e52"),
    ("activations", "#dd8452"),
];
const BAR: f64 = 30.0;
const BAR_GAP: f64 = 8.0;
const GROUP_GAP: f64 = 36.0;
const LEFT: f64 = 84.0;
const TOP: f64 = 78.0;
const PLOT_H: f64 = 320.0;
const BOTTOM: f64 = 108.0;

/// Text for SVG: the model path comes from the command line, plan names from us, but
/// nothing that reaches markup goes unescaped.
fn esc(s: &str) -> String {
    s.chars()
        .map(|c| match c {
            '&' => "&amp;".to_string(),
            '<' => "&lt;".to_string(),
            '>' => "&gt;".to_string(),
            '"' => "&quot;".to_string(),
            c if c.is_control() => "\u{fffd}".to_string(),
            c => c.to_string(),
        })
        .collect()
}

/// A tick step of 1, 2 or 5 × 10^k giving about five ticks up to `max`.
fn tick_step(max: f64) -> f64 {
    if max <= 0.0 {
        return 1.0;
    }
    let raw = max / 5.0;
    let p = 10f64.powf(raw.log10().floor());
    [1.0, 2.0, 5.0, 10.0]
        .iter()
        .map(|m| m * p)
        .find(|&s| s >= raw)
        .unwrap_or(10.0 * p)
}

pub fn svg(e: &Estimate) -> String {
    let scale = scale_of(e);
    let per = unit_bytes(&scale);
    let bars = e.points.first().map_or(0, |p| p.plans.len()).max(1);
    let group_w = bars as f64 * BAR + (bars - 1) as f64 * BAR_GAP;
    let groups = e.points.len().max(1);
    // At least as wide as the legend (its last entry ends near x = 690).
    let width = (LEFT + groups as f64 * (group_w + GROUP_GAP) + 24.0).max(720.0);
    let height = TOP + PLOT_H + BOTTOM;
    let top_value = e
        .points
        .iter()
        .flat_map(|p| &p.plans)
        .map(|r| r.total_bytes.max(r.step_peak_bytes) as f64 / per)
        .fold(0.0, f64::max);
    let step = tick_step(top_value);
    let y_max = (top_value / step).ceil().max(1.0) * step;
    let y = |v: f64| TOP + PLOT_H - v / y_max * PLOT_H;
    let mut s = String::new();
    let _ = writeln!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{width:.0}" height="{height:.0}" viewBox="0 0 {width:.0} {height:.0}" font-family="DejaVu Sans, Arial, sans-serif" font-size="12">"#
    );
    let _ = writeln!(
        s,
        r#"<rect x="0" y="0" width="{width:.0}" height="{height:.0}" fill="white"/>"#
    );
    let name = std::path::Path::new(&e.model)
        .file_name()
        .map(|f| f.to_string_lossy().into_owned())
        .unwrap_or_else(|| e.model.clone());
    let fixed: Vec<String> = e
        .points
        .first()
        .map(|p| {
            p.dims
                .iter()
                .filter(|(k, _)| Some(*k) != e.sweep_dim.as_ref())
                .map(|(k, v)| format!("{k}={v}"))
                .collect()
        })
        .unwrap_or_default();
    let optimizer = e.optimizer.as_deref().unwrap_or("no optimizer");
    let _ = writeln!(
        s,
        r#"<text x="{LEFT}" y="22" font-size="15" font-weight="bold">Training step memory: {}</text>"#,
        esc(&name)
    );
    let _ = writeln!(
        s,
        r##"<text x="{LEFT}" y="40" fill="#444">{}{}{}; bars: none / selective / full{}</text>"##,
        esc(optimizer),
        if fixed.is_empty() { "" } else { ", " },
        esc(&fixed.join(" ")),
        e.budget_requested
            .as_ref()
            .map(|b| format!(" / budget {}", esc(&super::table::budget_text(b))))
            .unwrap_or_default()
    );
    // Legend.
    let mut lx = LEFT;
    for (label, color) in CATEGORIES {
        let _ = writeln!(
            s,
            r#"<rect x="{lx}" y="52" width="12" height="12" fill="{color}"/><text x="{:.0}" y="62">{label}</text>"#,
            lx + 16.0
        );
        lx += 24.0 + label.len() as f64 * 7.0;
    }
    let _ = writeln!(
        s,
        r#"<line x1="{lx}" y1="58" x2="{:.0}" y2="58" stroke="black" stroke-width="2"/><text x="{:.0}" y="62">step peak (simulated)</text>"#,
        lx + 14.0,
        lx + 18.0
    );
    // Axis and grid.
    let right = width - 16.0;
    let mut v = 0.0;
    while v <= y_max + step / 2.0 {
        let yy = y(v);
        let _ = writeln!(
            s,
            r##"<line x1="{LEFT}" y1="{yy:.1}" x2="{right:.0}" y2="{yy:.1}" stroke="#ddd"/><text x="{:.0}" y="{:.1}" text-anchor="end">{}</text>"##,
            LEFT - 6.0,
            yy + 4.0,
            fmt_tick(v, step)
        );
        v += step;
    }
    let _ = writeln!(
        s,
        r#"<text transform="translate(18 {:.0}) rotate(-90)" text-anchor="middle">{}</text>"#,
        TOP + PLOT_H / 2.0,
        scale.unit()
    );
    let _ = writeln!(
        s,
        r#"<line x1="{LEFT}" y1="{TOP}" x2="{LEFT}" y2="{:.0}" stroke="black"/><line x1="{LEFT}" y1="{:.0}" x2="{right:.0}" y2="{:.0}" stroke="black"/>"#,
        TOP + PLOT_H,
        TOP + PLOT_H,
        TOP + PLOT_H
    );
    // Bars.
    for (gi, p) in e.points.iter().enumerate() {
        let gx = LEFT + GROUP_GAP / 2.0 + gi as f64 * (group_w + GROUP_GAP);
        for (bi, r) in p.plans.iter().enumerate() {
            let x = gx + bi as f64 * (BAR + BAR_GAP);
            let parts = [
                r.parameters_bytes,
                r.gradients_bytes,
                r.optimizer_state_bytes,
                r.activations_bytes,
            ];
            let mut base = 0.0;
            for ((label, color), b) in CATEGORIES.iter().zip(parts) {
                let h = b as f64 / per;
                let (y1, y0) = (y(base + h), y(base));
                let _ = writeln!(
                    s,
                    r#"<rect x="{x:.1}" y="{y1:.2}" width="{BAR}" height="{:.2}" fill="{color}"><title>{}: {label} {}</title></rect>"#,
                    (y0 - y1).max(0.0),
                    esc(&r.plan),
                    scale.format(b)
                );
                base += h;
            }
            let py = y(r.step_peak_bytes as f64 / per);
            let _ = writeln!(
                s,
                r#"<line x1="{:.1}" y1="{py:.2}" x2="{:.1}" y2="{py:.2}" stroke="black" stroke-width="2"><title>{}: step peak {}</title></line>"#,
                x - 3.0,
                x + BAR + 3.0,
                esc(&r.plan),
                scale.format(r.step_peak_bytes)
            );
            let label = if r.within_budget == Some(false) {
                format!("{}*", r.plan)
            } else {
                r.plan.clone()
            };
            let (lx, ly) = (x + BAR / 2.0 + 4.0, TOP + PLOT_H + 10.0);
            let _ = writeln!(
                s,
                r#"<text transform="translate({lx:.1} {ly:.1}) rotate(-45)" text-anchor="end" font-size="11">{}</text>"#,
                esc(&label)
            );
        }
        let label = match &e.sweep_dim {
            Some(d) => format!("{d}={}", p.dims.get(d).copied().unwrap_or(0)),
            None => p
                .dims
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join(" "),
        };
        let _ = writeln!(
            s,
            r#"<text x="{:.1}" y="{:.0}" text-anchor="middle" font-weight="bold">{}</text>"#,
            gx + group_w / 2.0,
            TOP + PLOT_H + 78.0,
            esc(&label)
        );
    }
    if e.points
        .iter()
        .flat_map(|p| &p.plans)
        .any(|r| r.within_budget == Some(false))
    {
        let _ = writeln!(
            s,
            r##"<text x="{LEFT}" y="{:.0}" fill="#444">* budget not met: the planner's lowest-peak plan</text>"##,
            height - 4.0
        );
    }
    s.push_str("</svg>\n");
    s
}

/// A tick label with as many decimals as the step needs.
fn fmt_tick(v: f64, step: f64) -> String {
    let decimals = if step >= 1.0 {
        0
    } else {
        (-step.log10().floor()) as usize
    };
    format!("{v:.decimals$}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_are_1_2_5() {
        assert_eq!(tick_step(100.0), 20.0);
        assert_eq!(tick_step(7.0), 2.0);
        assert_eq!(tick_step(0.9), 0.2);
        assert_eq!(tick_step(0.0), 1.0);
        assert_eq!(fmt_tick(0.4, 0.2), "0.4");
        assert_eq!(fmt_tick(40.0, 20.0), "40");
    }

    #[test]
    fn markup_is_escaped() {
        assert_eq!(esc("a<b>&\"c\u{1b}"), "a&lt;b&gt;&amp;&quot;c\u{fffd}");
    }
}
