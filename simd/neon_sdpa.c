/* AArch64 NEON softmax-attention kernel set (compiled with
 * -march=armv8.2-a+fp16). f32 arithmetic for every input dtype; f16 via
 * fcvtl (vcvt_f32_f16), bf16 by a 16-bit shift. Register blocks: qk 4 rows x
 * 16 keys, pv 4 rows x 16 output columns, with vfmaq_laneq_f32 on 4 Q/P
 * values loaded as one vector. */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif
#include <arm_neon.h>
#include <math.h>
#include <string.h>
#include "../src/cpu/kernels.h"
#include "exp_neon.h"
#include "transpose_neon.h"

#define VL 4
typedef float32x4_t vf;
/* 4 rows x 4 vectors: 16 accumulators + 4 row vectors used by lane + 4
 * K/V vectors; the main loops compile without spills with gcc 12 (5 rows
 * spill ~10 q registers per 80 FMAs). */
#define MR_QK 4
#define NV_QK 4
#define MR_PV 4
#define NV_PV 4
#define T_FMA_LANE(acc, b, a, L) vfmaq_laneq_f32((acc), (b), (a), (L))

static inline vf vzero(void) { return vdupq_n_f32(0.0f); }
static inline vf vset1(float x) { return vdupq_n_f32(x); }
static inline vf vload(const float *p) { return vld1q_f32(p); }
static inline vf vbcast(const float *p) { return vld1q_dup_f32(p); }
static inline vf vload_nfill(const float *p, int n, float f)
{
    float tmp[4] = { f, f, f, f };
    for (int i = 0; i < n && i < 4; i++)
        tmp[i] = p[i];
    return vld1q_f32(tmp);
}
static inline vf vload_n(const float *p, int n) { return vload_nfill(p, n, 0.0f); }
static inline void vstore(float *p, vf v) { vst1q_f32(p, v); }
static inline void vstore_n(float *p, vf v, int n)
{
    float tmp[4];
    vst1q_f32(tmp, v);
    for (int i = 0; i < n && i < 4; i++)
        p[i] = tmp[i];
}
static inline vf vfma(vf a, vf b, vf c) { return vfmaq_f32(c, a, b); }
static inline vf vadd(vf a, vf b) { return vaddq_f32(a, b); }
static inline vf vsub(vf a, vf b) { return vsubq_f32(a, b); }
static inline vf vmul(vf a, vf b) { return vmulq_f32(a, b); }
static inline vf vmax(vf a, vf b) { return vmaxq_f32(a, b); }
static inline float vhsum(vf a) { return vaddvq_f32(a); }
static inline float vhmax(vf a) { return vmaxvq_f32(a); }
static inline vf vexp_v(vf x) { return attn_exp_neon(x); }
static inline vf vexp_sm(vf x) { return attn_exp_neon_nonpos(x); }


static inline vf t_load_strided(const char *row, attn_dtype dt, int64_t cs, int64_t c0, int n);

static inline uint16x4_t load4_u16(const uint16_t *p, int n)
{
    if (n >= 4)
        return vld1_u16(p);
    uint16_t tmp[4] = { 0, 0, 0, 0 };
    memcpy(tmp, p, (size_t)n * 2);
    return vld1_u16(tmp);
}

static inline vf vload_cvt(const char *row, attn_dtype dt, int64_t cs, int64_t c0, int n)
{
    if (cs == 1) {
        switch (dt) {
        case ATTN_F32:
            return n >= 4 ? vld1q_f32((const float *)row + c0) : vload_n((const float *)row + c0, n);
        case ATTN_F16:
            return vcvt_f32_f16(vreinterpret_f16_u16(load4_u16((const uint16_t *)row + c0, n)));
        case ATTN_BF16:
            return vreinterpretq_f32_u32(vshll_n_u16(load4_u16((const uint16_t *)row + c0, n), 16));
        default:
            break;
        }
    }
    return t_load_strided(row, dt, cs, c0, n);
}

#include "sdpa_tmpl.h"
#define NB_R 4
#define NB_G 6
static inline vf nb_hide(vf s, vf bias)
{
    return vbslq_f32(vcltq_f32(bias, vdupq_n_f32(0.0f)), bias, s);
}
/* byte indices for vqtbl1q_u8: lane l's 4 bytes from lane min(max(l, lo), hi) */
typedef uint8x16_t nb_lidx;
static inline nb_lidx nb_clamp_idx(int lo, int hi)
{
    uint8_t b[16];
    for (int l = 0; l < 4; l++)
        for (int j = 0; j < 4; j++)
            b[4 * l + j] = (uint8_t)(4 * (l < lo ? lo : l > hi ? hi : l) + j);
    return vld1q_u8(b);
}
static inline vf nb_clamp_lanes(vf v, nb_lidx i)
{
    return vreinterpretq_f32_u8(vqtbl1q_u8(vreinterpretq_u8_f32(v), i));
}
#include "nb_tmpl.h"

static void t_tile_sizes(int64_t d, int64_t dv, int *bq, int *bk)
{
    (void)d; (void)dv;
    *bq = 64;
    *bk = 64;
}

const attn_cpu_kernels *attn_cpu_kernels_neon(void)
{
    static const attn_cpu_kernels k = {
        .name = "neon",
        .isa = ATTN_ISA_NEON,
        T_SDPA_KERNELS,
        T_NB_KERNELS,
    };
    return &k;
}
