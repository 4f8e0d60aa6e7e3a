//! The C ABI of the kernel library (`hip/params.h`), declared by hand: the params
//! structs mirrored `#[repr(C)]` (layout checked by the tests below) and the
//! `extern "C"` functions. Without a GPU build (`cfg(kq_gpu)` unset) the same
//! functions exist as stubs returning [`NOT_COMPILED`], so the safe wrapper above
//! has no `cfg` of its own.
//!
//! Every function returns an `int` status: 0 success, > 0 the platform's
//! `hipError_t`/`cudaError_t`, < 0 ours (`MAMBA_GPU_ERR_*`).
#![allow(missing_docs)]

use std::ffi::{c_char, c_int, c_void};

/// Status of every call in a build without GPU support (Rust-side only).
pub const NOT_COMPILED: c_int = -1;
/// `MAMBA_GPU_ERR_BAD_TYPE`: a quant type the kernels do not know.
pub const ERR_BAD_TYPE: c_int = -2;
/// `MAMBA_GPU_ERR_BAD_ARGS`: sizes or pointers a launcher rejects.
pub const ERR_BAD_ARGS: c_int = -3;
/// The platform code for an allocation failure (`hipErrorOutOfMemory` = 2 on AMD,
/// `cudaErrorMemoryAllocation` = 2 on NVIDIA).
pub const ERR_OUT_OF_MEMORY: c_int = 2;

/// `MambaMatmulParams`.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct MatmulParams {
    pub w: *const c_void,
    pub x: *const f32,
    pub y: *mut f32,
    pub bias: *const f32,
    pub row_bytes: i64,
    pub ldx: i64,
    pub ldy: i64,
    pub ty: i32,
    pub rows: i32,
    pub cols: i32,
    pub n: i32,
    pub accumulate: i32,
    pub variant: i32,
}

/// `MambaEmbedParams`.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct EmbedParams {
    pub w: *const c_void,
    pub tokens: *const u32,
    pub out: *mut f32,
    pub row_bytes: i64,
    pub ldo: i64,
    pub ty: i32,
    pub cols: i32,
    pub n: i32,
    pub vocab: i32,
}

/// `MambaNormParams`.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct NormParams {
    pub x: *const f32,
    pub w: *const f32,
    pub out: *mut f32,
    pub rows_idx: *const i32,
    pub ldx: i64,
    pub ldo: i64,
    pub rows: i32,
    pub d: i32,
    pub eps: f32,
    pub _pad: i32,
}

/// `MambaConvParams`.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct ConvParams {
    pub x: *const f32,
    pub out: *mut f32,
    pub state: *mut f32,
    pub w: *const f32,
    pub bias: *const f32,
    pub seg_start: *const i32,
    pub seg_slot: *const i32,
    pub ldx: i64,
    pub ldo: i64,
    pub n_seg: i32,
    pub d_inner: i32,
    pub k: i32,
    pub _pad: i32,
}

/// `MambaScanParams`.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct ScanParams {
    pub x: *const f32,
    pub dt: *const f32,
    pub bc: *const f32,
    pub z: *const f32,
    pub y: *mut f32,
    pub h: *mut f32,
    pub a: *const f32,
    pub d: *const f32,
    pub dt_bias: *const f32,
    pub seg_start: *const i32,
    pub seg_slot: *const i32,
    pub ldx: i64,
    pub lddt: i64,
    pub ldbc: i64,
    pub ldz: i64,
    pub ldy: i64,
    pub b_off: i32,
    pub c_off: i32,
    pub n_seg: i32,
    pub d_inner: i32,
    pub d_state: i32,
    pub _pad: i32,
}

/// Declares each C function once: as `extern "C"` in a GPU build, as a stub
/// returning `$stub` otherwise.
macro_rules! c_api {
    ($( fn $name:ident ( $($arg:ident : $ty:ty),* $(,)? ) -> $ret:ty = $stub:expr; )*) => {
        #[cfg(kq_gpu)]
        extern "C" {
            $( pub fn $name($($arg: $ty),*) -> $ret; )*
        }
        $(
            #[cfg(not(kq_gpu))]
            #[allow(unused_variables, clippy::missing_safety_doc)]
            pub unsafe fn $name($($arg: $ty),*) -> $ret { $stub }
        )*
    };
}

c_api! {
    fn mamba_matmul(p: *const MatmulParams, stream: *mut c_void) -> c_int = NOT_COMPILED;
    fn mamba_embed(p: *const EmbedParams, stream: *mut c_void) -> c_int = NOT_COMPILED;
    fn mamba_rmsnorm(p: *const NormParams, stream: *mut c_void) -> c_int = NOT_COMPILED;
    fn mamba_conv1d_silu(p: *const ConvParams, stream: *mut c_void) -> c_int = NOT_COMPILED;
    fn mamba_selective_scan(p: *const ScanParams, stream: *mut c_void) -> c_int = NOT_COMPILED;
    fn mamba_gpu_platform() -> *const c_char = c"none".as_ptr();
    fn mamba_gpu_error_string(code: c_int) -> *const c_char =
        c"this build has no GPU support (built without the `gpu` feature or with HIP_PLATFORM=none)".as_ptr();
    fn mamba_gpu_is_no_device(code: c_int) -> c_int = 0;
    fn mamba_gpu_device_count(n: *mut c_int) -> c_int = NOT_COMPILED;
    fn mamba_gpu_set_device(dev: c_int) -> c_int = NOT_COMPILED;
    fn mamba_gpu_device_info(
        dev: c_int,
        name: *mut c_char,
        name_len: usize,
        warp_size: *mut c_int,
        sm_count: *mut c_int,
        total_mem: *mut usize,
    ) -> c_int = NOT_COMPILED;
    fn mamba_gpu_malloc(ptr: *mut *mut c_void, bytes: usize) -> c_int = NOT_COMPILED;
    fn mamba_gpu_free(ptr: *mut c_void) -> c_int = NOT_COMPILED;
    fn mamba_gpu_memcpy_htod(dst: *mut c_void, src: *const c_void, bytes: usize) -> c_int = NOT_COMPILED;
    fn mamba_gpu_memcpy_dtoh(dst: *mut c_void, src: *const c_void, bytes: usize) -> c_int = NOT_COMPILED;
    fn mamba_gpu_memcpy_dtod(dst: *mut c_void, src: *const c_void, bytes: usize) -> c_int = NOT_COMPILED;
    fn mamba_gpu_memset(ptr: *mut c_void, value: c_int, bytes: usize) -> c_int = NOT_COMPILED;
    fn mamba_gpu_synchronize() -> c_int = NOT_COMPILED;
    fn mamba_gpu_mem_info(free_bytes: *mut usize, total_bytes: *mut usize) -> c_int = NOT_COMPILED;
    fn mamba_gpu_host_alloc(ptr: *mut *mut c_void, bytes: usize) -> c_int = NOT_COMPILED;
    fn mamba_gpu_host_free(ptr: *mut c_void) -> c_int = NOT_COMPILED;
    fn mamba_gpu_capture_begin() -> c_int = NOT_COMPILED;
    fn mamba_gpu_capture_end(exec: *mut *mut c_void) -> c_int = NOT_COMPILED;
    fn mamba_gpu_graph_launch(exec: *mut c_void) -> c_int = NOT_COMPILED;
    fn mamba_gpu_graph_destroy(exec: *mut c_void) -> c_int = NOT_COMPILED;
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::mem::{offset_of, size_of};

    /// Sizes and offsets as the C compiler lays out `hip/params.h` on x86_64 /
    /// aarch64 (LP64): pointers and int64 at 8-byte alignment.
    #[test]
    fn params_layout_matches_params_h() {
        assert_eq!(size_of::<MatmulParams>(), 80);
        assert_eq!(offset_of!(MatmulParams, row_bytes), 32);
        assert_eq!(offset_of!(MatmulParams, ldy), 48);
        assert_eq!(offset_of!(MatmulParams, ty), 56);
        assert_eq!(offset_of!(MatmulParams, n), 68);
        assert_eq!(offset_of!(MatmulParams, variant), 76);

        assert_eq!(size_of::<EmbedParams>(), 56);
        assert_eq!(offset_of!(EmbedParams, row_bytes), 24);
        assert_eq!(offset_of!(EmbedParams, ty), 40);
        assert_eq!(offset_of!(EmbedParams, vocab), 52);

        assert_eq!(size_of::<NormParams>(), 64);
        assert_eq!(offset_of!(NormParams, rows_idx), 24);
        assert_eq!(offset_of!(NormParams, ldo), 40);
        assert_eq!(offset_of!(NormParams, rows), 48);
        assert_eq!(offset_of!(NormParams, eps), 56);

        assert_eq!(size_of::<ConvParams>(), 88);
        assert_eq!(offset_of!(ConvParams, seg_slot), 48);
        assert_eq!(offset_of!(ConvParams, ldx), 56);
        assert_eq!(offset_of!(ConvParams, n_seg), 72);
        assert_eq!(offset_of!(ConvParams, k), 80);

        assert_eq!(size_of::<ScanParams>(), 152);
        assert_eq!(offset_of!(ScanParams, seg_slot), 80);
        assert_eq!(offset_of!(ScanParams, ldx), 88);
        assert_eq!(offset_of!(ScanParams, ldy), 120);
        assert_eq!(offset_of!(ScanParams, b_off), 128);
        assert_eq!(offset_of!(ScanParams, d_state), 144);
    }
}
