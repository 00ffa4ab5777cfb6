//! The machine a simulation models. Two of ONNX Runtime's choices depend on it: the NCHWc
//! channel block of convolutions (MLAS: 16 with AVX-512, 8 with AVX2 and FMA, no NCHWc
//! layout otherwise) and the default intra-op thread count (one per physical core), which
//! sizes convolution scratch buffers.
//!
//! By default the simulator models the machine it runs on. A named profile
//! (`--host x86-64-avx2:2`, or `ONNX_AC_HOST`) makes plans and reports independent of it:
//! for planning on one machine what runs on another, and for tests and snapshots, which
//! must give the same bytes on every host.

use serde::Serialize;
use std::fmt;
use std::sync::OnceLock;

/// What the simulator needs to know about the machine.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Host {
    /// The profile's name (`this machine` when detected).
    pub name: &'static str,
    /// MLAS's NCHWc channel block; 1 when ONNX Runtime registers no NCHWc transformer.
    pub nchwc_block: usize,
    /// Physical cores: ONNX Runtime's default intra-op thread count.
    pub cores: usize,
}

/// The named profiles: (name, NCHWc block).
pub const PROFILES: [(&str, usize); 4] = [
    ("x86-64-avx512", 16),
    ("x86-64-avx2", 8),
    ("x86-64", 1),
    ("aarch64", 1),
];

/// The profile tests and snapshots use (a 2-core AVX2 machine, like CI's).
pub const TEST_PROFILE: &str = "x86-64-avx2:2";

/// Environment variable naming the profile when `--host` does not.
pub const HOST_ENV: &str = "ONNX_AC_HOST";

#[derive(Debug, thiserror::Error)]
#[error("unknown host profile '{spec}': expected auto or NAME[:CORES] with NAME one of {names} and CORES from 1 to 4096")]
pub struct HostError {
    spec: String,
    names: String,
}

impl Host {
    /// `auto` (this machine) or `NAME[:CORES]` (CORES defaults to 1).
    pub fn parse(spec: &str) -> Result<Host, HostError> {
        let err = || HostError {
            spec: spec.to_string(),
            names: PROFILES.map(|(n, _)| n).join(", "),
        };
        if spec == "auto" {
            return Ok(Host::detect());
        }
        let (name, cores) = match spec.split_once(':') {
            Some((n, c)) => (n, c.parse::<usize>().map_err(|_| err())?),
            None => (spec, 1),
        };
        if !(1..=4096).contains(&cores) {
            return Err(err());
        }
        let &(name, nchwc_block) = PROFILES.iter().find(|(n, _)| *n == name).ok_or_else(err)?;
        Ok(Host {
            name,
            nchwc_block,
            cores,
        })
    }

    /// This machine.
    pub fn detect() -> Host {
        Host {
            name: "this machine",
            nchwc_block: detected_nchwc_block(),
            cores: detected_physical_cores(),
        }
    }
}

impl fmt::Display for Host {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} (NCHWc block {}, {} core{})",
            self.name,
            self.nchwc_block,
            self.cores,
            if self.cores == 1 { "" } else { "s" }
        )
    }
}

static HOST: OnceLock<Host> = OnceLock::new();

/// Sets the host every later simulation in this process models. The first call wins; returns
/// whether this one did (a later, different host is refused rather than mixing two machines
/// in one process's plans).
pub fn set(host: Host) -> bool {
    HOST.set(host).is_ok() || HOST.get() == Some(&host)
}

/// The host simulations model: the one [`set`], else `ONNX_AC_HOST`'s profile, else this
/// machine. An unparsable `ONNX_AC_HOST` is reported by the CLI before anything runs; here
/// it falls back to this machine.
pub fn current() -> Host {
    *HOST.get_or_init(|| {
        std::env::var(HOST_ENV)
            .ok()
            .and_then(|s| Host::parse(&s).ok())
            .unwrap_or_else(Host::detect)
    })
}

#[derive(Debug, thiserror::Error)]
#[error("{HOST_ENV}: {0}")]
pub struct HostEnvError(#[from] HostError);

/// The host of this process's simulations: `flag` (`--host`), else `ONNX_AC_HOST`, else this
/// machine. An `ONNX_AC_HOST` that names no profile is an error, not a silent fallback.
pub fn init(flag: Option<Host>) -> Result<Host, HostEnvError> {
    let host = match (flag, std::env::var(HOST_ENV)) {
        (Some(h), _) => h,
        (None, Ok(spec)) => Host::parse(&spec)?,
        (None, Err(_)) => Host::detect(),
    };
    set(host);
    Ok(current())
}

/// MLAS's NCHWc channel block on this machine.
fn detected_nchwc_block() -> usize {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx512f") {
            return 16;
        }
        if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
        {
            return 8;
        }
    }
    1
}

/// Physical cores: distinct (package, core) pairs of /proc/cpuinfo where available, else
/// the available parallelism.
fn detected_physical_cores() -> usize {
    let logical = std::thread::available_parallelism().map_or(1, |n| n.get());
    let Ok(text) = std::fs::read_to_string("/proc/cpuinfo") else {
        return logical;
    };
    let mut cores = std::collections::HashSet::new();
    let (mut package, mut core) = (None, None);
    for line in text.lines().chain(std::iter::once("")) {
        let mut kv = line.splitn(2, ':');
        let key = kv.next().unwrap_or("").trim();
        let val = kv.next().map(str::trim);
        match key {
            "physical id" => package = val.map(str::to_string),
            "core id" => core = val.map(str::to_string),
            "" => {
                if let (Some(p), Some(c)) = (package.take(), core.take()) {
                    cores.insert((p, c));
                }
            }
            _ => {}
        }
    }
    if cores.is_empty() {
        logical
    } else {
        cores.len().min(logical)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_profiles_and_refuses_others() {
        let h = Host::parse("x86-64-avx512:8").unwrap();
        assert_eq!((h.name, h.nchwc_block, h.cores), ("x86-64-avx512", 16, 8));
        let h = Host::parse("aarch64").unwrap();
        assert_eq!((h.nchwc_block, h.cores), (1, 1));
        assert_eq!(Host::parse(TEST_PROFILE).unwrap().nchwc_block, 8);
        for bad in [
            "",
            "avx2",
            "x86-64-avx2:0",
            "x86-64-avx2:x",
            "x86-64-avx2:99999",
        ] {
            let e = Host::parse(bad).unwrap_err().to_string();
            assert!(e.contains("x86-64-avx2, x86-64, aarch64"), "{bad}: {e}");
        }
    }
}
