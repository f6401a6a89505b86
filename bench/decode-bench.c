/*
 * decode-bench: attn_decode over a paged KV cache, against the machine's
 * memory copy bandwidth (bench/roof.c).
 *
 * For each storage type, batch B and context length L it fills a cache with
 * B sequences of L random tokens (Hkv heads, head dim D, pages of P tokens),
 * appends nothing more, and times attn_decode of Sq query tokens per
 * sequence. The figure of merit is the cache read rate:
 *     GB/s = B * L * (bytes per token in the cache, K and V, all heads,
 *            scales included) / median time
 * and its fraction of the measured copy bandwidth (bytes read + written by
 * memcpy over all threads, wall clock). "vs f16" is the time relative to
 * the f16 cache of the same shape. On a busy machine the wall-clock rate
 * is meaningless; GB/s_cpu is the same bytes per CPU-second of the threads
 * (summed over threads), compared with the copy's per-CPU-second rate,
 * and min_cpu_ms / vs_f16_cpu the least CPU time of one call (all threads)
 * and its ratio to f16's: with --threads 1, the steadiest comparison of
 * storage types a shared machine allows.
 *
 * Cold caches (the default): a model decodes each layer against its own
 * cache, and by the time a layer runs again every other layer's cache has
 * passed through the CPU caches, so its cache comes from DRAM. Before each
 * call the bench therefore reads a buffer of 2 x LLC + 64 MiB (at least
 * 256 MiB) with all threads, untimed, which evicts the KV cache from L2 and
 * L3. Without this a cache that fits in the LLC (f16 at L = 32K is 134 MB)
 * reads faster than DRAM and the storage types are not compared on the
 * memory traffic they save. --hot keeps the cache warm between calls.
 *
 * --device N (N > 0, a GPU: see attn-info) puts the cache's page pool, q and
 * out in that device's memory, where attn_decode then runs. The roof is
 * then the device's copy bandwidth (attn_buffer_copy, bytes read + written,
 * the streaming rate of 512 and 256 MiB copies: bench/roof_device.h), and
 * a cold call follows an untimed copy of that buffer, which evicts the KV
 * cache from the device's caches.
 * The per-CPU-second columns do not apply there ("-").
 *
 *   decode-bench [--dtypes f16,q8,q4] [--L 1024,...] [--batch 1,16] [--hq 32]
 *                [--hkv 8] [--d 128] [--sq 1] [--page 64] [--threads N]
 *                [--max-gib 4] [--min-time 0.5] [--reps N] [--hot] [--device N]
 */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "attn.h"
#include "roof.h"
#include "roof_device.h"

static int parse_list(const char *s, int64_t *v, int max)
{
    int n = 0;
    while (*s && n < max) {
        char *end;
        long long x = strtoll(s, &end, 10);
        if (end == s) break;
        if (*end == 'K' || *end == 'k') { x *= 1024; end++; }
        v[n++] = x;
        s = *end == ',' ? end + 1 : end;
    }
    return n;
}

static int dtype_of(const char *s, attn_dtype *t)
{
    static const struct { const char *n; attn_dtype t; } m[] = {
        { "f32", ATTN_F32 }, { "f16", ATTN_F16 }, { "bf16", ATTN_BF16 }, { "q8", ATTN_Q8 }, { "q4", ATTN_Q4 } };
    for (size_t i = 0; i < sizeof m / sizeof m[0]; i++)
        if (!strcmp(s, m[i].n)) { *t = m[i].t; return 1; }
    return 0;
}

static const char *dtname(attn_dtype t)
{
    switch (t) {
    case ATTN_F32: return "f32"; case ATTN_F16: return "f16"; case ATTN_BF16: return "bf16";
    case ATTN_Q8: return "q8"; case ATTN_Q4: return "q4"; default: return "?";
    }
}

/* The eviction buffer: read with all threads so every core's L2 and the
 * shared L3 are refilled with it. The sum goes to a volatile so the reads
 * stay. */
static volatile double evict_sink;

static void evict_caches(const double *buf, size_t n)
{
    double s = 0.0;
#ifdef _OPENMP
#pragma omp parallel for reduction(+ : s) schedule(static)
#endif
    for (size_t i = 0; i < n; i += 8)
        s += buf[i];
    evict_sink = s;
}

static int cmpd(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

int main(int argc, char **argv)
{
    attn_dtype dts[8] = { ATTN_F16, ATTN_Q8, ATTN_Q4 };
    int ndt = 3;
    int64_t Ls[32] = { 1024, 4096, 16384, 32768, 65536, 131072 }, Bs[8] = { 1, 16 };
    int nL = 6, nB = 2;
    int64_t hq = 32, hkv = 8, d = 128, sq = 1, page = 64;
    int threads = 0;
    double max_gib = 4.0, min_time = 0.5;
    int reps = 0;   /* > 0: exactly this many timed calls (e.g. for perf stat) */
    int hot = 0;
    int device = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--hot")) { hot = 1; continue; }
        if (!v) { fprintf(stderr, "decode-bench: %s needs a value\n", a); return 2; }
        if (!strcmp(a, "--dtypes")) {
            ndt = 0;
            char buf[128];
            snprintf(buf, sizeof buf, "%s", v);
            for (char *t = strtok(buf, ","); t && ndt < 8; t = strtok(NULL, ","))
                if (!dtype_of(t, &dts[ndt++])) { fprintf(stderr, "bad dtype %s\n", t); return 2; }
        } else if (!strcmp(a, "--L")) nL = parse_list(v, Ls, 32);
        else if (!strcmp(a, "--batch")) nB = parse_list(v, Bs, 8);
        else if (!strcmp(a, "--hq")) hq = atoll(v);
        else if (!strcmp(a, "--hkv")) hkv = atoll(v);
        else if (!strcmp(a, "--d")) d = atoll(v);
        else if (!strcmp(a, "--sq")) sq = atoll(v);
        else if (!strcmp(a, "--page")) page = atoll(v);
        else if (!strcmp(a, "--threads")) threads = atoi(v);
        else if (!strcmp(a, "--device")) device = atoi(v);
        else if (!strcmp(a, "--max-gib")) max_gib = atof(v);
        else if (!strcmp(a, "--min-time")) min_time = atof(v);
        else if (!strcmp(a, "--reps")) reps = atoi(v) < 1 ? 1 : atoi(v) > 200 ? 200 : atoi(v);
        else { fprintf(stderr, "decode-bench: unknown option %s\n", a); return 2; }
        i++;
    }
    attn_options opt = ATTN_OPTIONS_INIT;
    opt.num_threads = threads;
    attn_context *ctx;
    if (attn_context_create(&opt, &ctx) != ATTN_OK) {
        fprintf(stderr, "decode-bench: %s\n", attn_last_error());
        return 1;
    }
    attn_device_info info = ATTN_DEVICE_INFO_INIT;
    attn_device_get_info(ctx, 0, &info);
    threads = info.compute_units;
    if (device < 0 || device >= attn_device_count(ctx)) {
        fprintf(stderr, "decode-bench: --device %d: the context has devices 0..%d\n", device,
                attn_device_count(ctx) - 1);
        return 2;
    }
    roof_measure cp = { -1.0, -1.0 };
    roof_device_bufs dbufs = { NULL, NULL, 0 };
    if (device == 0) {
        cp = roof_copy_gbs(threads, (size_t)512 << 20, 5);
        printf("decode-bench: %s, isa %s, %d threads; copy bandwidth %.1f GB/s (read+write, wall; "
               "per-CPU-second %.1f)\n", info.name, attn_isa_name(info.isa), threads, cp.wall,
               cp.cpu);
    } else {
        attn_device_get_info(ctx, device, &info);
        roof_device_rate rate = { -1.0, -1.0, 0.0 };
        if (roof_device_bufs_init(&dbufs, ctx, device, (size_t)512 << 20) == 0 &&
            roof_device_copy_rate(&dbufs, 10, &rate) == 0)
            cp.wall = cp.cpu = rate.gbs;
        printf("decode-bench: device %d: %s (%s); copy bandwidth %.1f GB/s (attn_buffer_copy, "
               "read+write, streaming: %zu vs %zu MiB; one %zu MiB call %.1f GB/s, fixed cost "
               "%.0f us)\n", device, info.name, info.driver, cp.wall, dbufs.bytes >> 20,
               dbufs.bytes >> 21, dbufs.bytes >> 20, rate.call_gbs, rate.fixed_us);
        if (cp.wall <= 0)
            printf("warning: no device copy roof (%s); %%copy columns are meaningless\n",
                   attn_last_error());
        if (!hot && dbufs.a)
            printf("cold caches: an untimed %zu MiB device copy before each call (--hot to "
                   "skip)\n", dbufs.bytes >> 20);
    }
    size_t evict_n = 0;
    double *evict = NULL;
    if (!hot && device == 0) {
        long llc = sysconf(_SC_LEVEL3_CACHE_SIZE);
        size_t bytes = (llc > 0 ? 2 * (size_t)llc : 0) + ((size_t)64 << 20);
        if (bytes < ((size_t)256 << 20))
            bytes = (size_t)256 << 20;
        evict_n = bytes / sizeof(double);
        evict = malloc(bytes);
        if (!evict) { fprintf(stderr, "decode-bench: out of memory\n"); return 1; }
        for (size_t i = 0; i < evict_n; i++)
            evict[i] = (double)(i & 7);
        printf("cold caches: %.0f MiB read by all threads before each call (LLC %.0f MiB; "
               "--hot to skip)\n", (double)bytes / 1048576.0, llc > 0 ? llc / 1048576.0 : 0.0);
    }
    printf("shape: Hq=%lld Hkv=%lld D=%lld Sq=%lld page=%lld, causal\n", (long long)hq,
           (long long)hkv, (long long)d, (long long)sq, (long long)page);
    printf("%-5s %3s %7s %10s %9s %8s %7s %7s %6s %9s %7s %10s %10s\n", "dtype", "B", "L",
           "median_ms", "cache_MB", "GB/s", "%copy", "vs_f16", "cpu%", "GB/s_cpu", "%copy",
           "min_cpu_ms", "vs_f16_cpu");
    if (device == 0 && cp.wall < 0.9 * cp.cpu)
        printf("warning: the machine is busy (copy wall %.1f < 0.9 x per-CPU-second %.1f GB/s); "
               "compare the per-CPU-second columns\n", cp.wall, cp.cpu);

    for (int bi = 0; bi < nB; bi++)
        for (int li = 0; li < nL; li++) {
            const int64_t B = Bs[bi], L = Ls[li];
            double f16_ms = -1.0, f16_cpu_ms = -1.0;
            for (int ti = 0; ti < ndt; ti++) {
                attn_kv_cache_desc desc = ATTN_KV_CACHE_DESC_INIT;
                desc.dtype = dts[ti];
                desc.num_kv_heads = (int32_t)hkv;
                desc.head_dim = (int32_t)d;
                desc.page_size = (int32_t)page;
                desc.max_seqs = (int32_t)B;
                desc.max_pages = B * ((L + page - 1) / page);
                desc.device = device;
                attn_kv_cache *c;
                if (attn_kv_cache_create(ctx, &desc, &c) != ATTN_OK) {
                    printf("%-5s %3lld %7lld create failed: %s\n", dtname(dts[ti]), (long long)B,
                           (long long)L, attn_last_error());
                    continue;
                }
                const double bytes = (double)B * (double)L * (double)attn_kv_cache_token_bytes(c);
                if (bytes > max_gib * 1073741824.0) {
                    printf("%-5s %3lld %7lld skipped: cache %.0f MB > --max-gib\n", dtname(dts[ti]),
                           (long long)B, (long long)L, bytes / 1e6);
                    attn_kv_cache_destroy(c);
                    continue;
                }
                const int64_t chunk = 1024;
                float *kv = malloc((size_t)(chunk * hkv * d) * sizeof(float));
                uint64_t s = 12345;
                for (int64_t i = 0; i < chunk * hkv * d; i++) {
                    s = s * 6364136223846793005ull + 1442695040888963407ull;
                    kv[i] = (float)((double)(s >> 40) / 8388608.0 - 1.0);
                }
                int ok = 1;
                for (int64_t b = 0; b < B && ok; b++)
                    for (int64_t t = 0; t < L && ok; t += chunk) {
                        int64_t n = L - t < chunk ? L - t : chunk;
                        attn_tensor tk = { 0 };
                        tk.data = kv; tk.dtype = ATTN_F32; tk.ndim = 3;
                        tk.shape[0] = n; tk.shape[1] = hkv; tk.shape[2] = d;
                        ok = attn_kv_cache_append(c, (int32_t)b, &tk, &tk) == ATTN_OK;
                    }
                free(kv);
                float *q = malloc((size_t)(B * sq * hq * d) * sizeof(float));
                float *o = malloc((size_t)(B * sq * hq * d) * sizeof(float));
                int32_t *seqs = malloc((size_t)B * sizeof *seqs);
                for (int64_t i = 0; i < B * sq * hq * d; i++) q[i] = (float)((i * 7919) % 1000) / 1000.0f - 0.5f;
                for (int64_t b = 0; b < B; b++) seqs[b] = (int32_t)b;
                attn_tensor tq = attn_tensor_4d(q, ATTN_F32, B, sq, hq, d);
                attn_tensor to = attn_tensor_4d(o, ATTN_F32, B, sq, hq, d);
                attn_buffer *qbuf = NULL, *obuf = NULL;
                if (device != 0 && ok) {
                    const size_t qbytes = (size_t)(B * sq * hq * d) * sizeof(float);
                    ok = attn_buffer_create(ctx, device, qbytes, &qbuf) == ATTN_OK &&
                         attn_buffer_create(ctx, device, qbytes, &obuf) == ATTN_OK &&
                         attn_buffer_write(qbuf, 0, q, qbytes) == ATTN_OK;
                    tq.data = to.data = NULL;
                    tq.buffer = qbuf;
                    to.buffer = obuf;
                }
                attn_sdpa_params p = ATTN_SDPA_PARAMS_INIT;
                p.causal = 1;
                double t[200];
                int n = 0;
                double total = 0.0, cpu = 0.0, cpu_min = INFINITY;
                if (ok) ok = attn_decode(ctx, &p, &tq, c, seqs, &to, NULL) == ATTN_OK;  /* warm-up */
                while (ok && n < 200 && (reps ? n < reps : (total < min_time || n < 5))) {
                    if (evict)
                        evict_caches(evict, evict_n);
                    if (!hot && dbufs.a)
                        roof_device_evict(&dbufs);
                    double t0 = roof_now(), c0 = roof_process_cpu();
                    ok = attn_decode(ctx, &p, &tq, c, seqs, &to, NULL) == ATTN_OK;
                    t[n] = roof_now() - t0;
                    const double c1 = roof_process_cpu() - c0;
                    cpu += c1;
                    cpu_min = c1 < cpu_min ? c1 : cpu_min;
                    total += t[n++];
                }
                if (!ok) {
                    printf("%-5s %3lld %7lld failed: %s\n", dtname(dts[ti]), (long long)B,
                           (long long)L, attn_last_error());
                } else {
                    qsort(t, (size_t)n, sizeof *t, cmpd);
                    const double med = t[n / 2];
                    if (dts[ti] == ATTN_F16) { f16_ms = med * 1e3; f16_cpu_ms = cpu_min * 1e3; }
                    char vs[16] = "-", vs_cpu[16] = "-";
                    if (f16_ms > 0) snprintf(vs, sizeof vs, "%.2fx", med * 1e3 / f16_ms);
                    if (f16_cpu_ms > 0) snprintf(vs_cpu, sizeof vs_cpu, "%.2fx", cpu_min * 1e3 / f16_cpu_ms);
                    /* per CPU-second: the rate while the threads actually ran */
                    const double util = cpu / (total * threads);
                    const double gbs_cpu = bytes * n / cpu * threads * 1e-9;
                    if (device != 0)
                        printf("%-5s %3lld %7lld %10.3f %9.1f %8.1f %6.1f%% %7s %6s %9s %7s "
                               "%10s %10s\n", dtname(dts[ti]), (long long)B, (long long)L,
                               med * 1e3, bytes / 1e6, bytes / med * 1e-9,
                               100.0 * bytes / med * 1e-9 / cp.wall, vs, "-", "-", "-", "-", "-");
                    else
                        printf("%-5s %3lld %7lld %10.3f %9.1f %8.1f %6.1f%% %7s %5.0f%% %9.1f "
                               "%6.1f%% %10.3f %10s\n", dtname(dts[ti]), (long long)B,
                               (long long)L, med * 1e3, bytes / 1e6, bytes / med * 1e-9,
                               100.0 * bytes / med * 1e-9 / cp.wall, vs, 100.0 * util, gbs_cpu,
                               100.0 * gbs_cpu / cp.cpu, cpu_min * 1e3, vs_cpu);
                }
                fflush(stdout);
                free(q); free(o); free(seqs);
                attn_buffer_destroy(qbuf);
                attn_buffer_destroy(obuf);
                attn_kv_cache_destroy(c);
            }
        }
    free(evict);
    roof_device_bufs_free(&dbufs);
    attn_context_destroy(ctx);
    return 0;
}
