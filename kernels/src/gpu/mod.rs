//! GPU kernels through HIP: one kernel source (`kernels/hip/`) compiled by hipcc for
//! AMD or by nvcc (through a small compat header) for NVIDIA, called through the
//! library's own C ABI ([`ffi`]); see `kernels/GPU.md` for the build and the design.
//!
//! The API is the same in every build. Without GPU support compiled in (the default
//! `cargo build`, or `HIP_PLATFORM=none`) every call returns
//! [`GpuError::NotCompiled`], so callers need no `cfg`.
//!
//! - devices: [`device_count`], [`set_device`], [`device_info`], [`mem_info`];
//! - memory: [`DeviceBuffer`] (freed on drop; the process-wide total and peak are
//!   [`allocated_bytes`] and [`peak_allocated_bytes`]), [`DeviceWeight`] (a matrix
//!   in its stored quantized layout);
//! - kernels: [`matmul`], [`embed`], [`rmsnorm`], [`conv1d_silu`],
//!   [`selective_scan`], each checked against its scalar reference in `tests/gpu_*.rs`;
//! - [`Graph`]: a recorded sequence of launches, replayed with one launch.
//!
//! Device calls act on the calling thread's current device ([`set_device`]).
//! Launches go to the default stream, in order; copies to and from the host wait
//! for the kernels before them.

mod buffer;
pub mod ffi;
mod graph;
mod ops;

pub use buffer::{allocated_bytes, peak_allocated_bytes, reset_peak, DeviceBuffer};
pub use graph::Graph;
pub use ops::{
    conv1d_silu, embed, matmul, rmsnorm, selective_scan, ConvArgs, DeviceWeight, Mat, MatMut,
    MatmulArgs, MatmulKernel, NormArgs, RowSelect, ScanArgs, SegTable, StateMut,
};

use std::ffi::{c_int, CStr};

/// Everything a GPU call can fail with.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum GpuError {
    /// This build has no GPU code.
    #[error("this build has no GPU support: rebuild with the `gpu` cargo feature and HIP_PLATFORM=amd or nvidia (see kernels/GPU.md)")]
    NotCompiled,
    /// The runtime found no usable device (none present, or no driver).
    #[error("no usable GPU: {call} returned error {code} ({message})")]
    NoDevice {
        /// The call that said so.
        call: &'static str,
        /// The platform's error code.
        code: i32,
        /// The platform's text for it.
        message: String,
    },
    /// A device index past the last device.
    #[error("GPU {index} does not exist ({count} found)")]
    BadDevice {
        /// Requested index.
        index: usize,
        /// Devices present.
        count: usize,
    },
    /// An allocation did not fit.
    #[error("out of GPU memory allocating {what} ({}): {} free of {} on the device, {} allocated by this process",
        fmt_bytes(*.bytes), fmt_bytes(*.free), fmt_bytes(*.total), fmt_bytes(*.allocated))]
    OutOfMemory {
        /// What was being allocated.
        what: String,
        /// Its size in bytes.
        bytes: u64,
        /// Free device memory when it failed (0 if unknown).
        free: u64,
        /// Total device memory (0 if unknown).
        total: u64,
        /// Bytes this process held in [`DeviceBuffer`]s.
        allocated: u64,
    },
    /// A runtime call or kernel launch failed.
    #[error("{call} failed: error {code} ({message})")]
    Api {
        /// The call.
        call: &'static str,
        /// The platform's (> 0) or the kernel library's (< 0) error code.
        code: i32,
        /// Text for the code.
        message: String,
    },
    /// Arguments the safe wrapper rejects (sizes that do not fit the buffers).
    #[error("invalid GPU call: {0}")]
    Invalid(String),
}

/// Result of GPU calls.
pub type Result<T, E = GpuError> = std::result::Result<T, E>;

/// `1.5 GiB`-style sizes for messages.
pub fn fmt_bytes(b: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = b as f64;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < UNITS.len() {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{b} B")
    } else {
        format!("{v:.2} {}", UNITS[u])
    }
}

/// The platform's text for an error code.
pub fn error_string(code: i32) -> String {
    // SAFETY: the library returns a pointer to a static NUL-terminated string.
    unsafe { CStr::from_ptr(ffi::mamba_gpu_error_string(code)) }
        .to_string_lossy()
        .into_owned()
}

/// Maps a status to a result, naming the call.
pub(crate) fn check(call: &'static str, code: c_int) -> Result<()> {
    if code == 0 {
        return Ok(());
    }
    if code == ffi::NOT_COMPILED {
        return Err(GpuError::NotCompiled);
    }
    let message = error_string(code);
    // SAFETY: a pure function of its argument.
    if unsafe { ffi::mamba_gpu_is_no_device(code) } != 0 {
        return Err(GpuError::NoDevice {
            call,
            code,
            message,
        });
    }
    Err(GpuError::Api {
        call,
        code,
        message,
    })
}

/// The platform compiled in: `Some("amd")`, `Some("nvidia")`, or `None` in a build
/// without GPU support.
pub fn platform() -> Option<&'static str> {
    if cfg!(kq_gpu) {
        // SAFETY: a static NUL-terminated string.
        unsafe { CStr::from_ptr(ffi::mamba_gpu_platform()) }
            .to_str()
            .ok()
    } else {
        None
    }
}

/// Number of devices; [`GpuError::NoDevice`] when there is none (no GPU, or no
/// driver: HIP error 100, CUDA 100 or 35).
pub fn device_count() -> Result<usize> {
    let mut n: c_int = 0;
    // SAFETY: `n` is a valid out-pointer.
    check("hipGetDeviceCount", unsafe {
        ffi::mamba_gpu_device_count(&mut n)
    })?;
    if n <= 0 {
        return Err(GpuError::NoDevice {
            call: "hipGetDeviceCount",
            code: 0,
            message: "0 devices".into(),
        });
    }
    Ok(n as usize)
}

/// Makes device `index` current for this thread.
pub fn set_device(index: usize) -> Result<()> {
    let count = device_count()?;
    if index >= count {
        return Err(GpuError::BadDevice { index, count });
    }
    // SAFETY: a plain runtime call.
    check("hipSetDevice", unsafe {
        ffi::mamba_gpu_set_device(index as c_int)
    })
}

/// What [`device_info`] reports.
#[derive(Clone, Debug)]
pub struct DeviceInfo {
    /// Device index.
    pub index: usize,
    /// Marketing name (`"NVIDIA H200"`, `"AMD Instinct MI210"`).
    pub name: String,
    /// Lanes per warp / wavefront.
    pub warp_size: u32,
    /// Multiprocessors (compute units).
    pub multiprocessors: u32,
    /// Device memory in bytes.
    pub total_memory: u64,
    /// `"amd"` or `"nvidia"`.
    pub platform: &'static str,
}

/// Properties of device `index`.
pub fn device_info(index: usize) -> Result<DeviceInfo> {
    let mut name = [0 as std::ffi::c_char; 256];
    let (mut warp, mut sms, mut total) = (0 as c_int, 0 as c_int, 0usize);
    // SAFETY: valid out-pointers; `name` has the length passed.
    check("hipGetDeviceProperties", unsafe {
        ffi::mamba_gpu_device_info(
            index as c_int,
            name.as_mut_ptr(),
            name.len(),
            &mut warp,
            &mut sms,
            &mut total,
        )
    })?;
    // SAFETY: the library NUL-terminates `name` within its length.
    let name = unsafe { CStr::from_ptr(name.as_ptr()) }
        .to_string_lossy()
        .into_owned();
    Ok(DeviceInfo {
        index,
        name,
        warp_size: warp as u32,
        multiprocessors: sms as u32,
        total_memory: total as u64,
        platform: platform().unwrap_or("none"),
    })
}

/// `(free, total)` bytes of the current device (`hipMemGetInfo`).
pub fn mem_info() -> Result<(u64, u64)> {
    let (mut free, mut total) = (0usize, 0usize);
    // SAFETY: valid out-pointers.
    check("hipMemGetInfo", unsafe {
        ffi::mamba_gpu_mem_info(&mut free, &mut total)
    })?;
    Ok((free as u64, total as u64))
}

/// Waits for all work on the current device; reports asynchronous kernel faults.
pub fn synchronize() -> Result<()> {
    // SAFETY: a plain runtime call.
    check("hipDeviceSynchronize", unsafe {
        ffi::mamba_gpu_synchronize()
    })
}

/// For test harnesses: the device to test on, or `None` after printing why the
/// caller should skip (no GPU support compiled in, or no device present).
///
/// The device index is `$MAMBA_GPU_DEVICE` (default 0). With `MAMBA_REQUIRE_GPU=1`
/// a missing GPU panics instead (the GPU check script sets it). Any other failure
/// (a broken driver, a bad index) panics: only "no GPU here" is a skip.
pub fn test_device() -> Option<usize> {
    let index: usize = std::env::var("MAMBA_GPU_DEVICE")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let required = std::env::var("MAMBA_REQUIRE_GPU").is_ok_and(|v| !v.is_empty() && v != "0");
    match set_device(index) {
        Ok(()) => Some(index),
        Err(e @ (GpuError::NotCompiled | GpuError::NoDevice { .. })) if !required => {
            eprintln!("SKIPPED: {e}");
            None
        }
        Err(e) => panic!("GPU {index} unusable: {e}"),
    }
}
