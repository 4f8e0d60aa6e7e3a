// Block-type traits: how each stored type of the format (format/src/quant/*.rs,
// ggml-compatible layouts) is dequantized on the device. The kernels are templates
// over these structs; adding a type means one struct here, one line in
// KQ_FOR_EACH_TYPE and one 3-line file in inst/.
//
// Every type is read in "chunks" of 8 consecutive weights (KQ_CH): a trait gives
//   QK     weights per block (the float types use virtual blocks of 8),
//   BYTES  bytes per block,
//   load(blk, ci, v)   dequantizes weights [8ci, 8ci + 8) of the block at `blk`,
//   load1(row, c)      one weight of a row (only the float types: their rows need
//                      not be a whole number of 8-weight chunks).
// The arithmetic is that of the scalar reference dequantizers, in the same order.
#pragma once
#include "common.h"

#define KQ_CH 8

// X(trait, ggml_type id)
#define KQ_FOR_EACH_TYPE(X) \
    X(F32, 0)               \
    X(F16, 1)               \
    X(Q4_0, 2)              \
    X(Q4_1, 3)              \
    X(Q5_0, 6)              \
    X(Q5_1, 7)              \
    X(Q8_0, 8)              \
    X(Q2_K, 10)             \
    X(Q3_K, 11)             \
    X(Q4_K, 12)             \
    X(Q5_K, 13)             \
    X(Q6_K, 14)             \
    X(IQ4_NL, 20)           \
    X(IQ4_XS, 23)           \
    X(BF16, 30)

namespace kq {

struct QuantBlock {
    KQ_DEV static float load1(const uint8_t*, int) { return 0.0f; }  // never reached
};

// ---- float types: virtual blocks of 8 ------------------------------------------

struct F32 {
    static constexpr int QK = 8, BYTES = 32;
    KQ_DEV static void load(const uint8_t* b, int, float* v) {
        const float* f = reinterpret_cast<const float*>(b);
#pragma unroll
        for (int i = 0; i < 8; i++) v[i] = f[i];
    }
    KQ_DEV static float load1(const uint8_t* row, int c) { return reinterpret_cast<const float*>(row)[c]; }
};

struct F16 {
    static constexpr int QK = 8, BYTES = 16;
    KQ_DEV static void load(const uint8_t* b, int, float* v) {
#pragma unroll
        for (int i = 0; i < 8; i++) v[i] = f16_bits_to_f32(ld16(b + 2 * i));
    }
    KQ_DEV static float load1(const uint8_t* row, int c) { return f16_bits_to_f32(ld16(row + 2 * c)); }
};

struct BF16 {
    static constexpr int QK = 8, BYTES = 16;
    KQ_DEV static void load(const uint8_t* b, int, float* v) {
#pragma unroll
        for (int i = 0; i < 8; i++) v[i] = bf16_bits_to_f32(ld16(b + 2 * i));
    }
    KQ_DEV static float load1(const uint8_t* row, int c) { return bf16_bits_to_f32(ld16(row + 2 * c)); }
};

// ---- 32-weight blocks -------------------------------------------------------------
// Q4_0/Q4_1/Q5_0/Q5_1: byte j of qs holds weight j (low nibble) and j + 16 (high);
// chunk ci covers weights 8ci..8ci+8: bytes (ci & 1) * 8.., nibble (ci >> 1).
// Q5_*: the fifth bit of weight w is bit w of the little-endian u32 qh.

// { f16 d; u8 qs[16] } 18 bytes: x = d * (q - 8)
struct Q4_0 : QuantBlock {
    static constexpr int QK = 32, BYTES = 18;
    KQ_DEV static void load(const uint8_t* b, int ci, float* v) {
        const float d = f16_bits_to_f32(ld16(b));
        const uint8_t* q = b + 2 + (ci & 1) * 8;
        const int sh = (ci >> 1) * 4;
        const uint32_t lo = ld32(q), hi = ld32(q + 4);
#pragma unroll
        for (int i = 0; i < 8; i++) v[i] = float(int((byte8(lo, hi, i) >> sh) & 0xF) - 8) * d;
    }
};

// { f16 d; f16 m; u8 qs[16] } 20 bytes: x = d * q + m
struct Q4_1 : QuantBlock {
    static constexpr int QK = 32, BYTES = 20;
    KQ_DEV static void load(const uint8_t* b, int ci, float* v) {
        const float d = f16_bits_to_f32(ld16(b)), m = f16_bits_to_f32(ld16(b + 2));
        const uint8_t* q = b + 4 + (ci & 1) * 8;
        const int sh = (ci >> 1) * 4;
        const uint32_t lo = ld32(q), hi = ld32(q + 4);
#pragma unroll
        for (int i = 0; i < 8; i++) v[i] = float((byte8(lo, hi, i) >> sh) & 0xF) * d + m;
    }
};

// { f16 d; u8 qh[4]; u8 qs[16] } 22 bytes: x = d * (q - 16)
struct Q5_0 : QuantBlock {
    static constexpr int QK = 32, BYTES = 22;
    KQ_DEV static void load(const uint8_t* b, int ci, float* v) {
        const float d = f16_bits_to_f32(ld16(b));
        const uint32_t qh = ld32(b + 2) >> (8 * ci);
        const uint8_t* q = b + 6 + (ci & 1) * 8;
        const int sh = (ci >> 1) * 4;
        const uint32_t lo = ld32(q), hi = ld32(q + 4);
#pragma unroll
        for (int i = 0; i < 8; i++) {
            const uint32_t x = ((byte8(lo, hi, i) >> sh) & 0xF) | (((qh >> i) & 1u) << 4);
            v[i] = float(int(x) - 16) * d;
        }
    }
};

// { f16 d; f16 m; u8 qh[4]; u8 qs[16] } 24 bytes: x = d * q + m
struct Q5_1 : QuantBlock {
    static constexpr int QK = 32, BYTES = 24;
    KQ_DEV static void load(const uint8_t* b, int ci, float* v) {
        const float d = f16_bits_to_f32(ld16(b)), m = f16_bits_to_f32(ld16(b + 2));
        const uint32_t qh = ld32(b + 4) >> (8 * ci);
        const uint8_t* q = b + 8 + (ci & 1) * 8;
        const int sh = (ci >> 1) * 4;
        const uint32_t lo = ld32(q), hi = ld32(q + 4);
#pragma unroll
        for (int i = 0; i < 8; i++) {
            const uint32_t x = ((byte8(lo, hi, i) >> sh) & 0xF) | (((qh >> i) & 1u) << 4);
            v[i] = float(x) * d + m;
        }
    }
};

// { f16 d; i8 qs[32] } 34 bytes: x = d * q
struct Q8_0 : QuantBlock {
    static constexpr int QK = 32, BYTES = 34;
    KQ_DEV static void load(const uint8_t* b, int ci, float* v) {
        const float d = f16_bits_to_f32(ld16(b));
        const uint8_t* q = b + 2 + 8 * ci;
        const uint32_t lo = ld32(q), hi = ld32(q + 4);
#pragma unroll
        for (int i = 0; i < 8; i++) v[i] = d * float(int8_t(byte8(lo, hi, i)));
    }
};

// ---- K-quants: 256-weight super-blocks --------------------------------------------

// ggml get_scale_min_k4: 6-bit scale and min of sub-block j (0..8) from 12 bytes.
KQ_DEV void scale_min_k4(int j, const uint8_t* q, uint32_t& sc, uint32_t& m) {
    if (j < 4) {
        sc = q[j] & 63;
        m = q[j + 4] & 63;
    } else {
        sc = (q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4);
        m = (q[j + 4] >> 4) | ((q[j] >> 6) << 4);
    }
}

// { f16 d; f16 dmin; u8 scales[12]; u8 qs[128] } 144 bytes:
// x = d * sc[j] * q - dmin * m[j]. Each 32 bytes of qs hold 64 weights: low nibbles
// the first 32 (sub-block 2c), high nibbles the next 32 (sub-block 2c + 1).
struct Q4_K : QuantBlock {
    static constexpr int QK = 256, BYTES = 144;
    KQ_DEV static void load(const uint8_t* b, int ci, float* v) {
        const int c = ci >> 3, p = (ci & 7) * 8, upper = p >= 32;
        uint32_t sc, m;
        scale_min_k4(2 * c + upper, b + 4, sc, m);
        const float d = f16_bits_to_f32(ld16(b)) * float(sc);
        const float mn = f16_bits_to_f32(ld16(b + 2)) * float(m);
        const uint8_t* q = b + 16 + 32 * c + (p & 31);
        const int sh = upper * 4;
        const uint32_t lo = ld32(q), hi = ld32(q + 4);
#pragma unroll
        for (int i = 0; i < 8; i++) v[i] = d * float((byte8(lo, hi, i) >> sh) & 0xF) - mn;
    }
};

// { f16 d; f16 dmin; u8 scales[12]; u8 qh[32]; u8 qs[128] } 176 bytes: as Q4_K plus
// a fifth bit: bit 2c (first 32 of the 64) or 2c + 1 (next 32) of qh[i].
struct Q5_K : QuantBlock {
    static constexpr int QK = 256, BYTES = 176;
    KQ_DEV static void load(const uint8_t* b, int ci, float* v) {
        const int c = ci >> 3, p = (ci & 7) * 8, upper = p >= 32, i0 = p & 31;
        uint32_t sc, m;
        scale_min_k4(2 * c + upper, b + 4, sc, m);
        const float d = f16_bits_to_f32(ld16(b)) * float(sc);
        const float mn = f16_bits_to_f32(ld16(b + 2)) * float(m);
        const uint8_t* q = b + 48 + 32 * c + i0;
        const uint8_t* h = b + 16 + i0;
        const int sh = upper * 4, hb = 2 * c + upper;
        const uint32_t lo = ld32(q), hi = ld32(q + 4);
        const uint32_t hlo = ld32(h), hhi = ld32(h + 4);
#pragma unroll
        for (int i = 0; i < 8; i++) {
            const uint32_t x = ((byte8(lo, hi, i) >> sh) & 0xF) + (((byte8(hlo, hhi, i) >> hb) & 1u) << 4);
            v[i] = d * float(x) - mn;
        }
    }
};

// { u8 ql[128]; u8 qh[64]; i8 scales[16]; f16 d } 210 bytes: x = d * sc * (q - 32).
// Half hf (128 weights) uses ql[64hf..], qh[32hf..], scales[8hf..]; quarter qq of the
// half, weights i0..i0+8 of it: low 4 bits in ql[i0 + 32(qq & 1)] nibble qq >> 1,
// top 2 bits in qh[i0] bits 2qq..2qq+2, scale scales[i0 / 16 + 2qq].
struct Q6_K : QuantBlock {
    static constexpr int QK = 256, BYTES = 210;
    KQ_DEV static void load(const uint8_t* b, int ci, float* v) {
        const int hf = ci >> 4, p = (ci & 15) * 8, qq = p >> 5, i0 = p & 31;
        const float d = f16_bits_to_f32(ld16(b + 208));
        const float ds = d * float(int8_t(b[192 + 8 * hf + i0 / 16 + 2 * qq]));
        const uint8_t* ql = b + 64 * hf + i0 + 32 * (qq & 1);
        const uint8_t* qh = b + 128 + 32 * hf + i0;
        const int sl = (qq >> 1) * 4, shh = 2 * qq;
        const uint32_t lo = ld32(ql), hi = ld32(ql + 4);
        const uint32_t hlo = ld32(qh), hhi = ld32(qh + 4);
#pragma unroll
        for (int i = 0; i < 8; i++) {
            const int x = int(((byte8(lo, hi, i) >> sl) & 0xF) | (((byte8(hlo, hhi, i) >> shh) & 3u) << 4)) - 32;
            v[i] = ds * float(x);
        }
    }
};

// { u8 scales[16]; u8 qs[64]; f16 d; f16 dmin } 84 bytes: x = d * sc[s] * q - dmin * m[s]
// per 16 weights, scales[s] = sc | m << 4. Weight 128h + 32k + i (i < 32): bits 2k..2k+2
// of qs[32h + i].
struct Q2_K : QuantBlock {
    static constexpr int QK = 256, BYTES = 84;
    KQ_DEV static void load(const uint8_t* b, int ci, float* v) {
        const int w0 = 8 * ci, h = w0 >> 7, k = (w0 >> 5) & 3, i0 = w0 & 31;
        const uint32_t sc = b[ci >> 1];
        const float d = f16_bits_to_f32(ld16(b + 80)) * float(sc & 0xF);
        const float mn = f16_bits_to_f32(ld16(b + 82)) * float(sc >> 4);
        const uint8_t* q = b + 16 + 32 * h + i0;
        const uint32_t lo = ld32(q), hi = ld32(q + 4);
#pragma unroll
        for (int i = 0; i < 8; i++) v[i] = d * float((byte8(lo, hi, i) >> (2 * k)) & 3u) - mn;
    }
};

// { u8 hmask[32]; u8 qs[64]; u8 scales[12]; f16 d } 110 bytes: x = d * sc[s] * (q - 4)
// per 16 weights, sc in -32..32. Low 2 bits of q as in Q2_K (qs at byte 32); the third
// bit of weight w is bit w / 32 of hmask[w % 32]; sc[s] + 32 has its low 4 bits in the
// low (s < 8) or high nibble of scales[s % 8], its top 2 in bits 2(s/4).. of scales[8 + s % 4].
struct Q3_K : QuantBlock {
    static constexpr int QK = 256, BYTES = 110;
    KQ_DEV static void load(const uint8_t* b, int ci, float* v) {
        const int w0 = 8 * ci, h = w0 >> 7, k = (w0 >> 5) & 3, i0 = w0 & 31, s = ci >> 1;
        const uint8_t* sc = b + 96;
        const uint32_t lo4 = s < 8 ? (sc[s] & 0xFu) : (sc[s - 8] >> 4);
        const uint32_t hi2 = (sc[8 + (s & 3)] >> (2 * (s >> 2))) & 3u;
        const float d = f16_bits_to_f32(ld16(b + 108)) * float(int(lo4 | (hi2 << 4)) - 32);
        const uint8_t* q = b + 32 + 32 * h + i0;
        const uint32_t lo = ld32(q), hi = ld32(q + 4);
        const uint32_t mlo = ld32(b + i0), mhi = ld32(b + i0 + 4);
        const int hb = 4 * h + k;
#pragma unroll
        for (int i = 0; i < 8; i++) {
            const int low = int((byte8(lo, hi, i) >> (2 * k)) & 3u);
            const int off = ((byte8(mlo, mhi, i) >> hb) & 1u) ? 0 : 4;
            v[i] = d * float(low - off);
        }
    }
};

// ggml kvalues_iq4nl (the IQ4_NL/IQ4_XS table), entry i of 16: bytes of two u64s, so
// the table needs no device memory.
KQ_DEV float kvalue_iq4nl(uint32_t i) {
    const unsigned long long lo = 0xF6EADDCFBFAD9881ull, hi = 0x7159453526190D01ull;
    return float(int8_t(uint8_t(((i < 8) ? lo : hi) >> (8 * (i & 7)))));
}

// { f16 d; u8 qs[16] } 18 bytes: x = d * K[q], indices placed as in Q4_0.
struct IQ4_NL : QuantBlock {
    static constexpr int QK = 32, BYTES = 18;
    KQ_DEV static void load(const uint8_t* b, int ci, float* v) {
        const float d = f16_bits_to_f32(ld16(b));
        const uint8_t* q = b + 2 + (ci & 1) * 8;
        const int sh = (ci >> 1) * 4;
        const uint32_t lo = ld32(q), hi = ld32(q + 4);
#pragma unroll
        for (int i = 0; i < 8; i++) v[i] = d * kvalue_iq4nl((byte8(lo, hi, i) >> sh) & 0xFu);
    }
};

// { f16 d; u16 scales_h; u8 scales_l[4]; u8 qs[128] } 136 bytes: x = d * (ls[s] - 32) * K[q]
// per 32 weights; qs[16s..16s+16] is sub-block s laid out as an IQ4_NL block. ls[s] has
// its low 4 bits in nibble s % 2 of scales_l[s / 2], its top 2 in bits 2s.. of scales_h.
struct IQ4_XS : QuantBlock {
    static constexpr int QK = 256, BYTES = 136;
    KQ_DEV static void load(const uint8_t* b, int ci, float* v) {
        const int s = ci >> 2, p = (ci & 3) * 8;
        const uint32_t ls = ((b[4 + (s >> 1)] >> (4 * (s & 1))) & 0xFu) | (((ld16(b + 2) >> (2 * s)) & 3u) << 4);
        const float d = f16_bits_to_f32(ld16(b)) * float(int(ls) - 32);
        const uint8_t* q = b + 8 + 16 * s + (p & 15);
        const int sh = (p >> 4) * 4;
        const uint32_t lo = ld32(q), hi = ld32(q + 4);
#pragma unroll
        for (int i = 0; i < 8; i++) v[i] = d * kvalue_iq4nl((byte8(lo, hi, i) >> sh) & 0xFu);
    }
};

}  // namespace kq
