/* Query tiles for the GPU neighborhood kernels: see gpu_neighborhood.h. */
#include <stdio.h>
#include <stdlib.h>
#include "gpu_neighborhood.h"

/* O elements a work-item keeps in registers, at most. */
#define NB_MAX_ACC 64
/* Axis-1 rows per tile, at most: a work-item keeps a float4 score
 * accumulator per row. */
#define NB_MAX_T1 16

static int64_t min64(int64_t a, int64_t b) { return a < b ? a : b; }

/* Positions of dilation class c on axis a. */
static int64_t class_len(const attn_neighborhood_problem *p, int a, int64_t c)
{
    return (p->len[a] - c + p->dil[a] - 1) / p->dil[a];
}

void attn_nb_stage_floats(const attn_neighborhood_problem *p, const attn_nb_tile *c,
                          int64_t n[5])
{
    const int64_t qd = 4 * ((p->d + 3) / 4 + 1), k2p = (p->kernel[2] + 3) / 4 * 4;
    n[0] = c->tq * qd;
    n[1] = c->u2 * qd;
    n[2] = (c->u2 + k2p) * p->dv;
    n[3] = c->tq * k2p;
    n[4] = 3 * c->tq;
}

static size_t stage_bytes(const attn_neighborhood_problem *p, const attn_nb_tile *c)
{
    int64_t n[5];
    attn_nb_stage_floats(p, c, n);
    return (size_t)(n[0] + n[1] + n[2] + n[3] + n[4]) * sizeof(float);
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

int attn_nb_choose_tile(const attn_neighborhood_problem *p, int wg, int64_t min_groups,
                        size_t mem_bytes, attn_nb_tile *out)
{
    const int64_t n1 = class_len(p, 1, 0), n2 = class_len(p, 2, 0);
    const char *env = getenv("ATTN_NB_TILE");
    int et1 = 0, et2 = 0;
    const int use_env = env && sscanf(env, "%d,%d", &et1, &et2) == 2 && et1 > 0 && et2 > 0;
    for (int lg = use_env ? 7 : 6; lg >= 0; lg--) {
        attn_nb_tile c;
        c.t1 = (int)min64(n1, lg == 7 ? et1 : 1 << (lg / 2));
        c.t2 = (int)min64(n2, lg == 7 ? et2 : (1 << lg) / c.t1);
        c.tq = c.t1 * c.t2;
        c.wg = wg;
        c.u2 = min64(c.t2 + p->kernel[2] - 1, n2);
        const int64_t acc = (c.t2 * p->dv + wg - 1) / wg * c.t1;
        if (lg != 7 && lg > 4 && groups_of(p, c.t1, c.t2) < min_groups)
            continue;
        if (acc > NB_MAX_ACC || c.t1 > NB_MAX_T1 || stage_bytes(p, &c) > mem_bytes)
            continue;
        *out = c;
        return 1;
    }
    return 0;
}

/* One axis's (class, first position) pairs, t positions per tile. */
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

int64_t attn_nb_tile_table(const attn_neighborhood_problem *p, const attn_nb_tile *c,
                           int64_t nt[3], int32_t *w)
{
    const int64_t t[3] = { 1, c->t1, c->t2 };
    int64_t n = 0;
    for (int a = 0; a < 3; a++) {
        nt[a] = axis_tiles(p, a, t[a], w ? w + 2 * n : NULL);
        n += nt[a];
    }
    return n;
}
