/* Tasks handed to threads with affinity (see task_queue.h). */
#include <stdlib.h>
#include "task_queue.h"

int attn_task_queue_init(attn_task_queue *q, int nr, int64_t n, int64_t extra)
{
    void *mem;
    if (posix_memalign(&mem, 64, (size_t)nr * sizeof *q->r))
        return -1;
    q->nr = nr;
    q->r = mem;
    for (int t = 0; t < nr; t++) {
        const int64_t f = n * t / nr + t * extra, b = n * (t + 1) / nr + (t + 1) * extra;
        q->r[t].first = f;
        atomic_init(&q->r[t].fb, (uint64_t)f | (uint64_t)b << 32);
    }
    return 0;
}

void attn_task_queue_free(attn_task_queue *q)
{
    free(q->r);
    q->r = NULL;
}

/* Takes the front (own) or back (stolen) unit of a range; -1 if it is
 * empty. Owner and thieves meet through one compare-and-swap on the packed
 * pair, so no unit is taken twice. */
static int64_t take(attn_task_range *r, int front)
{
    uint64_t v = atomic_load_explicit(&r->fb, memory_order_relaxed);
    for (;;) {
        const uint64_t f = v & 0xffffffffu, b = v >> 32;
        if (f >= b)
            return -1;
        const uint64_t nv = front ? (f + 1) | b << 32 : f | (b - 1) << 32;
        if (atomic_compare_exchange_weak_explicit(&r->fb, &v, nv, memory_order_relaxed,
                                                  memory_order_relaxed))
            return (int64_t)(front ? f : b - 1);
    }
}

int64_t attn_task_queue_next(attn_task_queue *q, int me, int *range)
{
    for (int k = 0; k < q->nr; k++) {
        const int t = (me + k) % q->nr;
        const int64_t u = take(&q->r[t], k == 0);
        if (u >= 0) {
            if (range)
                *range = t;
            return u;
        }
    }
    return -1;
}
