//! `--report`: the HTML report (issue #16 items 1 and 5). Its figures against the simulator,
//! its structure and determinism (machine-independent), and each report rendered in a real
//! browser: headless Chromium (Debian's `chromium`, installed by scripts/setup.sh) loads the
//! file, screenshots it, and the test fails on any console message, a blank screenshot or a
//! chart colour missing from it.
//!
//! Console messages: Chromium run with `--enable-logging=stderr --v=0` writes every console
//! message of the page (errors, uncaught exceptions, Content-Security-Policy violations such
//! as a blocked fetch) to stderr as `...:INFO:CONSOLE:<line>] "<message>", source: <url>`.
//! The page has no script, so any such line is a failure; `console_check_catches_errors`
//! shows the check fails on a page that has one (an uncaught error, a blocked fetch).
//! Set `ONNX_AC_SCREENSHOTS=DIR` to keep the HTML files and screenshots for a look.

mod common;

use onnx_ac::cost::fixed_time;
use onnx_ac::html_report::{svg, trace};
use onnx_ac::pipeline::{plan_and_rewrite, PlanOptions, PlanSource};
use onnx_ac::size::Budget;
use onnx_ac_passes::recompute::RewriteOptions;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const DEEP: &str = "fixtures/models/gpt2_deep.ts17.onnx";

/// Runs the main command with `args` plus `--report DIR/NAME.html`; returns the HTML.
fn report(dir: &Path, name: &str, args: &[&str]) -> (PathBuf, String) {
    let html = dir.join(format!("{name}.html"));
    let out = dir.join(format!("{name}.onnx"));
    let mut all: Vec<&str> = args.to_vec();
    all.extend([
        "-o",
        out.to_str().unwrap(),
        "--report",
        html.to_str().unwrap(),
    ]);
    let r = common::run_cli(&all);
    assert_eq!(
        r.status.code(),
        Some(0),
        "{all:?}: {}",
        String::from_utf8_lossy(&r.stderr)
    );
    let stdout = String::from_utf8_lossy(&r.stdout);
    assert!(
        stdout.contains(&format!("wrote {}", html.display())),
        "the summary lists the report: {stdout}"
    );
    let text = std::fs::read_to_string(&html).unwrap();
    (html, text)
}

/// The outline of a page: headings, captions and details summaries, tags stripped, one a line.
fn outline(html: &str) -> String {
    let mut out = String::new();
    for tag in ["h1", "h2", "h3", "figcaption", "summary"] {
        let open = format!("<{tag}");
        let close = format!("</{tag}>");
        let mut rest = html;
        while let Some(i) = rest.find(&open) {
            let body = &rest[i..];
            let start = body.find('>').unwrap() + 1;
            let end = body.find(&close).unwrap();
            let mut text = String::new();
            let mut in_tag = false;
            for c in body[start..end].chars() {
                match c {
                    '<' => in_tag = true,
                    '>' => in_tag = false,
                    c if !in_tag => text.push(c),
                    _ => {}
                }
            }
            out.push_str(&format!("{tag}: {}\n", text.replace("&mdash;", "—")));
            rest = &body[end..];
        }
    }
    out
}

/// The demo's model at 30%act with the fixed cost table: the same bytes on every run and
/// machine; what the page must show is there; nothing is fetched.
#[test]
fn report_structure_and_determinism() {
    let tmp = tempfile::tempdir().unwrap();
    let args = [DEEP, "--budget", "30%act", "--cost", "fixed"];
    let (_, a) = report(tmp.path(), "a", &args);
    let (_, b) = report(tmp.path(), "b", &args);
    assert_eq!(a, b, "two runs give different reports");
    // Self-contained: no script, nothing fetched, and a policy that forbids fetching.
    for bad in [
        "<script", "http://", "https://", "src=", "url(", "@import", "<link",
    ] {
        assert!(!a.contains(bad), "the report contains {bad}");
    }
    assert!(a.contains("Content-Security-Policy\" content=\"default-src 'none'"));
    // Both charts: the budget line, the peak marker, the forward/backward boundary.
    for id in ["chart-before", "chart-after"] {
        let start = a.find(&format!("<svg id=\"{id}\"")).expect(id);
        let chart = &a[start..start + a[start..].find("</svg>").unwrap()];
        assert_eq!(chart.matches("class=\"budget\"").count(), 1, "{id}");
        assert!(chart.contains(">budget 13.82 MiB</text>"), "{id}");
        assert_eq!(chart.matches("<circle class=\"peak\"").count(), 1, "{id}");
        assert!(chart.contains("class=\"peak-label\""), "{id}");
        assert!(chart.contains(">backward</text>"), "{id}");
        assert!(chart.contains("live memory (MiB)"), "{id}");
    }
    // The trade-off curve: its chart, the planner's points and the references.
    let curve = &a[a
        .find("<svg id=\"chart-tradeoff\"")
        .expect("tradeoff chart")..];
    let curve = &curve[..curve.find("</svg>").unwrap()];
    assert!(curve.contains("Pareto front"));
    for r in ["none", "selective", "full", "mutwo"] {
        assert!(
            curve.contains(&format!(">{r}</text>")),
            "{r} missing from the curve"
        );
    }
    // Recomputed activations appear only after the rewrite.
    let after = &a[a.find("<svg id=\"chart-after\"").unwrap()..];
    assert!(after.contains("data-category=\"recomputed\""));
    let before =
        &a[a.find("<svg id=\"chart-before\"").unwrap()..a.find("<svg id=\"chart-after\"").unwrap()];
    assert!(!before.contains("data-category=\"recomputed\""));
    // The tensors live at the peak: the largest is a kept MLP input, with producer and last
    // reader (through the rewrite's pin views).
    let live = &a[a.find("id=\"live-after\"").unwrap()..a.find("id=\"live-before\"").unwrap()];
    assert!(
        live.contains("<tr><td><code>/transformer/h.0/mlp/c_fc/Gemm_output_0</code></td><td class=\"r\">0.50 MiB</td>"),
        "{live}"
    );
    assert!(live.contains("(Gemm, step"), "{live}");
    assert!(live.contains("(MatMul, step"), "{live}");
    // Six identical layers fold into one pattern; no unit but MiB.
    assert!(a.contains(
        "<h3>h.0–h.5 (6 layers): same pattern: per layer 3.75 MiB recomputed, 0.75 MiB retained"
    ));
    assert!(a.contains("not measured: run with <code>--verify</code>"));
    for unit in [" KiB", " GiB", " kB", " MB", " GB"] {
        assert!(!a.contains(unit), "a second unit: {unit}");
    }
    insta::assert_snapshot!("outline_gpt2_deep_30act_fixed", outline(&a));
}

/// The per-category timeline is the simulator's: per step the categories add up to what the
/// simulator holds at that position, and its peak is the simulated peak; labels overlap neither
/// each other nor the peak marker or the budget line, at budgets below, at and above the peak.
#[test]
fn timeline_matches_the_simulator_and_labels_do_not_overlap() {
    // The demo's transformer, and the CNN (NCHWc layout copies, kernel scratch).
    for (stem, act) in [("gpt2_deep.ts17", 30.0), ("cnn.ts17", 70.0)] {
        check_timeline(stem, act);
    }
}

fn check_timeline(stem: &str, act: f64) {
    let (tm, info) = common::training(stem, &[]);
    let opts = PlanOptions {
        budget: Budget::ActivationPercent(act),
        source: PlanSource::Planner("ac".into()),
        best_effort: false,
        rewrite: RewriteOptions::defended(true),
        bound_dims: Vec::new(),
    };
    let p = plan_and_rewrite(&tm, &info, &opts, &fixed_time, "fixed table").unwrap();
    for (g, expect_peak) in [
        (&tm.graph, p.summary.simulated_initial_peak_bytes),
        (&p.rewritten.graph, p.summary.simulated_final_peak_bytes),
    ] {
        let t = trace::trace(g, &info);
        let persistent =
            t.sim.breakdown.parameters + t.sim.breakdown.prepacked + t.sim.breakdown.graph_inputs;
        let mut highest = vec![0u64; t.sim.timeline.len()];
        for (s, col) in t.columns.iter().enumerate() {
            let at = t.positions[s];
            highest[at] = highest[at].max(trace::total(col) - persistent);
        }
        for (s, &at) in t.positions.iter().enumerate() {
            assert_eq!(highest[at], t.sim.timeline[at], "step {s} (position {at})");
        }
        assert_eq!(trace::total(&t.peak), expect_peak);
        assert_eq!(trace::total(&t.peak), t.sim.peak_bytes);
        assert_eq!(t.positions[t.peak_step], t.sim.peak_step);
        // The live table adds up to the run's share of the peak.
        let live: u64 = t.at_peak.iter().map(|r| r.bytes).sum();
        assert_eq!(live + persistent, t.sim.peak_bytes);
        // Labels: the peak, the budget and the phases never cover each other, at budgets
        // above, at and below the peak.
        let cols = trace::downsample(&t.columns, 900);
        let fmt = |b: u64| format!("{:.2} MiB", b as f64 / (1u64 << 20) as f64);
        for budget in [
            t.sim.peak_bytes / 2,
            t.sim.peak_bytes * 99 / 100,
            t.sim.peak_bytes,
            t.sim.peak_bytes * 101 / 100,
            t.sim.peak_bytes * 107 / 100,
        ] {
            let chart = svg::AreaChart {
                id: "c",
                title: "t",
                columns: &cols,
                positions: t.columns.len(),
                y_max: t.sim.peak_bytes * 6 / 5,
                budget,
                peak_step: t.peak_step,
                peak_bytes: t.sim.peak_bytes,
                peak_node: &t.peak_node.1,
                backward_start: t.backward_start,
                unit: svg::Unit {
                    div: (1u64 << 20) as f64,
                    unit: "MiB",
                },
                format: &fmt,
                optimizer: false,
            };
            let (_, boxes, obstacles) = svg::area_chart(&chart);
            assert_eq!(boxes.len(), 4, "peak, budget, forward, backward");
            assert_eq!(obstacles.len(), 2, "marker, budget line");
            for (i, a) in boxes.iter().enumerate() {
                for b in boxes[i + 1..].iter().chain(&obstacles) {
                    assert!(
                        !a.overlaps(b),
                        "a label overlaps at budget {budget}: {a:?} {b:?}"
                    );
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Headless Chromium.

/// Waits for `cmd` at most `limit`; its stdout, stderr and status.
fn run_with_timeout(mut cmd: Command, limit: Duration) -> (String, String, bool) {
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect(
        "chromium is not installed: run `bash scripts/setup.sh` (it installs Debian's chromium)",
    );
    let read = |r: Box<dyn std::io::Read + Send>| {
        std::thread::spawn(move || {
            let mut s = String::new();
            let _ = std::io::Read::read_to_string(&mut std::io::BufReader::new(r), &mut s);
            s
        })
    };
    let stdout = read(Box::new(child.stdout.take().unwrap()));
    let stderr = read(Box::new(child.stderr.take().unwrap()));
    let start = Instant::now();
    let ok = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status.success();
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            panic!("chromium did not finish within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    (stdout.join().unwrap(), stderr.join().unwrap(), ok)
}

/// Headless Chromium on `html` with `extra` flags (a fresh profile in `profile`): its stdout
/// and the page's console messages.
fn chromium_run(html: &Path, profile: &Path, extra: &[String]) -> (String, Vec<String>) {
    let mut cmd = Command::new("chromium");
    cmd.args([
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--hide-scrollbars",
        "--no-first-run",
        "--no-default-browser-check",
        "--disable-extensions",
        "--enable-logging=stderr",
        "--v=0",
        "--window-size=1280,2000",
    ])
    .arg(format!("--user-data-dir={}", profile.display()))
    .args(extra)
    .arg(format!("file://{}", html.display()));
    let (stdout, stderr, ok) = run_with_timeout(cmd, Duration::from_secs(120));
    assert!(ok, "chromium failed on {}:\n{stderr}", html.display());
    let console = stderr
        .lines()
        .filter(|l| l.contains(":CONSOLE"))
        .map(str::to_string)
        .collect();
    (stdout, console)
}

/// Opens `html` in headless Chromium, screenshots it to `png` (1280 × 2000) and returns the
/// page's console messages.
fn chromium(html: &Path, png: &Path, profile: &Path) -> Vec<String> {
    chromium_run(html, profile, &[format!("--screenshot={}", png.display())]).1
}

/// What the browser itself lays out: a copy of the page with a script (allowed in the copy
/// only) that measures every chart label (`getBoundingClientRect`, the fonts Chromium really
/// uses) and lists those that overlap another label, the peak marker or the budget line, or
/// stick out of their chart. Read back with `--dump-dom`.
fn overlaps_in_browser(html: &Path, dir: &Path) -> String {
    const SCRIPT: &str = r#"<script>
const out = [];
const hit = (a, b) => a.left < b.right && b.left < a.right && a.top < b.bottom && b.top < a.bottom;
for (const svg of document.querySelectorAll('svg.chart')) {
  const box = svg.getBoundingClientRect();
  const labels = [...svg.querySelectorAll('text.peak-label, text.budget-label, text.phase-label, text.bar-total')]
    .map(t => [t.textContent, t.getBoundingClientRect()]);
  const marks = [...svg.querySelectorAll('circle.peak, line.budget')]
    .map(m => [m.getAttribute('class'), m.getBoundingClientRect()]);
  labels.forEach(([a, ra], i) => {
    if (ra.left < box.left || ra.right > box.right || ra.top < box.top || ra.bottom > box.bottom)
      out.push(`${svg.id}: "${a}" sticks out of the chart`);
    labels.slice(i + 1).forEach(([b, rb]) => { if (hit(ra, rb)) out.push(`${svg.id}: "${a}" overlaps "${b}"`); });
    marks.forEach(([m, rm]) => {
      // A label names its line: the bars' budget label sits at its line's end.
      if (hit(ra, rm) && !(m === 'budget' && svg.id === 'peak-bars' && a.startsWith('budget')))
        out.push(`${svg.id}: "${a}" covers the ${m}`);
    });
  });
}
const p = document.createElement('pre');
p.id = 'overlaps';
// Split so that the script's own text (also in the dumped DOM) does not hold the marker.
p.textContent = 'OVER' + 'LAPS[' + out.join(' | ') + ']';
document.body.appendChild(p);
</script>"#;
    let text = std::fs::read_to_string(html).unwrap();
    let csp = "default-src 'none'; style-src 'unsafe-inline'";
    assert!(text.contains(csp));
    let probe = text
        .replace(csp, &format!("{csp}; script-src 'unsafe-inline'"))
        .replace("</body>", &format!("{SCRIPT}</body>"));
    let copy = dir.join("probe.html");
    std::fs::write(&copy, probe).unwrap();
    let (dom, console) = chromium_run(&copy, &dir.join("probe-profile"), &["--dump-dom".into()]);
    assert!(console.is_empty(), "{console:?}");
    let start = dom.find("OVERLAPS[").expect("the probe ran") + "OVERLAPS[".len();
    dom[start..start + dom[start..].find(']').unwrap()].to_string()
}

/// RGB pixels of a screenshot.
fn pixels(png: &Path) -> (u32, u32, Vec<[u8; 3]>) {
    let decoder = png::Decoder::new(std::io::BufReader::new(std::fs::File::open(png).unwrap()));
    let mut reader = decoder.read_info().unwrap();
    let mut buf = vec![0; reader.output_buffer_size().unwrap()];
    let info = reader.next_frame(&mut buf).unwrap();
    let channels = info.color_type.samples();
    assert_eq!(info.bit_depth, png::BitDepth::Eight);
    let px = buf[..info.buffer_size()]
        .chunks(channels)
        .map(|c| [c[0], c[1], c[2]])
        .collect();
    (info.width, info.height, px)
}

/// Pixels within 12 of `rgb` in each channel.
fn count(px: &[[u8; 3]], rgb: [u8; 3]) -> usize {
    px.iter()
        .filter(|p| (0..3).all(|i| p[i].abs_diff(rgb[i]) <= 12))
        .count()
}

/// Renders `html` and checks the screenshot: no console message; not blank; the colours of
/// `categories` (at least that many pixels: a legend swatch is 144) and of the budget line
/// are drawn.
fn check_in_browser(html: &Path, name: &str, categories: &[(trace::Category, usize)]) {
    let tmp = tempfile::tempdir().unwrap();
    let png = tmp.path().join(format!("{name}.png"));
    let console = chromium(html, &png, &tmp.path().join("profile"));
    assert!(
        console.is_empty(),
        "console messages on {name}:\n{}",
        console.join("\n")
    );
    let (w, h, px) = pixels(&png);
    assert_eq!((w, h), (1280, 2000));
    let white = count(&px, [255, 255, 255]);
    let inked = px.len() - white;
    assert!(
        inked > px.len() / 20,
        "{name}: the screenshot is nearly blank ({inked} of {} pixels not white)",
        px.len()
    );
    let hex = |c: &str| {
        let v = u32::from_str_radix(&c[1..], 16).unwrap();
        [(v >> 16) as u8, (v >> 8) as u8, v as u8]
    };
    for (c, least) in categories {
        let n = count(&px, hex(c.color()));
        assert!(
            n >= *least,
            "{name}: {:?} ({}) has {n} pixels",
            c,
            c.color()
        );
    }
    assert!(count(&px, [0xd0, 0, 0]) > 200, "{name}: no budget line");
    let overlaps = overlaps_in_browser(html, tmp.path());
    assert!(overlaps.is_empty(), "{name}: {overlaps}");
    if let Some(dir) = std::env::var_os("ONNX_AC_SCREENSHOTS") {
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::copy(&png, Path::new(&dir).join(format!("{name}.png"))).unwrap();
        std::fs::copy(html, Path::new(&dir).join(format!("{name}.html"))).unwrap();
    }
}

/// Each report the tests write, in Chromium: the demo's model (planned, simulated), BERT
/// exported by torch.export (layers found from module names) with every layer recomputed and
/// `--verify` (measured peaks), and the CNN. Besides the screenshot, the browser's own layout
/// of every chart label is checked for overlaps ([`overlaps_in_browser`]).
#[test]
fn reports_render_in_chromium() {
    use trace::Category::*;
    let tmp = tempfile::tempdir().unwrap();
    let (deep, _) = report(
        tmp.path(),
        "gpt2_deep",
        &[DEEP, "--budget", "30%act", "--cost", "fixed"],
    );
    check_in_browser(
        &deep,
        "gpt2_deep",
        &[
            (Weights, 5000),
            (Prepacked, 5000),
            (Kept, 50000),
            (Recomputed, 2000),
            (Gradients, 2000),
            (Other, 20000),
        ],
    );
    let (bert, text) = report(
        tmp.path(),
        "bert_dyn18",
        &[
            "fixtures/models/bert.dyn18.onnx",
            "--policy",
            "full",
            "--budget",
            "10MiB",
            "--cost",
            "fixed",
            "--verify",
        ],
    );
    assert!(text.contains("<tr id=\"measured\"><th>measured (--verify)</th>"));
    assert!(
        text.contains("<h3>bert.encoder.layer.1 (1 layer)"),
        "layers from module names"
    );
    assert!(text.contains("<code>bert.encoder.layer.*.attention.self: Softmax</code>"));
    check_in_browser(
        &bert,
        "bert_dyn18",
        &[
            (Weights, 5000),
            (Prepacked, 5000),
            (Kept, 2000),
            (Recomputed, 400),
            (Gradients, 2000),
        ],
    );
    // The CNN: its peak is near the budget at the end of the step (labels crowd there).
    let (cnn, _) = report(
        tmp.path(),
        "cnn",
        &[
            "fixtures/models/cnn.ts17.onnx",
            "--budget",
            "70%act",
            "--cost",
            "fixed",
        ],
    );
    check_in_browser(
        &cnn,
        "cnn",
        &[
            (Weights, 5000),
            (Inputs, 2000),
            (Kept, 20000),
            (Other, 20000),
        ],
    );
}

/// The console check can fail: a page with an uncaught error and a fetch its policy blocks.
#[test]
fn console_check_catches_errors() {
    let tmp = tempfile::tempdir().unwrap();
    let html = tmp.path().join("bad.html");
    std::fs::write(
        &html,
        "<!DOCTYPE html><html><head><meta http-equiv=\"Content-Security-Policy\" \
         content=\"default-src 'none'; script-src 'unsafe-inline'\"></head><body><p>x</p>\
         <img src=\"https://example.com/a.png\"><script>undefined_function()</script></body></html>",
    )
    .unwrap();
    let console = chromium(
        &html,
        &tmp.path().join("bad.png"),
        &tmp.path().join("profile"),
    );
    assert!(
        console
            .iter()
            .any(|l| l.contains("Uncaught ReferenceError")),
        "{console:?}"
    );
    assert!(
        console
            .iter()
            .any(|l| l.contains("Content Security Policy")),
        "{console:?}"
    );
}

/// The browser's overlap probe can fail: two labels drawn on each other, one across the budget
/// line.
#[test]
fn overlap_probe_catches_overlaps() {
    let tmp = tempfile::tempdir().unwrap();
    let html = tmp.path().join("overlap.html");
    std::fs::write(
        &html,
        "<!DOCTYPE html><html><head><meta http-equiv=\"Content-Security-Policy\" \
         content=\"default-src 'none'; style-src 'unsafe-inline'\"></head><body>\
         <svg id=\"c\" class=\"chart\" viewBox=\"0 0 400 200\" width=\"400\" height=\"200\">\
         <line class=\"budget\" x1=\"0\" x2=\"400\" y1=\"100\" y2=\"100\" stroke=\"red\"/>\
         <text class=\"peak-label\" x=\"50\" y=\"50\">peak 31.90 MiB</text>\
         <text class=\"budget-label\" x=\"60\" y=\"52\">budget 13.82 MiB</text>\
         <text class=\"phase-label\" x=\"200\" y=\"105\">backward</text></svg></body></html>",
    )
    .unwrap();
    let found = overlaps_in_browser(&html, tmp.path());
    assert!(
        found.contains("\"peak 31.90 MiB\" overlaps \"budget 13.82 MiB\""),
        "{found}"
    );
    assert!(found.contains("\"backward\" covers the budget"), "{found}");
}

/// Every `<text>` of the SVG images the other commands write (`tradeoff --chart`, `sweep
/// --heatmap`, `estimate --chart`), laid out by Chromium: pairs that overlap, and texts that
/// stick out of the image. The SVG is wrapped in a page with the probe script.
fn svg_text_overlaps(svg: &Path, dir: &Path) -> String {
    const SCRIPT: &str = r#"<script>
const out = [];
const hit = (a, b) => a.left < b.right - 0.5 && b.left < a.right - 0.5 && a.top < b.bottom - 0.5 && b.top < a.bottom - 0.5;
const svg = document.querySelector('svg');
const box = svg.getBoundingClientRect();
// A rotated label's box is the axis-aligned box around it, larger than its glyphs: rotated
// labels are checked against the image's edges only.
const rotated = t => /rotate/.test(t.getAttribute('transform') || '');
const texts = [...svg.querySelectorAll('text')].map(t => [t.textContent, t.getBoundingClientRect(), rotated(t)]);
texts.forEach(([a, ra, rota], i) => {
  if (ra.left < box.left || ra.right > box.right || ra.top < box.top || ra.bottom > box.bottom)
    out.push(`"${a}" sticks out of the image`);
  texts.slice(i + 1).forEach(([b, rb, rotb]) => { if (!rota && !rotb && hit(ra, rb)) out.push(`"${a}" overlaps "${b}"`); });
});
const p = document.createElement('pre');
p.textContent = 'OVER' + 'LAPS[' + out.join(' | ') + ']';
document.body.appendChild(p);
</script>"#;
    let page = format!(
        "<!DOCTYPE html><html><head><meta charset=\"utf-8\"></head><body style=\"margin:0\">{}{SCRIPT}</body></html>",
        std::fs::read_to_string(svg).unwrap()
    );
    let copy = dir.join("svg_probe.html");
    std::fs::write(&copy, page).unwrap();
    let (dom, console) = chromium_run(
        &copy,
        &dir.join("svg-probe-profile"),
        &["--dump-dom".into()],
    );
    assert!(console.is_empty(), "{console:?}");
    let start = dom.find("OVERLAPS[").expect("the probe ran") + "OVERLAPS[".len();
    dom[start..start + dom[start..].find(']').unwrap()].to_string()
}

/// The SVG images of `tradeoff`, `sweep` and `estimate` in Chromium: no console message, not
/// blank, no text overlapping another or leaving the image.
#[test]
fn svg_charts_render_in_chromium() {
    let tmp = tempfile::tempdir().unwrap();
    let p = |n: &str| tmp.path().join(n);
    let (curve, heat, bars) = (p("curve.svg"), p("heat.svg"), p("bars.svg"));
    for args in [
        vec![
            "tradeoff",
            DEEP,
            "--cost",
            "fixed",
            "--points",
            "5",
            "--chart",
            curve.to_str().unwrap(),
        ],
        vec![
            "sweep",
            "fixtures/models/gpt2_dynamic.ts17.onnx",
            "--dim",
            "batch=2,8,32",
            "--dim",
            "seq=16,32,64",
            "--budget",
            "20MB",
            "--cost",
            "fixed",
            "--heatmap",
            heat.to_str().unwrap(),
        ],
        vec![
            "estimate",
            "fixtures/models/gpt2_dynamic.ts17.onnx",
            "--dim",
            "batch=2",
            "--dim",
            "seq=16,32,64",
            "--optimizer",
            "adamw",
            "--chart",
            bars.to_str().unwrap(),
        ],
    ] {
        let r = common::run_cli(&args);
        assert_eq!(
            r.status.code(),
            Some(0),
            "{args:?}: {}",
            String::from_utf8_lossy(&r.stderr)
        );
    }
    for (svg, name) in [(&curve, "tradeoff"), (&heat, "sweep"), (&bars, "estimate")] {
        let png = tmp.path().join(format!("{name}.png"));
        let console = chromium(svg, &png, &tmp.path().join(format!("{name}-profile")));
        assert!(
            console.is_empty(),
            "console messages on {name}: {console:?}"
        );
        let (_, _, px) = pixels(&png);
        let inked = px.len() - count(&px, [255, 255, 255]);
        assert!(
            inked > px.len() / 200,
            "{name}: nearly blank ({inked} pixels inked)"
        );
        let overlaps = svg_text_overlaps(svg, tmp.path());
        assert!(overlaps.is_empty(), "{name}: {overlaps}");
    }
}
