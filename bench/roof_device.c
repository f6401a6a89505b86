/* Device copy bandwidth through attn_buffer_copy (see roof_device.h). */
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

double roof_device_copy_gbs(roof_device_bufs *r, int trials)
{
    if (roof_device_evict(r) != 0)
        return -1.0;
    double best = -1.0;
    for (int i = 0; i < trials; i++) {
        const double t0 = roof_now();
        if (attn_buffer_copy(r->b, 0, r->a, 0, r->bytes) != ATTN_OK)
            return -1.0;
        const double gbs = 2.0 * (double)r->bytes / (roof_now() - t0) * 1e-9;
        best = gbs > best ? gbs : best;
    }
    return best;
}

int roof_device_evict(roof_device_bufs *r)
{
    return attn_buffer_copy(r->a, 0, r->b, 0, r->bytes) == ATTN_OK ? 0 : -1;
}
