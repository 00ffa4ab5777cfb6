//! A byte-counting `OrtAllocator` for measuring the peak memory of one run.
//!
//! ONNX Runtime allocates the CPU tensors of a session (intermediates, outputs, kernel scratch
//! buffers, small initializers) through the environment's registered allocator when the session
//! is created with `session.use_env_allocators = 1`. (Initializers over 127 bytes and external
//! data stay where the model was loaded or mapped and never pass through it.)
//!
//! Each measuring session gets its own [`MemoryMeter`]: under a process-wide lock the meter is
//! registered with the environment, the session is created (it keeps a reference to the
//! allocator), and the meter is unregistered again, so concurrent sessions never share a
//! counter.
//!
//! Counted bytes are the sizes ONNX Runtime asked for, not including this allocator's header.
//!
//! This is the only module with raw C-API calls on allocators; every `unsafe` block states why
//! it is sound.

use ort::AsPointer;
use std::alloc::{alloc, dealloc, Layout};
use std::ffi::{c_void, CStr};
use std::ptr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

/// Alignment of every block handed out (ONNX Runtime's CPU allocator uses 64 too), and the size
/// of the header in front of it that records the requested size.
const ALIGN: usize = 64;
const HEADER: usize = ALIGN;

/// Serialises register → create session → unregister across threads.
static REGISTRATION: Mutex<()> = Mutex::new(());

/// The C-visible allocator. `base` must stay the first field: ONNX Runtime calls the callbacks
/// with a pointer to `base`, which is cast back to the whole struct.
#[repr(C)]
struct CountingAllocator {
    base: ort::sys::OrtAllocator,
    info: *mut ort::sys::OrtMemoryInfo,
    current: AtomicU64,
    peak: AtomicU64,
    allocations: AtomicU64,
}

/// Counts the bytes a session holds; see the module documentation.
pub struct MemoryMeter {
    // Boxed so the address given to ONNX Runtime never moves.
    inner: Box<CountingAllocator>,
}

// SAFETY: the counters are atomics; `info` is only read (ONNX Runtime's OrtMemoryInfo is
// immutable once created) and released once, in Drop, which needs `&mut self`.
unsafe impl Send for MemoryMeter {}
unsafe impl Sync for MemoryMeter {}

impl MemoryMeter {
    /// A new meter with zero counts. Needs ONNX Runtime to be loaded.
    pub(crate) fn new() -> Result<MemoryMeter, String> {
        let api = ort::api();
        let mut info: *mut ort::sys::OrtMemoryInfo = ptr::null_mut();
        // SAFETY: `CreateCpuMemoryInfo` writes one pointer to `info`, a valid local.
        let status = unsafe {
            (api.CreateCpuMemoryInfo)(
                ort::sys::OrtAllocatorType::OrtDeviceAllocator,
                ort::sys::OrtMemType::OrtMemTypeDefault,
                &mut info,
            )
        };
        status_to_result(status)?;
        if info.is_null() {
            return Err("CreateCpuMemoryInfo returned no memory info".to_string());
        }
        // SAFETY: `OrtAllocator::default` only fills in the version and null callbacks.
        let mut base = unsafe { ort::sys::OrtAllocator::default() };
        base.Alloc = Some(counting_alloc);
        base.Free = Some(counting_free);
        base.Info = Some(counting_info);
        base.Reserve = Some(counting_reserve);
        Ok(MemoryMeter {
            inner: Box::new(CountingAllocator {
                base,
                info,
                current: AtomicU64::new(0),
                peak: AtomicU64::new(0),
                allocations: AtomicU64::new(0),
            }),
        })
    }

    /// Bytes currently held through this allocator.
    pub fn current_bytes(&self) -> u64 {
        self.inner.current.load(Ordering::SeqCst)
    }

    /// Highest `current_bytes` since creation or the last [`MemoryMeter::reset_peak`].
    pub fn peak_bytes(&self) -> u64 {
        self.inner.peak.load(Ordering::SeqCst)
    }

    /// Number of allocations made through this allocator so far.
    pub fn allocations(&self) -> u64 {
        self.inner.allocations.load(Ordering::SeqCst)
    }

    /// Starts a new measurement: the peak becomes the bytes held now.
    pub fn reset_peak(&self) {
        self.inner
            .peak
            .store(self.inner.current.load(Ordering::SeqCst), Ordering::SeqCst);
    }

    /// Registers this meter as the environment's CPU allocator, runs `create` (which must
    /// create the session with `session.use_env_allocators = 1`), and unregisters it again.
    ///
    /// The meter must outlive the session created by `create`: the session keeps calling it.
    pub(crate) fn with_registered<T>(
        &mut self,
        env: &ort::environment::Environment,
        create: impl FnOnce() -> T,
    ) -> Result<T, String> {
        let _guard = REGISTRATION.lock().unwrap_or_else(|p| p.into_inner());
        let api = ort::api();
        let env_ptr = env.ptr().cast_mut();
        let alloc_ptr: *mut ort::sys::OrtAllocator = &mut self.inner.base;
        // SAFETY: `env_ptr` is the live process environment (kept alive by the loader's static);
        // `alloc_ptr` points into a Box whose lifetime the caller ties to the session's.
        let status = unsafe { (api.RegisterAllocator)(env_ptr, alloc_ptr) };
        status_to_result(status).map_err(|e| format!("RegisterAllocator failed: {e}"))?;
        let out = create();
        // SAFETY: as above; `info` is the memory info the allocator was registered under.
        let status = unsafe { (api.UnregisterAllocator)(env_ptr, self.inner.info) };
        // The session already holds its reference; a failure to unregister only leaves the
        // allocator in the environment, where the next registration replaces it.
        let _ = status_to_result(status);
        Ok(out)
    }
}

impl Drop for MemoryMeter {
    fn drop(&mut self) {
        if !self.inner.info.is_null() {
            // SAFETY: `info` came from CreateCpuMemoryInfo and is released exactly once here.
            unsafe { (ort::api().ReleaseMemoryInfo)(self.inner.info) };
            self.inner.info = ptr::null_mut();
        }
    }
}

/// Converts an `OrtStatus*` (null means success) into a Result, releasing the status.
pub(crate) fn status_to_result(status: ort::sys::OrtStatusPtr) -> Result<(), String> {
    let raw: *mut ort::sys::OrtStatus = status.0;
    if raw.is_null() {
        return Ok(());
    }
    let api = ort::api();
    // SAFETY: `raw` is a non-null status returned by ONNX Runtime; the message pointer is valid
    // until the status is released, which happens after it has been copied.
    let msg = unsafe {
        let m = (api.GetErrorMessage)(raw);
        let s = if m.is_null() {
            "unknown error".to_string()
        } else {
            CStr::from_ptr(m).to_string_lossy().into_owned()
        };
        (api.ReleaseStatus)(raw);
        s
    };
    Err(msg)
}

/// Recovers the counter from the pointer ONNX Runtime passes to a callback.
///
/// # Safety
/// `this` must be the `base` field of a live `CountingAllocator` (guaranteed because only such
/// pointers are ever registered, and `base` is the first field of a `repr(C)` struct).
unsafe fn counter<'a>(this: *const ort::sys::OrtAllocator) -> &'a CountingAllocator {
    unsafe { &*this.cast::<CountingAllocator>() }
}

unsafe extern "system" fn counting_alloc(
    this: *mut ort::sys::OrtAllocator,
    size: usize,
) -> *mut c_void {
    // SAFETY: see `counter`.
    let c = unsafe { counter(this) };
    if size as u64 > physical_memory_bytes() {
        allocation_failed(size, "more than this machine's physical memory");
    }
    let Some(total) = size.checked_add(HEADER) else {
        allocation_failed(size, "the size overflows");
    };
    let Ok(layout) = Layout::from_size_align(total, ALIGN) else {
        allocation_failed(size, "the size overflows");
    };
    // SAFETY: `layout` has a non-zero size (at least HEADER bytes).
    let block = unsafe { alloc(layout) };
    if block.is_null() {
        allocation_failed(size, "the system refused it");
    }
    // SAFETY: the block is at least HEADER (64) bytes and 64-aligned, so a usize fits at its
    // start; the user part starts HEADER bytes in and is `size` bytes long.
    unsafe { block.cast::<usize>().write(size) };
    let now = c.current.fetch_add(size as u64, Ordering::SeqCst) + size as u64;
    c.peak.fetch_max(now, Ordering::SeqCst);
    c.allocations.fetch_add(1, Ordering::SeqCst);
    // SAFETY: HEADER < total, so the offset stays inside the block.
    unsafe { block.add(HEADER).cast() }
}

/// The machine's physical memory (`sysconf`), read once; `u64::MAX` when unknown.
fn physical_memory_bytes() -> u64 {
    static BYTES: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    *BYTES.get_or_init(|| {
        // SAFETY: `sysconf` only reads system configuration.
        let (pages, page) = unsafe {
            (
                libc::sysconf(libc::_SC_PHYS_PAGES),
                libc::sysconf(libc::_SC_PAGESIZE),
            )
        };
        match (u64::try_from(pages), u64::try_from(page)) {
            (Ok(n), Ok(p)) if n > 0 && p > 0 => n.saturating_mul(p),
            _ => u64::MAX,
        }
    })
}

/// An allocation ONNX Runtime asked for cannot be made. The C allocator interface has no
/// error status: a null pointer is used as memory by ONNX Runtime (a segfault, seen with a
/// huge OneHot depth under `--verify`). So this reports the size on stderr, removes the
/// registered temporaries (as the signal handler does) and ends the process with exit code
/// 2 through `_exit` (no atexit handlers or static destructors run while ONNX Runtime's
/// threads are inside the library).
fn allocation_failed(size: usize, why: &str) -> ! {
    use std::io::Write;
    let msg = format!(
        "error: ONNX Runtime asked for {size} bytes ({}) in one allocation and it cannot be made: {why}; the model or its --dim values imply tensors too large for this machine\n",
        crate::size::human_bytes(size as u64)
    );
    let _ = std::io::stderr().write_all(msg.as_bytes());
    crate::output::remove_registered();
    signal_hook::low_level::exit(2)
}

unsafe extern "system" fn counting_reserve(
    this: *const ort::sys::OrtAllocator,
    size: usize,
) -> *mut c_void {
    // SAFETY: the callbacks never write through `this` except via atomics, so the const
    // pointer may be used where `counting_alloc` takes a mutable one.
    unsafe { counting_alloc(this.cast_mut(), size) }
}

unsafe extern "system" fn counting_free(this: *mut ort::sys::OrtAllocator, p: *mut c_void) {
    if p.is_null() {
        return;
    }
    // SAFETY: see `counter`.
    let c = unsafe { counter(this) };
    // SAFETY: `p` was returned by `counting_alloc`, so the block starts HEADER bytes before it
    // and records the requested size, from which the original layout is rebuilt.
    unsafe {
        let block = p.cast::<u8>().sub(HEADER);
        let size = block.cast::<usize>().read();
        c.current.fetch_sub(size as u64, Ordering::SeqCst);
        let layout = Layout::from_size_align_unchecked(size + HEADER, ALIGN);
        dealloc(block, layout);
    }
}

unsafe extern "system" fn counting_info(
    this: *const ort::sys::OrtAllocator,
) -> *const ort::sys::OrtMemoryInfo {
    // SAFETY: see `counter`.
    unsafe { counter(this) }.info
}
