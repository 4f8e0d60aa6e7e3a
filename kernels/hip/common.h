// Shared device helpers: the warp-size macro, f16/bf16 widening, activations,
// reductions. Included by every .hip file; uses only the HIP subset that the NVIDIA
// shim (compat_nv/hip/hip_runtime.h) maps.
#pragma once

#include <hip/hip_runtime.h>
#include <hip/hip_fp16.h>
#include <stdint.h>
#include <cstdio>
#include <cstdlib>

#include "params.h"

// Lanes per warp (wavefront), a compile-time constant of the DEVICE pass only.
// NVIDIA: 32. AMD: the compiler's __AMDGCN_WAVEFRONT_SIZE (64 on gfx9, 32 on gfx10+
// unless -mwavefrontsize64); older compilers: __GFX9__ -> 64, else 32.
// Never use it in host code (hipcc's host pass defines __AMDGCN_WAVEFRONT_SIZE = 64
// whatever the target) and never as a kernel template parameter (host stub and
// device kernel would get different mangled names). Grids are therefore sized
// without it: kernels loop so that any warp size covers the same work.
#if defined(__HIP_PLATFORM_NVIDIA__)
#define KQ_WARP 32
#elif defined(__AMDGCN_WAVEFRONT_SIZE)
#define KQ_WARP __AMDGCN_WAVEFRONT_SIZE
#elif defined(__GFX9__)
#define KQ_WARP 64
#else
#define KQ_WARP 32
#endif

// Shared-memory arrays indexed by warp are sized for the 32-lane worst case.
#define KQ_MAX_WARPS_PER_BLOCK (1024 / 32)

#define KQ_DEV __device__ __forceinline__

namespace kq {

// ---- loads from stored blocks ------------------------------------------------
// Every block size of the format is even and every tensor starts 256-aligned
// (hipMalloc), so 16-bit loads at even offsets inside a block are always aligned.

KQ_DEV uint32_t ld16(const uint8_t* p) { return *reinterpret_cast<const uint16_t*>(p); }

// 4 bytes at a 2-aligned address, little-endian.
KQ_DEV uint32_t ld32(const uint8_t* p) {
    const uint16_t* q = reinterpret_cast<const uint16_t*>(p);
    return uint32_t(q[0]) | (uint32_t(q[1]) << 16);
}

// Byte i (0..8) of the 8 bytes lo|hi; i must be a compile-time constant after unrolling.
KQ_DEV uint32_t byte8(uint32_t lo, uint32_t hi, int i) {
    return ((i < 4) ? (lo >> (8 * i)) : (hi >> (8 * (i - 4)))) & 0xFFu;
}

KQ_DEV float f16_bits_to_f32(uint32_t h) { return __half2float(__ushort_as_half(uint16_t(h))); }

KQ_DEV float bf16_bits_to_f32(uint32_t h) { return __uint_as_float(h << 16); }

// ---- activations, exactly as kernels/src/ops/act.rs ---------------------------

KQ_DEV float silu(float x) { return x / (1.0f + expf(-x)); }

KQ_DEV float softplus(float x) { return x > 20.0f ? x : log1pf(expf(x)); }

// ---- reductions -----------------------------------------------------------------

KQ_DEV float warp_sum(float v) {
#pragma unroll
    for (int o = KQ_WARP / 2; o > 0; o >>= 1) v += __shfl_xor(v, o);
    return v;
}

// Host and device: blocks needed to cover a items b at a time.
__host__ __device__ inline unsigned cdiv(long a, long b) { return unsigned((a + b - 1) / b); }

}  // namespace kq

// Host side: the stream a launcher uses. Callers pass null (the default stream)
// except while this thread captures a graph (mamba_gpu_capture_begin): then every
// launch goes to the capturing stream, so the runtime records a whole forward pass
// without passing streams through the C ABI.
extern thread_local hipStream_t kq_capture_stream;
static inline hipStream_t kq_stream(void* s) {
    return s ? static_cast<hipStream_t>(s) : kq_capture_stream;
}

// Host side: the status of the launch just made (0 on success). With
// KQ_SYNC_EACH_LAUNCH=1 in the environment every launch is also waited for, so that
// a device fault is reported by the kernel that caused it (named on stderr) rather
// than by whichever call happens to synchronise next; for checks, not for speed.
// (A plain int read lazily, not a function-local static: the AMD build links no
// C++ runtime for the guard such a static needs. A race only repeats the getenv.)
static int kq_sync_each_launch = -1;
static inline int kq_launch_status(const char* kernel) {
    if (kq_sync_each_launch < 0) {
        const char* v = std::getenv("KQ_SYNC_EACH_LAUNCH");
        kq_sync_each_launch = v && v[0] == '1';
    }
    const bool sync_each = kq_sync_each_launch == 1;
    hipError_t e = hipGetLastError();
    // (No waiting while capturing: the kernel has not run, and a device-wide
    // synchronisation would invalidate the capture.)
    if (e == hipSuccess && sync_each && !kq_capture_stream) e = hipDeviceSynchronize();
    if (e != hipSuccess && sync_each)
        std::fprintf(stderr, "KQ_SYNC_EACH_LAUNCH: kernel %s failed: %s\n", kernel, hipGetErrorString(e));
    return int(e);
}
