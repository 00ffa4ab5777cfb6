//! `onnx-ac sweep` (issue #16 item 3): one plan per configuration of the symbolic dims (batch ×
//! sequence length, …) under one budget, as the seed's recompute-cost heatmap.
//!
//! Each configuration is the main command without writing anything: the training graph at
//! those dims, the cost model, the planner, the simulated peak. Configurations run in
//! parallel (rayon) when the cost model needs no ONNX Runtime session; profiled ones
//! (`--cost measured`) run one at a time so that their timings do not share the cores.

use crate::error::{Error, Result};
use crate::pipeline::{plan_and_rewrite, PlanOptions, PlanSource};
use crate::size::Budget;
use onnx_ac_passes::autodiff::TrainingInfo;
use onnx_ac_passes::ir::{Graph, Model, NodeId};
use onnx_ac_passes::recompute::RewriteOptions;
use rayon::prelude::*;
use serde::Serialize;
use std::collections::BTreeMap;

/// One `--dim NAME=V1,V2,...`.
#[derive(Clone, Debug, PartialEq)]
pub struct DimValues {
    pub name: String,
    pub values: Vec<i64>,
}

/// Parses `NAME=V1,V2,...` (values positive, distinct, in the order given).
pub fn parse_dim_values(s: &str) -> std::result::Result<DimValues, String> {
    let (k, vs) = s
        .split_once('=')
        .ok_or_else(|| format!("'{s}' is not NAME=V1,V2,... (e.g. --dim batch=1,2,4)"))?;
    let name = k.trim();
    if name.is_empty() {
        return Err(format!("--dim {s}: the name is empty"));
    }
    let mut values = Vec::new();
    for v in vs.split(',') {
        let (_, x) = crate::parse_dim(&format!("{name}={v}"))?;
        if values.contains(&x) {
            return Err(format!("--dim {s}: {x} is given twice"));
        }
        values.push(x);
    }
    Ok(DimValues {
        name: name.to_string(),
        values,
    })
}

/// The most configurations one sweep plans (each builds and plans a training graph).
pub const MAX_CONFIGS: usize = 1024;

/// A configuration's dims, in `--dim` order.
pub type Config = Vec<(String, i64)>;

/// Every combination of the dims' values, the first dim varying slowest.
pub fn configs(dims: &[DimValues]) -> Result<Vec<Config>> {
    let mut names = std::collections::HashSet::new();
    for d in dims {
        if !names.insert(d.name.as_str()) {
            return Err(Error::Usage(format!("--dim {} is given twice", d.name)));
        }
    }
    let mut out: Vec<Config> = vec![Vec::new()];
    for d in dims {
        if out.len().saturating_mul(d.values.len()) > MAX_CONFIGS {
            return Err(Error::Usage(format!(
                "the --dim lists make more than {MAX_CONFIGS} configurations"
            )));
        }
        out = out
            .into_iter()
            .flat_map(|c| {
                d.values.iter().map(move |&v| {
                    let mut c = c.clone();
                    c.push((d.name.clone(), v));
                    c
                })
            })
            .collect();
    }
    Ok(out)
}

/// What one configuration gave.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct Cell {
    pub dims: BTreeMap<String, i64>,
    /// The budget in bytes (a relative budget resolved against this configuration).
    pub budget_bytes: Option<u64>,
    /// Simulated peak without recomputation.
    pub initial_peak_bytes: Option<u64>,
    /// Simulated peak of the plan (its best effort when the budget is unreachable).
    pub final_peak_bytes: Option<u64>,
    pub fits: bool,
    /// The cost model's time of the recomputation, % of the step's.
    pub recompute_cost_percent: Option<f64>,
    /// Recomputed MatMul-class FLOPs, % of the step's.
    pub added_matmul_flops_percent: Option<f64>,
    /// Why the configuration does not fit (unreachable budget, or the error that stopped it).
    pub why: Option<String>,
    /// The cost model that timed this configuration (a measured one names its profile).
    pub cost_model: Option<String>,
}

/// The whole sweep.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct Sweep {
    pub planner: String,
    pub budget: String,
    /// The budget is in bytes (the same for every configuration).
    pub absolute: bool,
    pub dims: Vec<String>,
    pub cells: Vec<Cell>,
}

/// Builds a configuration's training graph, and its node costs (with their description).
pub type BuildFn<'a> = dyn Fn(&BTreeMap<String, i64>) -> Result<(Model, TrainingInfo)> + Sync + 'a;
/// A configuration's node costs.
pub type NodeTimeFn = Box<dyn Fn(&Graph, NodeId) -> f64 + Sync>;
pub type CostFn<'a> = dyn Fn(&Model, &TrainingInfo, &BTreeMap<String, i64>) -> Result<(NodeTimeFn, String)>
    + Sync
    + 'a;

/// What a sweep is asked for.
pub struct SweepOptions<'a> {
    pub planner: String,
    pub budget: Budget,
    pub budget_text: String,
    /// Run configurations in parallel (not with a measured cost model).
    pub parallel: bool,
    pub build: &'a BuildFn<'a>,
    pub costs: &'a CostFn<'a>,
    /// Told after each configuration: (done, total).
    pub progress: &'a (dyn Fn(usize, usize) + Sync),
}

/// Plans every configuration.
pub fn sweep(configs: &[Config], opts: &SweepOptions) -> Sweep {
    let done = std::sync::atomic::AtomicUsize::new(0);
    let one = |c: &Config| {
        let cell = cell(c, opts);
        let k = done.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1;
        (opts.progress)(k, configs.len());
        cell
    };
    let cells: Vec<Cell> = if opts.parallel {
        configs.par_iter().map(one).collect()
    } else {
        configs.iter().map(one).collect()
    };
    Sweep {
        planner: opts.planner.clone(),
        budget: opts.budget_text.clone(),
        absolute: matches!(opts.budget, Budget::Bytes(_)),
        dims: configs
            .first()
            .map(|c| c.iter().map(|(n, _)| n.clone()).collect())
            .unwrap_or_default(),
        cells,
    }
}

fn cell(c: &Config, opts: &SweepOptions) -> Cell {
    let dims: BTreeMap<String, i64> = c.iter().cloned().collect();
    let mut cell = Cell {
        dims: dims.clone(),
        budget_bytes: None,
        initial_peak_bytes: None,
        final_peak_bytes: None,
        fits: false,
        recompute_cost_percent: None,
        added_matmul_flops_percent: None,
        why: None,
        cost_model: None,
    };
    let (tm, info) = match (opts.build)(&dims) {
        Ok(t) => t,
        Err(e) => {
            cell.why = Some(e.to_string());
            return cell;
        }
    };
    let mut cost_model = None;
    let planned = (opts.costs)(&tm, &info, &dims).and_then(|(cost, cost_name)| {
        cost_model = Some(cost_name.clone());
        let plan_opts = PlanOptions {
            budget: opts.budget,
            source: PlanSource::Planner(opts.planner.clone()),
            best_effort: false,
            rewrite: RewriteOptions::defended(true),
            bound_dims: c.clone(),
        };
        plan_and_rewrite(&tm, &info, &plan_opts, &*cost, &cost_name)
    });
    cell.cost_model = cost_model;
    match planned {
        Ok(p) => {
            let s = &p.summary;
            cell.budget_bytes = Some(s.budget_bytes);
            cell.initial_peak_bytes = Some(s.simulated_initial_peak_bytes);
            cell.final_peak_bytes = Some(s.simulated_final_peak_bytes);
            cell.fits = s.within_budget;
            cell.recompute_cost_percent =
                Some(100.0 * s.recompute_time_s / s.initial_step_time_s.max(f64::MIN_POSITIVE));
            cell.added_matmul_flops_percent = Some(s.added_matmul_flops_percent);
        }
        Err(Error::BudgetUnreachable {
            budget,
            smallest_peak,
            ..
        }) => {
            // The plan's summary carries the plain peak; an unreachable budget has none.
            let plain = crate::plan::simulate::simulate_ort_default(&tm.graph, Some(&info)).1;
            cell.initial_peak_bytes = Some(plain.peak_bytes);
            cell.budget_bytes = Some(budget);
            cell.final_peak_bytes = Some(smallest_peak);
            cell.why = Some(format!(
                "unreachable: the lowest peak {} reaches is {}",
                opts.planner,
                crate::size::human_bytes(smallest_peak)
            ));
        }
        Err(e) => cell.why = Some(e.to_string()),
    }
    cell
}

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

impl Sweep {
    /// One row per configuration: its dims (one column each), then the figures.
    pub fn to_csv(&self) -> String {
        let mut out = String::new();
        for d in &self.dims {
            out.push_str(&csv_field(d));
            out.push(',');
        }
        out.push_str("budget_bytes,initial_peak_bytes,final_peak_bytes,fits,recompute_cost_percent,added_matmul_flops_percent,why\n");
        let opt = |v: Option<u64>| v.map(|x| x.to_string()).unwrap_or_default();
        let pct = |v: Option<f64>| v.map(|x| format!("{x:.2}")).unwrap_or_default();
        for c in &self.cells {
            for d in &self.dims {
                out.push_str(&c.dims[d].to_string());
                out.push(',');
            }
            out.push_str(&format!(
                "{},{},{},{},{},{},{}\n",
                opt(c.budget_bytes),
                opt(c.initial_peak_bytes),
                opt(c.final_peak_bytes),
                c.fits,
                pct(c.recompute_cost_percent),
                pct(c.added_matmul_flops_percent),
                csv_field(c.why.as_deref().unwrap_or(""))
            ));
        }
        out
    }

    /// The rows (first dim) and columns (second dim; one column when there is one dim) of the
    /// heatmap, and the cell of each pair.
    fn grid(&self) -> (Vec<i64>, Vec<i64>, Vec<Vec<&Cell>>) {
        let row_of = |c: &Cell| self.dims.first().map(|d| c.dims[d]).unwrap_or(0);
        let col_of = |c: &Cell| self.dims.get(1).map(|d| c.dims[d]).unwrap_or(0);
        let mut rows: Vec<i64> = Vec::new();
        let mut cols: Vec<i64> = Vec::new();
        for c in &self.cells {
            if !rows.contains(&row_of(c)) {
                rows.push(row_of(c));
            }
            if !cols.contains(&col_of(c)) {
                cols.push(col_of(c));
            }
        }
        let grid = rows
            .iter()
            .map(|&r| {
                cols.iter()
                    .filter_map(|&k| self.cells.iter().find(|c| row_of(c) == r && col_of(c) == k))
                    .collect()
            })
            .collect();
        (rows, cols, grid)
    }

    /// The heatmap as text: recompute cost (%) per cell, `--` where the budget is unreachable
    /// and `err` where the configuration failed (why, below the table); then, per column, the
    /// largest row value that fits.
    pub fn to_text(&self) -> String {
        let (rows, cols, grid) = self.grid();
        let rname = self.dims.first().cloned().unwrap_or_default();
        let cname = self.dims.get(1).cloned().unwrap_or_default();
        // One cost model, or (measured: each configuration profiled, or estimated where its
        // step does not fit the budget) several, which the JSON names per configuration.
        let mut models: Vec<&str> = self
            .cells
            .iter()
            .filter_map(|c| c.cost_model.as_deref())
            .collect();
        models.sort_unstable();
        models.dedup();
        let cost = match models.as_slice() {
            [] => "-".to_string(),
            [one] => one.to_string(),
            many => format!(
                "{} models, one per configuration (measured profiles where the step fits the budget, else estimates; --json names each)",
                many.len()
            ),
        };
        let mut out = format!(
            "planner      {}\ncost model   {cost}\nbudget       {}\nrecompute cost, % of the step's time (cost model), {} (rows) by {} (columns):\n\n",
            self.planner,
            self.budget,
            rname,
            if cname.is_empty() { "-" } else { &cname }
        );
        out.push_str(&format!("{:>8}", rname));
        for c in &cols {
            out.push_str(&format!(
                " {:>8}",
                if cname.is_empty() {
                    String::from("-")
                } else {
                    c.to_string()
                }
            ));
        }
        out.push('\n');
        let mut notes = Vec::new();
        for (r, row) in rows.iter().zip(&grid) {
            out.push_str(&format!("{r:>8}"));
            for c in row {
                let text = match (c.fits, c.recompute_cost_percent, &c.why) {
                    (true, Some(p), _) => format!("{p:.1}%"),
                    (_, _, Some(w)) if w.starts_with("unreachable") => "--".into(),
                    _ => "err".into(),
                };
                out.push_str(&format!(" {text:>8}"));
                if let Some(w) = &c.why {
                    let at: Vec<String> = self
                        .dims
                        .iter()
                        .map(|d| format!("{d}={}", c.dims[d]))
                        .collect();
                    notes.push(format!("  {}: {w}", at.join(" ")));
                }
            }
            out.push('\n');
        }
        if !notes.is_empty() {
            out.push_str("\nnot fitting:\n");
            for n in notes {
                out.push_str(&n);
                out.push('\n');
            }
        }
        // With a relative budget every reachable configuration fits its own budget; the
        // question an absolute one answers is which configurations fit at all.
        if !cname.is_empty() && self.absolute {
            out.push_str(&format!("\nlargest {rname} that fits, per {cname}:\n"));
            for (k, col) in cols.iter().enumerate() {
                let best = rows
                    .iter()
                    .zip(&grid)
                    .filter_map(|(r, row)| row.get(k).filter(|c| c.fits).map(|c| (*r, *c)))
                    .max_by_key(|(r, _)| *r);
                match best {
                    Some((r, c)) => out.push_str(&format!(
                        "  {cname}={col}: {rname}={r} (recompute cost {:.1}%, added matmul FLOPs {:.1}%)\n",
                        c.recompute_cost_percent.unwrap_or(0.0),
                        c.added_matmul_flops_percent.unwrap_or(0.0)
                    )),
                    None => out.push_str(&format!("  {cname}={col}: none\n")),
                }
            }
        }
        out
    }
}

impl Sweep {
    /// The heatmap as a self-contained SVG: rows the first dim, columns the second, each cell
    /// coloured by its recompute cost (white 0% to red at the sweep's highest) with the value
    /// written in it; a cell that does not fit is grey, marked `--` (budget unreachable) or
    /// `err`, and numbered in the list of reasons below the grid.
    pub fn to_svg(&self) -> String {
        let (rows, cols, grid) = self.grid();
        let rname = self.dims.first().cloned().unwrap_or_default();
        let cname = self.dims.get(1).cloned().unwrap_or_else(|| "-".into());
        let (cw, ch, left, top) = (76.0, 34.0, 90.0, 84.0);
        let max = self
            .cells
            .iter()
            .filter(|c| c.fits)
            .filter_map(|c| c.recompute_cost_percent)
            .fold(0.0f64, f64::max)
            .max(1e-9);
        let mut reasons: Vec<String> = Vec::new();
        let mut body = String::new();
        for (i, (r, row)) in rows.iter().zip(&grid).enumerate() {
            let y = top + i as f64 * ch;
            body.push_str(&format!(
                "<text x=\"{}\" y=\"{}\" text-anchor=\"end\">{r}</text>\n",
                left - 8.0,
                y + ch / 2.0 + 5.0
            ));
            for (k, c) in row.iter().enumerate() {
                let x = left + k as f64 * cw;
                let (fill, label) = match (c.fits, c.recompute_cost_percent) {
                    (true, Some(p)) => {
                        let t = (p / max).clamp(0.0, 1.0);
                        let g = (255.0 - 175.0 * t).round() as u8;
                        (format!("rgb(255,{g},{g})"), format!("{p:.1}%"))
                    }
                    _ => {
                        reasons.push(c.why.clone().unwrap_or_default());
                        let mark = match &c.why {
                            Some(w) if w.starts_with("unreachable") => "--",
                            _ => "err",
                        };
                        ("#d0d0d0".to_string(), format!("{mark} ({})", reasons.len()))
                    }
                };
                body.push_str(&format!(
                    "<rect x=\"{x}\" y=\"{y}\" width=\"{cw}\" height=\"{ch}\" fill=\"{fill}\" stroke=\"#ffffff\"/>\n<text x=\"{}\" y=\"{}\" text-anchor=\"middle\">{}</text>\n",
                    x + cw / 2.0,
                    y + ch / 2.0 + 5.0,
                    xml_escape(&label)
                ));
            }
        }
        for (k, c) in cols.iter().enumerate() {
            body.push_str(&format!(
                "<text x=\"{}\" y=\"{}\" text-anchor=\"middle\">{c}</text>\n",
                left + k as f64 * cw + cw / 2.0,
                top - 10.0
            ));
        }
        let grid_h = top + rows.len() as f64 * ch;
        let width = (left + cols.len() as f64 * cw + 20.0).max(560.0);
        let mut notes = String::new();
        for (k, r) in reasons.iter().enumerate() {
            notes.push_str(&format!(
                "<text x=\"10\" y=\"{}\" font-size=\"12\">({}) {}</text>\n",
                grid_h + 30.0 + k as f64 * 18.0,
                k + 1,
                xml_escape(r)
            ));
        }
        let height = grid_h + 40.0 + reasons.len() as f64 * 18.0;
        format!(
            "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{width}\" height=\"{height}\" font-family=\"sans-serif\" font-size=\"13\">\n\
<rect width=\"100%\" height=\"100%\" fill=\"#ffffff\"/>\n\
<text x=\"10\" y=\"22\" font-size=\"15\" font-weight=\"bold\">Recompute cost, % of the step's time ({} at {})</text>\n\
<text x=\"{}\" y=\"{}\" text-anchor=\"middle\" font-style=\"italic\">{}</text>\n\
<text x=\"{}\" y=\"{}\" text-anchor=\"end\" font-style=\"italic\">{} \u{2193}</text>\n\
{body}{notes}</svg>\n",
            xml_escape(&self.planner),
            xml_escape(&self.budget),
            left + cols.len() as f64 * cw / 2.0,
            top - 32.0,
            xml_escape(&format!("{cname} \u{2192}")),
            left - 8.0,
            top - 10.0,
            xml_escape(&rname),
        )
    }
}

fn xml_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dim_lists_parse_and_multiply() {
        let b = parse_dim_values("batch=1,2,4").unwrap();
        assert_eq!(b.values, [1, 2, 4]);
        assert!(parse_dim_values("batch=1,1").is_err());
        assert!(parse_dim_values("batch=1,,2").is_err());
        assert!(parse_dim_values("batch=0").is_err());
        assert!(parse_dim_values("=1").is_err());
        let s = parse_dim_values("seq=16,32").unwrap();
        let c = configs(&[b.clone(), s]).unwrap();
        assert_eq!(c.len(), 6);
        assert_eq!(
            c[1],
            vec![("batch".to_string(), 1), ("seq".to_string(), 32)]
        );
        assert!(configs(&[b.clone(), b]).is_err());
        let big = DimValues {
            name: "x".into(),
            values: (1..=40).collect(),
        };
        let big2 = DimValues {
            name: "y".into(),
            values: (1..=40).collect(),
        };
        assert!(configs(&[big, big2]).is_err());
    }
}
