/* Tasks handed to threads with affinity: the units are cut into one
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

/* One range: front and back unit packed in one word (front low), and its
 * first unit (set once), alone on their cache line. */
typedef struct attn_task_range {
    _Atomic uint64_t fb;
    int64_t first;
    char pad[64 - sizeof(uint64_t) - sizeof(int64_t)];
} attn_task_range;

typedef struct attn_task_queue {
    int nr;                       /* ranges */
    attn_task_range *r;
} attn_task_queue;

/* nr ranges: n units cut evenly, each range then `extra` units longer
 * (range t: [n t / nr + t extra, n (t + 1) / nr + (t + 1) extra); a driver
 * that splits each range's last task in parts gives the parts' extra
 * units). All below 2^32. Returns 0, or -1 when out of memory. */
int attn_task_queue_init(attn_task_queue *q, int nr, int64_t n, int64_t extra);
void attn_task_queue_free(attn_task_queue *q);

/* The next unit for thread `me` (< nr): its own range's front, or another
 * range's back; -1 once every unit has been taken. *range (if not NULL)
 * gets the range it came from. */
int64_t attn_task_queue_next(attn_task_queue *q, int me, int *range);

/* The first unit of range t. */
static inline int64_t attn_task_queue_first(const attn_task_queue *q, int t)
{
    return q->r[t].first;
}

#endif
