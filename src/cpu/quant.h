/* KV-cache storage formats: row conversion to and from f32.
 *
 * A stored row is one token of one head (D values). Its bytes are split in
 * two places of a page plane (see kv_cache.h): the values ("data") and, for
 * block-quantised types, the per-block f16 parameters ("meta").
 *   F32/F16/BF16  data: D values;               meta: none
 *   Q8            data: D int8;                 meta: D/32 f16 scales d
 *                 x = d * q
 *   Q4            data: D/2 bytes; in block b, byte t holds element 32b+t in
 *                 its low nibble and element 32b+t+16 in its high nibble;
 *                 meta: D/32 pairs (f16 scale d, f16 min m); x = d * q + m */
#ifndef ATTN_CPU_QUANT_H
#define ATTN_CPU_QUANT_H

#include <math.h>
#include <stdint.h>
#include <string.h>
#include "half.h"
#include "attn.h"

#define ATTN_QBLOCK 32

/* Bytes of data and number of u16 meta entries per row of d values. */
static inline int64_t attn_kv_row_bytes(attn_dtype t, int64_t d)
{
    switch (t) {
    case ATTN_F32: return 4 * d;
    case ATTN_F16: case ATTN_BF16: return 2 * d;
    case ATTN_Q8: return d;
    case ATTN_Q4: return d / 2;
    default: return 0;
    }
}

static inline int64_t attn_kv_row_meta(attn_dtype t, int64_t d)
{
    return t == ATTN_Q8 ? d / ATTN_QBLOCK : t == ATTN_Q4 ? 2 * (d / ATTN_QBLOCK) : 0;
}

static inline float attn_f16_round(float x) { return attn_f16_to_f32(attn_f32_to_f16(x)); }

/* Largest finite f16, so block parameters never become inf. */
#define ATTN_F16_MAX 65504.0f

/* Stores d f32 values x as one row. */
static inline void attn_kv_store_row(attn_dtype t, const float *x, int64_t d, uint8_t *data,
                                     uint16_t *meta)
{
    switch (t) {
    case ATTN_F32:
        memcpy(data, x, (size_t)d * sizeof(float));
        break;
    case ATTN_F16:
        for (int64_t c = 0; c < d; c++) ((uint16_t *)data)[c] = attn_f32_to_f16(x[c]);
        break;
    case ATTN_BF16:
        for (int64_t c = 0; c < d; c++) ((uint16_t *)data)[c] = attn_f32_to_bf16(x[c]);
        break;
    case ATTN_Q8:
        for (int64_t b = 0; b < d / ATTN_QBLOCK; b++) {
            const float *xb = x + b * ATTN_QBLOCK;
            float amax = 0.0f;
            for (int i = 0; i < ATTN_QBLOCK; i++) { float a = fabsf(xb[i]); amax = a > amax ? a : amax; }
            float s = fminf(attn_f16_round(amax / 127.0f), ATTN_F16_MAX);
            meta[b] = attn_f32_to_f16(s);
            const float inv = s > 0.0f ? 1.0f / s : 0.0f;
            int8_t *q = (int8_t *)data + b * ATTN_QBLOCK;
            for (int i = 0; i < ATTN_QBLOCK; i++) {
                float r = nearbyintf(xb[i] * inv);
                q[i] = (int8_t)(r > 127.0f ? 127 : r < -127.0f ? -127 : r == r ? (int)r : 0);
            }
        }
        break;
    case ATTN_Q4:
        for (int64_t b = 0; b < d / ATTN_QBLOCK; b++) {
            const float *xb = x + b * ATTN_QBLOCK;
            float lo = xb[0], hi = xb[0];
            for (int i = 1; i < ATTN_QBLOCK; i++) { lo = xb[i] < lo ? xb[i] : lo; hi = xb[i] > hi ? xb[i] : hi; }
            float m = attn_f16_round(fmaxf(fminf(lo, ATTN_F16_MAX), -ATTN_F16_MAX));
            float s = fminf(fmaxf(attn_f16_round((hi - m) / 15.0f), 0.0f), ATTN_F16_MAX);
            meta[2 * b] = attn_f32_to_f16(s);
            meta[2 * b + 1] = attn_f32_to_f16(m);
            const float inv = s > 0.0f ? 1.0f / s : 0.0f;
            uint8_t *q = data + b * (ATTN_QBLOCK / 2);
            for (int i = 0; i < ATTN_QBLOCK / 2; i++) {
                float r0 = nearbyintf((xb[i] - m) * inv), r1 = nearbyintf((xb[i + 16] - m) * inv);
                int q0 = r0 > 15.0f ? 15 : r0 >= 0.0f ? (int)r0 : 0;   /* NaN: 0 */
                int q1 = r1 > 15.0f ? 15 : r1 >= 0.0f ? (int)r1 : 0;
                q[i] = (uint8_t)(q0 | (q1 << 4));
            }
        }
        break;
    default:
        break;
    }
}

/* Loads one row back as d f32 values. */
static inline void attn_kv_load_row(attn_dtype t, const uint8_t *data, const uint16_t *meta,
                                    int64_t d, float *x)
{
    switch (t) {
    case ATTN_F32:
        memcpy(x, data, (size_t)d * sizeof(float));
        break;
    case ATTN_F16:
        for (int64_t c = 0; c < d; c++) x[c] = attn_f16_to_f32(((const uint16_t *)data)[c]);
        break;
    case ATTN_BF16:
        for (int64_t c = 0; c < d; c++) x[c] = attn_bf16_to_f32(((const uint16_t *)data)[c]);
        break;
    case ATTN_Q8:
        for (int64_t b = 0; b < d / ATTN_QBLOCK; b++) {
            const float s = attn_f16_to_f32(meta[b]);
            const int8_t *q = (const int8_t *)data + b * ATTN_QBLOCK;
            for (int i = 0; i < ATTN_QBLOCK; i++) x[b * ATTN_QBLOCK + i] = s * (float)q[i];
        }
        break;
    case ATTN_Q4:
        for (int64_t b = 0; b < d / ATTN_QBLOCK; b++) {
            const float s = attn_f16_to_f32(meta[2 * b]), m = attn_f16_to_f32(meta[2 * b + 1]);
            const uint8_t *q = data + b * (ATTN_QBLOCK / 2);
            for (int i = 0; i < ATTN_QBLOCK / 2; i++) {
                x[b * ATTN_QBLOCK + i] = s * (float)(q[i] & 15) + m;
                x[b * ATTN_QBLOCK + i + 16] = s * (float)(q[i] >> 4) + m;
            }
        }
        break;
    default:
        break;
    }
}

#endif
