/* The core clock a thread runs at, for attn-bench --solo: whether the
 * per-thread rate falls with the thread count because the cores slow down
 * (turbo steps, power limits) or for another reason. */
#include "roof.h"

#define CHAIN_STEPS 16          /* dependent adds per loop iteration */
#define CHAIN_ITERS (1 << 16)   /* about 0.3 ms at 3 GHz */

/* x += y with y in a register: cores that fold additions of immediates into
 * register renaming (Golden Cove: an add-immediate chain ran at 19 "GHz")
 * cannot shortcut it. */
#if defined(__x86_64__)
#define ADD1 "add %1, %0\n\t"
#elif defined(__aarch64__)
#define ADD1 "add %0, %0, %1\n\t"
#endif

double roof_clock_ghz(void)
{
#ifdef ADD1
    /* Each add waits for the one before it (one cycle of latency on every
     * x86-64 and AArch64 core), so the chain runs one add per cycle; the loop
     * counter and branch are independent of it and fit beside it. Timed by
     * the thread's CPU clock, so a preemption does not count; best of three. */
    double best = -1.0;
    for (int trial = 0; trial < 3; trial++) {
        unsigned long x = 0, y = 1;
        const double t0 = roof_thread_cpu();
        for (int i = 0; i < CHAIN_ITERS; i++)
            __asm__ __volatile__(ADD1 ADD1 ADD1 ADD1 ADD1 ADD1 ADD1 ADD1
                                 ADD1 ADD1 ADD1 ADD1 ADD1 ADD1 ADD1 ADD1 : "+r"(x) : "r"(y));
        const double dt = roof_thread_cpu() - t0;
        const double ghz = dt > 0 ? (double)CHAIN_ITERS * CHAIN_STEPS / dt * 1e-9 : -1.0;
        best = ghz > best ? ghz : best;
    }
    return best;
#else
    return -1.0;
#endif
}
