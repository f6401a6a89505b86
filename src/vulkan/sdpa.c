/* attn_sdpa on Vulkan: picks the shader (cooperative-matrix, subgroup or
 * plain) and its tile shape from the device's features and limits, gets the
 * specialised pipeline from the cache, writes the parameters and records
 * one dispatch. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "config.h"
#include "vk.h"
#include "args.h"
#include "../error.h"
#include "../gpu_sdpa_flags.h"

/* The plain shader's shape (vulkan/sdpa.comp): tx x ty invocations of rm x
 * rn scores, dims per Q/K chunk dc, keys per V chunk kc; pref: chunks read
 * into registers one ahead (its PREF, kept only with unit loads). */
typedef struct sdpa_cfg { int tx, ty, rm, rn, dc, kc, pref; } sdpa_cfg;

/* Parameter words shared with vulkan/sdpa_common.glsl (the flag bits are in
 * gpu_sdpa_flags.h). */
enum { P_Q = 0, P_K = 5, P_V = 10, P_O = 15, P_OUT_DT = 20, P_L = 21, P_M = 25,
       P_MASK_DT = 30, P_G = 31, P_GATE_DT = 36, P_B = 37, P_FLAGS = 42, P_HQ = 43,
       P_GROUP = 44, P_SQ = 45, P_SK = 46, P_NSEQ = 47, P_SCALE = 48, P_SOFTCAP = 49,
       P_SIGBIAS = 50, P_WL = 51, P_WR = 52, P_SINKS = 53, P_BQ = 54, P_BK = 55, P_AUX = 64 };

static int dvt_of(const sdpa_cfg *c, int64_t dv) { return (int)((dv + c->tx - 1) / c->tx); }

static int64_t round4(int64_t x) { return (x + 3) / 4 * 4; }

/* Floats of the shader's stage: QsT [DC][BQ+4] and KsT [DC][BK+4] (from a
 * 16-byte boundary), or the V chunk [KC][DVT*TX]. */
static int64_t stage_floats(const sdpa_cfg *c, int64_t dv)
{
    const int64_t bq = c->ty * c->rm, bk = c->tx * c->rn;
    const int64_t qk = round4(c->dc * (bq + 4)) + c->dc * (bk + 4);
    const int64_t vt = (int64_t)c->kc * dvt_of(c, dv) * c->tx;
    return qk > vt ? qk : vt;
}

static size_t shared_bytes(const sdpa_cfg *c, int64_t dv)
{
    const int64_t bq = c->ty * c->rm, bk = c->tx * c->rn;
    return (size_t)(round4(stage_floats(c, dv)) + round4(bk * (bq + 4)) + bq * c->tx) *
           sizeof(float) + 2 * sizeof(int);
}

/* Completes a (tx, ty, rm, rn) shape with the largest dim chunk DC and key
 * chunk KC (a divisor of the key tile) that fit the shared memory; 0 if
 * nothing fits. */
static int fit_shared(const attn_vk_device *d, sdpa_cfg *c, int64_t dd, int64_t dv)
{
    const size_t budget = d->limits.maxComputeSharedMemorySize;
    const int bk = c->tx * c->rn;
    for (int dc = dd < 32 ? (int)dd : 32; dc >= 1; dc /= 2)
        for (int kc = bk; kc >= 1; kc /= 2) {
            if (bk % kc != 0)
                continue;
            c->dc = dc;
            c->kc = kc;
            if (shared_bytes(c, dv) <= budget)
                return 1;
        }
    return 0;
}

static int fits_device(const attn_vk_device *d, const sdpa_cfg *c, int64_t dv)
{
    const VkPhysicalDeviceLimits *lim = &d->limits;
    return (uint32_t)(c->tx * c->ty) <= lim->maxComputeWorkGroupInvocations &&
           (uint32_t)c->tx <= lim->maxComputeWorkGroupSize[0] &&
           (uint32_t)c->ty <= lim->maxComputeWorkGroupSize[1] &&
           c->rm * c->rn <= 256 && c->dc > 0 && c->kc > 0 && (c->tx * c->rn) % c->kc == 0 &&
           shared_bytes(c, dv) <= d->limits.maxComputeSharedMemorySize;
}

/* ATTN_VULKAN_SDPA_TILE="tx,ty,rm,rn[,dc,kc]" (tuning): that shape, with
 * the largest chunks that fit unless given; 0 if unset or impossible. */
static int env_cfg(const attn_vk_device *d, int64_t dd, int64_t dv, sdpa_cfg *out)
{
    const char *env = getenv("ATTN_VULKAN_SDPA_TILE");
    if (!env || !*env)
        return 0;
    sdpa_cfg c = { 0, 0, 0, 0, 0, 0, 0 };
    const int n = sscanf(env, "%d,%d,%d,%d,%d,%d", &c.tx, &c.ty, &c.rm, &c.rn, &c.dc, &c.kc);
    if ((n != 4 && n != 6) || c.tx <= 0 || c.ty <= 0 || c.rm <= 0 || c.rn <= 0)
        return 0;
    if (n == 4 && !fit_shared(d, &c, dd, dv))
        return 0;
    if (!fits_device(d, &c, dv))
        return 0;
    *out = c;
    return 1;
}

/* Workgroup shapes from large to small per device class; the first that
 * the device's limits (invocations, sizes, shared memory) allow is used.
 * GPUs: 16x8 invocations of 8x8 scores first (64 x 128 blocks in 48 KiB):
 * the most FMAs per shared-memory read (at D = 128, 4 vec4 reads feed 64
 * FMAs of either product, against 2 per 16 of S = Q K^T and 3 per 32 of
 * O += P V with 4x4 blocks). On an NVIDIA H200 (B=1 H=32 S=4096 D=128,
 * causal / full) it runs f16 at 28.9 / 29.6 TFLOP/s and f32 at 29.1 /
 * 30.6, against 24.0 / 24.3 and 22.4 / 22.4 for 32x8 of 4x4 (rounds
 * before the per-feature pipelines had 32x8 ahead). Of 14 other shapes
 * there, 16x8 of 4x8 came next (26.2 causal); 8x8 of 8x8 and 16x4 of 8x8
 * (too few invocations per block) ran at 15. Then 32x8 invocations of 4x4
 * scores (32 x 128 blocks) for devices with less shared memory, and for
 * head dims over 128 (see the register cap below; not measured there).
 * Chunks: the largest that fit (H200, f16 causal with 8-element loads,
 * 32x8 of 4x4: 32x32 6.29 ms, 16x16 6.76; 16x8 of 8x8: within 2% from
 * 16x16 to 32x64).
 * CPU devices (lavapipe runs a workgroup as SIMD loops over its
 * invocations): 4x4 blocks of large workgroups, the fastest there and
 * quick to compile. */
static int choose_shape(const attn_vk_device *d, int is_cpu, int64_t dd, int64_t dv,
                        sdpa_cfg *out)
{
    if (env_cfg(d, dd, dv, out))
        return 1;
    static const sdpa_cfg gpu[] = {
        { 16, 8, 8, 8, 0, 0, 0 }, { 32, 8, 4, 4, 0, 0, 0 }, { 16, 16, 4, 4, 0, 0, 0 },
        { 16, 8, 4, 4, 0, 0, 0 }, { 8, 8, 4, 4, 0, 0, 0 }, { 8, 8, 2, 4, 0, 0, 0 },
        { 8, 4, 2, 2, 0, 0, 0 }, { 4, 4, 2, 2, 0, 0, 0 }, { 2, 2, 2, 2, 0, 0, 0 },
        { 1, 1, 1, 1, 0, 0, 0 },
    };
    static const sdpa_cfg cpu[] = {
        { 16, 16, 4, 4, 0, 0, 0 }, { 16, 8, 4, 4, 0, 0, 0 }, { 8, 8, 4, 4, 0, 0, 0 },
        { 8, 8, 2, 4, 0, 0, 0 }, { 8, 4, 2, 2, 0, 0, 0 }, { 4, 4, 2, 2, 0, 0, 0 },
        { 2, 2, 2, 2, 0, 0, 0 }, { 1, 1, 1, 1, 0, 0, 0 },
    };
    const sdpa_cfg *shapes = is_cpu ? cpu : gpu;
    const size_t n = is_cpu ? sizeof cpu / sizeof cpu[0] : sizeof gpu / sizeof gpu[0];
    /* First pass: at most 64 O accumulators per invocation (with the 64
     * scores of an 8x8 block and the prefetched chunks, about what a GPU
     * keeps in registers: at D = 256 the 8x8 shape would hold 128); second:
     * any. */
    for (int capped = 1; capped >= 0; capped--)
        for (size_t i = 0; i < n; i++) {
            sdpa_cfg c = shapes[i];
            if (capped && c.rm * dvt_of(&c, dv) > 64)
                continue;
            if (fit_shared(d, &c, dd, dv) && fits_device(d, &c, dv)) {
                *out = c;
                return 1;
            }
        }
    return 0;
}

/* The shape, and the chunk prefetch: on GPUs both chunks (on the H200,
 * 16x8 of 8x8: f32 causal / full 29.1 / 30.6 TFLOP/s against 23.9 / 22.7
 * without; f16 within 2% either way); ATTN_VULKAN_SDPA_PREF=0|1|2 sets it.
 * Not on CPU devices, where lavapipe compiles registers held across
 * barriers slowly. */
static int choose_cfg(const attn_vk_device *d, int is_cpu, int64_t dd, int64_t dv,
                      sdpa_cfg *out)
{
    if (!choose_shape(d, is_cpu, dd, dv, out))
        return 0;
    const char *env = getenv("ATTN_VULKAN_SDPA_PREF");
    out->pref = env && env[0] >= '0' && env[0] <= '2' && !env[1] ? env[0] - '0' : is_cpu ? 0 : 2;
    return 1;
}

/* Whether view v (4-D, innermost dim of n elements) can be read w elements
 * at a time: unit innermost stride, n and every other stride (of a dim
 * longer than 1) and the offset multiples of w elements. */
static int view_vec(const attn_view *v, int64_t n, int w)
{
    if (n % w != 0 || v->stride[3] != 1 || (v->offset / attn_dtype_size(v->dtype)) % w != 0 ||
        v->offset % attn_dtype_size(v->dtype) != 0)
        return 0;
    for (int i = 0; i < 3; i++)
        if (v->shape[i] > 1 && v->stride[i] % w != 0)
            return 0;
    return 1;
}

/* Whether Q, K and V can be read w elements at a time, in chunks of whole
 * groups of w. */
static int vec_fits(const attn_sdpa_problem *p, const sdpa_cfg *c, int w)
{
    return c->dc % w == 0 && (dvt_of(c, p->dv) * c->tx) % w == 0 && view_vec(&p->q, p->d, w) &&
           view_vec(&p->k, p->d, w) && view_vec(&p->v, p->dv, w);
}

/* The shader's VEC: 2 for 8-element loads (16-bit inputs), 1 for 4-element
 * loads, 0 for single elements. ATTN_VULKAN_SDPA_VEC=0 turns them off, =4
 * keeps them at 4 elements. */
static int use_vec(const attn_sdpa_problem *p, const sdpa_cfg *c)
{
    const char *env = getenv("ATTN_VULKAN_SDPA_VEC");
    if (env && strcmp(env, "0") == 0)
        return 0;
    if (attn_dtype_size(p->q.dtype) == 2 && !(env && strcmp(env, "4") == 0) && vec_fits(p, c, 8))
        return 2;
    return vec_fits(p, c, 4);
}

/* The subgroup path reduces a row's TX invocations with xor shuffles: TX
 * must be a power of two no larger than the smallest subgroup.
 * ATTN_VULKAN_SUBGROUP=0 turns it off. */
static int use_subgroup(const attn_vk_device *d, const sdpa_cfg *c)
{
    const char *env = getenv("ATTN_VULKAN_SUBGROUP");
    if (env && strcmp(env, "0") == 0)
        return 0;
    return d->subgroup_shuffle && (c->tx & (c->tx - 1)) == 0 && (uint32_t)c->tx <= d->subgroup_min;
}

/* A window or sink count as a 32-bit word: -1 stays unlimited, large
 * values are clamped to "longer than any sequence". */
static int32_t clamp_len(int64_t x)
{
    return x < 0 ? -1 : x > (1 << 30) ? (1 << 30) : (int32_t)x;
}

/* Writes the parameter words, flags being the call's flag word (and alibi,
 * sinks, cu_seqlens after them). */
static attn_status write_params(attn_vk_device *d, const attn_sdpa_problem *p, int32_t flags)
{
    const size_t naux = 2 * (size_t)p->hq + (p->cu_q ? 2 * ((size_t)p->num_seqs + 1) : 0);
    attn_status s = attn_vk_host_reserve(d, &d->params, (P_AUX + naux) * sizeof(int32_t));
    if (s != ATTN_OK)
        return s;
    int32_t *w = d->params.mapped;
    memset(w, 0, P_AUX * sizeof *w);
    int ok = attn_vk_put_view(w + P_Q, &p->q, 1, 4) && attn_vk_put_view(w + P_K, &p->k, 1, 4) &&
             attn_vk_put_view(w + P_V, &p->v, 1, 4) && attn_vk_put_view(w + P_O, &p->out, 1, 4) &&
             attn_vk_put_view(w + P_L, &p->lse, p->has_lse, 3) &&
             attn_vk_put_view(w + P_M, &p->mask, p->has_mask, 4) &&
             attn_vk_put_view(w + P_G, &p->gate, p->has_gate, 4) &&
             attn_vk_put_view(w + P_B, &p->block_mask, p->has_block_mask, 4) &&
             p->sq < INT32_MAX / 2 && p->sk < INT32_MAX / 2;
    if (!ok)
        return attn_fail(ATTN_ERR_UNSUPPORTED, "attn_sdpa: a tensor spans more than 2^31 "
                         "elements; the Vulkan backend indexes in 32 bits");
    w[P_OUT_DT] = (int32_t)p->out.dtype;
    w[P_MASK_DT] = p->has_mask ? (int32_t)p->mask.dtype : 0;
    w[P_GATE_DT] = p->has_gate ? (int32_t)p->gate.dtype : 0;
    w[P_FLAGS] = flags;
    w[P_HQ] = (int32_t)p->hq;
    w[P_GROUP] = (int32_t)(p->hq / p->hkv);
    w[P_SQ] = (int32_t)p->sq;
    w[P_SK] = (int32_t)p->sk;
    w[P_NSEQ] = (int32_t)p->num_seqs;
    memcpy(&w[P_SCALE], &p->scale, sizeof(float));
    memcpy(&w[P_SOFTCAP], &p->softcap, sizeof(float));
    memcpy(&w[P_SIGBIAS], &p->sigmoid_bias, sizeof(float));
    w[P_WL] = clamp_len(p->window_left);
    w[P_WR] = clamp_len(p->window_right);
    w[P_SINKS] = p->sink_tokens < 0 ? 0 : clamp_len(p->sink_tokens);
    w[P_BQ] = p->has_block_mask ? (int32_t)p->block_q : 1;
    w[P_BK] = p->has_block_mask ? (int32_t)p->block_k : 1;
    float *f = (float *)(w + P_AUX);
    for (int64_t h = 0; h < p->hq; h++) {
        f[h] = p->alibi_slopes ? p->alibi_slopes[h] : 0.0f;
        f[p->hq + h] = p->sink_logits ? p->sink_logits[h] : 0.0f;
    }
    if (p->cu_q) {
        int32_t *cu = w + P_AUX + 2 * p->hq;
        memcpy(cu, p->cu_q, ((size_t)p->num_seqs + 1) * sizeof(int32_t));
        memcpy(cu + p->num_seqs + 1, p->cu_k, ((size_t)p->num_seqs + 1) * sizeof(int32_t));
    }
    return ATTN_OK;
}

/* Records and submits the dispatch: one workgroup per bq query rows of
 * each head of each sequence. */
static attn_status record(attn_vk_device *d, const attn_sdpa_problem *p, int bq, VkPipeline pipe)
{
    const uint32_t nqb = (uint32_t)((p->sq + bq - 1) / bq);
    const uint32_t *maxg = d->limits.maxComputeWorkGroupCount;
    if ((uint64_t)p->hq > maxg[0] || nqb > maxg[1] || (uint64_t)p->num_seqs > maxg[2])
        return attn_fail(ATTN_ERR_UNSUPPORTED, "attn_sdpa: a grid of %lld x %u x %lld "
                         "workgroups (heads, query blocks, sequences) is more than the device "
                         "allows (%u x %u x %u)", (long long)p->hq, nqb, (long long)p->num_seqs,
                         maxg[0], maxg[1], maxg[2]);
    VkBuffer bufs[ATTN_VK_BINDINGS] = {
        attn_vk_handle(p->q.buffer), attn_vk_handle(p->k.buffer), attn_vk_handle(p->v.buffer),
        attn_vk_handle(p->out.buffer),
        p->has_lse ? attn_vk_handle(p->lse.buffer) : VK_NULL_HANDLE,
        p->has_mask ? attn_vk_handle(p->mask.buffer) : VK_NULL_HANDLE,
        p->has_gate ? attn_vk_handle(p->gate.buffer) : VK_NULL_HANDLE,
        p->has_block_mask ? attn_vk_handle(p->block_mask.buffer) : VK_NULL_HANDLE,
        VK_NULL_HANDLE, VK_NULL_HANDLE,
    };
    VkDescriptorSet set;
    attn_status s = attn_vk_descriptors_reset(d, 1);
    if (s == ATTN_OK)
        s = attn_vk_descriptor_set(d, bufs, &set);
    if (s == ATTN_OK)
        s = attn_vk_begin(d, "attn_sdpa");
    if (s != ATTN_OK)
        return s;
    attn_vk_dispatch(d, pipe, set, NULL, 0, (uint32_t)p->hq, nqb, (uint32_t)p->num_seqs);
    return attn_vk_submit(d, "attn_sdpa");
}

/* Shared memory of vulkan/sdpa_coopmat.comp (its declarations, in bytes)
 * for nw subgroups of rb 16-row blocks and key tiles of bk, K and V in one
 * buffer or (split) two. */
static int64_t coopmat_shared(int nw, int rb, int bk, int split, int emulate, int64_t dd,
                              int64_t dv)
{
    const int64_t rows = 16 * rb, dmax = dd > dv ? dd : dv;
    const int64_t kv = (1 + split) * bk * (dmax + 8) * 2, s = nw * rows * (bk + 4) * 4;
    const int64_t p = nw * rows * (bk + 8) * 2, al = nw * rows * 16 * 4;
    /* the emulation's matrices: Q's A blocks (f16), the accumulators (f32) */
    const int64_t emu = emulate ? nw * rb * (dd / 16) * 256 * 2 +
                                  nw * (rb * (dv / 16) + rb + 1) * 256 * 4 : 0;
    return kv + s + p + al + emu + 2 * 4;
}

/* The cooperative-matrix shader (vulkan/sdpa_coopmat.comp) for f16 inputs
 * with head dims multiples of 16, on devices with the 16x16x16 f16 shape
 * and a fixed subgroup size that the shader's row split assumes: the first
 * (subgroups, row blocks per subgroup, key tile, K and V in two buffers)
 * that the limits allow, two buffers (half the workgroup barriers) before
 * a larger key tile; prefetching K/V tiles into registers (not in the
 * emulation, where lavapipe compiles the registers kept across barriers
 * slowly, nor for head dims over 128, whose Q and O fill the registers). ATTN_VULKAN_COOPMAT_TILE="nw,rb,bk[,pf[,split]]" puts a shape
 * first (tuning; pf and split 0 or 1 turn the prefetch and the two buffers
 * off or on; without split, two buffers where they fit).
 * ATTN_VULKAN_COOPMAT=0 turns the shader off; =emulate uses its build with
 * plain loops for the matrix operations on any device with shaderFloat16
 * (tests). Fills spec, *bq and *shader; 0 if unusable. */
static int coopmat_cfg(const attn_vk_device *d, const attn_sdpa_problem *p, int32_t spec[9],
                       int *bq, int *shader)
{
    const char *env = getenv("ATTN_VULKAN_COOPMAT");
    const int emulate = env && strcmp(env, "emulate") == 0;
    int real = 0;
#ifdef HAVE_GLSL_COOPMAT
    real = d->coopmat_f16;
#endif
    const int sg = (int)d->subgroup_size;
    if ((env && strcmp(env, "0") == 0) || !(emulate ? d->fp16 : real) ||
        p->q.dtype != ATTN_F16 || p->d % 16 != 0 || p->dv % 16 != 0 || !d->subgroup_shuffle ||
        sg < 1 || sg > 256 || (sg & (sg - 1)) != 0 ||
        (d->subgroup_control && d->subgroup_min != d->subgroup_size))
        return 0;
    /* nw, rb, bk, split (-1: where it fits) */
    int shapes[12][4] = { { 0, 0, 0, -1 }, { 4, 1, 64, 1 }, { 4, 1, 32, 1 }, { 4, 1, 64, 0 },
                          { 4, 1, 32, 0 }, { 2, 1, 64, 1 }, { 2, 1, 32, 1 }, { 2, 1, 64, 0 },
                          { 2, 1, 32, 0 }, { 1, 1, 32, 1 }, { 1, 1, 32, 0 }, { 1, 1, 16, 0 } };
    int pf = !emulate && p->d <= 128 && p->dv <= 128;
    const char *tile = getenv("ATTN_VULKAN_COOPMAT_TILE");
    if (tile && sscanf(tile, "%d,%d,%d,%d,%d", &shapes[0][0], &shapes[0][1], &shapes[0][2], &pf,
                       &shapes[0][3]) < 3)
        shapes[0][0] = 0;
    const int64_t budget = d->limits.maxComputeSharedMemorySize;
    for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++) {
        const int nw = shapes[i][0], rb = shapes[i][1], bk = shapes[i][2];
        if (nw < 1 || nw > 64 || rb < 1 || rb > 2 || bk < 16 || bk > 256 || bk % (16 * rb) != 0)
            continue;
        const int wg = nw * sg;
        const int two = shapes[i][3] >= 0 ? shapes[i][3] != 0 :
                        coopmat_shared(nw, rb, bk, 1, emulate, p->d, p->dv) <= budget;
        if ((uint32_t)wg > d->limits.maxComputeWorkGroupInvocations ||
            (uint32_t)wg > d->limits.maxComputeWorkGroupSize[0] ||
            coopmat_shared(nw, rb, bk, two, emulate, p->d, p->dv) > budget)
            continue;
        const int32_t s[9] = { wg, nw, rb, bk, (int32_t)p->d, (int32_t)p->dv, sg, pf != 0, two };
        memcpy(spec, s, sizeof s);
        *bq = 16 * rb * nw;
        *shader = emulate ? ATTN_VK_SHADER_SDPA_COOPMAT_EMULATED : ATTN_VK_SHADER_SDPA_COOPMAT;
        return 1;
    }
    return 0;
}

#ifdef HAVE_GLSL_COOPMAT2
/* Whether the device's workgroup-scope matrices of a workgroup of wg
 * invocations take the shader's products: S = Q K^T (BQ x D by D x BK) and
 * O += P V (BQ x BK by BK x OC). */
static int coopmat2_shape_ok(const attn_vk_device *d, int wg, int rows, int bk, int64_t dd, int oc,
                             int *sw)
{
    for (int i = 0; i < d->coopmat2_ngran; i++) {
        const uint32_t m = d->coopmat2_gran[i].m, n = d->coopmat2_gran[i].n;
        const uint32_t k = d->coopmat2_gran[i].k;
        if (d->coopmat2_gran[i].wg != (uint32_t)wg)
            continue;
        *sw = (int)(n < 16 ? 16 : n);   /* the row statistics' columns */
        return rows % m == 0 && bk % n == 0 && oc % n == 0 && dd % k == 0 && bk % k == 0 &&
               *sw % n == 0 && *sw <= 64;
    }
    return 0;
}
#endif

/* The workgroup-scope cooperative-matrix shader (vulkan/sdpa_coopmat2.comp)
 * for f16 q, k, v with head dims multiples of 16 up to 128 whose rows start
 * on 16-byte boundaries (tensor loads need it), on devices with
 * VK_NV_cooperative_matrix2: the first of (invocations, query rows, keys per
 * tile) = (256, 128, 64), (128, 64, 64), (64, 32, 32) that the device's
 * shapes and limits take (H200, causal S = 4096, D = 128: 76.9 TFLOP/s with
 * the first, 71.9 with the second). O is one BQ x DV block where the output
 * goes out by tensor stores (f16 or f32, no gate, rows on 16-byte
 * boundaries), else 16-column blocks staged through shared memory.
 * ATTN_VULKAN_COOPMAT2_TILE="wg,bq,bk[,split]" puts a shape first (tuning;
 * split=1: 16-column blocks of O even where one would do);
 * ATTN_VULKAN_COOPMAT2=0 (or ATTN_VULKAN_COOPMAT=0 / emulate) turns the
 * shader off. Fills spec and *bq; 0 if unusable. */
static int coopmat2_cfg(const attn_vk_device *d, const attn_sdpa_problem *p, int32_t spec[7],
                        int *bq)
{
#ifdef HAVE_GLSL_COOPMAT2
    const char *env = getenv("ATTN_VULKAN_COOPMAT2"), *env1 = getenv("ATTN_VULKAN_COOPMAT");
    if ((env && strcmp(env, "0") == 0) || (env1 && (strcmp(env1, "0") == 0 ||
                                                     strcmp(env1, "emulate") == 0)) ||
        !d->coopmat2 || p->q.dtype != ATTN_F16 || p->k.dtype != ATTN_F16 ||
        p->v.dtype != ATTN_F16 || p->d % 16 != 0 || p->dv % 16 != 0 || p->d > 128 ||
        p->dv > 128 || !view_vec(&p->q, p->d, 8) || !view_vec(&p->k, p->d, 8) ||
        !view_vec(&p->v, p->dv, 8))
        return 0;
    int shapes[4][4] = { { 0, 0, 0, 0 }, { 256, 128, 64, 0 }, { 128, 64, 64, 0 },
                         { 64, 32, 32, 0 } };
    const char *tile = getenv("ATTN_VULKAN_COOPMAT2_TILE");
    if (tile && sscanf(tile, "%d,%d,%d,%d", &shapes[0][0], &shapes[0][1], &shapes[0][2],
                       &shapes[0][3]) < 3)
        shapes[0][0] = 0;
    for (int i = 0; i < 4; i++) {
        const int wg = shapes[i][0], rows = shapes[i][1], bk = shapes[i][2];
        if (wg < 32 || (uint32_t)wg > d->coopmat2_max_wg ||
            (uint32_t)wg > d->limits.maxComputeWorkGroupSize[0] || rows < 16 || rows > 256 ||
            bk < 16 || bk > 256)
            continue;
        const int direct = !shapes[i][3] && !p->has_gate &&
            ((p->out.dtype == ATTN_F16 && view_vec(&p->out, p->dv, 8)) ||
             (p->out.dtype == ATTN_F32 && view_vec(&p->out, p->dv, 4)));
        const int oc = direct ? (int)p->dv : 16;
        int sw;
        if (!coopmat2_shape_ok(d, wg, rows, bk, p->d, oc, &sw))
            continue;
        const int32_t s[7] = { wg, rows, bk, (int32_t)p->d, (int32_t)p->dv, oc, sw };
        memcpy(spec, s, sizeof s);
        *bq = rows;
        return 1;
    }
    return 0;
#else
    (void)d, (void)p, (void)spec, (void)bq;
    return 0;
#endif
}

attn_status attn_vk_sdpa(attn_device *dev, const attn_sdpa_problem *p)
{
    attn_vk_device *d = dev->impl;
    if (p->sq == 0 || p->num_seqs == 0)
        return ATTN_OK;
    int32_t spec[14];
    int nspec, shader, bq;
    sdpa_cfg c;
    if (coopmat2_cfg(d, p, spec, &bq)) {
        nspec = 7;
        shader = ATTN_VK_SHADER_SDPA_COOPMAT2;
    } else if (coopmat_cfg(d, p, spec, &bq, &shader)) {
        nspec = 9;
    } else if (choose_cfg(d, dev->info.is_software, p->d, p->dv, &c)) {
        const int vec = use_vec(p, &c);
        const int32_t s[13] = { c.tx, c.ty, c.rm, c.rn, c.dc, c.kc, (int32_t)p->d, (int32_t)p->dv,
                                (int32_t)p->q.dtype, dvt_of(&c, p->dv),
                                (int32_t)stage_floats(&c, p->dv), vec, vec ? c.pref : 0 };
        memcpy(spec, s, sizeof s);
        nspec = 13;
        shader = use_subgroup(d, &c) ? ATTN_VK_SHADER_SDPA_SUBGROUP : ATTN_VK_SHADER_SDPA;
        bq = c.ty * c.rm;
    } else {
        return attn_fail(ATTN_ERR_UNSUPPORTED, "attn_sdpa: no workgroup shape fits %s (shared "
                         "memory %u bytes) for head dims %lld/%lld", dev->info.name,
                         d->limits.maxComputeSharedMemorySize, (long long)p->d, (long long)p->dv);
    }
    /* The last specialisation constant of every sdpa shader is the call's
     * flags: a pipeline then holds only the code of the features it uses
     * (sdpa_common.glsl, FEATS_MASK). On an H200, B = 1, H = 32, S = 4096,
     * D = 128, full / causal: coopmat2 f16 1.17x / 1.28x faster, subgroup
     * coopmat 1.22x / 1.18x, plain f16 1.15x / 1.10x, f32 1.09x / 1.08x.
     * ATTN_VULKAN_SDPA_FEATS=0 gives the pipeline of every feature. */
    const int32_t flags = attn_gpu_sdpa_flags(p);
    const char *feats = getenv("ATTN_VULKAN_SDPA_FEATS");
    spec[nspec++] = feats && strcmp(feats, "0") == 0 ? -1 : flags;
    pthread_mutex_lock(&d->lock);
    VkPipeline pipe;
    attn_status s = attn_vk_pipeline_get(d, shader, spec, nspec, &pipe);
    if (s == ATTN_OK)
        s = write_params(d, p, flags);
    if (s == ATTN_OK)
        s = record(d, p, bq, pipe);
    pthread_mutex_unlock(&d->lock);
    return s;
}
