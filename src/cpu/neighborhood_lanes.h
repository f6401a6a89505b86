/* CPU neighborhood attention with queries in the vector lanes
 * (src/cpu/neighborhood_lanes.c). */
#ifndef ATTN_CPU_NEIGHBORHOOD_LANES_H
#define ATTN_CPU_NEIGHBORHOOD_LANES_H

#include "../backend.h"
#include "kernels.h"

/* Whether attn_cpu_nb_lanes handles p with kernel set ks, and is the faster
 * path there. */
int attn_cpu_nb_lanes_suits(const attn_neighborhood_problem *p, const attn_cpu_kernels *ks);

attn_status attn_cpu_nb_lanes(attn_device *dev, const attn_neighborhood_problem *p,
                              const attn_cpu_kernels *ks);

#endif
