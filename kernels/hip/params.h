// The C ABI of the kernel library: one POD params struct per kernel family, the
// launchers, and the runtime calls the Rust host needs. Mirrored by hand in
// kernels/src/gpu/ffi.rs (#[repr(C)], with a size/offset test): change both together.
//
// Conventions: every function returns an int status, 0 on success; positive values
// are the platform's own error codes (hipError_t / cudaError_t), negative values are
// ours (MAMBA_GPU_ERR_*). mamba_gpu_error_string() names both. Matrices are
// row-major f32 with an explicit row stride `ld*` in elements. Launchers take a
// stream (null: the default stream) and are asynchronous.
#pragma once
#include <stddef.h>
#include <stdint.h>

#define MAMBA_GPU_ERR_BAD_TYPE (-2)   // quant type id the kernels do not know
#define MAMBA_GPU_ERR_BAD_ARGS (-3)   // a size or pointer the launcher rejects

#ifdef __cplusplus
extern "C" {
#endif

// y[t][r] = (accumulate ? y[t][r] : 0) + bias[r] + sum_c W[r][c] * x[t][c]
// for r < rows, t < n. W is `rows` rows of `row_bytes` bytes in its stored layout
// (type `ty`, ggml-compatible blocks), dequantized in registers / shared memory.
typedef struct MambaMatmulParams {
    const void* w;
    const float* x;     // (n, ldx)
    float* y;           // (n, ldy)
    const float* bias;  // (rows) or null
    int64_t row_bytes;
    int64_t ldx;
    int64_t ldy;
    int32_t ty;         // QuantType id (ggml_type number)
    int32_t rows;
    int32_t cols;
    int32_t n;
    int32_t accumulate; // 0 or 1
    int32_t variant;    // 0 auto; 1 matvec; 2 tile 128x32; 3 tile 128x128 (tests)
} MambaMatmulParams;

// out[t][c] = dequant(W[tokens[t]])[c] for t < n, c < cols.
typedef struct MambaEmbedParams {
    const void* w;
    const uint32_t* tokens; // (n)
    float* out;             // (n, ldo)
    int64_t row_bytes;
    int64_t ldo;
    int32_t ty;
    int32_t cols;
    int32_t n;
    int32_t vocab;          // rows of W; out-of-range tokens give zero rows
} MambaEmbedParams;

// out[i] = w * x[row(i)] / sqrt(mean(x[row(i)]^2) + eps) for i < rows, where
// row(i) = rows_idx ? rows_idx[i] : i.
typedef struct MambaNormParams {
    const float* x;         // (*, ldx)
    const float* w;         // (d)
    float* out;             // (rows, ldo)
    const int32_t* rows_idx;// (rows) or null
    int64_t ldx;
    int64_t ldo;
    int32_t rows;
    int32_t d;
    float eps;
    int32_t _pad;
} MambaNormParams;

// Sequences of one forward call: segment s is tokens [seg_start[s], seg_start[s+1])
// of the (T, ...) activations, and owns state slot seg_slot[s].
// Causal depthwise conv1d + SiLU over each segment, advancing the conv state:
// state (slots, d_inner, k-1), oldest input first.
typedef struct MambaConvParams {
    const float* x;          // (T, ldx), channels 0..d_inner
    float* out;              // (T, ldo)
    float* state;            // (slots, d_inner, k - 1)
    const float* w;          // (d_inner, k)
    const float* bias;       // (d_inner) or null
    const int32_t* seg_start;// (n_seg + 1)
    const int32_t* seg_slot; // (n_seg)
    int64_t ldx;
    int64_t ldo;
    int32_t n_seg;
    int32_t d_inner;
    int32_t k;
    int32_t _pad;
} MambaConvParams;

// Selective scan over each segment, state h (slots, d_inner, d_state) in fp32:
//   dt = softplus(dt_raw + dt_bias); h = exp(dt*A) h + (dt*B) x;
//   y = (C.h + D x) * silu(z)
typedef struct MambaScanParams {
    const float* x;          // (T, ldx) conv output
    const float* dt;         // (T, lddt) before bias and softplus
    const float* bc;         // (T, ldbc): B at +b_off, C at +c_off
    const float* z;          // (T, ldz)
    float* y;                // (T, ldy)
    float* h;                // (slots, d_inner, d_state)
    const float* a;          // (d_inner, d_state), = -exp(A_log)
    const float* d;          // (d_inner)
    const float* dt_bias;    // (d_inner)
    const int32_t* seg_start;// (n_seg + 1)
    const int32_t* seg_slot; // (n_seg)
    int64_t ldx;
    int64_t lddt;
    int64_t ldbc;
    int64_t ldz;
    int64_t ldy;
    int32_t b_off;
    int32_t c_off;
    int32_t n_seg;
    int32_t d_inner;
    int32_t d_state;
    int32_t _pad;
} MambaScanParams;

typedef void* MambaStream;

int mamba_matmul(const MambaMatmulParams* p, MambaStream stream);
int mamba_embed(const MambaEmbedParams* p, MambaStream stream);
int mamba_rmsnorm(const MambaNormParams* p, MambaStream stream);
int mamba_conv1d_silu(const MambaConvParams* p, MambaStream stream);
int mamba_selective_scan(const MambaScanParams* p, MambaStream stream);

// Runtime calls (thin wrappers of hip*/cuda* on the calling thread's device).
const char* mamba_gpu_platform(void);          // "amd" or "nvidia"
const char* mamba_gpu_error_string(int code);  // static text, never null
int mamba_gpu_is_no_device(int code);          // 1 when `code` means "no usable GPU"
int mamba_gpu_device_count(int* n);            // n = 0 on error
int mamba_gpu_set_device(int dev);
int mamba_gpu_device_info(int dev, char* name, size_t name_len, int* warp_size, int* sm_count,
                          size_t* total_mem);
int mamba_gpu_malloc(void** ptr, size_t bytes);
int mamba_gpu_free(void* ptr);
int mamba_gpu_memcpy_htod(void* dst, const void* src, size_t bytes);
int mamba_gpu_memcpy_dtoh(void* dst, const void* src, size_t bytes);
int mamba_gpu_memcpy_dtod(void* dst, const void* src, size_t bytes);
int mamba_gpu_memset(void* ptr, int value, size_t bytes);
int mamba_gpu_synchronize(void);
int mamba_gpu_mem_info(size_t* free_bytes, size_t* total_bytes);
int mamba_gpu_host_alloc(void** ptr, size_t bytes);  // pinned host memory
int mamba_gpu_host_free(void* ptr);
// Graphs: between begin and end this thread's launches are recorded, not run; end
// returns an executable graph that graph_launch replays (on this thread's graph
// stream, ordered with default-stream copies) and graph_destroy frees.
int mamba_gpu_capture_begin(void);
int mamba_gpu_capture_end(void** exec);
int mamba_gpu_graph_launch(void* exec);
int mamba_gpu_graph_destroy(void* exec);

#ifdef __cplusplus
}

// The layouts kernels/src/gpu/ffi.rs mirrors (its test checks the same numbers).
#include <stddef.h>
static_assert(sizeof(MambaMatmulParams) == 80 && offsetof(MambaMatmulParams, row_bytes) == 32 &&
                  offsetof(MambaMatmulParams, ldy) == 48 && offsetof(MambaMatmulParams, ty) == 56 &&
                  offsetof(MambaMatmulParams, n) == 68 && offsetof(MambaMatmulParams, variant) == 76,
              "MambaMatmulParams layout");
static_assert(sizeof(MambaEmbedParams) == 56 && offsetof(MambaEmbedParams, row_bytes) == 24 &&
                  offsetof(MambaEmbedParams, ty) == 40 && offsetof(MambaEmbedParams, vocab) == 52,
              "MambaEmbedParams layout");
static_assert(sizeof(MambaNormParams) == 64 && offsetof(MambaNormParams, rows_idx) == 24 &&
                  offsetof(MambaNormParams, ldo) == 40 && offsetof(MambaNormParams, rows) == 48 &&
                  offsetof(MambaNormParams, eps) == 56,
              "MambaNormParams layout");
static_assert(sizeof(MambaConvParams) == 88 && offsetof(MambaConvParams, seg_slot) == 48 &&
                  offsetof(MambaConvParams, ldx) == 56 && offsetof(MambaConvParams, n_seg) == 72 &&
                  offsetof(MambaConvParams, k) == 80,
              "MambaConvParams layout");
static_assert(sizeof(MambaScanParams) == 152 && offsetof(MambaScanParams, seg_slot) == 80 &&
                  offsetof(MambaScanParams, ldx) == 88 && offsetof(MambaScanParams, ldy) == 120 &&
                  offsetof(MambaScanParams, b_off) == 128 && offsetof(MambaScanParams, d_state) == 144,
              "MambaScanParams layout");
#endif
