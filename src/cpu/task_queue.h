/* Tasks handed to threads with affinity: the units [0, n) are cut into one
 * contiguous range per thread, which its owner takes from the front; a
 * thread whose range is empty takes from the back of the others'. With
 * tasks of equal cost on cores of equal speed nothing moves, so each
 * thread works on the same data call after call (what it wrote and read
 * last call is still in its own caches); otherwise the ranges' last units
 * balance the load as a shared counter would. */
#ifndef ATTN_CPU_TASK_QUEUE_H
#define ATTN_CPU_TASK_QUEUE_H

#include <stdatomic.h>
#include <stdint.h>

/* One range: front and back unit packed in one word (front low), alone on
 * its cache line. */
typedef struct attn_task_range {
    _Atomic uint64_t fb;
    char pad[64 - sizeof(uint64_t)];
} attn_task_range;

typedef struct attn_task_queue {
    int nr;                       /* ranges */
    attn_task_range *r;
} attn_task_queue;

/* Ranges [bounds[t], bounds[t + 1]) for t < nr (bounds non-decreasing,
 * below 2^32), or with bounds NULL the units [0, n) cut evenly. Returns 0,
 * or -1 when out of memory. */
int attn_task_queue_init(attn_task_queue *q, int nr, const int64_t *bounds, int64_t n);
void attn_task_queue_free(attn_task_queue *q);

/* The next unit for thread `me` (< nr): its own range's front, or another
 * range's back; -1 once every unit has been taken. */
int64_t attn_task_queue_next(attn_task_queue *q, int me);

#endif
