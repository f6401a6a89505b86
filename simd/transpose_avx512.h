/* In-register 16 x 16 transpose of 32-bit lanes (AVX-512F), shared by the
 * AVX-512 and AMX kernel sets' packing of K tiles and the AVX-512
 * linear-attention kernels. */
#ifndef ATTN_TRANSPOSE_AVX512_H
#define ATTN_TRANSPOSE_AVX512_H

#include <immintrin.h>

#include "unroll.h"

static inline __attribute__((always_inline)) void transpose_vl(__m512 r[16])
{
    __m512 t[16];
T_UNROLL
    for (int i = 0; i < 16; i += 2) {
        t[i] = _mm512_unpacklo_ps(r[i], r[i + 1]);
        t[i + 1] = _mm512_unpackhi_ps(r[i], r[i + 1]);
    }
T_UNROLL
    for (int i = 0; i < 16; i += 4) {
        r[i] = _mm512_shuffle_ps(t[i], t[i + 2], 0x44);
        r[i + 1] = _mm512_shuffle_ps(t[i], t[i + 2], 0xEE);
        r[i + 2] = _mm512_shuffle_ps(t[i + 1], t[i + 3], 0x44);
        r[i + 3] = _mm512_shuffle_ps(t[i + 1], t[i + 3], 0xEE);
    }
T_UNROLL
    for (int h = 0; h < 16; h += 8)
T_UNROLL
        for (int i = 0; i < 4; i++) {
            t[h + i] = _mm512_shuffle_f32x4(r[h + i], r[h + i + 4], 0x88);
            t[h + i + 4] = _mm512_shuffle_f32x4(r[h + i], r[h + i + 4], 0xDD);
        }
T_UNROLL
    for (int i = 0; i < 8; i++) {
        r[i] = _mm512_shuffle_f32x4(t[i], t[i + 8], 0x88);
        r[i + 8] = _mm512_shuffle_f32x4(t[i], t[i + 8], 0xDD);
    }
}

#endif
