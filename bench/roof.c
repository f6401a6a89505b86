/* attn-bench roofs: the per-ISA FMA loop table, the OpenMP driver that runs a
 * loop on every thread at once, and the memory copy test. */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#ifdef _OPENMP
#include <omp.h>
#endif
#include "roof.h"

double roof_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* The portable-C loop, the roof for the "scalar" kernel set: 12 independent
 * one-lane chains of multiply + add (a fused multiply-add where the target's
 * baseline has one, e.g. aarch64; a separate mul and add on x86-64 SSE2).
 * Auto-vectorisation is switched off for this function so that it stays one
 * lane wide: it measures scalar throughput, not what the compiler might make
 * of it. (GCC -O2 may still vectorise the scalar kernels themselves with the
 * baseline SSE2/NEON, so a "scalar" run can exceed this roof.) */
#if defined(__GNUC__) && !defined(__clang__)
__attribute__((optimize("no-tree-vectorize", "no-tree-slp-vectorize")))
#endif
static uint64_t roof_fma_scalar(uint64_t iters, float *sink)
{
    volatile float vm = 0.999999f, va = 1e-6f;
    float m = vm, a = va;
    /* 12 chains + multiplier + addend fit the 16 xmm registers of x86-64
     * (16 chains spill there); mul+add latency 6-8 cycles x 2 ports. */
    float c0 = 1.0f, c1 = 1.01f, c2 = 1.02f, c3 = 1.03f, c4 = 1.04f, c5 = 1.05f, c6 = 1.06f,
          c7 = 1.07f, c8 = 1.08f, c9 = 1.09f, c10 = 1.10f, c11 = 1.11f;
    for (uint64_t i = 0; i < iters; i++) {
#define F(c) c = c * m + a
        F(c0); F(c1); F(c2); F(c3); F(c4); F(c5); F(c6); F(c7);
        F(c8); F(c9); F(c10); F(c11);
#undef F
    }
    *sink += c0 + c1 + c2 + c3 + c4 + c5 + c6 + c7 + c8 + c9 + c10 + c11;
    return iters * 12u * 2u;
}

static const roof_fma_kernel fma_table[] = {
    { ATTN_ISA_SCALAR, "12 one-lane float chains, mul+add (no SIMD)", roof_fma_scalar },
#ifdef HAVE_AVX2_KERNELS
    { ATTN_ISA_AVX2,   "12 ymm accumulator chains, vfmadd ps",        roof_fma_avx2 },
#endif
#ifdef HAVE_AVX512_KERNELS
    { ATTN_ISA_AVX512, "16 zmm accumulator chains, vfmadd ps",        roof_fma_avx512 },
#endif
#ifdef HAVE_NEON_KERNELS
    { ATTN_ISA_NEON,   "24 q-register chains, fmla .4s",              roof_fma_neon },
#endif
};

const roof_fma_kernel *roof_fma_kernel_for(attn_isa isa)
{
    for (size_t i = 0; i < sizeof fma_table / sizeof fma_table[0]; i++)
        if (fma_table[i].isa == isa)
            return &fma_table[i];
    return NULL;
}

static int clamp_threads(int threads)
{
#ifdef _OPENMP
    if (threads <= 0)
        threads = omp_get_max_threads();
#else
    threads = 1;
#endif
    return threads < 1 ? 1 : threads;
}

double roof_thread_cpu(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

double roof_process_cpu(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* One timed trial: every thread runs `iters` iterations after a barrier.
 * Wall time is from the barrier's release to the end of the last thread;
 * each thread also times its own CPU seconds. Returns both rates in GFLOP/s. */
static roof_measure fma_trial(roof_fma_fn fn, int threads, uint64_t iters)
{
    uint64_t total = 0;
    double cpu_rate = 0.0, t0 = 0.0;
    float sink = 0.0f;
#ifdef _OPENMP
#pragma omp parallel num_threads(threads) reduction(+:total, cpu_rate, sink)
    {
#pragma omp barrier
#pragma omp master
        t0 = roof_now();
        float s = 0.0f;
        double c0 = roof_thread_cpu();
        uint64_t f = fn(iters, &s);
        double c = roof_thread_cpu() - c0;
        total += f;
        cpu_rate += c > 0 ? (double)f / c : 0.0;
        sink += s;
    }
#else
    (void)threads;
    t0 = roof_now();
    double c0 = roof_thread_cpu();
    total = fn(iters, &sink);
    double c = roof_thread_cpu() - c0;
    cpu_rate = c > 0 ? (double)total / c : 0.0;
#endif
    double wall = roof_now() - t0;
    if (sink == 12345.678f) /* keep the result alive */
        fputs("", stderr);
    roof_measure m = { cpu_rate * 1e-9, wall > 0 ? (double)total / wall * 1e-9 : 0.0 };
    return m;
}

roof_measure roof_fma_gflops(attn_isa isa, int threads, double seconds)
{
    roof_measure best = { -1.0, -1.0 };
    const roof_fma_kernel *k = roof_fma_kernel_for(isa);
    if (!k)
        return best;
    threads = clamp_threads(threads);
    if (seconds <= 0.0)
        seconds = 0.1;
    /* Calibrate on one thread (this also wakes the core up), then size the
     * trials so that each takes about seconds / 3. */
    uint64_t iters = 1000;
    for (;;) {
        double t0 = roof_thread_cpu();
        float s = 0.0f;
        k->run(iters, &s);
        double t = roof_thread_cpu() - t0;
        if (t > 0.02 || iters > (UINT64_C(1) << 40)) {
            iters = (uint64_t)((double)iters * seconds / 3.0 / t) + 1;
            break;
        }
        iters *= 4;
    }
    /* Wall-clock: the best trial. Per CPU-second: the median trial (the
     * best would pick up clock-accounting outliers). */
    double cpu[5];
    best.wall = 0.0;
    for (int trial = 0; trial < 5; trial++) {
        roof_measure m = fma_trial(k->run, threads, iters);
        cpu[trial] = m.cpu;
        if (m.wall > best.wall)
            best.wall = m.wall;
    }
    for (int i = 1; i < 5; i++)
        for (int j = i; j > 0 && cpu[j - 1] > cpu[j]; j--) {
            double t = cpu[j];
            cpu[j] = cpu[j - 1];
            cpu[j - 1] = t;
        }
    best.cpu = cpu[2];
    return best;
}

roof_measure roof_copy_gbs(int threads, size_t bytes, int trials)
{
    roof_measure best = { -1.0, -1.0 };
    threads = clamp_threads(threads);
    bytes &= ~(size_t)4095;
    if (bytes < (size_t)threads * 4096)
        return best;
    char *src = NULL, *dst = NULL;
    if (posix_memalign((void **)&src, 4096, bytes) || posix_memalign((void **)&dst, 4096, bytes)) {
        free(src);
        return best;
    }
#ifdef _OPENMP
    size_t chunk = (bytes / (size_t)threads) & ~(size_t)63;
#endif
    best.cpu = best.wall = 0.0;
    /* First touch by the thread that will copy the slice (NUMA placement);
     * trial -1 is an untimed warm-up that also faults every page in. */
    for (int trial = -1; trial < trials; trial++) {
        double t0 = 0.0, cpu_rate = 0.0;
#ifdef _OPENMP
#pragma omp parallel num_threads(threads) reduction(+:cpu_rate)
        {
            int id = omp_get_thread_num();
            size_t off = (size_t)id * chunk;
            size_t n = id == threads - 1 ? bytes - off : chunk;
            if (trial < 0) {
                memset(src + off, id + 1, n);
                memset(dst + off, 0, n);
            }
#pragma omp barrier
#pragma omp master
            t0 = roof_now();
            double c0 = roof_thread_cpu();
            memcpy(dst + off, src + off, n);
            double c = roof_thread_cpu() - c0;
            cpu_rate += c > 0 ? 2.0 * (double)n / c : 0.0;
        }
#else
        if (trial < 0) {
            memset(src, 1, bytes);
            memset(dst, 0, bytes);
        }
        t0 = roof_now();
        double c0 = roof_thread_cpu();
        memcpy(dst, src, bytes);
        double c = roof_thread_cpu() - c0;
        cpu_rate = c > 0 ? 2.0 * (double)bytes / c : 0.0;
#endif
        double t = roof_now() - t0;
        if (trial < 0)
            continue;
        if (2.0 * (double)bytes / t * 1e-9 > best.wall)
            best.wall = 2.0 * (double)bytes / t * 1e-9;
        if (cpu_rate * 1e-9 > best.cpu)
            best.cpu = cpu_rate * 1e-9;
    }
    if (dst[bytes / 2] == 0x7f) /* keep the copy alive */
        fputs("", stderr);
    free(src);
    free(dst);
    return best;
}

void roof_cache_init(roof_cache *c, double seconds, size_t copy_bytes, int verbose)
{
    memset(c, 0, sizeof *c);
    c->copy.cpu = c->copy.wall = -1.0;
    c->seconds = seconds;
    c->copy_bytes = copy_bytes;
    c->verbose = verbose;
}

roof_measure roof_cache_fma(roof_cache *c, attn_isa isa, int threads)
{
    threads = clamp_threads(threads);
    for (int i = 0; i < c->nfma; i++)
        if (c->fma[i].isa == isa && c->fma[i].threads == threads)
            return c->fma[i].g;
    roof_measure g = roof_fma_gflops(isa, threads, c->seconds);
    if (c->verbose) {
        const roof_fma_kernel *k = roof_fma_kernel_for(isa);
        if (g.cpu > 0)
            fprintf(stderr, "roof: fma %-6s %2d thread%s %9.1f GFLOP/s (wall %9.1f)  (%s)\n",
                    attn_isa_name(isa), threads, threads == 1 ? " " : "s", g.cpu, g.wall, k->what);
        else
            fprintf(stderr, "roof: fma %-6s: no loop compiled into this build\n", attn_isa_name(isa));
    }
    if (c->nfma < (int)(sizeof c->fma / sizeof c->fma[0])) {
        c->fma[c->nfma].isa = isa;
        c->fma[c->nfma].threads = threads;
        c->fma[c->nfma].g = g;
        c->nfma++;
    }
    return g;
}

roof_measure roof_cache_copy(roof_cache *c, int threads)
{
    threads = clamp_threads(threads);
    if (c->copy.cpu >= 0.0 && c->copy_threads == threads)
        return c->copy;
    size_t bytes = c->copy_bytes;
    roof_measure g = { -1.0, -1.0 };
    /* Halve the size until the allocation succeeds (small machines). */
    while (bytes >= ((size_t)64 << 20) && (g = roof_copy_gbs(threads, bytes, 6)).cpu < 0.0)
        bytes /= 2;
    c->copy = g;
    c->copy_threads = threads;
    c->copy_bytes = bytes;
    if (c->verbose) {
        if (g.cpu > 0)
            fprintf(stderr, "roof: copy %2d thread%s %9.1f GB/s (wall %9.1f)  (memcpy %zu MiB -> %zu MiB, "
                    "read+write)\n", threads, threads == 1 ? " " : "s", g.cpu, g.wall, bytes >> 20, bytes >> 20);
        else
            fprintf(stderr, "roof: copy: could not allocate the buffers\n");
    }
    return g;
}
