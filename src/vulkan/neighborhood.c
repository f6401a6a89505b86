/* attn_neighborhood on Vulkan: picks the query tile from the device's
 * limits, writes the parameter words and the tile table, gets the
 * specialised pipeline and records one dispatch of vulkan/neighborhood.comp. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "vk.h"
#include "args.h"
#include "../error.h"

/* Parameter words shared with vulkan/neighborhood.comp. */
enum { P_Q = 0, P_K = 7, P_V = 14, P_O = 21, P_L = 28, P_OUT_DT = 34, P_HAS_LSE = 35,
       P_NT = 36, P_LEN = 41, P_KER = 44, P_DIL = 47, P_CAUSAL = 50,
       P_GROUP = 53, P_SCALE = 54, P_TILES = 64 };

typedef struct nb_cfg {
    int t1, t2;     /* query positions per tile on axes 1 and 2 */
    int tq;         /* t1 * t2 */
    int wg;         /* workgroup size */
    int64_t u2;     /* keys of a staged run, at most */
} nb_cfg;

/* O elements an invocation keeps in registers, at most. */
#define NB_MAX_ACC 64
#define NB_MAX_WG 128
/* Workgroups below which smaller tiles are preferred: Vulkan does not tell
 * the number of compute units; 512 is 4 per SM of a 128-SM GPU. */
#define NB_MIN_GROUPS 512
/* Axis-1 rows per tile, at most: a work-item keeps a float4 score
 * accumulator per row. */
#define NB_MAX_T1 16

static int64_t class_len(const attn_neighborhood_problem *p, int a, int64_t c)
{
    return (p->len[a] - c + p->dil[a] - 1) / p->dil[a];
}

static int64_t min64(int64_t a, int64_t b) { return a < b ? a : b; }

/* Shared arrays of vulkan/neighborhood.comp: Qs, Ks, Vs, S4, Mr/Lr/Ar. */
static size_t shared_bytes(const attn_neighborhood_problem *p, const nb_cfg *c)
{
    const int64_t qd = 4 * ((p->d + 3) / 4 + 1), k2p = (p->kernel[2] + 3) / 4 * 4;
    return (size_t)(c->tq * qd + c->u2 * qd + (c->u2 + k2p) * p->dv + c->tq * k2p +
                    3 * c->tq) * sizeof(float);
}

/* Work-groups of a launch with t1 x t2 query tiles. */
static int64_t groups_of(const attn_neighborhood_problem *p, int64_t t1, int64_t t2)
{
    const int64_t t[3] = { 1, t1, t2 };
    int64_t n = p->b * p->hq;
    for (int a = 0; a < 3; a++) {
        int64_t na = 0;
        for (int64_t c = 0; c < p->dil[a]; c++)
            na += (class_len(p, a, c) + t[a] - 1) / t[a];
        n *= na;
    }
    return n;
}

/* The largest tile (up to 64 queries, about square) whose arrays fit the
 * shared memory and whose accumulators fit NB_MAX_ACC per invocation; tiles
 * of 32 and 64 queries only where they still give NB_MIN_GROUPS workgroups. */
static int choose_cfg(const attn_vk_device *d, const attn_neighborhood_problem *p, nb_cfg *out)
{
    const int64_t min_groups = NB_MIN_GROUPS;
    int wg = NB_MAX_WG;
    while (wg > 1 && ((uint32_t)wg > d->limits.maxComputeWorkGroupInvocations ||
                      (uint32_t)wg > d->limits.maxComputeWorkGroupSize[0]))
        wg /= 2;
    const int64_t n1 = class_len(p, 1, 0), n2 = class_len(p, 2, 0);
    /* ATTN_NB_TILE="t1,t2" (tuning) is tried first. */
    const char *env = getenv("ATTN_NB_TILE");
    int et1 = 0, et2 = 0;
    const int use_env = env && sscanf(env, "%d,%d", &et1, &et2) == 2 && et1 > 0 && et2 > 0;
    for (int lg = use_env ? 7 : 6; lg >= 0; lg--) {
        nb_cfg c;
        c.t1 = (int)min64(n1, lg == 7 ? et1 : 1 << (lg / 2));
        c.t2 = (int)min64(n2, lg == 7 ? et2 : (1 << lg) / c.t1);
        c.tq = c.t1 * c.t2;
        c.wg = wg;
        c.u2 = min64(c.t2 + p->kernel[2] - 1, n2);
        const int64_t acc = (c.t2 * p->dv + wg - 1) / wg * c.t1;
        if (lg != 7 && lg > 4 && groups_of(p, c.t1, c.t2) < min_groups)
            continue;
        if (acc > NB_MAX_ACC || c.t1 > NB_MAX_T1 ||
            shared_bytes(p, &c) > d->limits.maxComputeSharedMemorySize)
            continue;
        *out = c;
        return 1;
    }
    return 0;
}

/* Per axis, (class, first position) of every tile of t positions; written
 * to w (NULL: only counted). Returns the count. */
static int64_t axis_tiles(const attn_neighborhood_problem *p, int a, int64_t t, int32_t *w)
{
    int64_t n = 0;
    for (int64_t c = 0; c < p->dil[a]; c++)
        for (int64_t p0 = 0; p0 < class_len(p, a, c); p0 += t, n++)
            if (w) {
                w[2 * n] = (int32_t)c;
                w[2 * n + 1] = (int32_t)p0;
            }
    return n;
}

static attn_status write_params(attn_vk_device *d, const attn_neighborhood_problem *p,
                                const nb_cfg *c, int64_t nt[3])
{
    const int64_t t[3] = { 1, c->t1, c->t2 };
    for (int a = 0; a < 3; a++)
        nt[a] = axis_tiles(p, a, t[a], NULL);
    const size_t words = P_TILES + 2 * (size_t)(nt[0] + nt[1] + nt[2]);
    attn_status s = attn_vk_host_reserve(d, &d->params, words * sizeof(int32_t));
    if (s != ATTN_OK)
        return s;
    int32_t *w = d->params.mapped;
    memset(w, 0, P_TILES * sizeof *w);
    if (!attn_vk_put_view(w + P_Q, &p->q, 1, 6) || !attn_vk_put_view(w + P_K, &p->k, 1, 6) ||
        !attn_vk_put_view(w + P_V, &p->v, 1, 6) || !attn_vk_put_view(w + P_O, &p->out, 1, 6) ||
        !attn_vk_put_view(w + P_L, &p->lse, p->has_lse, 5))
        return attn_fail(ATTN_ERR_UNSUPPORTED, "attn_neighborhood: a tensor spans more than "
                         "2^31 elements; the Vulkan backend indexes in 32 bits");
    w[P_OUT_DT] = (int32_t)p->out.dtype;
    w[P_HAS_LSE] = p->has_lse;
    for (int a = 0; a < 3; a++) {
        w[P_NT + a] = (int32_t)nt[a];
        w[P_LEN + a] = (int32_t)p->len[a];
        w[P_KER + a] = (int32_t)p->kernel[a];
        w[P_DIL + a] = (int32_t)p->dil[a];
        w[P_CAUSAL + a] = p->causal[a];
    }
    w[P_GROUP] = (int32_t)(p->hq / p->hkv);
    memcpy(&w[P_SCALE], &p->scale, sizeof(float));
    axis_tiles(p, 0, t[0], w + P_TILES);
    axis_tiles(p, 1, t[1], w + P_TILES + 2 * nt[0]);
    axis_tiles(p, 2, t[2], w + P_TILES + 2 * (nt[0] + nt[1]));
    return ATTN_OK;
}

static attn_status record(attn_vk_device *d, const attn_neighborhood_problem *p,
                          const int64_t nt[3], VkPipeline pipe)
{
    const int64_t ntiles = nt[0] * nt[1] * nt[2];
    const uint32_t *maxg = d->limits.maxComputeWorkGroupCount;
    if (ntiles > (int64_t)maxg[0] || p->hq > (int64_t)maxg[1] || p->b > (int64_t)maxg[2])
        return attn_fail(ATTN_ERR_UNSUPPORTED, "attn_neighborhood: a grid of %lld x %lld x %lld "
                         "workgroups is more than the device allows (%u x %u x %u)",
                         (long long)ntiles, (long long)p->hq, (long long)p->b, maxg[0], maxg[1],
                         maxg[2]);
    VkBuffer bufs[ATTN_VK_BINDINGS] = {
        attn_vk_handle(p->q.buffer), attn_vk_handle(p->k.buffer), attn_vk_handle(p->v.buffer),
        attn_vk_handle(p->out.buffer),
        p->has_lse ? attn_vk_handle(p->lse.buffer) : VK_NULL_HANDLE,
        VK_NULL_HANDLE, VK_NULL_HANDLE, VK_NULL_HANDLE, VK_NULL_HANDLE, VK_NULL_HANDLE,
    };
    VkDescriptorSet set;
    attn_status s = attn_vk_descriptors_reset(d, 1);
    if (s == ATTN_OK)
        s = attn_vk_descriptor_set(d, bufs, &set);
    if (s == ATTN_OK)
        s = attn_vk_begin(d, "attn_neighborhood");
    if (s != ATTN_OK)
        return s;
    d->vk.CmdBindPipeline(d->cmd, VK_PIPELINE_BIND_POINT_COMPUTE, pipe);
    d->vk.CmdBindDescriptorSets(d->cmd, VK_PIPELINE_BIND_POINT_COMPUTE, d->pipeline_layout, 0, 1,
                                &set, 0, NULL);
    d->vk.CmdDispatch(d->cmd, (uint32_t)ntiles, (uint32_t)p->hq, (uint32_t)p->b);
    return attn_vk_submit(d, "attn_neighborhood");
}

attn_status attn_vk_neighborhood(attn_device *dev, const attn_neighborhood_problem *p)
{
    attn_vk_device *d = dev->impl;
    nb_cfg c;
    if (!choose_cfg(d, p, &c))
        return attn_fail(ATTN_ERR_UNSUPPORTED, "attn_neighborhood: no query tile fits %s "
                         "(shared memory %u bytes) for head dims %lld/%lld", dev->info.name,
                         d->limits.maxComputeSharedMemorySize, (long long)p->d, (long long)p->dv);
    const int32_t spec[8] = { c.wg, c.t1, (int32_t)p->d, (int32_t)p->dv, (int32_t)p->q.dtype,
                              (int32_t)c.u2, (int32_t)p->kernel[2], c.t2 };
    pthread_mutex_lock(&d->lock);
    VkPipeline pipe;
    int64_t nt[3];
    attn_status s = attn_vk_pipeline_get(d, ATTN_VK_SHADER_NEIGHBORHOOD, spec, 8, &pipe);
    if (s == ATTN_OK)
        s = write_params(d, p, &c, nt);
    if (s == ATTN_OK)
        s = record(d, p, nt, pipe);
    pthread_mutex_unlock(&d->lock);
    return s;
}
