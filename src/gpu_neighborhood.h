/* attn_neighborhood on GPUs: the query-tile choice and the tile table shared
 * by the OpenCL (opencl/neighborhood.cl) and Vulkan (vulkan/neighborhood.comp)
 * kernels, which stage the same arrays in local/shared memory. */
#ifndef ATTN_GPU_NEIGHBORHOOD_H
#define ATTN_GPU_NEIGHBORHOOD_H

#include <stddef.h>
#include <stdint.h>
#include "problem.h"

typedef struct attn_nb_tile {
    int t1, t2;     /* query positions per tile on axes 1 and 2 (compile-time) */
    int tq;         /* t1 * t2 */
    int wg;         /* work-group size (compile-time) */
    int64_t u2;     /* keys of a staged run, at most */
} attn_nb_tile;

/* Largest work-group either kernel is built for. */
#define ATTN_NB_MAX_WG 128

/* The five staged arrays, in floats: Qs, Ks, Vs, S, row state (m, l, alpha). */
void attn_nb_stage_floats(const attn_neighborhood_problem *p, const attn_nb_tile *c,
                          int64_t n[5]);

/* The largest tile (up to 64 queries, about square: keys staged per query
 * fall as the tile grows on both axes) for work-groups of wg items whose
 * staged arrays fit mem_bytes and whose accumulators fit the kernels'
 * registers; tiles of 32 and 64 queries only where they still give
 * min_groups work-groups (small problems would leave compute units idle).
 * ATTN_NB_TILE="t1,t2" (tuning) is tried first. Returns 0 if none fits. */
int attn_nb_choose_tile(const attn_neighborhood_problem *p, int wg, int64_t min_groups,
                        size_t mem_bytes, attn_nb_tile *out);

/* The tile table: per axis, (class, first position) of every tile, axis 0
 * then 1 then 2, as int32 pairs into w (NULL: only counted). Sets nt[a] to
 * each axis's tile count and returns the number of pairs. */
int64_t attn_nb_tile_table(const attn_neighborhood_problem *p, const attn_nb_tile *c,
                           int64_t nt[3], int32_t *w);

#endif
