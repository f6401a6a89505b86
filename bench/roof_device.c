/* Device copy bandwidth through attn_buffer_copy (see roof_device.h). */
#include <stdlib.h>
#include "roof_device.h"
#include "roof.h"

int roof_device_bufs_init(roof_device_bufs *r, attn_context *ctx, int device, size_t bytes)
{
    r->a = r->b = NULL;
    for (; bytes >= ((size_t)16 << 20); bytes /= 2) {
        if (attn_buffer_create(ctx, device, bytes, &r->a) == ATTN_OK &&
            attn_buffer_create(ctx, device, bytes, &r->b) == ATTN_OK) {
            r->bytes = bytes;
            return 0;
        }
        roof_device_bufs_free(r);
    }
    return -1;
}

void roof_device_bufs_free(roof_device_bufs *r)
{
    attn_buffer_destroy(r->a);
    attn_buffer_destroy(r->b);
    r->a = r->b = NULL;
}

static int cmpd(const void *a, const void *b)
{
    const double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

int roof_device_copy_rate(roof_device_bufs *r, int trials, roof_device_rate *out)
{
    double whole[64], half[64];
    trials = trials < 1 ? 1 : trials > 64 ? 64 : trials;
    if (roof_device_evict(r) != 0)
        return -1;
    /* Alternating sizes, so that a drift of the clocks hits both alike. */
    for (int i = 0; i < trials; i++) {
        double t0 = roof_now();
        if (attn_buffer_copy(r->b, 0, r->a, 0, r->bytes) != ATTN_OK)
            return -1;
        whole[i] = roof_now() - t0;
        t0 = roof_now();
        if (attn_buffer_copy(r->b, 0, r->a, 0, r->bytes / 2) != ATTN_OK)
            return -1;
        half[i] = roof_now() - t0;
    }
    qsort(whole, (size_t)trials, sizeof *whole, cmpd);
    qsort(half, (size_t)trials, sizeof *half, cmpd);
    const double tw = whole[trials / 2], th = half[trials / 2];
    const double streamed = 2.0 * (double)(r->bytes - r->bytes / 2);
    out->call_gbs = 2.0 * (double)r->bytes / tw * 1e-9;
    /* Noise can make the difference tiny or negative: then the per-call
     * rate is all there is. */
    out->gbs = tw > th * 1.05 ? streamed / (tw - th) * 1e-9 : out->call_gbs;
    out->fixed_us = 1e6 * (tw - 2.0 * (double)r->bytes / (out->gbs * 1e9));
    return 0;
}

int roof_device_evict(roof_device_bufs *r)
{
    return attn_buffer_copy(r->a, 0, r->b, 0, r->bytes) == ATTN_OK ? 0 : -1;
}
