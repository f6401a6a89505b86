/* Test-side helpers for the KV-cache and decode tests: a small harness, a
 * random generator, and the storage formats' round trip (f16/bf16 rounding,
 * Q8/Q4 quantise-dequantise) written from the format description in
 * include/attn.h, sharing no code with the library. */
#ifndef ATTN_TEST_KVREF_H
#define ATTN_TEST_KVREF_H

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "attn.h"

static int kv_failures;
#define KV_CHECK(cond, ...) do { if (!(cond)) { kv_failures++; \
    fprintf(stderr, "FAIL %s:%d: ", __FILE__, __LINE__); fprintf(stderr, __VA_ARGS__); \
    fprintf(stderr, "\n"); } } while (0)
#define KV_OK(call) do { attn_status s_ = (call); KV_CHECK(s_ == ATTN_OK, "%s -> %s (%s)", #call, \
    attn_status_string(s_), attn_last_error()); } while (0)

static uint64_t kv_rng = 0x9e3779b97f4a7c15ull;
static inline uint64_t kv_next(void)
{
    kv_rng ^= kv_rng << 13; kv_rng ^= kv_rng >> 7; kv_rng ^= kv_rng << 17;
    return kv_rng;
}
static inline double kv_unif(void) { return (double)(kv_next() >> 11) * (1.0 / 9007199254740992.0); }
static inline int64_t kv_int(int64_t lo, int64_t hi) { return lo + (int64_t)(kv_next() % (uint64_t)(hi - lo + 1)); }
static inline float kv_randn(void)
{
    double u = kv_unif() + 1e-12, v = kv_unif();
    return (float)(sqrt(-2.0 * log(u)) * cos(6.283185307179586 * v));
}

static inline int kv_quick(void)
{
    const char *e = getenv("ATTN_TEST_QUICK");
    return e && *e && strcmp(e, "0") != 0;
}

/* x rounded to a binary float with `mant` explicit mantissa bits and minimum
 * normal exponent emin (f16: 10, -14; bf16: 7, -126), ties to even. */
static inline float kv_round_bits(float x, int mant, int emin)
{
    if (x == 0.0f || !isfinite(x)) return x;
    int e;
    frexp((double)x, &e);                 /* |x| in [2^(e-1), 2^e) */
    int ex = e - 1 < emin ? emin : e - 1;
    double q = ldexp(1.0, ex - mant);
    return (float)(nearbyint((double)x / q) * q);
}
static inline float kv_f16(float x) { return kv_round_bits(x, 10, -14); }
static inline float kv_bf16(float x) { return kv_round_bits(x, 7, -126); }

/* The f16 scale s and min m of a Q4 block of 32 values (include/attn.h). */
static inline void kv_q4_params(const float *xb, float *s, float *m)
{
    float lo = xb[0], hi = xb[0];
    for (int i = 1; i < 32; i++) { lo = xb[i] < lo ? xb[i] : lo; hi = xb[i] > hi ? xb[i] : hi; }
    *m = kv_f16(lo);
    *s = kv_f16((hi - *m) / 15.0f);
    if (*s < 0.0f) *s = 0.0f;
}

/* Its 4-bit level q of x (x reads back as s * q + m). */
static inline float kv_q4_level(float x, float s, float m)
{
    const float q = nearbyintf((x - m) * (s > 0.0f ? 1.0f / s : 0.0f));
    return q > 15.0f ? 15.0f : q < 0.0f ? 0.0f : q;
}

/* The values a row of d floats reads back as after storage in dtype t. */
static inline void kv_roundtrip(attn_dtype t, const float *x, int64_t d, float *y)
{
    for (int64_t b = 0; b < (t == ATTN_Q8 || t == ATTN_Q4 ? d / 32 : 1); b++) {
        const float *xb = x + 32 * b;
        float *yb = y + 32 * b;
        if (t == ATTN_F32) { memcpy(y, x, (size_t)d * 4); }
        else if (t == ATTN_F16) { for (int64_t c = 0; c < d; c++) y[c] = kv_f16(x[c]); }
        else if (t == ATTN_BF16) { for (int64_t c = 0; c < d; c++) y[c] = kv_bf16(x[c]); }
        else if (t == ATTN_Q8) {
            float amax = 0.0f;
            for (int i = 0; i < 32; i++) amax = fabsf(xb[i]) > amax ? fabsf(xb[i]) : amax;
            float s = kv_f16(amax / 127.0f);
            float inv = s > 0.0f ? 1.0f / s : 0.0f;
            for (int i = 0; i < 32; i++) {
                float q = nearbyintf(xb[i] * inv);
                q = q > 127.0f ? 127.0f : q < -127.0f ? -127.0f : q;
                yb[i] = s * q;
            }
        } else if (t == ATTN_Q4) {
            float s, m;
            kv_q4_params(xb, &s, &m);
            for (int i = 0; i < 32; i++) yb[i] = s * kv_q4_level(xb[i], s, m) + m;
        }
    }
}

static inline const char *kv_dtname(attn_dtype t)
{
    static const char *n[] = { "f32", "f16", "bf16", "u8", "q8", "q4" };
    return (unsigned)t < 6 ? n[t] : "?";
}

static inline attn_tensor kv_t3(void *data, attn_dtype dt, int64_t a, int64_t b, int64_t c)
{
    attn_tensor t = { 0 };
    t.data = data; t.dtype = dt; t.ndim = 3;
    t.shape[0] = a; t.shape[1] = b; t.shape[2] = c;
    return t;
}

#endif
