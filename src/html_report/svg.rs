//! Hand-written inline SVG: the stacked live-memory chart of a step's schedule and the stacked
//! bars at the peak. Labels are placed by a small search (candidate positions in order of
//! preference, the first inside the plot that overlaps no label already placed), so the
//! budget, the peak and the forward/backward labels never cover each other; the chart returns
//! their boxes so tests can check it.

use super::escape;
use super::trace::{total, Bytes, CATEGORIES};
use std::fmt::Write;

/// Font size of labels, px.
const FONT: f64 = 12.0;
/// Width of a character, as a share of the font size: generous for sans-serif digits and
/// letters, so that estimated boxes contain the drawn text.
const CHAR_WIDTH: f64 = 0.62;

/// A label's box (x, y of the top-left corner, width, height), in SVG px.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Rect {
    pub x: f64,
    pub y: f64,
    pub w: f64,
    pub h: f64,
}

impl Rect {
    pub fn overlaps(&self, o: &Rect) -> bool {
        self.x < o.x + o.w && o.x < self.x + self.w && self.y < o.y + o.h && o.y < self.y + self.h
    }
    fn inside(&self, o: &Rect) -> bool {
        self.x >= o.x
            && self.y >= o.y
            && self.x + self.w <= o.x + o.w
            && self.y + self.h <= o.y + o.h
    }
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Anchor {
    Start,
    Middle,
    End,
}

impl Anchor {
    fn svg(self) -> &'static str {
        match self {
            Anchor::Start => "start",
            Anchor::Middle => "middle",
            Anchor::End => "end",
        }
    }
}

/// The box of `text` drawn at (x, baseline y) with `anchor`.
fn text_box(text: &str, x: f64, y: f64, anchor: Anchor) -> Rect {
    let w = text.chars().count() as f64 * FONT * CHAR_WIDTH;
    let left = match anchor {
        Anchor::Start => x,
        Anchor::Middle => x - w / 2.0,
        Anchor::End => x - w,
    };
    Rect {
        x: left,
        y: y - FONT,
        w,
        h: FONT * 1.3,
    }
}

/// Places labels without overlaps.
struct Labels {
    area: Rect,
    placed: Vec<Rect>,
    svg: String,
}

impl Labels {
    /// Draws `text` at the first candidate (x, y, anchor) whose box is inside the area and
    /// clear of every label and obstacle so far (else at the first candidate).
    fn place(&mut self, text: &str, class: &str, candidates: &[(f64, f64, Anchor)]) {
        let fits = |c: &(f64, f64, Anchor), placed: &[Rect]| {
            let r = text_box(text, c.0, c.1, c.2);
            r.inside(&self.area) && placed.iter().all(|p| !p.overlaps(&r))
        };
        let c = candidates
            .iter()
            .find(|c| fits(c, &self.placed))
            .or(candidates.first())
            .copied();
        let Some((x, y, a)) = c else { return };
        self.placed.push(text_box(text, x, y, a));
        let _ = write!(
            self.svg,
            r#"<text class="{class}" x="{x:.1}" y="{y:.1}" text-anchor="{}">{}</text>"#,
            a.svg(),
            escape(text)
        );
    }
}

/// Nice tick step for an axis from 0 to `max` with about `n` ticks.
pub fn tick_step(max: f64, n: usize) -> f64 {
    if max <= 0.0 || !max.is_finite() {
        return 1.0;
    }
    let raw = max / n.max(1) as f64;
    let mag = 10f64.powf(raw.log10().floor());
    let f = raw / mag;
    let nice = if f <= 1.0 {
        1.0
    } else if f <= 2.0 {
        2.0
    } else if f <= 2.5 {
        2.5
    } else if f <= 5.0 {
        5.0
    } else {
        10.0
    };
    nice * mag
}

/// A tick value with as many decimals as its step needs.
fn tick_text(v: f64, step: f64) -> String {
    let decimals = (0..6)
        .find(|&d| {
            let m = step * 10f64.powi(d);
            (m - m.round()).abs() < 1e-6
        })
        .unwrap_or(6) as usize;
    format!("{v:.decimals$}")
}

/// How bytes are shown: divided by `div`, in `unit`.
#[derive(Clone, Copy, Debug)]
pub struct Unit {
    pub div: f64,
    pub unit: &'static str,
}

impl Unit {
    pub fn of(scale: crate::size::ByteScale) -> Unit {
        let unit = scale.unit();
        let shift = match unit {
            "B" => 0,
            "KiB" => 1,
            "MiB" => 2,
            "GiB" => 3,
            _ => 4,
        };
        Unit {
            div: (1u64 << (10 * shift)) as f64,
            unit,
        }
    }
    fn v(&self, b: u64) -> f64 {
        b as f64 / self.div
    }
}

/// What an area chart shows.
pub struct AreaChart<'a> {
    pub id: &'a str,
    pub title: &'a str,
    /// (first position, bytes by category) per column, in order.
    pub columns: &'a [(usize, Bytes)],
    /// Positions of the schedule (the x axis runs from 0 to this).
    pub positions: usize,
    /// Top of the y axis, bytes.
    pub y_max: u64,
    pub budget: u64,
    pub peak_step: usize,
    pub peak_bytes: u64,
    /// A short description of the node at the peak.
    pub peak_node: &'a str,
    pub backward_start: Option<usize>,
    pub unit: Unit,
    pub format: &'a dyn Fn(u64) -> String,
    /// The step has an optimizer update (the legend's wording).
    pub optimizer: bool,
}

pub const WIDTH: f64 = 1100.0;
const HEIGHT: f64 = 340.0;
const LEFT: f64 = 64.0;
const RIGHT: f64 = 16.0;
const TOP: f64 = 12.0;
const BOTTOM: f64 = 52.0;

/// A step-shaped outline (each column holds its value from its first position to the next
/// column's): (x from, x to, y) runs, consecutive equal values merged.
fn steps_of(cols: &[(usize, Bytes)], positions: usize, v: &[u64]) -> Vec<(usize, usize, u64)> {
    let mut runs: Vec<(usize, usize, u64)> = Vec::new();
    for (j, (p, _)) in cols.iter().enumerate() {
        let end = cols.get(j + 1).map_or(positions, |(q, _)| *q);
        match runs.last_mut() {
            Some(r) if r.2 == v[j] => r.1 = end,
            _ => runs.push((*p, end, v[j])),
        }
    }
    runs
}

/// The SVG path of the band between `lower` and `upper`.
fn area_path(
    cols: &[(usize, Bytes)],
    positions: usize,
    upper: &[u64],
    lower: &[u64],
    x: &dyn Fn(f64) -> f64,
    y: &dyn Fn(u64) -> f64,
) -> String {
    let mut d = String::new();
    for (k, (a, b, v)) in steps_of(cols, positions, upper).into_iter().enumerate() {
        let _ = write!(
            d,
            "{}{:.1} {:.1}L{:.1} {:.1}",
            if k == 0 { "M" } else { "L" },
            x(a as f64),
            y(v),
            x(b as f64),
            y(v)
        );
    }
    for (a, b, v) in steps_of(cols, positions, lower).into_iter().rev() {
        let _ = write!(
            d,
            "L{:.1} {:.1}L{:.1} {:.1}",
            x(b as f64),
            y(v),
            x(a as f64),
            y(v)
        );
    }
    d
}

/// The chart as an `<svg>` element, the boxes of its placed labels, and the obstacles they
/// avoid (the peak marker, the budget line).
pub fn area_chart(c: &AreaChart) -> (String, Vec<Rect>, Vec<Rect>) {
    let (pw, ph) = (WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM);
    let n = c.positions.max(1) as f64;
    let y_max = c.unit.v(c.y_max).max(f64::MIN_POSITIVE);
    let x = |p: f64| LEFT + pw * p / n;
    let y = |b: u64| TOP + ph * (1.0 - c.unit.v(b) / y_max);
    let mut s = String::new();
    let _ = write!(
        s,
        r#"<svg id="{}" class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" width="{WIDTH}" height="{HEIGHT}" role="img" aria-label="{}">"#,
        c.id,
        escape(c.title)
    );
    // Grid and y ticks.
    let step = tick_step(y_max, 6);
    let mut t = 0.0;
    while t <= y_max + 1e-9 {
        let yy = TOP + ph * (1.0 - t / y_max);
        let _ = write!(
            s,
            r#"<line class="grid" x1="{LEFT}" x2="{:.1}" y1="{yy:.1}" y2="{yy:.1}"/><text class="tick" x="{:.1}" y="{:.1}" text-anchor="end">{}</text>"#,
            LEFT + pw,
            LEFT - 6.0,
            yy + 4.0,
            tick_text(t, step)
        );
        t += step;
    }
    // Stacked areas, one path per category, step-shaped (a column holds its value across its
    // positions).
    let cols = c.columns;
    let mut lower = vec![0u64; cols.len()];
    for cat in CATEGORIES {
        let upper: Vec<u64> = cols
            .iter()
            .zip(&lower)
            .map(|((_, b), l)| l + b[cat.index()])
            .collect();
        if cols.iter().all(|(_, b)| b[cat.index()] == 0) {
            continue;
        }
        let d = area_path(cols, c.positions, &upper, &lower, &x, &y);
        let _ = write!(
            s,
            r#"<path class="area" data-category="{}" fill="{}" d="{d}Z"><title>{}</title></path>"#,
            cat.short(),
            cat.color(),
            escape(cat.label(c.optimizer))
        );
        lower = upper;
    }
    // Axes.
    let _ = write!(
        s,
        r#"<line class="axis" x1="{LEFT}" x2="{LEFT}" y1="{TOP}" y2="{:.1}"/><line class="axis" x1="{LEFT}" x2="{:.1}" y1="{:.1}" y2="{:.1}"/>"#,
        TOP + ph,
        LEFT + pw,
        TOP + ph,
        TOP + ph
    );
    let xstep = tick_step(n, 10).max(1.0);
    let mut t = 0.0;
    while t <= n + 1e-9 {
        let xx = x(t);
        let _ = write!(
            s,
            r#"<line class="axis" x1="{xx:.1}" x2="{xx:.1}" y1="{:.1}" y2="{:.1}"/><text class="tick" x="{xx:.1}" y="{:.1}" text-anchor="middle">{}</text>"#,
            TOP + ph,
            TOP + ph + 4.0,
            TOP + ph + 17.0,
            t as u64
        );
        t += xstep;
    }
    let _ = write!(
        s,
        r#"<text class="axis-title" x="{:.1}" y="{:.1}" text-anchor="middle">step: kernel run by ONNX Runtime, in its execution order</text>"#,
        LEFT + pw / 2.0,
        HEIGHT - 8.0
    );
    let _ = write!(
        s,
        r#"<text class="axis-title" transform="translate(14 {:.1}) rotate(-90)" text-anchor="middle">live memory ({})</text>"#,
        TOP + ph / 2.0,
        c.unit.unit
    );
    // Budget line, forward/backward boundary, peak marker; then their labels.
    let area = Rect {
        x: LEFT + 2.0,
        y: TOP,
        w: pw - 4.0,
        h: ph,
    };
    let mut labels = Labels {
        area,
        placed: Vec::new(),
        svg: String::new(),
    };
    let by = y(c.budget.min(c.y_max));
    let _ = write!(
        s,
        r#"<line class="budget" x1="{LEFT}" x2="{:.1}" y1="{by:.1}" y2="{by:.1}"/>"#,
        LEFT + pw
    );
    if let Some(b) = c.backward_start {
        let bx = x(b as f64);
        let _ = write!(
            s,
            r#"<line class="boundary" x1="{bx:.1}" x2="{bx:.1}" y1="{TOP}" y2="{:.1}"/>"#,
            TOP + ph
        );
    }
    let (px, py) = (x(c.peak_step as f64 + 0.5), y(c.peak_bytes));
    let _ = write!(
        s,
        r#"<line class="peak-drop" x1="{px:.1}" x2="{px:.1}" y1="{py:.1}" y2="{:.1}"/><circle class="peak" cx="{px:.1}" cy="{py:.1}" r="5"/>"#,
        TOP + ph
    );
    // The marker and the budget line are obstacles for every label: no text is drawn across
    // them. (Labels may cross the thin dotted phase boundary: they have a white halo.)
    labels.placed.push(Rect {
        x: px - 6.0,
        y: py - 6.0,
        w: 12.0,
        h: 12.0,
    });
    labels.placed.push(Rect {
        x: LEFT,
        y: by - 1.0,
        w: pw,
        h: 2.0,
    });
    let obstacles = labels.placed.len();
    let peak_text = format!(
        "peak {} at step {} ({})",
        (c.format)(c.peak_bytes),
        c.peak_step,
        c.peak_node
    );
    let (l, r) = (px - 9.0, px + 9.0);
    labels.place(
        &peak_text,
        "peak-label",
        &[
            (r, py - 8.0, Anchor::Start),
            (l, py - 8.0, Anchor::End),
            (r, py + 18.0, Anchor::Start),
            (l, py + 18.0, Anchor::End),
            (px, py - 12.0, Anchor::Middle),
            (r, py + 34.0, Anchor::Start),
            (l, py + 34.0, Anchor::End),
        ],
    );
    let budget_text = format!("budget {}", (c.format)(c.budget));
    let right = LEFT + pw - 6.0;
    labels.place(
        &budget_text,
        "budget-label",
        &[
            (right, by - 5.0, Anchor::End),
            (right, by + 15.0, Anchor::End),
            (LEFT + 8.0, by - 5.0, Anchor::Start),
            (LEFT + 8.0, by + 15.0, Anchor::Start),
            (LEFT + pw / 2.0, by - 5.0, Anchor::Middle),
            (LEFT + pw / 2.0, by + 15.0, Anchor::Middle),
        ],
    );
    if let Some(b) = c.backward_start {
        let bx = x(b as f64);
        for (text, dx, anchor) in [
            ("forward", -6.0, Anchor::End),
            ("backward", 6.0, Anchor::Start),
        ] {
            let cands: Vec<(f64, f64, Anchor)> = (0..12)
                .map(|k| (bx + dx, TOP + 14.0 + 16.0 * k as f64, anchor))
                .collect();
            labels.place(text, "phase-label", &cands);
        }
    }
    s.push_str(&labels.svg);
    s.push_str("</svg>");
    let placed = labels.placed.split_off(obstacles);
    (s, placed, labels.placed)
}

/// Stacked horizontal bars of the bytes live at each peak (before, after), with the budget.
pub fn peak_bars(
    rows: &[(&str, &Bytes)],
    budget: u64,
    unit: Unit,
    format: &dyn Fn(u64) -> String,
) -> String {
    const H: f64 = 30.0;
    const GAP: f64 = 16.0;
    const LABEL_W: f64 = 64.0;
    const TOP: f64 = 26.0;
    let max = rows
        .iter()
        .map(|(_, b)| total(b))
        .chain([budget])
        .max()
        .unwrap_or(1)
        .max(1);
    // Room on the right for the total's label.
    let pw = WIDTH - LABEL_W - 110.0;
    let xmax = unit.v(max);
    let x = |b: u64| LABEL_W + pw * unit.v(b) / xmax;
    let height = TOP + rows.len() as f64 * (H + GAP) + 28.0;
    let mut s = String::new();
    let _ = write!(
        s,
        r#"<svg id="peak-bars" class="chart" viewBox="0 0 {WIDTH} {height}" width="{WIDTH}" height="{height}" role="img" aria-label="bytes live at the peak, by category">"#
    );
    for (i, (name, b)) in rows.iter().enumerate() {
        let top = TOP + i as f64 * (H + GAP);
        let _ = write!(
            s,
            r#"<text class="tick" x="{:.1}" y="{:.1}" text-anchor="end">{}</text>"#,
            LABEL_W - 8.0,
            top + H / 2.0 + 4.0,
            escape(name)
        );
        let mut acc = 0u64;
        for cat in CATEGORIES {
            let v = b[cat.index()];
            if v == 0 {
                continue;
            }
            let _ = write!(
                s,
                r#"<rect data-category="{}" x="{:.1}" y="{top:.1}" width="{:.1}" height="{H}" fill="{}"><title>{}: {}</title></rect>"#,
                cat.short(),
                x(acc),
                x(acc + v) - x(acc),
                cat.color(),
                escape(cat.label(false)),
                format(v)
            );
            acc += v;
        }
        // The total right of the bar, or right of the budget line when it would cross it.
        let text = format(acc);
        let mut tx = x(acc) + 6.0;
        let tw = text.chars().count() as f64 * FONT * CHAR_WIDTH;
        let bx = x(budget);
        if tx - 4.0 <= bx && bx <= tx + tw + 4.0 {
            tx = bx + 6.0;
        }
        let _ = write!(
            s,
            r#"<text class="bar-total" x="{tx:.1}" y="{:.1}">{text}</text>"#,
            top + H / 2.0 + 4.0,
        );
    }
    let bx = x(budget);
    let bottom = TOP + rows.len() as f64 * (H + GAP) - GAP + 6.0;
    let _ = write!(
        s,
        r#"<line class="budget" x1="{bx:.1}" x2="{bx:.1}" y1="{:.1}" y2="{bottom:.1}"/><text class="budget-label" x="{bx:.1}" y="{:.1}" text-anchor="middle">budget {}</text>"#,
        TOP - 6.0,
        TOP - 10.0,
        format(budget)
    );
    let _ = write!(
        s,
        r#"<line class="axis" x1="{LABEL_W}" x2="{LABEL_W}" y1="{TOP}" y2="{bottom:.1}"/><text class="axis-title" x="{:.1}" y="{:.1}" text-anchor="middle">bytes live at the step's peak ({})</text>"#,
        LABEL_W + pw / 2.0,
        height - 6.0,
        unit.unit
    );
    s.push_str("</svg>");
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_are_round() {
        assert_eq!(tick_step(31.9, 6), 10.0);
        assert_eq!(tick_step(13.0, 6), 2.5);
        assert_eq!(tick_step(1800.0, 10), 200.0);
        assert_eq!(tick_text(7.5, 2.5), "7.5");
        assert_eq!(tick_text(10.0, 5.0), "10");
        assert_eq!(tick_text(0.25, 0.25), "0.25");
    }

    #[test]
    fn labels_avoid_each_other() {
        let mut l = Labels {
            area: Rect {
                x: 0.0,
                y: 0.0,
                w: 400.0,
                h: 200.0,
            },
            placed: Vec::new(),
            svg: String::new(),
        };
        l.place("peak 30.00 MiB", "a", &[(200.0, 50.0, Anchor::End)]);
        l.place(
            "budget 13.82 MiB",
            "b",
            &[(200.0, 52.0, Anchor::End), (200.0, 90.0, Anchor::End)],
        );
        assert_eq!(l.placed.len(), 2);
        assert!(!l.placed[0].overlaps(&l.placed[1]), "{:?}", l.placed);
    }
}
