/* AVX2 + FMA + F16C softmax-attention kernel set (compiled with -mavx2
 * -mfma -mf16c). f32 arithmetic for every input dtype; f16 via vcvtph2ps,
 * bf16 by a 16-bit shift. Register blocks: qk 6 rows x 16 keys, pv 6 rows x
 * 16 output columns (12 accumulators of the 16 ymm registers). */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif
#include <immintrin.h>
#include <math.h>
#include <string.h>
#include "../src/cpu/kernels.h"
#include "unroll.h"
#include "exp_avx2.h"
#include "transpose_avx2.h"

#define VL 8
typedef __m256 vf;
#define MR_QK 6
#define NV_QK 2
#define MR_PV 6
#define NV_PV 2

static inline __m256i mask_n(int n)
{
    return _mm256_cmpgt_epi32(_mm256_set1_epi32(n), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}

static inline vf vzero(void) { return _mm256_setzero_ps(); }
static inline vf vset1(float x) { return _mm256_set1_ps(x); }
static inline vf vload(const float *p) { return _mm256_loadu_ps(p); }
static inline vf vbcast(const float *p) { return _mm256_broadcast_ss(p); }
static inline vf vload_n(const float *p, int n) { return _mm256_maskload_ps(p, mask_n(n)); }
static inline vf vload_nfill(const float *p, int n, float f)
{
    const __m256i m = mask_n(n);
    return _mm256_blendv_ps(_mm256_set1_ps(f), _mm256_maskload_ps(p, m), _mm256_castsi256_ps(m));
}
static inline void vstore(float *p, vf v) { _mm256_storeu_ps(p, v); }
static inline void vstore_n(float *p, vf v, int n) { _mm256_maskstore_ps(p, mask_n(n), v); }
#define vstream(p, v) _mm256_stream_ps(p, v)   /* p 32-byte aligned */
static inline vf vfma(vf a, vf b, vf c) { return _mm256_fmadd_ps(a, b, c); }
static inline vf vadd(vf a, vf b) { return _mm256_add_ps(a, b); }
static inline vf vsub(vf a, vf b) { return _mm256_sub_ps(a, b); }
static inline vf vmul(vf a, vf b) { return _mm256_mul_ps(a, b); }
static inline vf vmax(vf a, vf b) { return _mm256_max_ps(a, b); }
static inline float vhsum(vf a)
{
    __m128 x = _mm_add_ps(_mm256_castps256_ps128(a), _mm256_extractf128_ps(a, 1));
    x = _mm_add_ps(x, _mm_movehl_ps(x, x));
    x = _mm_add_ss(x, _mm_movehdup_ps(x));
    return _mm_cvtss_f32(x);
}
static inline float vhmax(vf a)
{
    __m128 x = _mm_max_ps(_mm256_castps256_ps128(a), _mm256_extractf128_ps(a, 1));
    x = _mm_max_ps(x, _mm_movehl_ps(x, x));
    x = _mm_max_ss(x, _mm_movehdup_ps(x));
    return _mm_cvtss_f32(x);
}
static inline vf vexp_v(vf x) { return attn_exp_avx2(x); }
static inline vf vexp_sm(vf x) { return attn_exp_avx2_nonpos(x); }


static inline vf t_load_strided(const char *row, attn_dtype dt, int64_t cs, int64_t c0, int n);

static inline __m128i load8_u16(const uint16_t *p, int n)
{
    if (n >= 8)
        return _mm_loadu_si128((const __m128i *)p);
    uint16_t tmp[8] = { 0 };
    memcpy(tmp, p, (size_t)n * 2);
    return _mm_loadu_si128((const __m128i *)tmp);
}

static inline vf vload_cvt(const char *row, attn_dtype dt, int64_t cs, int64_t c0, int n)
{
    if (cs == 1) {
        switch (dt) {
        case ATTN_F32:
            return n >= 8 ? _mm256_loadu_ps((const float *)row + c0)
                          : _mm256_maskload_ps((const float *)row + c0, mask_n(n));
        case ATTN_F16:
            return _mm256_cvtph_ps(load8_u16((const uint16_t *)row + c0, n));
        case ATTN_BF16:
            return _mm256_castsi256_ps(_mm256_slli_epi32(
                _mm256_cvtepu16_epi32(load8_u16((const uint16_t *)row + c0, n)), 16));
        default:
            break;
        }
    }
    return t_load_strided(row, dt, cs, c0, n);
}

#include "sdpa_tmpl.h"
#define NB_R 2
#define NB_G 6
/* blendv takes bias where its sign bit is set: -inf, not +0 */
static inline vf nb_hide(vf s, vf bias) { return _mm256_blendv_ps(s, bias, bias); }
typedef __m256i nb_lidx;
static inline nb_lidx nb_clamp_idx(int lo, int hi)
{
    const __m256i i = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    return _mm256_min_epi32(_mm256_max_epi32(i, _mm256_set1_epi32(lo)), _mm256_set1_epi32(hi));
}
static inline vf nb_clamp_lanes(vf v, nb_lidx i) { return _mm256_permutevar8x32_ps(v, i); }
#define T_NB_IN_REG(x) __asm__("" : "+v"(x))
#include "nb_tmpl.h"

static void t_tile_sizes(int64_t d, int64_t dv, int *bq, int *bk)
{
    (void)d; (void)dv;
    *bq = 96;
    *bk = 64;
}

const attn_cpu_kernels *attn_cpu_kernels_avx2(void)
{
    static const attn_cpu_kernels k = {
        .name = "avx2",
        .isa = ATTN_ISA_AVX2,
        T_SDPA_KERNELS,
        T_NB_KERNELS,
    };
    return &k;
}
