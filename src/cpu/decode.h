/* The CPU backend's attn_decode entry (src/cpu/decode.c). */
#ifndef ATTN_CPU_DECODE_H
#define ATTN_CPU_DECODE_H

#include "../backend.h"

attn_status attn_cpu_decode(attn_device *dev, const attn_decode_problem *p);

#endif
