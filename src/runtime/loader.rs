//! Finding libonnxruntime and loading it once per process.
//!
//! Search order: an explicit path (`--ort-lib`), `ORT_DYLIB_PATH`, the `onnxruntime` package of
//! the `python3` on `PATH`, then the project's `.venv` (found from the running binary's location
//! and from this crate's build-time manifest directory). Explicit paths and `ORT_DYLIB_PATH` are
//! authoritative: if they name nothing usable that is an error, never a silent fallback.
//! Discovered libraries that are too old are skipped in favour of the next place.
//!
//! Nothing is looked up in, imported from or loaded out of the current directory (which may be
//! an untrusted download folder, docs/security.md): `python3` is taken from the absolute
//! directories of `PATH` only and run isolated (`-I`: no `PYTHON*` variables, no script or
//! current directory on `sys.path`) from `/`, and it only *locates* the package
//! (`importlib.machinery.PathFinder.find_spec`, which executes no code of the package); the
//! project `.venv` is looked for next to the binary (`<root>/target/release/onnx-ac` →
//! `<root>/.venv`), never relative to the current directory.
//!
//! `ort` panics if `ORT_DYLIB_PATH` names nothing, so every path is checked here first and the
//! library is loaded with `ort::init_from`, whose failures are errors.

use super::error::RuntimeError;
use ort::environment::Environment;
use std::fmt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Mutex, OnceLock};

/// Where the loaded library was found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LibrarySource {
    /// `--ort-lib PATH` (or [`super::RunOptions::ort_lib`]).
    Explicit,
    /// The `ORT_DYLIB_PATH` environment variable.
    EnvVar,
    /// The `onnxruntime` package of the `python3` on `PATH` (located, not imported).
    Python,
    /// `.venv/lib/python3*/site-packages/onnxruntime/capi/` of the project (beside the binary
    /// or the crate's manifest directory, never the current directory).
    ProjectVenv,
}

impl fmt::Display for LibrarySource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            LibrarySource::Explicit => "--ort-lib",
            LibrarySource::EnvVar => "ORT_DYLIB_PATH",
            LibrarySource::Python => "python3's onnxruntime package",
            LibrarySource::ProjectVenv => "the project's .venv",
        })
    }
}

/// The ONNX Runtime library this process uses.
#[derive(Clone, Debug)]
pub struct OrtLibrary {
    pub path: PathBuf,
    /// e.g. "1.31.1"; "unknown (>= 1.31)" when neither the build info nor the file name tell.
    pub version: String,
    pub source: LibrarySource,
}

impl fmt::Display for OrtLibrary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "ONNX Runtime {} from {} ({})",
            self.version,
            self.path.display(),
            self.source
        )
    }
}

struct Loaded {
    library: OrtLibrary,
    env: Environment,
}

static LOADED: OnceLock<Loaded> = OnceLock::new();
static LOG_LEVEL: OnceLock<Option<LogLevel>> = OnceLock::new();

/// Severity of ONNX Runtime's own log messages (`--ort-log`).
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum LogLevel {
    Verbose,
    Info,
    Warning,
    Error,
    Fatal,
}

/// Shows ONNX Runtime's log messages of `level` and above on stderr (`None`, the default:
/// none; its failures still come back as errors). Takes effect if called before ONNX Runtime
/// is loaded; returns false if the level was already set.
pub fn set_log_level(level: Option<LogLevel>) -> bool {
    LOG_LEVEL.set(level).is_ok()
}

fn log_level() -> Option<LogLevel> {
    LOG_LEVEL.get().copied().flatten()
}

fn ort_level(l: LogLevel) -> ort::logging::LogLevel {
    use ort::logging::LogLevel as L;
    match l {
        LogLevel::Verbose => L::Verbose,
        LogLevel::Info => L::Info,
        LogLevel::Warning => L::Warning,
        LogLevel::Error => L::Error,
        LogLevel::Fatal => L::Fatal,
    }
}

/// One message of ONNX Runtime's, asked for with `--ort-log`: plain text on stderr.
fn log_line(level: ort::logging::LogLevel, category: &str, message: &str) {
    let level = format!("{level:?}").to_ascii_lowercase();
    crate::console::eprint_line(&format!(
        "onnxruntime {level} [{category}]: {}",
        message.trim_end()
    ));
}
static INIT_LOCK: Mutex<()> = Mutex::new(());

/// Loads ONNX Runtime (once per process) and creates the process-wide environment.
///
/// `explicit` is the `--ort-lib` path: a library file or a directory holding one. Once a library
/// is loaded, later calls return it; asking for a different explicit path is an error.
pub fn init(explicit: Option<&Path>) -> Result<&'static OrtLibrary, RuntimeError> {
    Ok(&loaded(explicit)?.library)
}

/// The library loaded by [`init`], if any.
pub fn loaded_library() -> Option<&'static OrtLibrary> {
    LOADED.get().map(|l| &l.library)
}

pub(crate) fn environment(explicit: Option<&Path>) -> Result<&'static Environment, RuntimeError> {
    Ok(&loaded(explicit)?.env)
}

fn loaded(explicit: Option<&Path>) -> Result<&'static Loaded, RuntimeError> {
    if let Some(l) = LOADED.get() {
        return check_same(l, explicit);
    }
    // A poisoned lock only means another thread panicked while holding it; the OnceLock is
    // still consistent, so carry on.
    let _guard = INIT_LOCK.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(l) = LOADED.get() {
        return check_same(l, explicit);
    }
    let library = load_library(explicit)?;
    // ONNX Runtime's default logger writes coloured lines to stderr (a failed allocation is
    // logged there before it comes back as an error): its messages go through `log_line`,
    // which drops them unless `--ort-log` asked for them.
    let shown = log_level();
    let env = ort::init()
        .with_name("onnx-ac")
        .with_telemetry(false)
        .with_logger(std::sync::Arc::new(
            move |level: ort::logging::LogLevel,
                  category: &str,
                  _id: &str,
                  _at: &str,
                  message: &str| {
                if shown.is_some_and(|s| ort_level(s) <= level) {
                    log_line(level, category, message);
                }
            },
        ))
        .build()
        .map_err(|e| RuntimeError::Environment {
            reason: e.to_string(),
        })?;
    // With a custom logger `ort` creates the environment at verbose severity: ONNX Runtime
    // would format every message only for `log_line` to drop it.
    env.set_log_level(shown.map_or(ort::logging::LogLevel::Fatal, ort_level));
    Ok(LOADED.get_or_init(|| Loaded { library, env }))
}

fn check_same(
    l: &'static Loaded,
    explicit: Option<&Path>,
) -> Result<&'static Loaded, RuntimeError> {
    if let Some(requested) = explicit {
        let same = match resolve_given(requested, "--ort-lib") {
            Ok(p) => same_file(&p, &l.library.path),
            Err(_) => false,
        };
        if !same {
            return Err(RuntimeError::AlreadyLoaded {
                loaded: l.library.path.clone(),
                requested: requested.to_path_buf(),
            });
        }
    }
    Ok(l)
}

fn same_file(a: &Path, b: &Path) -> bool {
    match (a.canonicalize(), b.canonicalize()) {
        (Ok(x), Ok(y)) => x == y,
        _ => a == b,
    }
}

/// A place where a library may be, in search order.
#[derive(Clone, Debug)]
pub struct Candidate {
    pub path: PathBuf,
    pub source: LibrarySource,
}

/// Finds candidate libraries without loading any. Explicit and `ORT_DYLIB_PATH` paths are
/// checked (an error if they name nothing); otherwise every discovered library is returned in
/// search order, and `searched` lists the places looked at.
pub fn locate(explicit: Option<&Path>) -> Result<(Vec<Candidate>, Vec<String>), RuntimeError> {
    if let Some(p) = explicit {
        let path = resolve_given(p, "--ort-lib")?;
        return Ok((
            vec![Candidate {
                path,
                source: LibrarySource::Explicit,
            }],
            vec![p.display().to_string()],
        ));
    }
    if let Some(v) = std::env::var_os("ORT_DYLIB_PATH").filter(|v| !v.is_empty()) {
        let path = resolve_given(Path::new(&v), "ORT_DYLIB_PATH")?;
        return Ok((
            vec![Candidate {
                path,
                source: LibrarySource::EnvVar,
            }],
            vec![format!("ORT_DYLIB_PATH={}", Path::new(&v).display())],
        ));
    }
    let mut searched = vec![
        "--ort-lib (not given)".to_string(),
        "ORT_DYLIB_PATH (unset)".to_string(),
    ];
    let mut found: Vec<Candidate> = Vec::new();
    let push = |path: PathBuf, source: LibrarySource, found: &mut Vec<Candidate>| {
        if !found.iter().any(|c| same_file(&c.path, &path)) {
            found.push(Candidate { path, source });
        }
    };

    match python_package_dir() {
        Some(dir) => {
            let capi = dir.join("capi");
            searched.push(format!("python3's onnxruntime at {}", capi.display()));
            if let Some(lib) = find_in_dir(&capi) {
                push(lib, LibrarySource::Python, &mut found);
            }
        }
        None => searched.push("python3 on PATH (no onnxruntime package)".to_string()),
    }

    for base in project_roots() {
        let lib_dir = base.join(".venv").join("lib");
        searched.push(format!(
            "{}/python3*/site-packages/onnxruntime/capi",
            lib_dir.display()
        ));
        for capi in venv_capi_dirs(&lib_dir) {
            if let Some(lib) = find_in_dir(&capi) {
                push(lib, LibrarySource::ProjectVenv, &mut found);
            }
        }
    }
    Ok((found, searched))
}

fn load_library(explicit: Option<&Path>) -> Result<OrtLibrary, RuntimeError> {
    let (candidates, searched) = locate(explicit)?;
    let authoritative = explicit.is_some()
        || candidates
            .first()
            .is_some_and(|c| c.source == LibrarySource::EnvVar);
    let mut first_error = None;
    for c in candidates {
        match ort::init_from(&c.path) {
            Ok(_builder) => {
                return Ok(OrtLibrary {
                    version: loaded_version(&c.path),
                    path: c.path,
                    source: c.source,
                });
            }
            Err(e) => {
                let err = match e {
                    ort::LoadDynamicError::BadVersion { version_str, path } => {
                        RuntimeError::TooOld {
                            path,
                            version: version_str,
                        }
                    }
                    other => RuntimeError::LoadFailed {
                        path: c.path.clone(),
                        reason: other.to_string(),
                    },
                };
                if authoritative {
                    return Err(err);
                }
                first_error.get_or_insert(err);
            }
        }
    }
    Err(first_error.unwrap_or(RuntimeError::NotFound { searched }))
}

/// A path given by the user: a library file, or a directory holding one.
fn resolve_given(p: &Path, origin: &str) -> Result<PathBuf, RuntimeError> {
    let bad = |problem: &str| RuntimeError::BadLibraryPath {
        origin: origin.to_string(),
        path: p.to_path_buf(),
        problem: problem.to_string(),
    };
    if p.is_dir() {
        let lib = find_in_dir(p)
            .or_else(|| find_in_dir(&p.join("capi")))
            .ok_or_else(|| bad("is a directory without a libonnxruntime library"))?;
        return Ok(absolute(&lib));
    }
    if p.is_file() {
        return Ok(absolute(p));
    }
    Err(bad("does not exist"))
}

fn absolute(p: &Path) -> PathBuf {
    p.canonicalize().unwrap_or_else(|_| p.to_path_buf())
}

/// Locates the `onnxruntime` package without importing it: `PathFinder.find_spec` reads the
/// folders of `sys.path` (plus the user's site-packages, which `-I` leaves out) and runs no code
/// of the package. `-I` keeps the current directory and `PYTHONPATH` off `sys.path`.
const FIND_PACKAGE: &str = "import importlib.machinery as m, site, sys\n\
paths = [p for p in sys.path if p] + [site.getusersitepackages()]\n\
s = m.PathFinder.find_spec('onnxruntime', paths)\n\
locs = list(s.submodule_search_locations or []) if s else []\n\
print(locs[0] if locs else '')";

/// The `onnxruntime` package directory of the `python3` on `PATH`, if it has one.
fn python_package_dir() -> Option<PathBuf> {
    let python = find_on_path("python3")?;
    let out = Command::new(python)
        .args(["-I", "-c", FIND_PACKAGE])
        .current_dir("/")
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    let s = String::from_utf8(out.stdout).ok()?;
    let dir = PathBuf::from(s.trim());
    (dir.is_absolute() && dir.is_dir()).then_some(dir)
}

/// `name` in the absolute directories of `PATH` (an empty or relative entry, which would mean
/// the current directory, is skipped).
fn find_on_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .filter(|d| d.is_absolute())
        .map(|d| d.join(name))
        .find(|p| is_executable(p))
}

fn is_executable(p: &Path) -> bool {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        p.metadata()
            .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
    }
    #[cfg(not(unix))]
    {
        p.is_file()
    }
}

/// Folders whose `.venv` may hold the project's ONNX Runtime: the project root above the
/// running binary (the first ancestor of its real location holding both `Cargo.toml` and
/// `.venv`, e.g. `<root>/target/release/onnx-ac`), then this crate's build-time manifest
/// directory. Never the current directory.
fn project_roots() -> Vec<PathBuf> {
    let mut roots: Vec<PathBuf> = Vec::new();
    if let Some(exe) = std::env::current_exe()
        .ok()
        .and_then(|e| e.canonicalize().ok())
    {
        if let Some(root) = exe
            .ancestors()
            .skip(1)
            .find(|d| d.join("Cargo.toml").is_file() && d.join(".venv").is_dir())
        {
            roots.push(root.to_path_buf());
        }
    }
    let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    if manifest.is_absolute() && !roots.iter().any(|b| same_file(b, &manifest)) {
        roots.push(manifest);
    }
    roots
}

/// `<lib_dir>/python3*/site-packages/onnxruntime/capi` for every python3* folder.
fn venv_capi_dirs(lib_dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(lib_dir) else {
        return Vec::new();
    };
    let mut dirs: Vec<PathBuf> = entries
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with("python3"))
        .map(|e| {
            e.path()
                .join("site-packages")
                .join("onnxruntime")
                .join("capi")
        })
        .filter(|p| p.is_dir())
        .collect();
    dirs.sort();
    dirs
}

/// Is `name` the ONNX Runtime library itself (not a provider plugin)?
fn is_ort_library_name(name: &str) -> bool {
    name == "onnxruntime.dll"
        || name
            .strip_prefix("libonnxruntime.")
            .is_some_and(|rest| rest.starts_with("so") || rest.ends_with("dylib"))
}

/// The libonnxruntime in `dir`: the unversioned name if present, else the longest versioned one.
fn find_in_dir(dir: &Path) -> Option<PathBuf> {
    let entries = std::fs::read_dir(dir).ok()?;
    let mut names: Vec<String> = entries
        .flatten()
        .filter(|e| e.path().is_file())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| is_ort_library_name(n))
        .collect();
    names.sort_by(|a, b| a.len().cmp(&b.len()).then(a.cmp(b)));
    let pick = names
        .iter()
        .find(|n| *n == "libonnxruntime.so" || *n == "libonnxruntime.dylib")
        .or_else(|| names.last())?;
    Some(absolute(&dir.join(pick)))
}

/// The version of the loaded library: from ONNX Runtime's build info (`git-branch=rel-X.Y.Z`),
/// else from a versioned file name (`libonnxruntime.so.X.Y.Z`), else from the Python wheel's
/// `build_and_package_info.py` next to it, else unknown. (The PyPI 1.31.1 build says
/// `git-branch=HEAD`, so the file name is what tells there.)
fn loaded_version(path: &Path) -> String {
    let info = ort::info();
    if let Some(rest) = info.split("git-branch=rel-").nth(1) {
        let v: String = rest
            .chars()
            .take_while(|c| c.is_ascii_digit() || *c == '.')
            .collect();
        if v.split('.').count() >= 2 {
            return v;
        }
    }
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    if let Some(v) = name.strip_prefix("libonnxruntime.so.") {
        return v.to_string();
    }
    // The Python wheels put `__version__ = 'X.Y.Z'` next to the library.
    let info_py = path.with_file_name("build_and_package_info.py");
    if let Ok(text) = std::fs::read_to_string(info_py) {
        for line in text.lines() {
            if let Some(rest) = line.trim().strip_prefix("__version__") {
                let v = rest
                    .trim_start_matches([' ', '='])
                    .trim_matches(['\'', '"', ' ']);
                if !v.is_empty() {
                    return v.to_string();
                }
            }
        }
    }
    "unknown (>= 1.31)".to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn library_names() {
        assert!(is_ort_library_name("libonnxruntime.so"));
        assert!(is_ort_library_name("libonnxruntime.so.1.31.1"));
        assert!(is_ort_library_name("libonnxruntime.1.31.1.dylib"));
        assert!(is_ort_library_name("onnxruntime.dll"));
        assert!(!is_ort_library_name("libonnxruntime_providers_shared.so"));
        assert!(!is_ort_library_name("libonnxruntime_providers_cuda.so"));
    }
}
