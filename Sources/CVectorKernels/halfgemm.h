// Matrix products that read half-precision weights (IEEE F16 or bfloat16) straight from a checkpoint's
// mapping and widen them to Float32 in registers: y[r, j] (+)= Σᵢ x[r, i] · W[j, i] with W stored
// [out, in] as in safetensors. Why: decoding multiplies one row (or a few) by every weight of the model,
// so its cost is reading the weights once; converting each matrix to a Float32 copy first reads 2 bytes,
// writes 4 and reads 4 again per weight, and faults fresh pages. Here each weight is read once, 2 bytes.
//
// Same conventions as kernels.h: static inline functions with per-function target attributes (the
// package may not pass -mavx flags), a level chosen at run time by the caller (Tensors/HalfMatmul.swift),
// nothing runs on a CPU without the instructions. F16 widens with vcvtph2ps (AVX-512F, or F16C next to
// AVX2); bfloat16 is the high half of a Float32, so it widens by a zero-extend and a 16-bit shift.
//
// Blocking: 4 weight rows at a time (rows past the end repeat the last row and are not stored), against
// MR input rows (≤ 4 with 32 zmm registers, ≤ 2 with 16 ymm) kept in accumulators; each 4-row weight block
// is converted once per MR-group of inputs and stays in L1/L2 between groups. The last k mod 16 (or 8)
// columns go through zero-padded stack copies, so nothing reads past a row.
#ifndef TOKC_HALF_GEMM_H
#define TOKC_HALF_GEMM_H
#if defined(__x86_64__)
#include <immintrin.h>
#include <stdint.h>

#define TC_HG_NR 4
#define TC_HG_AHEAD 1024  /* elements: 2 KiB */

// The hardware prefetcher stops at 4 KiB pages and follows only a few streams; the four weight rows of a
// block are four streams. Each is fetched 2 KiB ahead; past its row's end the fetch goes to the same
// place in the row four below, which the next block reads, so a block starts with its first lines on the
// way instead of four cold misses (measured on a 1 GiB F16 matrix, one row of x, one thread: k = 2048
// from 0.53 to 0.87 of a streaming read, k = 11008 from 0.73 to 0.80). Past the matrix's last rows the
// addresses are only hints: a prefetch never faults.
// One input row against a matrix whose rows fit beside x in L1 (x ≤ 24 KiB): each weight row is read start
// to end, so the whole product is one sequential stream, the prefetchers' best case; measured as above,
// k = 2048 / 4096: 0.85-0.9 of a streaming read against 0.7-0.8 for 4-row blocks. With a longer x the
// rows would push x out of L1 on every row (k = 11008: 0.56), so larger k keeps the blocks.
#define TC_HG_ROWWISE_MAX_K 6144
#define TC_HG_ROW_AHEAD 2048  /* elements: 4 KiB */

#define TC_HG_PREFETCH(i) { long ahead_ = (i) + TC_HG_AHEAD < k ? TC_HG_AHEAD : TC_HG_AHEAD + 3 * k; \
    _mm_prefetch((const char *)(w0 + (i) + ahead_), _MM_HINT_T0); _mm_prefetch((const char *)(w1 + (i) + ahead_), _MM_HINT_T0); \
    _mm_prefetch((const char *)(w2 + (i) + ahead_), _MM_HINT_T0); _mm_prefetch((const char *)(w3 + (i) + ahead_), _MM_HINT_T0); }

// ---------------------------------------------------------------- AVX-512F, 16 lanes
static inline __attribute__((always_inline, target("avx512f"))) __m512 tc_widen16(int bf16, const uint16_t *p) {
    __m256i h = _mm256_loadu_si256((const __m256i *)p);
    if (bf16) return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
    return _mm512_cvtph_ps(h);
}

// Accumulators are named variables, not arrays: the importer's C code generation does not unroll
// small loops over register arrays (measured: a 4×4 array lived on the stack, one store per FMA).
// Rows r ≥ MR are dead code (MR is a literal at every call).
#define TC_ACC4(V, r) V a##r##0 = ZERO, a##r##1 = ZERO, a##r##2 = ZERO, a##r##3 = ZERO;
#define TC_FMA4(r, xv) { a##r##0 = FMA(xv, v0, a##r##0); a##r##1 = FMA(xv, v1, a##r##1); \
                         a##r##2 = FMA(xv, v2, a##r##2); a##r##3 = FMA(xv, v3, a##r##3); }
#define TC_STORE4(r) if (MR > r) { float *yr = y + r * ldy; float s[4] = {HSUM(a##r##0), HSUM(a##r##1), HSUM(a##r##2), HSUM(a##r##3)}; \
                         for (int c = 0; c < nr; c++) yr[c] = accumulate ? yr[c] + s[c] : s[c]; }

#define ZERO _mm512_setzero_ps()
#define FMA _mm512_fmadd_ps
#define HSUM _mm512_reduce_add_ps
static inline __attribute__((always_inline, target("avx512f")))
void tc_hblock_avx512(int bf16, int MR, const float *x, long ldx, const uint16_t *const *w, long k,
                      float *y, long ldy, int nr, int accumulate) {
    TC_ACC4(__m512, 0) TC_ACC4(__m512, 1) TC_ACC4(__m512, 2) TC_ACC4(__m512, 3)
    const uint16_t *w0 = w[0], *w1 = w[1], *w2 = w[2], *w3 = w[3];
    long i = 0;
    for (; i + 16 <= k; i += 16) {
        if ((i & 31) == 0) TC_HG_PREFETCH(i)
        __m512 v0 = tc_widen16(bf16, w0 + i), v1 = tc_widen16(bf16, w1 + i), v2 = tc_widen16(bf16, w2 + i), v3 = tc_widen16(bf16, w3 + i);
        TC_FMA4(0, _mm512_loadu_ps(x + i))
        if (MR > 1) TC_FMA4(1, _mm512_loadu_ps(x + ldx + i))
        if (MR > 2) TC_FMA4(2, _mm512_loadu_ps(x + 2 * ldx + i))
        if (MR > 3) TC_FMA4(3, _mm512_loadu_ps(x + 3 * ldx + i))
    }
    if (i < k) {
        long rest = k - i;
        __mmask16 mask = (__mmask16)((1u << rest) - 1u);
        uint16_t t0[16], t1[16], t2[16], t3[16];
        for (long t = 0; t < 16; t++) {
            t0[t] = t < rest ? w0[i + t] : 0; t1[t] = t < rest ? w1[i + t] : 0;
            t2[t] = t < rest ? w2[i + t] : 0; t3[t] = t < rest ? w3[i + t] : 0;
        }
        __m512 v0 = tc_widen16(bf16, t0), v1 = tc_widen16(bf16, t1), v2 = tc_widen16(bf16, t2), v3 = tc_widen16(bf16, t3);
        TC_FMA4(0, _mm512_maskz_loadu_ps(mask, x + i))
        if (MR > 1) TC_FMA4(1, _mm512_maskz_loadu_ps(mask, x + ldx + i))
        if (MR > 2) TC_FMA4(2, _mm512_maskz_loadu_ps(mask, x + 2 * ldx + i))
        if (MR > 3) TC_FMA4(3, _mm512_maskz_loadu_ps(mask, x + 3 * ldx + i))
    }
    TC_STORE4(0) TC_STORE4(1) TC_STORE4(2) TC_STORE4(3)
}
#undef ZERO
#undef FMA
#undef HSUM


static inline __attribute__((always_inline, target("avx512f")))
void tc_hrows_avx512(int bf16, const float *x, const uint16_t *w, long k, long j0, long j1, float *y, int accumulate) {
    for (long j = j0; j < j1; j++) {
        const uint16_t *r = w + j * k;
        __m512 a0 = _mm512_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
        long i = 0;
        for (; i + 64 <= k; i += 64) {
            _mm_prefetch((const char *)(r + i + TC_HG_ROW_AHEAD), _MM_HINT_T0);
            _mm_prefetch((const char *)(r + i + TC_HG_ROW_AHEAD + 32), _MM_HINT_T0);
            a0 = _mm512_fmadd_ps(_mm512_loadu_ps(x + i), tc_widen16(bf16, r + i), a0);
            a1 = _mm512_fmadd_ps(_mm512_loadu_ps(x + i + 16), tc_widen16(bf16, r + i + 16), a1);
            a2 = _mm512_fmadd_ps(_mm512_loadu_ps(x + i + 32), tc_widen16(bf16, r + i + 32), a2);
            a3 = _mm512_fmadd_ps(_mm512_loadu_ps(x + i + 48), tc_widen16(bf16, r + i + 48), a3);
        }
        for (; i + 16 <= k; i += 16) a0 = _mm512_fmadd_ps(_mm512_loadu_ps(x + i), tc_widen16(bf16, r + i), a0);
        if (i < k) {
            long rest = k - i;
            uint16_t t[16];
            for (long c = 0; c < 16; c++) t[c] = c < rest ? r[i + c] : 0;
            a1 = _mm512_fmadd_ps(_mm512_maskz_loadu_ps((__mmask16)((1u << rest) - 1u), x + i), tc_widen16(bf16, t), a1);
        }
        float sum = _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(a0, a1), _mm512_add_ps(a2, a3)));
        y[j] = accumulate ? y[j] + sum : sum;
    }
}

static inline __attribute__((always_inline, target("avx512f")))
void tc_hgemm_avx512_impl(int bf16, const float *x, long m, long ldx, const uint16_t *w, long k,
                          long j0, long j1, float *y, long ldy, int accumulate) {
    if (m == 1 && k <= TC_HG_ROWWISE_MAX_K) { tc_hrows_avx512(bf16, x, w, k, j0, j1, y, accumulate); return; }
    for (long j = j0; j < j1; j += TC_HG_NR) {
        int nr = j1 - j >= TC_HG_NR ? TC_HG_NR : (int)(j1 - j);
        const uint16_t *rows[TC_HG_NR];
        for (int c = 0; c < TC_HG_NR; c++) rows[c] = w + (c < nr ? j + c : j + nr - 1) * k;
        for (long r = 0; r < m; r += 4) {
            const float *xr = x + r * ldx;
            float *yr = y + r * ldy + j;
            switch (m - r >= 4 ? 4 : m - r) {
            case 4: tc_hblock_avx512(bf16, 4, xr, ldx, rows, k, yr, ldy, nr, accumulate); break;
            case 3: tc_hblock_avx512(bf16, 3, xr, ldx, rows, k, yr, ldy, nr, accumulate); break;
            case 2: tc_hblock_avx512(bf16, 2, xr, ldx, rows, k, yr, ldy, nr, accumulate); break;
            default: tc_hblock_avx512(bf16, 1, xr, ldx, rows, k, yr, ldy, nr, accumulate); break;
            }
        }
    }
}

/// Output columns j0..<j1 of y[m, ·] (+)= x[m, k] · Wᵀ, W F16 [·, k]; rows of x and y at strides ldx, ldy.
static inline __attribute__((target("avx512f")))
void tc_hgemm_f16_avx512(const float *x, long m, long ldx, const uint16_t *w, long k, long j0, long j1, float *y, long ldy, int accumulate) {
    tc_hgemm_avx512_impl(0, x, m, ldx, w, k, j0, j1, y, ldy, accumulate);
}

/// As tc_hgemm_f16_avx512 with bfloat16 weights.
static inline __attribute__((target("avx512f")))
void tc_hgemm_bf16_avx512(const float *x, long m, long ldx, const uint16_t *w, long k, long j0, long j1, float *y, long ldy, int accumulate) {
    tc_hgemm_avx512_impl(1, x, m, ldx, w, k, j0, j1, y, ldy, accumulate);
}

/// dst[i] = (float)src[i] for n values (tiles of a half matrix before an sgemm).
static inline __attribute__((target("avx512f"))) void tc_widen_avx512(int bf16, const uint16_t *src, float *dst, long n) {
    long i = 0;
    for (; i + 16 <= n; i += 16) _mm512_storeu_ps(dst + i, tc_widen16(bf16, src + i));
    if (i < n) {
        uint16_t tail[16];
        for (long t = 0; t < 16; t++) tail[t] = i + t < n ? src[i + t] : 0;
        _mm512_mask_storeu_ps(dst + i, (__mmask16)((1u << (n - i)) - 1u), tc_widen16(bf16, tail));
    }
}

/// Σ x[i] with four independent accumulators: a streaming read to measure memory bandwidth.
static inline __attribute__((target("avx512f"))) float tc_stream_sum_avx512(const float *x, long n) {
    __m512 a0 = _mm512_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
    long i = 0;
    for (; i + 64 <= n; i += 64) {
        a0 = _mm512_add_ps(a0, _mm512_loadu_ps(x + i));
        a1 = _mm512_add_ps(a1, _mm512_loadu_ps(x + i + 16));
        a2 = _mm512_add_ps(a2, _mm512_loadu_ps(x + i + 32));
        a3 = _mm512_add_ps(a3, _mm512_loadu_ps(x + i + 48));
    }
    float s = _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(a0, a1), _mm512_add_ps(a2, a3)));
    for (; i < n; i++) s += x[i];
    return s;
}

// ---------------------------------------------------------------- AVX2 + FMA + F16C, 8 lanes
static inline __attribute__((always_inline, target("avx2,fma,f16c"))) __m256 tc_widen8(int bf16, const uint16_t *p) {
    __m128i h = _mm_loadu_si128((const __m128i *)p);
    if (bf16) return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
    return _mm256_cvtph_ps(h);
}

static inline __attribute__((always_inline, target("avx2,fma,f16c"))) float tc_hsum8(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_shuffle_ps(s, s, 1));
    return _mm_cvtss_f32(s);
}

#define ZERO _mm256_setzero_ps()
#define FMA _mm256_fmadd_ps
#define HSUM tc_hsum8
static inline __attribute__((always_inline, target("avx2,fma,f16c")))
void tc_hblock_avx2(int bf16, int MR, const float *x, long ldx, const uint16_t *const *w, long k,
                    float *y, long ldy, int nr, int accumulate) {
    TC_ACC4(__m256, 0) TC_ACC4(__m256, 1)
    const uint16_t *w0 = w[0], *w1 = w[1], *w2 = w[2], *w3 = w[3];
    long i = 0;
    for (; i + 8 <= k; i += 8) {
        if ((i & 31) == 0) TC_HG_PREFETCH(i)
        __m256 v0 = tc_widen8(bf16, w0 + i), v1 = tc_widen8(bf16, w1 + i), v2 = tc_widen8(bf16, w2 + i), v3 = tc_widen8(bf16, w3 + i);
        TC_FMA4(0, _mm256_loadu_ps(x + i))
        if (MR > 1) TC_FMA4(1, _mm256_loadu_ps(x + ldx + i))
    }
    if (i < k) {
        long rest = k - i;
        uint16_t t0[8], t1[8], t2[8], t3[8];
        float x0[8], x1[8];
        for (long t = 0; t < 8; t++) {
            t0[t] = t < rest ? w0[i + t] : 0; t1[t] = t < rest ? w1[i + t] : 0;
            t2[t] = t < rest ? w2[i + t] : 0; t3[t] = t < rest ? w3[i + t] : 0;
            x0[t] = t < rest ? x[i + t] : 0.0f;
            x1[t] = MR > 1 && t < rest ? x[ldx + i + t] : 0.0f;
        }
        __m256 v0 = tc_widen8(bf16, t0), v1 = tc_widen8(bf16, t1), v2 = tc_widen8(bf16, t2), v3 = tc_widen8(bf16, t3);
        TC_FMA4(0, _mm256_loadu_ps(x0))
        if (MR > 1) TC_FMA4(1, _mm256_loadu_ps(x1))
    }
    TC_STORE4(0) TC_STORE4(1)
}
#undef ZERO
#undef FMA
#undef HSUM
#undef TC_ACC4
#undef TC_FMA4
#undef TC_STORE4


static inline __attribute__((always_inline, target("avx2,fma,f16c")))
void tc_hrows_avx2(int bf16, const float *x, const uint16_t *w, long k, long j0, long j1, float *y, int accumulate) {
    for (long j = j0; j < j1; j++) {
        const uint16_t *r = w + j * k;
        __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
        long i = 0;
        for (; i + 32 <= k; i += 32) {
            _mm_prefetch((const char *)(r + i + TC_HG_ROW_AHEAD), _MM_HINT_T0);
            a0 = _mm256_fmadd_ps(_mm256_loadu_ps(x + i), tc_widen8(bf16, r + i), a0);
            a1 = _mm256_fmadd_ps(_mm256_loadu_ps(x + i + 8), tc_widen8(bf16, r + i + 8), a1);
            a2 = _mm256_fmadd_ps(_mm256_loadu_ps(x + i + 16), tc_widen8(bf16, r + i + 16), a2);
            a3 = _mm256_fmadd_ps(_mm256_loadu_ps(x + i + 24), tc_widen8(bf16, r + i + 24), a3);
        }
        for (; i + 8 <= k; i += 8) a0 = _mm256_fmadd_ps(_mm256_loadu_ps(x + i), tc_widen8(bf16, r + i), a0);
        if (i < k) {
            long rest = k - i;
            uint16_t t[8];
            float xs[8];
            for (long c = 0; c < 8; c++) { t[c] = c < rest ? r[i + c] : 0; xs[c] = c < rest ? x[i + c] : 0.0f; }
            a1 = _mm256_fmadd_ps(_mm256_loadu_ps(xs), tc_widen8(bf16, t), a1);
        }
        float sum = tc_hsum8(_mm256_add_ps(_mm256_add_ps(a0, a1), _mm256_add_ps(a2, a3)));
        y[j] = accumulate ? y[j] + sum : sum;
    }
}

static inline __attribute__((always_inline, target("avx2,fma,f16c")))
void tc_hgemm_avx2_impl(int bf16, const float *x, long m, long ldx, const uint16_t *w, long k,
                        long j0, long j1, float *y, long ldy, int accumulate) {
    if (m == 1 && k <= TC_HG_ROWWISE_MAX_K) { tc_hrows_avx2(bf16, x, w, k, j0, j1, y, accumulate); return; }
    for (long j = j0; j < j1; j += TC_HG_NR) {
        int nr = j1 - j >= TC_HG_NR ? TC_HG_NR : (int)(j1 - j);
        const uint16_t *rows[TC_HG_NR];
        for (int c = 0; c < TC_HG_NR; c++) rows[c] = w + (c < nr ? j + c : j + nr - 1) * k;
        for (long r = 0; r < m; r += 2) {
            const float *xr = x + r * ldx;
            float *yr = y + r * ldy + j;
            if (m - r >= 2) tc_hblock_avx2(bf16, 2, xr, ldx, rows, k, yr, ldy, nr, accumulate);
            else tc_hblock_avx2(bf16, 1, xr, ldx, rows, k, yr, ldy, nr, accumulate);
        }
    }
}

static inline __attribute__((target("avx2,fma,f16c")))
void tc_hgemm_f16_avx2(const float *x, long m, long ldx, const uint16_t *w, long k, long j0, long j1, float *y, long ldy, int accumulate) {
    tc_hgemm_avx2_impl(0, x, m, ldx, w, k, j0, j1, y, ldy, accumulate);
}

static inline __attribute__((target("avx2,fma,f16c")))
void tc_hgemm_bf16_avx2(const float *x, long m, long ldx, const uint16_t *w, long k, long j0, long j1, float *y, long ldy, int accumulate) {
    tc_hgemm_avx2_impl(1, x, m, ldx, w, k, j0, j1, y, ldy, accumulate);
}

static inline __attribute__((target("avx2,fma,f16c"))) void tc_widen_avx2(int bf16, const uint16_t *src, float *dst, long n) {
    long i = 0;
    for (; i + 8 <= n; i += 8) _mm256_storeu_ps(dst + i, tc_widen8(bf16, src + i));
    for (; i < n; i++) {
        uint16_t one[8] = {src[i], 0, 0, 0, 0, 0, 0, 0};
        dst[i] = _mm256_cvtss_f32(tc_widen8(bf16, one));
    }
}

static inline __attribute__((target("avx2,fma,f16c"))) float tc_stream_sum_avx2(const float *x, long n) {
    __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
    long i = 0;
    for (; i + 32 <= n; i += 32) {
        a0 = _mm256_add_ps(a0, _mm256_loadu_ps(x + i));
        a1 = _mm256_add_ps(a1, _mm256_loadu_ps(x + i + 8));
        a2 = _mm256_add_ps(a2, _mm256_loadu_ps(x + i + 16));
        a3 = _mm256_add_ps(a3, _mm256_loadu_ps(x + i + 24));
    }
    float s = tc_hsum8(_mm256_add_ps(_mm256_add_ps(a0, a1), _mm256_add_ps(a2, a3)));
    for (; i < n; i++) s += x[i];
    return s;
}

#endif
#endif
