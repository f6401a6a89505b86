/* CPU neighborhood attention (src/cpu/neighborhood.c). */
#ifndef ATTN_CPU_NEIGHBORHOOD_H
#define ATTN_CPU_NEIGHBORHOOD_H

#include "../backend.h"

attn_status attn_cpu_neighborhood(attn_device *dev, const attn_neighborhood_problem *p);

#endif
