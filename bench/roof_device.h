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

/* Copy rate, bytes read + written per second, the best of `trials` copies
 * of the whole buffer (after one warm-up copy); -1 if a copy fails. */
double roof_device_copy_gbs(roof_device_bufs *r, int trials);

/* One untimed copy: evicts earlier data from the device's caches. */
int roof_device_evict(roof_device_bufs *r);

#endif
