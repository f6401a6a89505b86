/* The naive double-precision recurrence behind tests/test_linear.c. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "ref_linear.h"

static void prep(const ref_linear_seq *a, const double *src, double *dst)
{
    double nrm = 1.0;
    if (a->l2norm) {
        double ss = 0.0;
        for (int64_t c = 0; c < a->Dk; c++) ss += src[c] * src[c];
        nrm = 1.0 / sqrt(ss + 1e-6);
    }
    for (int64_t c = 0; c < a->Dk; c++) {
        double x = src[c] * nrm;
        if (a->feature == ATTN_LINEAR_FEATURE_ELU1) x = x > 0 ? x + 1.0 : exp(x);
        else if (a->feature == ATTN_LINEAR_FEATURE_RELU) x = x > 0 ? x : 0.0;
        dst[c] = x;
    }
}

void ref_linear(const ref_linear_seq *a)
{
    const int64_t H = a->H, Dk = a->Dk, Dv = a->Dv;
    double *q = malloc(sizeof(double) * (size_t)Dk), *k = malloc(sizeof(double) * (size_t)Dk);
    double *alpha = malloc(sizeof(double) * (size_t)Dk), *r = malloc(sizeof(double) * (size_t)Dv);
    const int delta = a->kind == ATTN_LINEAR_DELTA || a->kind == ATTN_LINEAR_GATED_DELTA ||
                      a->kind == ATTN_LINEAR_KDA;
    for (int64_t t = 0; t < a->T; t++)
        for (int64_t h = 0; h < H; h++) {
            double *S = a->S + h * Dk * Dv;
            prep(a, a->q + (t * H + h) * Dk, q);
            prep(a, a->k + (t * H + h) * Dk, k);
            const double *v = a->v + (t * H + h) * Dv;
            for (int64_t c = 0; c < Dk; c++) {
                if (a->decay) alpha[c] = a->decay[h];
                else if (!a->g) alpha[c] = 1.0;
                else if (a->g_per_channel) alpha[c] = exp(a->g[(t * H + h) * Dk + c]);
                else alpha[c] = exp(a->g[t * H + h]);
            }
            /* S' = diag(alpha) S */
            for (int64_t c = 0; c < Dk; c++)
                for (int64_t j = 0; j < Dv; j++)
                    S[c * Dv + j] *= alpha[c];
            if (delta) {
                const double beta = a->beta[t * H + h];
                for (int64_t j = 0; j < Dv; j++) {   /* r = v - S'^T k */
                    double s = 0.0;
                    for (int64_t c = 0; c < Dk; c++) s += S[c * Dv + j] * k[c];
                    r[j] = v[j] - s;
                }
                for (int64_t c = 0; c < Dk; c++)
                    for (int64_t j = 0; j < Dv; j++)
                        S[c * Dv + j] += beta * k[c] * r[j];
            } else {
                for (int64_t c = 0; c < Dk; c++)
                    for (int64_t j = 0; j < Dv; j++)
                        S[c * Dv + j] += k[c] * v[j];
            }
            double den = 1.0;
            if (a->normalize) {
                double *z = a->z + h * Dk;
                den = 0.0;
                for (int64_t c = 0; c < Dk; c++) {
                    z[c] += k[c];
                    den += a->scale * q[c] * z[c];
                }
                den += a->eps;
            }
            double *o = a->o + (t * H + h) * Dv;
            for (int64_t j = 0; j < Dv; j++) {
                double s = 0.0;
                for (int64_t c = 0; c < Dk; c++) s += a->scale * q[c] * S[c * Dv + j];
                o[j] = s / den;
            }
        }
    free(q); free(k); free(alpha); free(r);
}

static uint32_t bits(float f) { uint32_t u; memcpy(&u, &f, 4); return u; }
static float fbits(uint32_t u) { float f; memcpy(&f, &u, 4); return f; }

uint16_t reft_f32_to_f16(float f)
{
    /* via double arithmetic: scale into the f16 grid and round with rint */
    const uint16_t sign = (bits(f) >> 16) & 0x8000u;
    double a = fabs((double)f);
    if (isnan(f)) return (uint16_t)(sign | 0x7e00u);
    if (a >= 65520.0) return (uint16_t)(sign | 0x7c00u);
    if (a < 6.103515625e-05) {          /* subnormal grid 2^-24 */
        return (uint16_t)(sign | (uint16_t)nearbyint(a * 16777216.0));
    }
    int e;
    double m = frexp(a, &e);            /* a = m 2^e, m in [0.5,1) */
    double mant = nearbyint(m * 2048.0); /* 11 significant bits */
    if (mant >= 2048.0) { mant /= 2.0; e++; }
    if (e + 14 >= 31) return (uint16_t)(sign | 0x7c00u);
    return (uint16_t)(sign | ((uint16_t)(e + 14) << 10) | ((uint16_t)mant - 1024u));
}

float reft_f16_to_f32(uint16_t h)
{
    const int e = (h >> 10) & 31, m = h & 1023;
    double x;
    if (e == 0) x = ldexp(m, -24);
    else if (e == 31) x = m ? NAN : INFINITY;
    else x = ldexp(1024 + m, e - 25);
    return (float)((h & 0x8000u) ? -x : x);
}

uint16_t reft_f32_to_bf16(float f)
{
    uint32_t u = bits(f);
    if (isnan(f)) return (uint16_t)((u >> 16) | 0x40u);
    const uint32_t low = u & 0xffffu, hi = u >> 16;
    if (low > 0x8000u || (low == 0x8000u && (hi & 1u))) return (uint16_t)(hi + 1u);
    return (uint16_t)hi;
}

float reft_bf16_to_f32(uint16_t h) { return fbits((uint32_t)h << 16); }
