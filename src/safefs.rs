//! Opening files that hostile inputs name or are (docs/security.md): every input is opened once
//! and read from that handle only, must be a regular file (a FIFO would block forever, a
//! device such as `/dev/zero` never ends), and is read up to a documented limit. External
//! data is resolved beneath the model's folder one component at a time, from handles already
//! open, so no rename or symlink swapped in between a check and a use can lead outside.

use rustix::fs::{self as rfs, AtFlags, FileType, Mode, OFlags};
use std::collections::VecDeque;
use std::ffi::OsString;
use std::fs::File;
use std::io::{self, Read};
use std::os::fd::OwnedFd;
use std::os::unix::ffi::OsStringExt;
use std::path::{Component, Path};

/// The largest model (or tensor collection) file read: protobuf cannot represent a message of
/// 2 GiB or more, so larger models keep their weights in external data.
pub const MODEL_LIMIT_BYTES: u64 = 2 << 30;

/// The largest JSON input read (`--plan`, `--profile`): far above any real plan or profile.
pub const JSON_LIMIT_BYTES: u64 = 256 << 20;

/// At most this many symbolic links are followed while resolving one external-data location
/// (the kernel's own limit is 40).
const MAX_LINKS: usize = 40;

/// What a file is when it is not a regular file, for messages.
fn kind_name(t: FileType) -> &'static str {
    match t {
        FileType::Fifo => "a named pipe (FIFO)",
        FileType::CharacterDevice => "a character device",
        FileType::BlockDevice => "a block device",
        FileType::Socket => "a socket",
        FileType::Symlink => "a symbolic link",
        FileType::Directory => "a directory",
        _ => "of an unknown type",
    }
}

/// The error for a file of type `t` where a regular file is needed. A directory gives the
/// system's own error ("Is a directory"), as reading it would.
fn not_regular(t: FileType) -> io::Error {
    if t == FileType::Directory {
        return io::Error::from(rustix::io::Errno::ISDIR);
    }
    io::Error::new(
        io::ErrorKind::InvalidInput,
        format!("it is {}, not a regular file (refused)", kind_name(t)),
    )
}

/// Refuses an open handle that is not a regular file (checked on the handle itself, so it
/// is the file that will be read), then makes reads blocking again.
fn regular_handle(fd: OwnedFd) -> io::Result<File> {
    let st = rfs::fstat(&fd)?;
    let t = FileType::from_raw_mode(st.st_mode);
    if t != FileType::RegularFile {
        return Err(not_regular(t));
    }
    let flags = rfs::fcntl_getfl(&fd)?;
    rfs::fcntl_setfl(&fd, flags.difference(OFlags::NONBLOCK))?;
    Ok(File::from(fd))
}

/// Flags for opening an input: never block on a FIFO, never become a controlling terminal.
fn input_flags() -> OFlags {
    OFlags::RDONLY | OFlags::CLOEXEC | OFlags::NONBLOCK | OFlags::NOCTTY
}

/// Opens `path` (given on the command line: symlinks are followed) for reading. Anything but
/// a regular file is refused, before opening when its type is already visible and again on
/// the opened handle.
pub fn open_input(path: &Path) -> io::Result<File> {
    let meta = std::fs::metadata(path)?;
    if !meta.is_file() {
        let st = rfs::stat(path)?;
        return Err(not_regular(FileType::from_raw_mode(st.st_mode)));
    }
    let fd = rfs::open(path, input_flags(), Mode::empty())?;
    regular_handle(fd)
}

/// Reads `file` whole, refusing more than `limit` bytes (checked on its size first, and on
/// what is read, in case it grows).
pub fn read_limited(file: File, limit: u64) -> io::Result<Vec<u8>> {
    let len = file.metadata()?.len();
    let too_large = |n: u64| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!(
                "the file has {}{n} bytes, above onnx-ac's limit of {} for this input (refused)",
                if n > len { "more than " } else { "" },
                crate::size::human_bytes(limit)
            ),
        )
    };
    if len > limit {
        return Err(too_large(len));
    }
    let mut buf = Vec::with_capacity(len as usize);
    file.take(limit + 1).read_to_end(&mut buf)?;
    if buf.len() as u64 > limit {
        return Err(too_large(buf.len() as u64));
    }
    Ok(buf)
}

/// Opens `path` with [`open_input`] and reads it whole within `limit`.
pub fn read_input(path: &Path, limit: u64) -> io::Result<Vec<u8>> {
    read_limited(open_input(path)?, limit)
}

/// [`read_input`] as UTF-8 text.
pub fn read_input_text(path: &Path, limit: u64) -> io::Result<String> {
    String::from_utf8(read_input(path, limit)?)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "the file is not UTF-8 text"))
}

/// Why [`open_beneath`] failed.
#[derive(Debug)]
pub enum BeneathError {
    /// The path, or a symbolic link on it, leads outside the folder.
    Escapes,
    /// A component is missing, unreadable, not a folder, or the file is not regular.
    Io(io::Error),
}

impl From<io::Error> for BeneathError {
    fn from(e: io::Error) -> Self {
        BeneathError::Io(e)
    }
}

impl From<rustix::io::Errno> for BeneathError {
    fn from(e: rustix::io::Errno) -> Self {
        BeneathError::Io(e.into())
    }
}

/// The components of a relative path, as names ("." dropped, ".." kept); `None` for an
/// absolute path or a Windows prefix.
fn relative_names(p: &Path) -> Option<Vec<OsString>> {
    let mut names = Vec::new();
    for c in p.components() {
        match c {
            Component::Normal(n) => names.push(n.to_os_string()),
            Component::ParentDir => names.push(OsString::from("..")),
            Component::CurDir => {}
            Component::RootDir | Component::Prefix(_) => return None,
        }
    }
    Some(names)
}

/// Opens the regular file `rel` beneath the folder `base` for reading, following symbolic
/// links only while they stay beneath `base` (like `openat2`'s `RESOLVE_BENEATH`, on any
/// Unix). Each component is opened with `O_NOFOLLOW` relative to the folder handle opened
/// before it, and a symbolic link is read (`readlinkat`) and resolved the same way, so the
/// result is race-free: whatever is renamed or swapped meanwhile, the file opened was
/// reached from `base` without leaving it. `base` itself is opened as given.
pub fn open_beneath(base: &Path, rel: &Path) -> Result<File, BeneathError> {
    let mut pending: VecDeque<OsString> = relative_names(rel).ok_or(BeneathError::Escapes)?.into();
    let root = rfs::open(
        base,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )?;
    // The folders from `base` down to the current one, as open handles.
    let mut stack: Vec<OwnedFd> = vec![root];
    let mut links = 0;
    while let Some(name) = pending.pop_front() {
        if name == ".." {
            if stack.len() == 1 {
                return Err(BeneathError::Escapes);
            }
            stack.pop();
            continue;
        }
        let dir = stack.last().expect("the base folder stays on the stack");
        let st = rfs::statat(dir, name.as_os_str(), AtFlags::SYMLINK_NOFOLLOW)?;
        let last = pending.is_empty();
        match FileType::from_raw_mode(st.st_mode) {
            FileType::Symlink => {
                links += 1;
                if links > MAX_LINKS {
                    return Err(io::Error::from(rustix::io::Errno::LOOP).into());
                }
                let target = rfs::readlinkat(dir, name.as_os_str(), Vec::new())?;
                let target = OsString::from_vec(target.into_bytes());
                let names = relative_names(Path::new(&target)).ok_or(BeneathError::Escapes)?;
                for n in names.into_iter().rev() {
                    pending.push_front(n);
                }
            }
            FileType::Directory if !last => {
                // O_NOFOLLOW: if a symlink was swapped in since the stat, this fails.
                let fd = rfs::openat(
                    dir,
                    name.as_os_str(),
                    OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                    Mode::empty(),
                )?;
                stack.push(fd);
            }
            FileType::RegularFile if last => {
                let fd = rfs::openat(
                    dir,
                    name.as_os_str(),
                    input_flags() | OFlags::NOFOLLOW,
                    Mode::empty(),
                )?;
                return Ok(regular_handle(fd)?);
            }
            t if last => return Err(not_regular(t).into()),
            _ => return Err(io::Error::from(rustix::io::Errno::NOTDIR).into()),
        }
    }
    // The path named a folder (empty, ".", or ending in "..").
    Err(io::Error::from(rustix::io::Errno::ISDIR).into())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tree() -> tempfile::TempDir {
        let t = tempfile::tempdir().unwrap();
        let d = t.path();
        std::fs::create_dir_all(d.join("model/sub")).unwrap();
        std::fs::write(d.join("model/w.bin"), b"inside").unwrap();
        std::fs::write(d.join("model/sub/v.bin"), b"deeper").unwrap();
        std::fs::write(d.join("secret.bin"), b"secret").unwrap();
        t
    }

    fn read(base: &Path, rel: &str) -> Result<String, String> {
        match open_beneath(base, Path::new(rel)) {
            Ok(mut f) => {
                let mut s = String::new();
                f.read_to_string(&mut s).unwrap();
                Ok(s)
            }
            Err(BeneathError::Escapes) => Err("escapes".into()),
            Err(BeneathError::Io(e)) => Err(e.to_string()),
        }
    }

    #[test]
    fn resolves_beneath_only() {
        let t = tree();
        let base = t.path().join("model");
        let ln =
            |target: &str, at: &str| std::os::unix::fs::symlink(target, base.join(at)).unwrap();
        ln("w.bin", "same.bin");
        ln("sub", "subdir");
        ln("../w.bin", "sub/up.bin");
        ln("../secret.bin", "out.bin");
        ln("..", "parent");
        ln(t.path().join("secret.bin").to_str().unwrap(), "abs.bin");
        ln("loop_b", "loop_a");
        ln("loop_a", "loop_b");
        assert_eq!(read(&base, "w.bin").unwrap(), "inside");
        assert_eq!(read(&base, "./sub/v.bin").unwrap(), "deeper");
        assert_eq!(read(&base, "same.bin").unwrap(), "inside");
        assert_eq!(read(&base, "subdir/v.bin").unwrap(), "deeper");
        assert_eq!(read(&base, "sub/up.bin").unwrap(), "inside");
        assert_eq!(read(&base, "out.bin").unwrap_err(), "escapes");
        assert_eq!(read(&base, "parent/secret.bin").unwrap_err(), "escapes");
        assert_eq!(read(&base, "abs.bin").unwrap_err(), "escapes");
        assert_eq!(read(&base, "../secret.bin").unwrap_err(), "escapes");
        assert!(read(&base, "loop_a")
            .unwrap_err()
            .contains("symbolic links"));
        assert!(read(&base, "sub").unwrap_err().contains("Is a directory"));
        assert!(read(&base, "w.bin/x")
            .unwrap_err()
            .contains("Not a directory"));
        assert!(read(&base, "nope.bin")
            .unwrap_err()
            .contains("No such file"));
    }

    #[test]
    fn refuses_fifos_and_devices_without_blocking() {
        let t = tree();
        let base = t.path().join("model");
        rfs::mknodat(
            rfs::CWD,
            base.join("pipe.bin"),
            FileType::Fifo,
            Mode::from_raw_mode(0o600),
            0,
        )
        .unwrap();
        let e = read(&base, "pipe.bin").unwrap_err();
        assert!(e.contains("named pipe (FIFO)"), "{e}");
        let e = open_input(&base.join("pipe.bin")).unwrap_err().to_string();
        assert!(e.contains("named pipe (FIFO)"), "{e}");
        let e = read_input(Path::new("/dev/zero"), 10)
            .unwrap_err()
            .to_string();
        assert!(e.contains("character device"), "{e}");
    }

    #[test]
    fn reads_are_bounded() {
        let t = tree();
        let p = t.path().join("secret.bin");
        assert_eq!(read_input(&p, 6).unwrap(), b"secret");
        let e = read_input(&p, 5).unwrap_err().to_string();
        assert!(
            e.contains("has 6 bytes, above onnx-ac's limit of 5 B"),
            "{e}"
        );
    }
}
