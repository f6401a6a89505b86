/* Machine roofs for attn-bench: FMA throughput per ISA and memory copy
 * bandwidth, measured on the machine the benchmark runs on.
 *
 * The FMA loops live in one file per ISA (roof_avx2.c, roof_avx512.c,
 * roof_neon.c), each compiled with its own flags; roof.c holds the table
 * that maps an attn_isa to its loop, the OpenMP driver and the copy test.
 * Nothing here uses libattn internals: only attn_isa from the public header. */
#ifndef ATTN_BENCH_ROOF_H
#define ATTN_BENCH_ROOF_H

#include <stddef.h>
#include <stdint.h>
#include "attn.h"

/* One FMA-throughput loop: runs `iters` iterations of many independent
 * accumulator chains and returns the number of floating-point operations
 * done (an FMA counts as 2). `sink` receives a value derived from every
 * accumulator so the compiler cannot drop the work. */
typedef uint64_t (*roof_fma_fn)(uint64_t iters, float *sink);

typedef struct roof_fma_kernel {
    attn_isa    isa;
    const char *what;          /* "16 zmm accumulators, vfmadd231ps" ... */
    roof_fma_fn run;
} roof_fma_kernel;

/* Per-ISA loops; each file defines its symbol only where it is compiled. */
uint64_t roof_fma_avx2(uint64_t iters, float *sink);
uint64_t roof_fma_avx512(uint64_t iters, float *sink);
uint64_t roof_fma_neon(uint64_t iters, float *sink);

/* The loop for an ISA, or NULL if this build has none for it. */
const roof_fma_kernel *roof_fma_kernel_for(attn_isa isa);

/* A roof measured two ways. `cpu`: the rate per CPU-second of each thread
 * that did the work, summed over the threads: what the hardware does while it
 * runs the loop, unaffected by other processes taking the cores (a shared or
 * busy machine). Right for FMA, whose units are private to a core; an upper
 * bound for the copy, whose DRAM bandwidth the threads share if they run at
 * the same time. `wall`: the same work over wall-clock time, the best trial.
 * On a quiet machine the two agree; wall < 0.9 cpu means it was busy. */
typedef struct roof_measure {
    double cpu;    /* GFLOP/s or GB/s per thread CPU time, summed over threads */
    double wall;   /* the same over wall-clock time */
} roof_measure;

/* FMA peak in GFLOP/s (f32) for `isa` with `threads` threads (OpenMP),
 * best of a few trials of about `seconds` each. Returns -1 (both) if this
 * build has no loop for the ISA. */
roof_measure roof_fma_gflops(attn_isa isa, int threads, double seconds);

/* Memory copy bandwidth in GB/s (1e9 bytes/s), counting bytes read plus
 * bytes written, over `threads` threads copying disjoint slices of a
 * `bytes`-sized source into a same-sized destination (memcpy). Best of
 * `trials`. Returns < 0 if the buffers could not be allocated. */
roof_measure roof_copy_gbs(int threads, size_t bytes, int trials);

/* The cached roofs of one run: measured at most once per (isa, threads). */
typedef struct roof_cache_entry {
    attn_isa     isa;
    int          threads;
    roof_measure g;
} roof_cache_entry;

typedef struct roof_cache {
    roof_cache_entry fma[16];
    int              nfma;
    roof_measure     copy;          /* < 0 = not measured yet */
    int              copy_threads;
    size_t           copy_bytes;    /* per buffer; the copy moves 2x this */
    double           seconds;       /* per FMA trial */
    int              verbose;       /* print each measurement to stderr */
} roof_cache;

void   roof_cache_init(roof_cache *c, double seconds, size_t copy_bytes, int verbose);
roof_measure roof_cache_fma(roof_cache *c, attn_isa isa, int threads);
roof_measure roof_cache_copy(roof_cache *c, int threads);

/* Seconds from a monotonic clock; CPU seconds of the calling thread; CPU
 * seconds of the whole process (all threads). */
double roof_now(void);
double roof_thread_cpu(void);
double roof_process_cpu(void);

/* The calling thread's core clock in GHz, from a chain of dependent integer
 * adds timed by its CPU clock (bench/clock.c); -1 on architectures without
 * the chain (x86-64 and AArch64 have it). */
double roof_clock_ghz(void);

#endif
