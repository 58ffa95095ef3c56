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
    return remaining >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << remaining) - 1u);
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
