/* The CPU drivers' task queue (src/cpu/task_queue.c): every unit is handed
 * out exactly once, whatever the ranges (empty ones included) and however
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

static void check_once(int nr, const int64_t *bounds, int64_t n, int nthreads)
{
    attn_task_queue q;
    CHECK(attn_task_queue_init(&q, nr, bounds, n) == 0, "init nr %d", nr);
    if (bounds)
        n = bounds[nr];
    _Atomic int *seen = calloc((size_t)n + 1, sizeof *seen);
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
        for (int64_t u; (u = attn_task_queue_next(&q, me % nr)) >= 0;) {
            if (u >= n)
                atomic_fetch_add(&bad, 1);
            else
                atomic_fetch_add(&seen[u], 1);
        }
    }
    int64_t wrong = 0;
    for (int64_t u = 0; u < n; u++)
        wrong += seen[u] != 1;
    CHECK(bad == 0 && wrong == 0, "nr %d, n %lld, %d threads: %lld units out of range, %lld "
          "not taken exactly once", nr, (long long)n, nthreads, (long long)bad, (long long)wrong);
    free(seen);
    attn_task_queue_free(&q);
}

/* One thread as range 1 of 3: its own units in order, then range 2's and
 * range 0's from the back. */
static void check_order(void)
{
    const int64_t bounds[4] = { 0, 3, 6, 8 };
    static const int64_t want[8] = { 3, 4, 5, 7, 6, 2, 1, 0 };
    attn_task_queue q;
    CHECK(attn_task_queue_init(&q, 3, bounds, 0) == 0, "init");
    for (int i = 0; i < 8; i++) {
        const int64_t u = attn_task_queue_next(&q, 1);
        CHECK(u == want[i], "unit %d: %lld, want %lld", i, (long long)u, (long long)want[i]);
    }
    CHECK(attn_task_queue_next(&q, 1) == -1, "a ninth unit");
    attn_task_queue_free(&q);
}

int main(void)
{
    tu_init("test_task_queue");
    check_order();
    static const int64_t sizes[] = { 0, 1, 5, 97, 4096 };
    for (int nr = 1; nr <= 8; nr *= 2)
        for (size_t k = 0; k < sizeof sizes / sizeof sizes[0]; k++)
            for (int th = 1; th <= nr + 1; th += nr)
                for (int rep = 0; rep < (tu_quick ? 2 : 20); rep++)
                    check_once(nr, NULL, sizes[k], th);
    /* uneven ranges, some empty */
    const int64_t bounds[6] = { 0, 0, 40, 40, 41, 300 };
    for (int th = 1; th <= 6; th++)
        for (int rep = 0; rep < (tu_quick ? 2 : 20); rep++)
            check_once(5, bounds, 0, th);
    return tu_finish();
}
