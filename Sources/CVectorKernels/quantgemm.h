// Products with weight-only quantized matrices, widened to Float32 in registers (as halfgemm.h does
// for F16/BF16): y[r, j] (+)= s_j · Σᵢ x[r, i] · q[j, i].
//
// int8, per output channel: q[j, i] a signed byte, one Float32 scale per row j.
// int4, groups of 32 along a row: a row of k values is k/32 groups of 16 bytes; byte t of a group holds
// element t in its low nibble and element t + 16 in its high nibble, each stored as q + 8 (q ∈ [−7, 7]);
// one Float32 scale per group (scales[j · k/32 + g]). k must be a multiple of 32 (checked by the caller).
//
// One weight row at a time against each input row (decoding has one); two accumulators hide the FMA
// latency. Levels as in kernels.h: AVX-512F, AVX2 + FMA, chosen by the caller (Tensors/QuantizedMatmul.swift).
#ifndef TOKC_QUANT_GEMM_H
#define TOKC_QUANT_GEMM_H
#if defined(__x86_64__)
#include <immintrin.h>
#include <stdint.h>

// ---------------------------------------------------------------- AVX-512F
static inline __attribute__((always_inline, target("avx512f"))) __m512 tc_q8_widen16(const int8_t *p) {
    return _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128((const __m128i *)p)));
}

static inline __attribute__((target("avx512f")))
void tc_q8_gemm_avx512(const float *x, long m, long ldx, const int8_t *q, const float *scales, long k,
                       long j0, long j1, float *y, long ldy, int accumulate) {
    for (long j = j0; j < j1; j++) {
        const int8_t *row = q + j * k;
        for (long r = 0; r < m; r++) {
            const float *xr = x + r * ldx;
            __m512 a0 = _mm512_setzero_ps(), a1 = _mm512_setzero_ps();
            long i = 0;
            for (; i + 32 <= k; i += 32) {
                a0 = _mm512_fmadd_ps(_mm512_loadu_ps(xr + i), tc_q8_widen16(row + i), a0);
                a1 = _mm512_fmadd_ps(_mm512_loadu_ps(xr + i + 16), tc_q8_widen16(row + i + 16), a1);
            }
            for (; i < k; i += 16) {
                long rest = k - i < 16 ? k - i : 16;
                int8_t tail[16];
                for (long t = 0; t < 16; t++) tail[t] = t < rest ? row[i + t] : 0;
                a0 = _mm512_fmadd_ps(_mm512_maskz_loadu_ps((__mmask16)((1u << rest) - 1u), xr + i), tc_q8_widen16(tail), a0);
            }
            float s = scales[j] * _mm512_reduce_add_ps(_mm512_add_ps(a0, a1));
            y[r * ldy + j] = accumulate ? y[r * ldy + j] + s : s;
        }
    }
}

static inline __attribute__((target("avx512f")))
void tc_q4_gemm_avx512(const float *x, long m, long ldx, const uint8_t *q, const float *scales, long k,
                       long j0, long j1, float *y, long ldy, int accumulate) {
    const long groups = k / 32;
    const __m512i low = _mm512_set1_epi32(15), eight = _mm512_set1_epi32(8);
    for (long j = j0; j < j1; j++) {
        const uint8_t *row = q + j * (k / 2);
        const float *sc = scales + j * groups;
        for (long r = 0; r < m; r++) {
            const float *xr = x + r * ldx;
            __m512 a0 = _mm512_setzero_ps(), a1 = _mm512_setzero_ps();
            for (long g = 0; g < groups; g++) {
                __m512i b = _mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i *)(row + g * 16)));
                __m512 lo = _mm512_cvtepi32_ps(_mm512_sub_epi32(_mm512_and_si512(b, low), eight));
                __m512 hi = _mm512_cvtepi32_ps(_mm512_sub_epi32(_mm512_srli_epi32(b, 4), eight));
                __m512 t = _mm512_mul_ps(_mm512_loadu_ps(xr + g * 32), lo);
                t = _mm512_fmadd_ps(_mm512_loadu_ps(xr + g * 32 + 16), hi, t);
                if (g & 1) a1 = _mm512_fmadd_ps(t, _mm512_set1_ps(sc[g]), a1);
                else a0 = _mm512_fmadd_ps(t, _mm512_set1_ps(sc[g]), a0);
            }
            float s = _mm512_reduce_add_ps(_mm512_add_ps(a0, a1));
            y[r * ldy + j] = accumulate ? y[r * ldy + j] + s : s;
        }
    }
}

// ---------------------------------------------------------------- AVX2 + FMA
static inline __attribute__((always_inline, target("avx2,fma"))) float tc_q_hsum8(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_shuffle_ps(s, s, 1));
    return _mm_cvtss_f32(s);
}

static inline __attribute__((always_inline, target("avx2,fma"))) __m256 tc_q8_widen8(const int8_t *p) {
    return _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_loadl_epi64((const __m128i *)p)));
}

static inline __attribute__((target("avx2,fma")))
void tc_q8_gemm_avx2(const float *x, long m, long ldx, const int8_t *q, const float *scales, long k,
                     long j0, long j1, float *y, long ldy, int accumulate) {
    for (long j = j0; j < j1; j++) {
        const int8_t *row = q + j * k;
        for (long r = 0; r < m; r++) {
            const float *xr = x + r * ldx;
            __m256 a0 = _mm256_setzero_ps(), a1 = _mm256_setzero_ps();
            long i = 0;
            for (; i + 16 <= k; i += 16) {
                a0 = _mm256_fmadd_ps(_mm256_loadu_ps(xr + i), tc_q8_widen8(row + i), a0);
                a1 = _mm256_fmadd_ps(_mm256_loadu_ps(xr + i + 8), tc_q8_widen8(row + i + 8), a1);
            }
            float s = tc_q_hsum8(_mm256_add_ps(a0, a1));
            for (; i < k; i++) s += xr[i] * (float)row[i];
            s *= scales[j];
            y[r * ldy + j] = accumulate ? y[r * ldy + j] + s : s;
        }
    }
}

static inline __attribute__((target("avx2,fma")))
void tc_q4_gemm_avx2(const float *x, long m, long ldx, const uint8_t *q, const float *scales, long k,
                     long j0, long j1, float *y, long ldy, int accumulate) {
    const long groups = k / 32;
    const __m256i low = _mm256_set1_epi32(15), eight = _mm256_set1_epi32(8);
    for (long j = j0; j < j1; j++) {
        const uint8_t *row = q + j * (k / 2);
        const float *sc = scales + j * groups;
        for (long r = 0; r < m; r++) {
            const float *xr = x + r * ldx;
            __m256 acc = _mm256_setzero_ps();
            for (long g = 0; g < groups; g++) {
                const uint8_t *b = row + g * 16;
                const float *xg = xr + g * 32;
                __m256i b0 = _mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)b));
                __m256i b1 = _mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)(b + 8)));
                __m256 t = _mm256_mul_ps(_mm256_loadu_ps(xg), _mm256_cvtepi32_ps(_mm256_sub_epi32(_mm256_and_si256(b0, low), eight)));
                t = _mm256_fmadd_ps(_mm256_loadu_ps(xg + 8), _mm256_cvtepi32_ps(_mm256_sub_epi32(_mm256_and_si256(b1, low), eight)), t);
                t = _mm256_fmadd_ps(_mm256_loadu_ps(xg + 16), _mm256_cvtepi32_ps(_mm256_sub_epi32(_mm256_srli_epi32(b0, 4), eight)), t);
                t = _mm256_fmadd_ps(_mm256_loadu_ps(xg + 24), _mm256_cvtepi32_ps(_mm256_sub_epi32(_mm256_srli_epi32(b1, 4), eight)), t);
                acc = _mm256_fmadd_ps(t, _mm256_set1_ps(sc[g]), acc);
            }
            float s = tc_q_hsum8(acc);
            y[r * ldy + j] = accumulate ? y[r * ldy + j] + s : s;
        }
    }
}

#endif
#endif
