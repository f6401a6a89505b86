/* Grid geometry shared by the CPU neighborhood drivers (neighborhood.c,
 * neighborhood_lanes.c): windows, dilation classes, element addresses. */
#ifndef ATTN_CPU_NEIGHBORHOOD_GRID_H
#define ATTN_CPU_NEIGHBORHOOD_GRID_H

#include "../problem.h"

static inline int64_t nb_min64(int64_t a, int64_t b) { return a < b ? a : b; }
static inline int64_t nb_max64(int64_t a, int64_t b) { return a > b ? a : b; }

/* Sub-grid window [*s, *e) of position pos on a class sub-grid of n tokens. */
static inline void nb_window(const attn_neighborhood_problem *p, int a, int64_t pos, int64_t n,
                             int64_t *s, int64_t *e)
{
    const int64_t k = p->kernel[a];
    if (p->causal[a]) {
        *s = nb_max64(0, pos - k + 1);
        *e = pos + 1;
    } else {
        *s = nb_min64(nb_max64(pos - (k - 1) / 2, 0), n - k);
        *e = *s + k;
    }
}

/* Tokens of class c on axis a. */
static inline int64_t nb_class_len(const attn_neighborhood_problem *p, int a, int64_t c)
{
    return (p->len[a] - c + p->dil[a] - 1) / p->dil[a];
}

/* Address of element (b, g0, g1, g2, h) of a 6-d view (its last axis at 0). */
static inline const char *nb_elem(const attn_view *v, int64_t b, int64_t g0, int64_t g1,
                                  int64_t g2, int64_t h)
{
    return v->base + (b * v->stride[0] + g0 * v->stride[1] + g1 * v->stride[2] +
                      g2 * v->stride[3] + h * v->stride[4]) * (int64_t)attn_dtype_size(v->dtype);
}

#endif
