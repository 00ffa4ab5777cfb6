//! The gap summary and the machine the tables were measured on.

use super::*;

pub(super) fn gap_summary(pairs: &[Pair]) -> String {
    // (ac − optimal seconds, optimal seconds, pair) where both fit.
    let both: Vec<(f64, f64, &Pair)> = pairs
        .iter()
        .filter_map(|p| match (&p.ac, &p.optimal) {
            (Some((true, a)), Ok((true, o))) => Some((a - o, *o, p)),
            _ => None,
        })
        .collect();
    let at = |p: &Pair| format!("{} at {}% kept", p.fixture, p.keep);
    let rel = |gap: f64, o: f64| {
        if o > 0.0 {
            format!("{:+.1}% of optimal's", 100.0 * gap / o)
        } else {
            "optimal adds nothing there".into()
        }
    };
    let mut s = match both.iter().max_by(|x, y| x.0.total_cmp(&y.0)) {
        Some(&(gap, o, p)) if gap > 1e-9 => format!(
            "`ac` vs `optimal`, simulated added compute where both fit ({} budgets): the \
             largest gap of `ac` over `optimal` is {:+.3} ms ({}) on {}.",
            both.len(),
            gap * 1e3,
            rel(gap, o),
            at(p)
        ),
        Some(_) => format!(
            "`ac` vs `optimal`, simulated added compute where both fit ({} budgets): `ac` \
             never adds more than `optimal` (largest gap 0).",
            both.len()
        ),
        None => "`ac` and `optimal` never both fit.".into(),
    };
    let cheaper: Vec<String> = both
        .iter()
        .filter(|(gap, _, _)| *gap < -1e-9)
        .map(|&(gap, o, p)| format!("{} ({:+.3} ms, {})", at(p), gap * 1e3, rel(gap, o)))
        .collect();
    if !cheaper.is_empty() {
        let _ = write!(
            s,
            " `ac` is cheaper than `optimal` on {}.",
            cheaper.join(", ")
        );
    }
    let mut fails = Vec::new();
    for p in pairs {
        if !matches!(p.ac, Some((true, _))) {
            continue;
        }
        match &p.optimal {
            Ok((false, _)) => fails.push(format!("{} (over the budget)", at(p))),
            Err(e) => fails.push(format!("{} (error: {})", at(p), cell(e))),
            _ => {}
        }
    }
    if !fails.is_empty() {
        let _ = write!(
            s,
            " Where `ac` fits but `optimal` does not (its plan is infeasible or over the \
             simulated budget, since its program models ONNX Runtime's allocator only \
             approximately): {}.",
            fails.join("; ")
        );
    }
    let mut unreachable: Vec<(String, Vec<String>)> = Vec::new();
    for p in pairs.iter().filter(|p| !matches!(p.ac, Some((true, _)))) {
        match unreachable.last_mut() {
            Some((f, keeps)) if *f == p.fixture => keeps.push(format!("{}%", p.keep)),
            _ => unreachable.push((p.fixture.clone(), vec![format!("{}%", p.keep)])),
        }
    }
    let n: usize = unreachable.iter().map(|(_, k)| k.len()).sum();
    let _ = write!(
        s,
        " `ac` finds {n} of the {} (fixture, budget) pairs unreachable: {}.",
        pairs.len(),
        unreachable
            .iter()
            .map(|(f, k)| format!("{f} at {} kept", k.join("/")))
            .collect::<Vec<_>>()
            .join(", ")
    );
    s
}

/// The 1-minute load average.
pub(super) fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|t| t.split_whitespace().next().map(str::to_string))
        .unwrap_or_else(|| "unknown".into())
}

pub(super) fn command_line(cmd: &str, args: &[&str]) -> String {
    Command::new(cmd)
        .args(args)
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_else(|| "unknown".into())
}

pub(super) fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|t| {
            t.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|s| s.trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let mem = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|t| {
            t.lines()
                .find(|l| l.starts_with("MemTotal"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|k| k.parse::<f64>().ok())
        })
        .map(|k| format!(", {:.0} GiB RAM", k / (1024.0 * 1024.0)))
        .unwrap_or_default();
    format!(
        "{cpu}, {} logical / {} physical cores{mem}, {} {}",
        std::thread::available_parallelism().map_or(1, |n| n.get()),
        onnx_ac::plan::host::Host::detect().cores,
        std::env::consts::OS,
        std::env::consts::ARCH
    )
}
