//! [`DeviceBuffer`]: an owned, typed device allocation, and the process-wide
//! allocation counters.

use super::{check, ffi, mem_info, GpuError, Result};
use bytemuck::Pod;
use std::ffi::c_void;
use std::marker::PhantomData;
use std::sync::atomic::{AtomicU64, Ordering};

static ALLOCATED: AtomicU64 = AtomicU64::new(0);
static PEAK: AtomicU64 = AtomicU64::new(0);

/// Bytes currently held in [`DeviceBuffer`]s by this process (all devices).
pub fn allocated_bytes() -> u64 {
    ALLOCATED.load(Ordering::Relaxed)
}

/// The largest [`allocated_bytes`] since the start or the last [`reset_peak`].
pub fn peak_allocated_bytes() -> u64 {
    PEAK.load(Ordering::Relaxed)
}

/// Restarts [`peak_allocated_bytes`] from the current total.
pub fn reset_peak() {
    PEAK.store(allocated_bytes(), Ordering::Relaxed);
}

/// `len` values of `T` in device memory, freed on drop. `T: Pod`, so any bytes the
/// device writes are a valid `T` on the host.
pub struct DeviceBuffer<T: Pod> {
    ptr: *mut c_void,
    len: usize,
    _t: PhantomData<T>,
}

// SAFETY: the buffer owns a device allocation; the pointer is only an address in
// device memory, usable from any host thread.
unsafe impl<T: Pod> Send for DeviceBuffer<T> {}
// SAFETY: `&DeviceBuffer` only reads the address and length.
unsafe impl<T: Pod> Sync for DeviceBuffer<T> {}

impl<T: Pod> std::fmt::Debug for DeviceBuffer<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "DeviceBuffer<{}>({} values at {:p})",
            std::any::type_name::<T>(),
            self.len,
            self.ptr
        )
    }
}

impl<T: Pod> DeviceBuffer<T> {
    /// An empty buffer (no allocation).
    pub fn empty() -> Self {
        DeviceBuffer {
            ptr: std::ptr::null_mut(),
            len: 0,
            _t: PhantomData,
        }
    }

    /// `len` values of unspecified content on the current device. `what` names the
    /// buffer in the out-of-memory error.
    pub fn alloc(len: usize, what: &str) -> Result<Self> {
        let bytes = len
            .checked_mul(std::mem::size_of::<T>())
            .ok_or_else(|| GpuError::Invalid(format!("{what}: {len} values overflow")))?;
        let mut ptr = std::ptr::null_mut();
        if bytes > 0 {
            // SAFETY: `ptr` is a valid out-pointer.
            let code = unsafe { ffi::mamba_gpu_malloc(&mut ptr, bytes) };
            if code == ffi::ERR_OUT_OF_MEMORY {
                let (free, total) = mem_info().unwrap_or((0, 0));
                return Err(GpuError::OutOfMemory {
                    what: what.to_string(),
                    bytes: bytes as u64,
                    free,
                    total,
                    allocated: allocated_bytes(),
                });
            }
            check("hipMalloc", code)?;
            let now = ALLOCATED.fetch_add(bytes as u64, Ordering::Relaxed) + bytes as u64;
            PEAK.fetch_max(now, Ordering::Relaxed);
        }
        Ok(DeviceBuffer {
            ptr,
            len,
            _t: PhantomData,
        })
    }

    /// `len` zero values.
    pub fn zeroed(len: usize, what: &str) -> Result<Self> {
        let mut b = Self::alloc(len, what)?;
        b.fill_zero()?;
        Ok(b)
    }

    /// A copy of `data` on the device.
    pub fn from_slice(data: &[T], what: &str) -> Result<Self> {
        let mut b = Self::alloc(data.len(), what)?;
        b.upload(0, data)?;
        Ok(b)
    }

    /// Number of values.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Size in bytes.
    pub fn size_bytes(&self) -> usize {
        self.len * std::mem::size_of::<T>()
    }

    fn range(&self, offset: usize, n: usize, what: &str) -> Result<()> {
        match offset.checked_add(n) {
            Some(end) if end <= self.len => Ok(()),
            _ => Err(GpuError::Invalid(format!(
                "{what}: values {offset}..+{n} outside a buffer of {}",
                self.len
            ))),
        }
    }

    /// Device address of value `offset`, after checking that `n` values fit there.
    pub fn ptr_at(&self, offset: usize, n: usize) -> Result<*const T> {
        self.range(offset, n, "pointer")?;
        Ok(self.ptr.cast::<T>().wrapping_add(offset).cast_const())
    }

    /// Mutable device address of value `offset`, after checking that `n` values fit.
    pub fn ptr_at_mut(&mut self, offset: usize, n: usize) -> Result<*mut T> {
        self.range(offset, n, "pointer")?;
        Ok(self.ptr.cast::<T>().wrapping_add(offset))
    }

    /// Copies `data` to values `offset..offset + data.len()`.
    pub fn upload(&mut self, offset: usize, data: &[T]) -> Result<()> {
        self.range(offset, data.len(), "upload")?;
        if data.is_empty() {
            return Ok(());
        }
        let dst = self.ptr_at_mut(offset, data.len())?;
        // SAFETY: the range is inside the allocation; `data` is a valid host slice.
        check("hipMemcpy(HtoD)", unsafe {
            ffi::mamba_gpu_memcpy_htod(
                dst.cast(),
                data.as_ptr().cast(),
                std::mem::size_of_val(data),
            )
        })
    }

    /// Copies values `offset..offset + out.len()` to `out` (waits for prior kernels).
    pub fn download(&self, offset: usize, out: &mut [T]) -> Result<()> {
        self.range(offset, out.len(), "download")?;
        if out.is_empty() {
            return Ok(());
        }
        let src = self.ptr_at(offset, out.len())?;
        // SAFETY: the range is inside the allocation; `out` is a valid host slice and
        // any bytes are a valid `T: Pod`.
        check("hipMemcpy(DtoH)", unsafe {
            ffi::mamba_gpu_memcpy_dtoh(
                out.as_mut_ptr().cast(),
                src.cast(),
                std::mem::size_of_val(out),
            )
        })
    }

    /// The whole buffer on the host.
    pub fn to_vec(&self) -> Result<Vec<T>> {
        let mut v = vec![T::zeroed(); self.len];
        self.download(0, &mut v)?;
        Ok(v)
    }

    /// Copies `n` values from `src[src_offset..]` to `self[offset..]`.
    pub fn copy_from(
        &mut self,
        offset: usize,
        src: &DeviceBuffer<T>,
        src_offset: usize,
        n: usize,
    ) -> Result<()> {
        if n == 0 {
            return Ok(());
        }
        let s = src.ptr_at(src_offset, n)?;
        let d = self.ptr_at_mut(offset, n)?;
        // SAFETY: both ranges are inside their allocations (distinct buffers: `self`
        // is borrowed mutably, `src` shared).
        check("hipMemcpy(DtoD)", unsafe {
            ffi::mamba_gpu_memcpy_dtod(d.cast(), s.cast(), n * std::mem::size_of::<T>())
        })
    }

    /// Sets every byte to 0.
    pub fn fill_zero(&mut self) -> Result<()> {
        if self.len == 0 {
            return Ok(());
        }
        // SAFETY: the whole allocation.
        check("hipMemset", unsafe {
            ffi::mamba_gpu_memset(self.ptr, 0, self.size_bytes())
        })
    }
}

impl<T: Pod> Drop for DeviceBuffer<T> {
    fn drop(&mut self) {
        if !self.ptr.is_null() {
            // SAFETY: allocated by mamba_gpu_malloc and freed once. A failure here
            // (a device already in an error state) cannot be reported from drop.
            let _ = unsafe { ffi::mamba_gpu_free(self.ptr) };
            ALLOCATED.fetch_sub(self.size_bytes() as u64, Ordering::Relaxed);
        }
    }
}
