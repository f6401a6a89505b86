/* Portable f16 / bf16 <-> f32 conversions (round to nearest even). */
#ifndef ATTN_HALF_H
#define ATTN_HALF_H

#include <stdint.h>
#include <string.h>
#include "attn.h"

static inline float attn_bits_to_f32(uint32_t u) { float f; memcpy(&f, &u, 4); return f; }
static inline uint32_t attn_f32_to_bits(float f) { uint32_t u; memcpy(&u, &f, 4); return u; }

static inline float attn_f16_to_f32(uint16_t h)
{
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
    uint32_t exp = (h >> 10) & 0x1fu, man = h & 0x3ffu;
    if (exp == 0x1f)                       /* inf / nan */
        return attn_bits_to_f32(sign | 0x7f800000u | (man << 13));
    if (exp == 0) {
        if (man == 0) return attn_bits_to_f32(sign);
        /* subnormal: value = man * 2^-24, exact in f32 */
        float f = (float)man * (1.0f / 16777216.0f);
        return sign ? -f : f;
    }
    return attn_bits_to_f32(sign | ((exp + 112u) << 23) | (man << 13));
}

static inline uint16_t attn_f32_to_f16(float f)
{
    uint32_t u = attn_f32_to_bits(f);
    uint32_t sign = (u >> 16) & 0x8000u;
    uint32_t a = u & 0x7fffffffu;
    if (a >= 0x7f800000u)                  /* inf / nan (keep nan quiet) */
        return (uint16_t)(sign | 0x7c00u | (a > 0x7f800000u ? 0x200u : 0));
    if (a >= 0x477ff000u)                  /* rounds to >= 65520: overflow */
        return (uint16_t)(sign | 0x7c00u);
    if (a < 0x38800000u) {                 /* result subnormal or zero */
        /* add a magic number so the FPU rounds at the subnormal ulp (2^-24) */
        float m = attn_bits_to_f32(a) + 0.5f;
        return (uint16_t)(sign | (attn_f32_to_bits(m) - 0x3f000000u));
    }
    uint32_t odd = (a >> 13) & 1u;
    a += 0xc8000fffu + odd;                /* rebias exponent (-112 << 23) and round */
    return (uint16_t)(sign | (a >> 13));
}

static inline float attn_bf16_to_f32(uint16_t h) { return attn_bits_to_f32((uint32_t)h << 16); }

static inline uint16_t attn_f32_to_bf16(float f)
{
    uint32_t u = attn_f32_to_bits(f);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 0x40u); /* quiet nan */
    u += 0x7fffu + ((u >> 16) & 1u);
    return (uint16_t)(u >> 16);
}

/* Element i of a plain array of dtype dt (F32/F16/BF16, or U8 as 0..255), as f32. */
static inline float attn_load_f32(const void *base, attn_dtype dt, int64_t i)
{
    switch (dt) {
    case ATTN_F16:  return attn_f16_to_f32(((const uint16_t *)base)[i]);
    case ATTN_BF16: return attn_bf16_to_f32(((const uint16_t *)base)[i]);
    case ATTN_U8:   return (float)((const uint8_t *)base)[i];
    default:        return ((const float *)base)[i];
    }
}

/* Stores x as element i of an F32/F16/BF16 array, rounding to nearest even. */
static inline void attn_store_f32(void *base, attn_dtype dt, int64_t i, float x)
{
    switch (dt) {
    case ATTN_F16:  ((uint16_t *)base)[i] = attn_f32_to_f16(x); break;
    case ATTN_BF16: ((uint16_t *)base)[i] = attn_f32_to_bf16(x); break;
    default:        ((float *)base)[i] = x; break;
    }
}

#endif
