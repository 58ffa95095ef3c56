// Element-wise kernels (exp, softmax rows, x·sigmoid(a·x), SwiGLU) for x86-64 with AVX-512F or
// AVX2+FMA, written as static inline functions with per-function target attributes: the package
// may not pass -mavx flags, and Swift's own code compiles for baseline SSE2. The caller
// (Tensors/FastMath.swift) picks a level from the CPU flags at run time; nothing here runs on a
// CPU without the instructions. Same algorithm as FastMath.exp: clamp, n = round(x·log2 e),
// Cody–Waite reduction with ln 2 in two parts, degree-6 Taylor–Horner polynomial, 2^n applied as two
// normal factors; exact 0 below e^-87.33, +inf above e^88.72, NaN in → NaN out.
#ifndef TOKC_VECTOR_KERNELS_H
#define TOKC_VECTOR_KERNELS_H
#if defined(__x86_64__)
#include <immintrin.h>

#define TC_LOWEST (-87.33f)
#define TC_HIGHEST (88.72f)

// ---------------------------------------------------------------- AVX-512F, 16 lanes
static inline __attribute__((target("avx512f"))) __m512 tc_exp16(__m512 x) {
    const __m512 lo = _mm512_set1_ps(TC_LOWEST), hi = _mm512_set1_ps(TC_HIGHEST);
    // max(lo, x) and min(hi, ·) return their second operand for NaN: NaN stays NaN.
    __m512 c = _mm512_min_ps(hi, _mm512_max_ps(lo, x));
    __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(c, _mm512_set1_ps(1.44269504f)), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m512 f = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.69314575f), c);
    f = _mm512_fnmadd_ps(n, _mm512_set1_ps(1.4286068e-6f), f);
    __m512 p = _mm512_set1_ps(1.0f / 720);
    p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(1.0f / 120));
    p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(1.0f / 24));
    p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(1.0f / 6));
    p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(0.5f));
    p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(1.0f));
    p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(1.0f));
    __m512i ni = _mm512_cvtps_epi32(n);
    __m512i half = _mm512_srai_epi32(ni, 1);
    __m512i bias = _mm512_set1_epi32(127);
    __m512 s1 = _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_add_epi32(half, bias), 23));
    __m512 s2 = _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_add_epi32(_mm512_sub_epi32(ni, half), bias), 23));
    __m512 r = _mm512_mul_ps(_mm512_mul_ps(p, s1), s2);
    r = _mm512_mask_mov_ps(r, _mm512_cmp_ps_mask(x, lo, _CMP_LT_OQ), _mm512_setzero_ps());
    r = _mm512_mask_mov_ps(r, _mm512_cmp_ps_mask(x, hi, _CMP_GT_OQ), _mm512_set1_ps(__builtin_inff()));
    return r;
}

static inline __attribute__((target("avx512f"))) __mmask16 tc_tail16(long remaining) {
    return remaining >= 16 ? (__mmask16)0xFFFF : remaining <= 0 ? (__mmask16)0 : (__mmask16)((1u << remaining) - 1u);
}

/// y[i] = exp(a·x[i] + b); x and y may alias.
static inline __attribute__((target("avx512f"))) void tc_exp_avx512(const float *x, float a, float b, float *y, long n) {
    const __m512 va = _mm512_set1_ps(a), vb = _mm512_set1_ps(b);
    for (long i = 0; i < n; i += 16) {
        __mmask16 m = tc_tail16(n - i);
        __m512 v = _mm512_maskz_loadu_ps(m, x + i);
        _mm512_mask_storeu_ps(y + i, m, tc_exp16(_mm512_fmadd_ps(v, va, vb)));
    }
}

/// y[i] = x[i] / (1 + exp(−a·x[i])): SiLU (a = 1), quick-GELU (a = 1.702). x and y may alias.
static inline __attribute__((target("avx512f"))) void tc_x_sigmoid_avx512(const float *x, float a, float *y, long n) {
    const __m512 na = _mm512_set1_ps(-a), one = _mm512_set1_ps(1.0f);
    for (long i = 0; i < n; i += 16) {
        __mmask16 m = tc_tail16(n - i);
        __m512 v = _mm512_maskz_loadu_ps(m, x + i);
        __m512 e = tc_exp16(_mm512_mul_ps(v, na));
        _mm512_mask_storeu_ps(y + i, m, _mm512_div_ps(v, _mm512_add_ps(one, e)));
    }
}

/// out[i] = g[i] / (1 + exp(−g[i])) · u[i] (LLaMA's SwiGLU). out may alias g or u.
static inline __attribute__((target("avx512f"))) void tc_swiglu_avx512(const float *g, const float *u, float *out, long n) {
    const __m512 one = _mm512_set1_ps(1.0f), minus = _mm512_set1_ps(-1.0f);
    for (long i = 0; i < n; i += 16) {
        __mmask16 m = tc_tail16(n - i);
        __m512 gv = _mm512_maskz_loadu_ps(m, g + i), uv = _mm512_maskz_loadu_ps(m, u + i);
        __m512 e = tc_exp16(_mm512_mul_ps(gv, minus));
        _mm512_mask_storeu_ps(out + i, m, _mm512_mul_ps(_mm512_div_ps(gv, _mm512_add_ps(one, e)), uv));
    }
}

/// Stable softmax of one row in place; a row of −inf only becomes zeros.
static inline __attribute__((target("avx512f"))) void tc_softmax_avx512(float *x, long n) {
    __m512 mx = _mm512_set1_ps(-__builtin_inff());
    for (long i = 0; i < n; i += 16) {
        __mmask16 m = tc_tail16(n - i);
        mx = _mm512_mask_max_ps(mx, m, mx, _mm512_maskz_loadu_ps(m, x + i));
    }
    float maximum = _mm512_reduce_max_ps(mx);
    if (maximum == -__builtin_inff()) {
        for (long i = 0; i < n; i++) x[i] = 0;
        return;
    }
    const __m512 vm = _mm512_set1_ps(maximum);
    __m512 sum = _mm512_setzero_ps();
    for (long i = 0; i < n; i += 16) {
        __mmask16 m = tc_tail16(n - i);
        __m512 e = tc_exp16(_mm512_sub_ps(_mm512_maskz_loadu_ps(m, x + i), vm));
        sum = _mm512_add_ps(sum, _mm512_maskz_mov_ps(m, e));
        _mm512_mask_storeu_ps(x + i, m, e);
    }
    const __m512 inv = _mm512_set1_ps(1.0f / _mm512_reduce_add_ps(sum));
    for (long i = 0; i < n; i += 16) {
        __mmask16 m = tc_tail16(n - i);
        _mm512_mask_storeu_ps(x + i, m, _mm512_mul_ps(_mm512_maskz_loadu_ps(m, x + i), inv));
    }
}

// One query row against the m key/value rows of one head, rows at a stride of ld floats (a KV cache holds
// all heads side by side): decoding's attention. Per key a dot product over the head's width, straight from
// the cache, instead of a one-row sgemm; rows four ahead are prefetched (the stride defeats the hardware
// prefetcher, which stays inside 4 KiB pages).
static inline __attribute__((target("avx512f"))) void tc_scores1_avx512(const float *q, const float *k, long ld, long m,
                                                                        long hd, float scale, float *scores) {
    for (long j = 0; j < m; j++) {
        const float *kr = k + j * ld;
        if (j + 4 < m) for (long d = 0; d < hd; d += 16) _mm_prefetch((const char *)(kr + 4 * ld + d), _MM_HINT_T0);
        __m512 a = _mm512_setzero_ps(), b = _mm512_setzero_ps();
        long d = 0;
        for (; d + 32 <= hd; d += 32) {
            a = _mm512_fmadd_ps(_mm512_loadu_ps(q + d), _mm512_loadu_ps(kr + d), a);
            b = _mm512_fmadd_ps(_mm512_loadu_ps(q + d + 16), _mm512_loadu_ps(kr + d + 16), b);
        }
        for (; d < hd; d += 16) {
            __mmask16 t = tc_tail16(hd - d);
            a = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(t, q + d), _mm512_maskz_loadu_ps(t, kr + d), a);
        }
        scores[j] = scale * _mm512_reduce_add_ps(_mm512_add_ps(a, b));
    }
}

// out[d] = Σ_j p[j] · v[j·ld + d] for d < hd: the probabilities' weighted sum of one head's value rows, 128
// columns at a time in eight named accumulators (masked past the head's width).
static inline __attribute__((target("avx512f"))) void tc_weighted1_avx512(const float *p, const float *v, long ld, long m,
                                                                          long hd, float *out) {
    for (long d0 = 0; d0 < hd; d0 += 128) {
        long w = hd - d0;
        __mmask16 m0 = tc_tail16(w), m1 = tc_tail16(w - 16), m2 = tc_tail16(w - 32), m3 = tc_tail16(w - 48);
        __mmask16 m4 = tc_tail16(w - 64), m5 = tc_tail16(w - 80), m6 = tc_tail16(w - 96), m7 = tc_tail16(w - 112);
        __m512 a0 = _mm512_setzero_ps(), a1 = a0, a2 = a0, a3 = a0, a4 = a0, a5 = a0, a6 = a0, a7 = a0;
        for (long j = 0; j < m; j++) {
            const float *vr = v + j * ld + d0;
            if (j + 4 < m) for (long d = 0; d < (w < 128 ? w : 128); d += 16) _mm_prefetch((const char *)(vr + 4 * ld + d), _MM_HINT_T0);
            __m512 pj = _mm512_set1_ps(p[j]);
            a0 = _mm512_fmadd_ps(pj, _mm512_maskz_loadu_ps(m0, vr), a0);
            a1 = _mm512_fmadd_ps(pj, _mm512_maskz_loadu_ps(m1, vr + 16), a1);
            a2 = _mm512_fmadd_ps(pj, _mm512_maskz_loadu_ps(m2, vr + 32), a2);
            a3 = _mm512_fmadd_ps(pj, _mm512_maskz_loadu_ps(m3, vr + 48), a3);
            a4 = _mm512_fmadd_ps(pj, _mm512_maskz_loadu_ps(m4, vr + 64), a4);
            a5 = _mm512_fmadd_ps(pj, _mm512_maskz_loadu_ps(m5, vr + 80), a5);
            a6 = _mm512_fmadd_ps(pj, _mm512_maskz_loadu_ps(m6, vr + 96), a6);
            a7 = _mm512_fmadd_ps(pj, _mm512_maskz_loadu_ps(m7, vr + 112), a7);
        }
        float *o = out + d0;
        _mm512_mask_storeu_ps(o, m0, a0); _mm512_mask_storeu_ps(o + 16, m1, a1);
        _mm512_mask_storeu_ps(o + 32, m2, a2); _mm512_mask_storeu_ps(o + 48, m3, a3);
        _mm512_mask_storeu_ps(o + 64, m4, a4); _mm512_mask_storeu_ps(o + 80, m5, a5);
        _mm512_mask_storeu_ps(o + 96, m6, a6); _mm512_mask_storeu_ps(o + 112, m7, a7);
    }
}

// ---------------------------------------------------------------- AVX2 + FMA, 8 lanes
static inline __attribute__((target("avx2,fma"))) __m256 tc_exp8(__m256 x) {
    const __m256 lo = _mm256_set1_ps(TC_LOWEST), hi = _mm256_set1_ps(TC_HIGHEST);
    __m256 c = _mm256_min_ps(hi, _mm256_max_ps(lo, x));
    __m256 n = _mm256_round_ps(_mm256_mul_ps(c, _mm256_set1_ps(1.44269504f)), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m256 f = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.69314575f), c);
    f = _mm256_fnmadd_ps(n, _mm256_set1_ps(1.4286068e-6f), f);
    __m256 p = _mm256_set1_ps(1.0f / 720);
    p = _mm256_fmadd_ps(p, f, _mm256_set1_ps(1.0f / 120));
    p = _mm256_fmadd_ps(p, f, _mm256_set1_ps(1.0f / 24));
    p = _mm256_fmadd_ps(p, f, _mm256_set1_ps(1.0f / 6));
    p = _mm256_fmadd_ps(p, f, _mm256_set1_ps(0.5f));
    p = _mm256_fmadd_ps(p, f, _mm256_set1_ps(1.0f));
    p = _mm256_fmadd_ps(p, f, _mm256_set1_ps(1.0f));
    __m256i ni = _mm256_cvtps_epi32(n);
    __m256i half = _mm256_srai_epi32(ni, 1);
    __m256i bias = _mm256_set1_epi32(127);
    __m256 s1 = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(half, bias), 23));
    __m256 s2 = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(_mm256_sub_epi32(ni, half), bias), 23));
    __m256 r = _mm256_mul_ps(_mm256_mul_ps(p, s1), s2);
    r = _mm256_blendv_ps(r, _mm256_setzero_ps(), _mm256_cmp_ps(x, lo, _CMP_LT_OQ));
    r = _mm256_blendv_ps(r, _mm256_set1_ps(__builtin_inff()), _mm256_cmp_ps(x, hi, _CMP_GT_OQ));
    return r;
}

// Full 8-lane blocks here; the caller finishes the last n mod 8 values in Swift.
static inline __attribute__((target("avx2,fma"))) void tc_exp_avx2(const float *x, float a, float b, float *y, long n) {
    const __m256 va = _mm256_set1_ps(a), vb = _mm256_set1_ps(b);
    for (long i = 0; i + 8 <= n; i += 8) _mm256_storeu_ps(y + i, tc_exp8(_mm256_fmadd_ps(_mm256_loadu_ps(x + i), va, vb)));
}

static inline __attribute__((target("avx2,fma"))) void tc_x_sigmoid_avx2(const float *x, float a, float *y, long n) {
    const __m256 na = _mm256_set1_ps(-a), one = _mm256_set1_ps(1.0f);
    for (long i = 0; i + 8 <= n; i += 8) {
        __m256 v = _mm256_loadu_ps(x + i);
        _mm256_storeu_ps(y + i, _mm256_div_ps(v, _mm256_add_ps(one, tc_exp8(_mm256_mul_ps(v, na)))));
    }
}

static inline __attribute__((target("avx2,fma"))) void tc_swiglu_avx2(const float *g, const float *u, float *out, long n) {
    const __m256 one = _mm256_set1_ps(1.0f), minus = _mm256_set1_ps(-1.0f);
    for (long i = 0; i + 8 <= n; i += 8) {
        __m256 gv = _mm256_loadu_ps(g + i);
        __m256 s = _mm256_div_ps(gv, _mm256_add_ps(one, tc_exp8(_mm256_mul_ps(gv, minus))));
        _mm256_storeu_ps(out + i, _mm256_mul_ps(s, _mm256_loadu_ps(u + i)));
    }
}

#endif
#endif
