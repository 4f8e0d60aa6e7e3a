// Element-wise and sequence kernels: RMSNorm, causal depthwise conv1d + SiLU, and
// the selective scan. Each is a plain transcription of its scalar reference in
// kernels/src/ops (same formulas, same association), parallel over what the
// reference loops over independently.
#include "common.h"

namespace kq {

constexpr int NORM_THREADS = 256;
constexpr int SEQ_THREADS = 128;
constexpr int CONV_MAX_K = 8;

// One block per output row; the sum of squares in f64 like the reference.
__global__ void __launch_bounds__(NORM_THREADS) k_rmsnorm(const MambaNormParams p) {
    __shared__ double red[NORM_THREADS];
    const int i = blockIdx.x, tid = threadIdx.x;
    const int r = p.rows_idx ? p.rows_idx[i] : i;
    const float* x = p.x + int64_t(r) * p.ldx;
    double ss = 0.0;
    for (int c = tid; c < p.d; c += NORM_THREADS) ss += double(x[c]) * double(x[c]);
    red[tid] = ss;
    __syncthreads();
    for (int s = NORM_THREADS / 2; s > 0; s >>= 1) {
        if (tid < s) red[tid] += red[tid + s];
        __syncthreads();
    }
    const float scale = 1.0f / sqrtf(float(red[0] / double(p.d)) + p.eps);
    float* out = p.out + int64_t(i) * p.ldo;
    for (int c = tid; c < p.d; c += NORM_THREADS) out[c] = p.w[c] * (x[c] * scale);
}

// One thread per (channel, segment), sequential over the segment's tokens; the
// window (K - 1 past inputs + the current one) lives in registers. KC is the kernel
// width, or 0 for any width up to CONV_MAX_K.
template <int KC>
__global__ void __launch_bounds__(SEQ_THREADS) k_conv1d_silu(const MambaConvParams p) {
    constexpr int MK = KC ? KC : CONV_MAX_K;
    const int c = blockIdx.x * SEQ_THREADS + threadIdx.x, s = blockIdx.y;
    if (c >= p.d_inner) return;
    const int k = KC ? KC : p.k;
    const int t0 = p.seg_start[s], t1 = p.seg_start[s + 1];
    float* st = p.state + (int64_t(p.seg_slot[s]) * p.d_inner + c) * (k - 1);
    float win[MK], wc[MK];
#pragma unroll
    for (int j = 0; j < MK; j++) {
        win[j] = (j < k - 1) ? st[j] : 0.0f;
        wc[j] = (j < k) ? p.w[int64_t(c) * k + j] : 0.0f;
    }
    const float b = p.bias ? p.bias[c] : 0.0f;
    for (int t = t0; t < t1; t++) {
        const float xv = p.x[int64_t(t) * p.ldx + c];
#pragma unroll
        for (int j = 0; j < MK; j++)
            if (j == k - 1) win[j] = xv;
        float acc = b;
#pragma unroll
        for (int j = 0; j < MK; j++)
            if (j < k) acc += wc[j] * win[j];
        p.out[int64_t(t) * p.ldo + c] = silu(acc);
#pragma unroll
        for (int j = 0; j + 1 < MK; j++)
            if (j < k - 1) win[j] = win[j + 1];
    }
#pragma unroll
    for (int j = 0; j < MK; j++)
        if (j < k - 1) st[j] = win[j];
}

// One thread per (channel, segment), sequential over the segment's tokens, with the
// channel's N states in registers (MN >= N); no (L, d_inner, N) tensor is formed.
template <int MN>
__global__ void __launch_bounds__(SEQ_THREADS) k_scan(const MambaScanParams p) {
    const int c = blockIdx.x * SEQ_THREADS + threadIdx.x, s = blockIdx.y;
    if (c >= p.d_inner) return;
    const int n_st = p.d_state;
    const int t0 = p.seg_start[s], t1 = p.seg_start[s + 1];
    float* hs = p.h + (int64_t(p.seg_slot[s]) * p.d_inner + c) * n_st;
    float h[MN], a[MN];
#pragma unroll
    for (int n = 0; n < MN; n++) {
        h[n] = (n < n_st) ? hs[n] : 0.0f;
        a[n] = (n < n_st) ? p.a[int64_t(c) * n_st + n] : 0.0f;
    }
    const float dd = p.d[c], db = p.dt_bias[c];
    for (int t = t0; t < t1; t++) {
        const float xv = p.x[int64_t(t) * p.ldx + c];
        const float dt = softplus(p.dt[int64_t(t) * p.lddt + c] + db);
        const float* row = p.bc + int64_t(t) * p.ldbc;
        const float* bb = row + p.b_off;
        const float* cc = row + p.c_off;
        float acc = 0.0f;
#pragma unroll
        for (int n = 0; n < MN; n++) {
            if (n < n_st) {
                // Same association as the reference: (dt * B) * x.
                h[n] = expf(dt * a[n]) * h[n] + (dt * bb[n]) * xv;
                acc += h[n] * cc[n];
            }
        }
        const float out = acc + dd * xv;
        p.y[int64_t(t) * p.ldy + c] = out * silu(p.z[int64_t(t) * p.ldz + c]);
    }
#pragma unroll
    for (int n = 0; n < MN; n++)
        if (n < n_st) hs[n] = h[n];
}

}  // namespace kq

using namespace kq;

extern "C" int mamba_rmsnorm(const MambaNormParams* p, MambaStream stream) {
    if (!p || p->rows < 0 || p->d <= 0) return MAMBA_GPU_ERR_BAD_ARGS;
    if (p->rows == 0) return 0;
    if (!p->x || !p->w || !p->out) return MAMBA_GPU_ERR_BAD_ARGS;
    k_rmsnorm<<<dim3(p->rows), dim3(NORM_THREADS), 0, kq_stream(stream)>>>(*p);
    return kq_launch_status("rmsnorm");
}

extern "C" int mamba_conv1d_silu(const MambaConvParams* p, MambaStream stream) {
    if (!p || p->n_seg < 0 || p->d_inner <= 0 || p->k < 1 || p->k > CONV_MAX_K) return MAMBA_GPU_ERR_BAD_ARGS;
    if (p->n_seg == 0) return 0;
    if (!p->x || !p->out || !p->state || !p->w || !p->seg_start || !p->seg_slot) return MAMBA_GPU_ERR_BAD_ARGS;
    const dim3 grid(cdiv(p->d_inner, SEQ_THREADS), p->n_seg), block(SEQ_THREADS);
    hipStream_t s = kq_stream(stream);
    if (p->k == 4)
        k_conv1d_silu<4><<<grid, block, 0, s>>>(*p);
    else
        k_conv1d_silu<0><<<grid, block, 0, s>>>(*p);
    return kq_launch_status("conv1d_silu");
}

extern "C" int mamba_selective_scan(const MambaScanParams* p, MambaStream stream) {
    if (!p || p->n_seg < 0 || p->d_inner <= 0 || p->d_state < 1 || p->d_state > 64) return MAMBA_GPU_ERR_BAD_ARGS;
    if (p->n_seg == 0) return 0;
    if (!p->x || !p->dt || !p->bc || !p->z || !p->y || !p->h || !p->a || !p->d || !p->dt_bias || !p->seg_start ||
        !p->seg_slot)
        return MAMBA_GPU_ERR_BAD_ARGS;
    const dim3 grid(cdiv(p->d_inner, SEQ_THREADS), p->n_seg), block(SEQ_THREADS);
    hipStream_t s = kq_stream(stream);
    if (p->d_state <= 16)
        k_scan<16><<<grid, block, 0, s>>>(*p);
    else
        k_scan<64><<<grid, block, 0, s>>>(*p);
    return kq_launch_status("selective_scan");
}
