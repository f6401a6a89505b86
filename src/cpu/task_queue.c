/* Tasks handed to threads with affinity (see task_queue.h). */
#include <stdlib.h>
#include "task_queue.h"

int attn_task_queue_init(attn_task_queue *q, int nr, const int64_t *bounds, int64_t n)
{
    void *mem;
    if (posix_memalign(&mem, 64, (size_t)nr * sizeof *q->r))
        return -1;
    q->nr = nr;
    q->r = mem;
    for (int t = 0; t < nr; t++) {
        const uint64_t f = (uint64_t)(bounds ? bounds[t] : n * t / nr);
        const uint64_t b = (uint64_t)(bounds ? bounds[t + 1] : n * (t + 1) / nr);
        atomic_init(&q->r[t].fb, f | b << 32);
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

int64_t attn_task_queue_next(attn_task_queue *q, int me)
{
    int64_t u = take(&q->r[me], 1);
    for (int k = 1; u < 0 && k < q->nr; k++)
        u = take(&q->r[(me + k) % q->nr], 0);
    return u;
}
