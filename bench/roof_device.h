/* Copy bandwidth of a GPU device, through attn_buffer_copy (a device-side
 * copy between two buffers of the device), for the benchmarks' roofs of
 * bandwidth-bound ops that run there. */
#ifndef ATTN_BENCH_ROOF_DEVICE_H
#define ATTN_BENCH_ROOF_DEVICE_H

#include <stddef.h>
#include "attn.h"

/* Two buffers of `bytes` each on one device. */
typedef struct roof_device_bufs {
    attn_buffer *a, *b;
    size_t bytes;
} roof_device_bufs;

/* Allocates the pair; halves bytes (down to 16 MiB) while the device
 * refuses. Returns 0 on success. */
int roof_device_bufs_init(roof_device_bufs *r, attn_context *ctx, int device, size_t bytes);
void roof_device_bufs_free(roof_device_bufs *r);

/* Copy rates, bytes read + written per second. One call of a copy pays a
 * fixed cost (recording, submission, the wait for its end: tens of us on
 * a GPU) that a 512 MiB copy at several TB/s does not hide, so the roof is
 * the streaming rate: the bytes of half the buffer over the difference of
 * the median times of whole-buffer and half-buffer copies. */
typedef struct roof_device_rate {
    double gbs;         /* streaming rate (the roof) */
    double call_gbs;    /* whole buffer / median time of one call */
    double fixed_us;    /* median call time less the streaming time */
} roof_device_rate;

/* Times `trials` copies of each size (after one warm-up copy); returns 0,
 * or -1 if a copy fails. */
int roof_device_copy_rate(roof_device_bufs *r, int trials, roof_device_rate *out);

/* One untimed copy: evicts earlier data from the device's caches. */
int roof_device_evict(roof_device_bufs *r);

#endif
