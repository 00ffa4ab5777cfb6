//! Writing outputs without losing data (issue #12, docs/security.md).
//!
//! - [`check`]: before any work, an output that is one of the inputs (the model, its external
//!   data, `--plan`, `--profile`), two outputs that are the same file, and an existing output
//!   that is not a regular file (a symlink, a device, a directory) are refused.
//! - [`Staging`]: every output is written to a temporary beside it (`.NAME.onnx-ac-PID-N.tmp`,
//!   created with mode 0666 less the umask) and all are renamed into place together at the end
//!   ([`Staging::commit`]); on an error they are removed (on drop), and on SIGINT, SIGTERM or
//!   SIGHUP by the handler [`install_signal_cleanup`] installs, which also removes the
//!   registered temporary folders ([`TempGuard`]) of profiling and `--verify`.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};
use thiserror::Error;

#[derive(Debug, Error)]
pub enum OutputError {
    /// An output names an input file.
    #[error("{flag} {} is {what} {}: refusing to overwrite an input (choose another output path)", .path.display(), .input.display())]
    IsInput {
        flag: String,
        path: PathBuf,
        what: String,
        input: PathBuf,
    },
    /// Two outputs name the same file.
    #[error("{flag} {} and {other_flag} {} are the same file: refusing to write it twice (choose different paths)", .path.display(), .other.display())]
    SameFile {
        flag: String,
        path: PathBuf,
        other_flag: String,
        other: PathBuf,
    },
    /// An existing output is not a regular file: it is never replaced.
    #[error("{}: cannot write: it is {kind}, not a regular file (refused: onnx-ac only replaces regular files)", .path.display())]
    NotRegular { path: PathBuf, kind: &'static str },
    /// Creating, writing or renaming an output failed.
    #[error("{}: cannot write: {source}", .path.display())]
    Write {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

impl OutputError {
    pub fn write(path: &Path, source: io::Error) -> Self {
        OutputError::Write {
            path: path.to_path_buf(),
            source,
        }
    }
}

/// `path` with `suffix` appended to its file name (`out.onnx` → `out.onnx.data`).
pub fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut s = path.as_os_str().to_os_string();
    s.push(suffix);
    PathBuf::from(s)
}

/// What an existing path is, when it is not a regular file.
fn non_regular_kind(meta: &std::fs::Metadata) -> Option<&'static str> {
    use std::os::unix::fs::FileTypeExt;
    let t = meta.file_type();
    if t.is_file() {
        None
    } else if t.is_symlink() {
        Some("a symbolic link")
    } else if t.is_dir() {
        Some("a directory")
    } else if t.is_fifo() {
        Some("a named pipe (FIFO)")
    } else if t.is_char_device() {
        Some("a character device")
    } else if t.is_block_device() {
        Some("a block device")
    } else if t.is_socket() {
        Some("a socket")
    } else {
        Some("not a regular file")
    }
}

/// Refuses an existing `path` that is not a regular file (not following symlinks).
fn check_target(path: &Path) -> Result<Option<std::fs::Metadata>, OutputError> {
    match path.symlink_metadata() {
        Ok(meta) => match non_regular_kind(&meta) {
            Some(kind) => Err(OutputError::NotRegular {
                path: path.to_path_buf(),
                kind,
            }),
            None => Ok(Some(meta)),
        },
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(OutputError::write(path, e)),
    }
}

/// Where an output will be: its folder's canonical path and its file name (the folder as
/// given when it does not exist; creating the output then fails with its own error).
fn location(path: &Path) -> Result<PathBuf, OutputError> {
    let name = path.file_name().ok_or_else(|| {
        OutputError::write(
            path,
            io::Error::new(io::ErrorKind::InvalidInput, "the path has no file name"),
        )
    })?;
    let dir = parent_dir(path);
    let dir = dir
        .canonicalize()
        .or_else(|_| std::path::absolute(&dir))
        .unwrap_or(dir);
    Ok(dir.join(name))
}

/// The folder of `path` (`.` for a bare file name).
fn parent_dir(path: &Path) -> PathBuf {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// Checks the outputs of a command against its inputs and each other, before any work:
/// `outputs` and `inputs` are (what, path) pairs, e.g. `("-o", out)` and
/// `("the input model", model)`. Inputs are compared by device and inode (so a hard link or
/// a symlink to an input is caught too), outputs by location and, when they exist, inode.
pub fn check(outputs: &[(&str, &Path)], inputs: &[(&str, &Path)]) -> Result<(), OutputError> {
    let inputs: Vec<(&str, &Path, (u64, u64))> = inputs
        .iter()
        .filter_map(|&(what, p)| {
            let m = p.metadata().ok()?;
            Some((what, p, (m.dev(), m.ino())))
        })
        .collect();
    // (what, path, location, device and inode when it exists)
    type Seen<'a> = (&'a str, &'a Path, PathBuf, Option<(u64, u64)>);
    let mut seen: Vec<Seen> = Vec::new();
    for &(flag, path) in outputs {
        let id = check_target(path)?.map(|m| (m.dev(), m.ino()));
        let loc = location(path)?;
        if let Some(id) = id {
            if let Some((what, input, _)) = inputs.iter().find(|i| i.2 == id) {
                return Err(OutputError::IsInput {
                    flag: flag.to_string(),
                    path: path.to_path_buf(),
                    what: what.to_string(),
                    input: input.to_path_buf(),
                });
            }
        }
        if let Some((other_flag, other, _, _)) = seen
            .iter()
            .find(|s| s.2 == loc || (id.is_some() && s.3 == id))
        {
            return Err(OutputError::SameFile {
                flag: flag.to_string(),
                path: path.to_path_buf(),
                other_flag: other_flag.to_string(),
                other: other.to_path_buf(),
            });
        }
        seen.push((flag, path, loc, id));
    }
    Ok(())
}

// ---- cleanup on signals -------------------------------------------------------------------

/// Temporary files and folders to remove if the process is interrupted.
static LIVE: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());

fn live() -> MutexGuard<'static, Vec<PathBuf>> {
    LIVE.lock().unwrap_or_else(|p| p.into_inner())
}

fn register(path: &Path) {
    live().push(path.to_path_buf());
}

fn unregister(list: &mut Vec<PathBuf>, path: &Path) {
    if let Some(i) = list.iter().rposition(|p| p == path) {
        list.swap_remove(i);
    }
}

/// Removes every registered temporary now (what the signal handler does before exiting);
/// returns how many were removed. The registry stays locked while it runs, so no commit is
/// half done.
pub fn remove_registered() -> usize {
    let mut list = live();
    remove_all(&mut list)
}

fn remove_all(list: &mut Vec<PathBuf>) -> usize {
    let mut removed = 0;
    for p in list.drain(..) {
        let ok = match p.symlink_metadata() {
            Ok(m) if m.is_dir() => std::fs::remove_dir_all(&p).is_ok(),
            Ok(_) => std::fs::remove_file(&p).is_ok(),
            Err(_) => false,
        };
        removed += usize::from(ok);
    }
    removed
}

/// Whether `sig` is ignored by this process (as `nohup` ignores SIGHUP, and a shell script
/// SIGINT for the jobs it starts in the background).
pub fn signal_ignored(sig: i32) -> bool {
    // SAFETY: `sigaction` with a null new action only reads the current disposition into
    // `old`, a plain C struct for which all zeroes is a valid value.
    unsafe {
        let mut old: libc::sigaction = std::mem::zeroed();
        libc::sigaction(sig, std::ptr::null(), &mut old) == 0 && old.sa_sigaction == libc::SIG_IGN
    }
}

/// Installs handlers for SIGINT, SIGTERM and SIGHUP that remove the registered temporaries
/// and exit with 128 + the signal number (130 for Ctrl-C). A signal the process was started
/// ignoring stays ignored (`nohup` keeps working). Call once, at start.
pub fn install_signal_cleanup() -> io::Result<()> {
    use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
    let wanted: Vec<i32> = [SIGINT, SIGTERM, SIGHUP]
        .into_iter()
        .filter(|&s| !signal_ignored(s))
        .collect();
    if wanted.is_empty() {
        return Ok(());
    }
    let mut signals = signal_hook::iterator::Signals::new(wanted)?;
    std::thread::Builder::new()
        .name("onnx-ac-signals".into())
        .spawn(move || {
            if let Some(sig) = signals.forever().next() {
                // Held until exit: nothing is committed or registered meanwhile.
                let mut list = live();
                remove_all(&mut list);
                // `_exit`: no atexit handlers or static destructors (ONNX Runtime's among
                // them) run while the main thread may still be inside the library.
                signal_hook::low_level::exit(128 + sig);
            }
        })?;
    Ok(())
}

/// Registers a temporary folder (or file) for removal on a signal while the guard lives; its
/// owner (a `tempfile::TempDir`) removes it normally.
pub struct TempGuard(PathBuf);

impl TempGuard {
    pub fn new(path: &Path) -> TempGuard {
        register(path);
        TempGuard(path.to_path_buf())
    }
}

impl Drop for TempGuard {
    fn drop(&mut self) {
        unregister(&mut live(), &self.0);
    }
}

// ---- staging ------------------------------------------------------------------------------

static COUNTER: AtomicU64 = AtomicU64::new(0);

struct Staged {
    tmp: PathBuf,
    dest: PathBuf,
}

/// Outputs written to temporaries and renamed into place together by [`Staging::commit`];
/// dropped without a commit, it removes them.
#[derive(Default)]
pub struct Staging {
    files: Vec<Staged>,
}

impl Staging {
    pub fn new() -> Staging {
        Staging::default()
    }

    /// Creates the temporary that will become `dest`: in the same folder (so the rename is
    /// atomic), exclusive, mode 0666 less the umask. Its handle is returned for writing.
    pub fn create(&mut self, dest: &Path) -> Result<File, OutputError> {
        let name = dest.file_name().ok_or_else(|| {
            OutputError::write(
                dest,
                io::Error::new(io::ErrorKind::InvalidInput, "the path has no file name"),
            )
        })?;
        check_target(dest)?;
        let dir = parent_dir(dest);
        loop {
            let n = COUNTER.fetch_add(1, Ordering::Relaxed);
            let mut tmp_name = std::ffi::OsString::from(".");
            tmp_name.push(name);
            tmp_name.push(format!(".onnx-ac-{}-{n}.tmp", std::process::id()));
            let tmp = dir.join(tmp_name);
            // Registered before it exists, so a signal never misses it.
            let mut list = live();
            list.push(tmp.clone());
            match OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o666)
                .open(&tmp)
            {
                Ok(f) => {
                    drop(list);
                    self.files.push(Staged {
                        tmp,
                        dest: dest.to_path_buf(),
                    });
                    return Ok(f);
                }
                Err(e) => {
                    unregister(&mut list, &tmp);
                    if e.kind() != io::ErrorKind::AlreadyExists {
                        return Err(OutputError::write(dest, e));
                    }
                }
            }
        }
    }

    /// Stages `bytes` as `dest`.
    pub fn write(&mut self, dest: &Path, bytes: &[u8]) -> Result<(), OutputError> {
        let mut f = self.create(dest)?;
        f.write_all(bytes)
            .and_then(|()| f.sync_all())
            .map_err(|e| OutputError::write(dest, e))
    }

    /// The files staged so far, in order.
    pub fn destinations(&self) -> Vec<PathBuf> {
        self.files.iter().map(|s| s.dest.clone()).collect()
    }

    /// Renames every staged file into place, in the order staged. Every target is checked
    /// first: if one became a non-regular file meanwhile, nothing is renamed. (Only a rename
    /// failing midway, which the checks make unlikely, can leave the earlier ones in place.)
    pub fn commit(mut self) -> Result<(), OutputError> {
        let mut list = live();
        for s in &self.files {
            check_target(&s.dest)?;
        }
        while !self.files.is_empty() {
            let s = self.files.remove(0);
            let done = check_target(&s.dest).and_then(|_| {
                std::fs::rename(&s.tmp, &s.dest).map_err(|e| OutputError::write(&s.dest, e))
            });
            if let Err(e) = done {
                let _ = std::fs::remove_file(&s.tmp);
                unregister(&mut list, &s.tmp);
                drop(list);
                return Err(e);
            }
            unregister(&mut list, &s.tmp);
        }
        Ok(())
    }
}

impl Drop for Staging {
    fn drop(&mut self) {
        let mut list = live();
        for s in self.files.drain(..) {
            let _ = std::fs::remove_file(&s.tmp);
            unregister(&mut list, &s.tmp);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_dropped_staging_leaves_nothing() {
        let t = tempfile::tempdir().unwrap();
        let a = t.path().join("a.onnx");
        {
            let mut s = Staging::new();
            s.write(&a, b"x").unwrap();
            s.write(&t.path().join("b.csv"), b"y").unwrap();
            assert_eq!(std::fs::read_dir(t.path()).unwrap().count(), 2);
        }
        assert_eq!(std::fs::read_dir(t.path()).unwrap().count(), 0);
        let mut s = Staging::new();
        s.write(&a, b"x").unwrap();
        s.commit().unwrap();
        assert_eq!(std::fs::read(&a).unwrap(), b"x");
        assert_eq!(std::fs::read_dir(t.path()).unwrap().count(), 1);
    }
}
