// Byte-for-byte check of mamba-format's quantizers and dequantizers against ggml's
// (ggml/src/ggml-quants.c, compiled unmodified beside this file by check.sh).
//
//   harness vectors.bin rust.bin
//
// Reads the rows and the random byte pool that `cargo run --example ggml_vectors`
// wrote, runs ggml on them, and compares with that example's output (rust.bin):
// per quantizer and row, the quantized bytes and their dequantization (f32 bits),
// and the dequantization of the random pool read as blocks. Exit status 0 when all
// match. Each quantizer is what ggml_quantize_chunk runs for the type without an
// importance matrix (quantize_<type>(src, dst, 1, n, NULL)); "iq4_nl_single_fit"
// is quantize_row_iq4_nl_ref, whose indices for an all-zero block are those of the
// block before (the Rust port's rule), or, for the leading all-zero blocks of a row,
// whatever its uninitialized stack buffer held: those blocks are not compared.
#define GGML_COMMON_DECL_C
#include "ggml-common.h"
#include "ggml-quants.h"

#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

// ---- the few ggml.c functions ggml-quants.c links against ----------------------

void ggml_abort(const char * file, int line, const char * fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "ggml_abort %s:%d: ", file, line);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    abort();
}

struct type_info { enum ggml_type type; const char * name; int64_t blck; size_t size; };

static const struct type_info TYPES[] = {
    {GGML_TYPE_Q4_0, "q4_0", QK4_0, sizeof(block_q4_0)},
    {GGML_TYPE_Q4_1, "q4_1", QK4_1, sizeof(block_q4_1)},
    {GGML_TYPE_Q5_0, "q5_0", QK5_0, sizeof(block_q5_0)},
    {GGML_TYPE_Q5_1, "q5_1", QK5_1, sizeof(block_q5_1)},
    {GGML_TYPE_Q8_0, "q8_0", QK8_0, sizeof(block_q8_0)},
    {GGML_TYPE_Q2_K, "q2_K", QK_K, sizeof(block_q2_K)},
    {GGML_TYPE_Q3_K, "q3_K", QK_K, sizeof(block_q3_K)},
    {GGML_TYPE_Q4_K, "q4_K", QK_K, sizeof(block_q4_K)},
    {GGML_TYPE_Q5_K, "q5_K", QK_K, sizeof(block_q5_K)},
    {GGML_TYPE_Q6_K, "q6_K", QK_K, sizeof(block_q6_K)},
    {GGML_TYPE_IQ4_NL, "iq4_nl", QK4_NL, sizeof(block_iq4_nl)},
    {GGML_TYPE_IQ4_XS, "iq4_xs", QK_K, sizeof(block_iq4_xs)},
};

static const struct type_info * info(enum ggml_type t) {
    for (size_t i = 0; i < sizeof(TYPES) / sizeof(TYPES[0]); i++) {
        if (TYPES[i].type == t) return &TYPES[i];
    }
    fprintf(stderr, "type %d not in the harness table\n", (int) t);
    abort();
}

size_t ggml_type_size(enum ggml_type t) { return info(t)->size; }
size_t ggml_row_size(enum ggml_type t, int64_t ne) { return info(t)->size * ne / info(t)->blck; }
const char * ggml_type_name(enum ggml_type t) { return info(t)->name; }

// ---- the quantizers compared ------------------------------------------------------

typedef void (*quantize_fn)(const float * x, void * y, int64_t n);
typedef void (*dequantize_fn)(const void * x, float * y, int64_t n);

#define CHUNK(T) static void q_##T(const float * x, void * y, int64_t n) { quantize_##T(x, y, 1, n, NULL); }
CHUNK(q4_0) CHUNK(q4_1) CHUNK(q5_0) CHUNK(q5_1) CHUNK(q8_0)
CHUNK(q2_K) CHUNK(q3_K) CHUNK(q4_K) CHUNK(q5_K) CHUNK(q6_K)
CHUNK(iq4_nl) CHUNK(iq4_xs)
static void q_iq4_nl_single_fit(const float * x, void * y, int64_t n) { quantize_row_iq4_nl_ref(x, y, n); }

struct quantizer {
    const char * name;
    enum ggml_type type;
    quantize_fn q;
    dequantize_fn dq;
    int undefined_leading_zero_blocks;  // see the top of the file
};

#define DQ(T) (dequantize_fn) dequantize_row_##T
static const struct quantizer QUANTIZERS[] = {
    {"q4_0", GGML_TYPE_Q4_0, q_q4_0, DQ(q4_0), 0},
    {"q4_1", GGML_TYPE_Q4_1, q_q4_1, DQ(q4_1), 0},
    {"q5_0", GGML_TYPE_Q5_0, q_q5_0, DQ(q5_0), 0},
    {"q5_1", GGML_TYPE_Q5_1, q_q5_1, DQ(q5_1), 0},
    {"q8_0", GGML_TYPE_Q8_0, q_q8_0, DQ(q8_0), 0},
    {"q2_k", GGML_TYPE_Q2_K, q_q2_K, DQ(q2_K), 0},
    {"q3_k", GGML_TYPE_Q3_K, q_q3_K, DQ(q3_K), 0},
    {"q4_k", GGML_TYPE_Q4_K, q_q4_K, DQ(q4_K), 0},
    {"q5_k", GGML_TYPE_Q5_K, q_q5_K, DQ(q5_K), 0},
    {"q6_k", GGML_TYPE_Q6_K, q_q6_K, DQ(q6_K), 0},
    {"iq4_nl", GGML_TYPE_IQ4_NL, q_iq4_nl, DQ(iq4_nl), 0},
    {"iq4_nl_single_fit", GGML_TYPE_IQ4_NL, q_iq4_nl_single_fit, DQ(iq4_nl), 1},
    {"iq4_xs", GGML_TYPE_IQ4_XS, q_iq4_xs, DQ(iq4_xs), 0},
};

// Blocks at the start of `x` whose largest magnitude is below GROUP_MAX_EPS (1e-15).
static size_t leading_zero_blocks(const float * x, size_t n, size_t blck) {
    size_t b = 0;
    for (; (b + 1) * blck <= n; b++) {
        float amax = 0;
        for (size_t i = b * blck; i < (b + 1) * blck; i++) amax = fabsf(x[i]) > amax ? fabsf(x[i]) : amax;
        if (amax >= 1e-15f) break;
    }
    return b;
}

// ---- input ------------------------------------------------------------------------

static uint8_t * read_file(const char * path, size_t * len) {
    FILE * f = fopen(path, "rb");
    if (!f) { perror(path); exit(2); }
    fseek(f, 0, SEEK_END);
    *len = (size_t) ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t * b = malloc(*len ? *len : 1);
    if (fread(b, 1, *len, f) != *len) { perror(path); exit(2); }
    fclose(f);
    return b;
}

struct cursor { const uint8_t * p; size_t left; const char * what; };

static const uint8_t * take(struct cursor * c, size_t n) {
    if (n > c->left) { fprintf(stderr, "%s: truncated\n", c->what); exit(2); }
    const uint8_t * p = c->p;
    c->p += n;
    c->left -= n;
    return p;
}

static uint32_t take_u32(struct cursor * c) {
    uint32_t v;
    memcpy(&v, take(c, 4), 4);
    return v;
}

// Equal bits, or both NaN (a NaN's payload is not part of the comparison).
static int same_f32(uint32_t a, uint32_t b) {
    const int nan_a = (a & 0x7f800000u) == 0x7f800000u && (a & 0x7fffffu);
    const int nan_b = (b & 0x7f800000u) == 0x7f800000u && (b & 0x7fffffu);
    return a == b || (nan_a && nan_b);
}

// Compares n f32s of `want` (ggml) with the next ones of `c` (Rust); returns the
// number of mismatches and prints the first.
static long compare_f32(struct cursor * c, const float * want, size_t n, size_t skip, const char * what) {
    const uint8_t * got = take(c, 4 * n);
    long bad = 0;
    for (size_t i = skip; i < n; i++) {
        uint32_t a, b;
        memcpy(&a, got + 4 * i, 4);
        memcpy(&b, want + i, 4);
        if (!same_f32(a, b)) {
            if (!bad) printf("  %s: value %zu: rust %08x ggml %08x\n", what, i, a, b);
            bad++;
        }
    }
    return bad;
}

int main(int argc, char ** argv) {
    if (argc != 3) { fprintf(stderr, "usage: %s vectors.bin rust.bin\n", argv[0]); return 2; }
    size_t vlen, rlen;
    uint8_t * vbuf = read_file(argv[1], &vlen);
    uint8_t * rbuf = read_file(argv[2], &rlen);
    struct cursor vc = {vbuf, vlen, argv[1]};
    const uint32_t n_rows = take_u32(&vc);
    float ** rows = malloc(n_rows * sizeof(float *));
    uint32_t * lens = malloc(n_rows * sizeof(uint32_t));
    size_t n_values = 0;
    for (uint32_t r = 0; r < n_rows; r++) {
        lens[r] = take_u32(&vc);
        rows[r] = malloc(4 * (size_t) lens[r]);
        memcpy(rows[r], take(&vc, 4 * (size_t) lens[r]), 4 * (size_t) lens[r]);
        n_values += lens[r];
    }
    const uint32_t pool_len = take_u32(&vc);
    const uint8_t * pool = take(&vc, pool_len);

    struct cursor rc = {rbuf, rlen, argv[2]};
    long total_bad = 0;
    for (size_t qi = 0; qi < sizeof(QUANTIZERS) / sizeof(QUANTIZERS[0]); qi++) {
        const struct quantizer * q = &QUANTIZERS[qi];
        const struct type_info * t = info(q->type);
        const uint32_t name_len = take_u32(&rc);
        const uint8_t * name = take(&rc, name_len);
        if (name_len != strlen(q->name) || memcmp(name, q->name, name_len) != 0) {
            fprintf(stderr, "rust.bin has quantizer %.*s where %s was expected\n", (int) name_len, name, q->name);
            return 2;
        }
        long bad_rows = 0, bad_bytes = 0, bad_deq = 0;
        size_t skipped = 0;
        for (uint32_t r = 0; r < n_rows; r++) {
            const size_t n = lens[r], nbytes = n / t->blck * t->size;
            uint8_t * qb = calloc(nbytes, 1);
            float * y = malloc(4 * n);
            q->q(rows[r], qb, (int64_t) n);
            q->dq(qb, y, (int64_t) n);
            const uint8_t * got = take(&rc, nbytes);
            const size_t skip = q->undefined_leading_zero_blocks ? leading_zero_blocks(rows[r], n, t->blck) : 0;
            skipped += skip;
            long bb = 0;
            for (size_t i = skip * t->size; i < nbytes; i++) {
                if (got[i] != qb[i]) {
                    if (!bb) printf("  %s row %u: byte %zu (block %zu): rust %02x ggml %02x\n", q->name, r, i, i / t->size, got[i], qb[i]);
                    bb++;
                }
            }
            char what[64];
            snprintf(what, sizeof what, "%s row %u dequantized", q->name, r);
            const long bd = compare_f32(&rc, y, n, skip * t->blck, what);
            bad_rows += (bb || bd);
            bad_bytes += bb;
            bad_deq += bd;
            free(qb);
            free(y);
        }
        const size_t nb = pool_len / t->size;
        float * y = malloc(4 * nb * t->blck + 4);
        q->dq(pool, y, (int64_t) (nb * t->blck));
        char what[64];
        snprintf(what, sizeof what, "%s random blocks", q->name);
        const long bp = compare_f32(&rc, y, nb * t->blck, 0, what);
        free(y);
        printf("%-18s %u rows (%zu values): %s; %zu random blocks dequantized: %s", q->name, n_rows, n_values,
               bad_rows ? "DIFFER" : "identical bytes and values", nb, bp ? "DIFFER" : "identical");
        if (skipped) printf(" (%zu leading all-zero blocks not compared)", skipped);
        printf("\n");
        total_bad += bad_bytes + bad_deq + bp;
    }
    if (rc.left != 0) { fprintf(stderr, "rust.bin has %zu bytes left over\n", rc.left); return 2; }
    printf(total_bad ? "MISMATCH\n" : "all identical\n");
    return total_bad ? 1 : 0;
}
