/* The CPU drivers' task queue (src/cpu/task_queue.c): every unit is handed
 * out exactly once and reported with the range it lies in, whatever the
 * ranges (empty ones included, extra units per range or none) and however
 * many threads drain them (as many as ranges, fewer, one); a lone thread
 * takes its own range front first, then the others' from the back. */
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include "config.h"
#include "testutil.h"
#include "../src/cpu/task_queue.h"

#ifdef HAVE_OPENMP
#include <omp.h>
#endif

static void check_once(int nr, int64_t n, int64_t extra, int nthreads)
{
    attn_task_queue q;
    CHECK(attn_task_queue_init(&q, nr, n, extra) == 0, "init nr %d", nr);
    const int64_t total = n + nr * extra;
    _Atomic int *seen = calloc((size_t)total + 1, sizeof *seen);
    _Atomic int64_t bad = 0;
#ifdef HAVE_OPENMP
#pragma omp parallel num_threads(nthreads)
#endif
    {
#ifdef HAVE_OPENMP
        const int me = omp_get_thread_num();
#else
        const int me = 0;
#endif
        int r = -1;
        for (int64_t u; (u = attn_task_queue_next(&q, me % nr, &r)) >= 0;) {
            const int in_range = r >= 0 && r < nr && u >= attn_task_queue_first(&q, r) &&
                                 (r + 1 == nr || u < attn_task_queue_first(&q, r + 1));
            if (u >= total || !in_range)
                atomic_fetch_add(&bad, 1);
            else
                atomic_fetch_add(&seen[u], 1);
        }
    }
    int64_t wrong = 0;
    for (int64_t u = 0; u < total; u++)
        wrong += seen[u] != 1;
    CHECK(bad == 0 && wrong == 0, "nr %d, n %lld, extra %lld, %d threads: %lld units out of "
          "range or reported in the wrong one, %lld not taken exactly once", nr, (long long)n,
          (long long)extra, nthreads, (long long)bad, (long long)wrong);
    free(seen);
    attn_task_queue_free(&q);
}

/* One thread as range 1 of 3 over units that each range `extra` longer
 * makes want[]: its own units in order, then range 2's and range 0's from
 * the back, each reported with its range. */
static void check_order(int64_t n, int64_t extra, const int64_t *want, const int *want_r,
                        int count)
{
    attn_task_queue q;
    CHECK(attn_task_queue_init(&q, 3, n, extra) == 0, "init");
    for (int i = 0; i < count; i++) {
        int r = -1;
        const int64_t u = attn_task_queue_next(&q, 1, &r);
        CHECK(u == want[i] && r == want_r[i], "n %lld extra %lld, unit %d: %lld of range %d, "
              "want %lld of %d", (long long)n, (long long)extra, i, (long long)u, r,
              (long long)want[i], want_r[i]);
    }
    CHECK(attn_task_queue_next(&q, 1, NULL) == -1, "a unit past the %d", count);
    attn_task_queue_free(&q);
}

int main(void)
{
    tu_init("test_task_queue");
    /* ranges [0, 2), [2, 5), [5, 8) */
    static const int64_t want0[8] = { 2, 3, 4, 7, 6, 5, 1, 0 };
    static const int want0_r[8] = { 1, 1, 1, 2, 2, 2, 0, 0 };
    check_order(8, 0, want0, want0_r, 8);
    /* ranges [0, 3), [3, 6), [6, 9) */
    static const int64_t want1[9] = { 3, 4, 5, 8, 7, 6, 2, 1, 0 };
    static const int want1_r[9] = { 1, 1, 1, 2, 2, 2, 0, 0, 0 };
    check_order(6, 1, want1, want1_r, 9);
    static const int64_t sizes[] = { 0, 1, 5, 97, 4096 };
    for (int nr = 1; nr <= 8; nr *= 2)
        for (size_t k = 0; k < sizeof sizes / sizeof sizes[0]; k++)
            for (int64_t extra = 0; extra <= 3; extra += 3)
                for (int th = 1; th <= nr + 1; th += nr)
                    for (int rep = 0; rep < (tu_quick ? 2 : 20); rep++)
                        check_once(nr, sizes[k], extra, th);
    /* fewer units than ranges: some ranges empty */
    for (int th = 1; th <= 6; th++)
        for (int rep = 0; rep < (tu_quick ? 2 : 20); rep++)
            check_once(5, 3, 0, th);
    return tu_finish();
}
