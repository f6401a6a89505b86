/* ATTN_VULKAN_PROFILE=1: where the time of one Vulkan op goes, printed to
 * stderr per call. Host steps (table build, uploads, recording, submission,
 * the fence wait) are timed with the host clock between marks; the GPU
 * commands with timestamp queries written after each of them (the commands
 * of an op are serialised by barriers, so the gap between two timestamps
 * is the command between them). One line per call:
 *   vkprof attn_decode: host table 3.1 record 6.0 submit 9.8 wait 120.4 = 139.3 us
 *       | gpu upload 2.0 chunks 95.1 combine 4.2 = 101.3 us | wg 128 ts 16 ...
 * (the last part: what the op chose, its note).
 * Used with the device lock held; a disabled profile costs one getenv. */
#ifndef ATTN_VK_PROFILE_H
#define ATTN_VK_PROFILE_H

#include "vk.h"

#define ATTN_VK_PROF_MARKS 8

typedef struct attn_vk_profile {
    int         on, gpu;                 /* profiling; timestamps recorded */
    const char *op;
    double      last;                    /* host clock at the last host mark (s) */
    int         nhost, ngpu;
    const char *host_name[ATTN_VK_PROF_MARKS], *gpu_name[ATTN_VK_PROF_MARKS];
    double      host_us[ATTN_VK_PROF_MARKS];
    char        note[160];               /* the op's choices, printed last */
} attn_vk_profile;

/* Starts a profile of op when ATTN_VULKAN_PROFILE is set (p->on). */
void attn_vk_prof_start(attn_vk_device *d, attn_vk_profile *p, const char *op);
/* Host time since the previous mark, charged to step `name`. */
void attn_vk_prof_host(attn_vk_profile *p, const char *name);
/* After attn_vk_begin: resets the queries and writes the first timestamp
 * (no timestamps where the queue has none). */
void attn_vk_prof_gpu_begin(attn_vk_device *d, attn_vk_profile *p);
/* A timestamp after every command recorded so far, which ends `name`. */
void attn_vk_prof_gpu_mark(attn_vk_device *d, attn_vk_profile *p, const char *name);
/* After the fence wait: reads the timestamps, prints the line, stops. */
void attn_vk_prof_report(attn_vk_device *d, attn_vk_profile *p);
void attn_vk_prof_free(attn_vk_device *d);

#endif
