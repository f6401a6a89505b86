/*
 * libattn: tests of the non-kernel API in include/attn.h.
 *
 *   version, status strings, attn_last_error (cleared on success, set on
 *   failure, thread-local), dtype sizes, ISA names, CPU feature strings
 *   (truncation, n = 0, NULL buffer), context options and the ATTN_ISA /
 *   ATTN_DEVICE environment, device info (bad index, NULL, size field,
 *   writes limited to info->size), buffers (sizes, round trips, out of
 *   bounds ranges incl. size_t wrap-around, NULL pointers, huge sizes), and
 *   attn_sdpa on buffer-backed tensors at offsets, bitwise equal to the same
 *   call on host pointers.
 *
 * Self-contained. Build by hand with
 *   gcc -O1 -g -fsanitize=address,undefined -fopenmp -pthread -Iinclude \
 *       src/[a-z]*.c src/cpu/[a-z]*.c tests/test_api.c -lm -o /tmp/ta && /tmp/ta
 * Exit status 0 = everything passed.
 */
#ifdef HAVE_CONFIG_H
#include "config.h"   /* HAVE_OPENMP: without it the library runs one thread */
#endif
#include <math.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "attn.h"

/* Under ASan, let malloc return NULL for absurd sizes (the SIZE_MAX buffer
 * test expects ATTN_ERR_OUT_OF_MEMORY rather than an ASan abort). */
const char *__asan_default_options(void);
const char *__asan_default_options(void) { return "allocator_may_return_null=1"; }

static int g_fail, g_pass;

#define CHECK(cond, ...) do {                                                 \
        if (cond) { g_pass++; }                                               \
        else {                                                                \
            g_fail++;                                                         \
            printf("FAIL %s:%d: %s: ", __FILE__, __LINE__, #cond);            \
            printf(__VA_ARGS__);                                              \
            printf("  [attn_last_error: \"%s\"]\n", attn_last_error());       \
        }                                                                     \
    } while (0)

#define CHECK_ST(expr, want) do {                                             \
        attn_status s_ = (expr);                                              \
        CHECK(s_ == (want), "%s returned %d (%s), expected %d", #expr, (int)s_, \
              attn_status_string(s_), (int)(want));                           \
    } while (0)

/* A failure: status, and a non-empty message that contains `word`. */
#define CHECK_FAIL(expr, want, word) do {                                     \
        attn_status s_ = (expr);                                              \
        const char *m_ = attn_last_error();                                   \
        CHECK(s_ == (want), "%s returned %d, expected %d", #expr, (int)s_, (int)(want)); \
        CHECK(m_ && *m_, "%s: empty attn_last_error()", #expr);               \
        CHECK(mentions(m_, (word)), "%s: message does not mention '%s'", #expr, \
              (word) ? (const char *)(word) : "");                            \
    } while (0)

#define INV ATTN_ERR_INVALID_ARGUMENT

static int mentions(const char *msg, const char *word)
{
    return !word || (msg && strstr(msg, word));
}

/* ---- version, strings, dtypes ------------------------------------------- */

static void test_version(void)
{
    char want[64];
    snprintf(want, sizeof want, "%d.%d.%d", ATTN_VERSION_MAJOR, ATTN_VERSION_MINOR,
             ATTN_VERSION_PATCH);
    const char *v = attn_version();
    CHECK(v != NULL, "attn_version() is NULL\n");
    if (v)
        CHECK(strcmp(v, want) == 0, "attn_version() = \"%s\", header says \"%s\"", v, want);
}

static void test_status_strings(void)
{
    static const struct { attn_status s; const char *name; } all[] = {
        { ATTN_OK, "ATTN_OK" },
        { ATTN_ERR_INVALID_ARGUMENT, "ATTN_ERR_INVALID_ARGUMENT" },
        { ATTN_ERR_UNSUPPORTED, "ATTN_ERR_UNSUPPORTED" },
        { ATTN_ERR_OUT_OF_MEMORY, "ATTN_ERR_OUT_OF_MEMORY" },
        { ATTN_ERR_DEVICE, "ATTN_ERR_DEVICE" },
        { ATTN_ERR_INTERNAL, "ATTN_ERR_INTERNAL" },
    };
    const int n = (int)(sizeof all / sizeof all[0]);
    for (int i = 0; i < n; i++) {
        const char *s = attn_status_string(all[i].s);
        CHECK(s && *s, "attn_status_string(%d) is NULL or empty", (int)all[i].s);
        if (!s)
            continue;
        /* "ATTN_ERR_INVALID_ARGUMENT: ..." — the name, then a non-identifier */
        size_t len = strlen(all[i].name);
        CHECK(strncmp(s, all[i].name, len) == 0 && (s[len] == '\0' || s[len] == ':' ||
                                                    s[len] == ' '),
              "attn_status_string(%s) = \"%s\" does not start with its name", all[i].name, s);
        for (int j = 0; j < i; j++)
            CHECK(strcmp(s, attn_status_string(all[j].s)) != 0,
                  "status strings %d and %d are equal", i, j);
    }
    const int bad[] = { 6, 99, -1, 1000000 };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        const char *s = attn_status_string((attn_status)bad[i]);
        CHECK(s != NULL && *s, "attn_status_string(%d) is NULL or empty", bad[i]);
    }
}

static void test_dtype_and_isa(void)
{
    CHECK(attn_dtype_size(ATTN_F32) == 4, "F32 size %zu", attn_dtype_size(ATTN_F32));
    CHECK(attn_dtype_size(ATTN_F16) == 2, "F16 size %zu", attn_dtype_size(ATTN_F16));
    CHECK(attn_dtype_size(ATTN_BF16) == 2, "BF16 size %zu", attn_dtype_size(ATTN_BF16));
    CHECK(attn_dtype_size(ATTN_U8) == 1, "U8 size %zu", attn_dtype_size(ATTN_U8));
    CHECK(attn_dtype_size(ATTN_Q8) == 0, "Q8 size %zu", attn_dtype_size(ATTN_Q8));
    CHECK(attn_dtype_size(ATTN_Q4) == 0, "Q4 size %zu", attn_dtype_size(ATTN_Q4));
    CHECK(attn_dtype_size((attn_dtype)77) == 0, "size of dtype 77 is %zu",
          attn_dtype_size((attn_dtype)77));
    CHECK(attn_dtype_size((attn_dtype)-1) == 0, "size of dtype -1 is %zu",
          attn_dtype_size((attn_dtype)-1));

    static const char *names[] = { "scalar", "avx2", "avx512", "neon" };
    for (int i = 0; i < 4; i++) {
        const char *s = attn_isa_name((attn_isa)i);
        CHECK(s && strcmp(s, names[i]) == 0, "attn_isa_name(%d) = \"%s\", expected \"%s\"", i,
              s ? s : "(null)", names[i]);
    }
    CHECK(attn_isa_name((attn_isa)42) != NULL, "attn_isa_name(42) is NULL");
    CHECK(attn_isa_name((attn_isa)-1) != NULL, "attn_isa_name(-1) is NULL");
}

static void test_cpu_features_string(void)
{
    const uint64_t f = ATTN_CPU_SSE2 | ATTN_CPU_AVX2 | ATTN_CPU_FMA | ATTN_CPU_ASIMD;
    char full[512];
    memset(full, 'x', sizeof full);
    size_t need = attn_cpu_features_string(f, full, sizeof full);
    CHECK(need == strlen(full), "returned %zu, wrote \"%s\" (%zu chars)", need, full,
          strlen(full));
    const char *words[] = { "sse2", "avx2", "fma", "asimd" };
    for (int i = 0; i < 4; i++) {
        /* whole space-separated words */
        int found = 0;
        char tmp[520];
        snprintf(tmp, sizeof tmp, " %s ", full);
        char w[32];
        snprintf(w, sizeof w, " %s ", words[i]);
        found = strstr(tmp, w) != NULL;
        CHECK(found, "\"%s\" lacks the word %s", full, words[i]);
    }
    CHECK(strstr(full, "avx512") == NULL, "\"%s\" names a bit that is not set", full);
    CHECK(strchr(full, ' ') != NULL && full[0] != ' ' && full[need - 1] != ' ' &&
          strstr(full, "  ") == NULL, "\"%s\" is not single-space separated", full);

    /* NULL buffer with n = 0: just the length */
    CHECK(attn_cpu_features_string(f, NULL, 0) == need, "NULL,0 returned a different length");
    /* n = 0 with a real buffer: nothing written */
    char one = '#';
    CHECK(attn_cpu_features_string(f, &one, 0) == need, "buf,0 returned a different length");
    CHECK(one == '#', "n = 0 wrote into the buffer");
    /* truncation: always NUL-terminated inside n, a prefix of the full string */
    for (size_t n = 1; n <= need + 1; n++) {
        char buf[512];
        memset(buf, '#', sizeof buf);
        size_t r = attn_cpu_features_string(f, buf, n);
        CHECK(r == need, "n=%zu returned %zu, expected %zu", n, r, need);
        size_t len = strnlen(buf, n);
        CHECK(len < n, "n=%zu: not NUL-terminated within n", n);
        CHECK(strncmp(buf, full, len) == 0, "n=%zu: \"%.*s\" is not a prefix of \"%s\"", n,
              (int)len, buf, full);
        CHECK(buf[n] == '#', "n=%zu: wrote past n", n);
        if (n == need + 1)
            CHECK(strcmp(buf, full) == 0, "n=need+1 gives \"%s\"", buf);
    }
    char e[8] = "zzz";
    CHECK(attn_cpu_features_string(0, e, sizeof e) == 0 && e[0] == '\0',
          "no features: \"%s\"", e);
    /* every defined bit has a name; all of them together */
    uint64_t every = 0;
    for (int b = 0; b <= 15; b++) every |= UINT64_C(1) << b;
    for (int b = 32; b <= 37; b++) every |= UINT64_C(1) << b;
    size_t all_len = attn_cpu_features_string(every, NULL, 0);
    char *big = malloc(all_len + 1);
    CHECK(attn_cpu_features_string(every, big, all_len + 1) == all_len && strlen(big) == all_len,
          "all features: length mismatch");
    int nwords = 1;
    for (size_t i = 0; i < all_len; i++) nwords += big[i] == ' ';
    CHECK(nwords == 22, "all 22 features give %d words: \"%s\"", nwords, big);
    free(big);
    /* undefined bits are ignored, no crash */
    char u[64];
    size_t ru = attn_cpu_features_string(UINT64_C(1) << 63 | ATTN_CPU_SSE2, u, sizeof u);
    CHECK(ru == strlen(u), "undefined bit: length %zu vs \"%s\"", ru, u);
}

/* ---- attn_last_error ------------------------------------------------------- */

typedef struct { char msg[512]; int empty_at_start; attn_status st; } thr_result;

static void *thread_fail(void *arg)
{
    thr_result *r = arg;
    r->empty_at_start = attn_last_error() && attn_last_error()[0] == '\0';
    attn_buffer *b = NULL;
    r->st = attn_buffer_create(NULL, 0, 16, &b);   /* fails: ctx NULL */
    snprintf(r->msg, sizeof r->msg, "%s", attn_last_error());
    return NULL;
}

static void *thread_look(void *arg)
{
    thr_result *r = arg;
    r->empty_at_start = attn_last_error() && attn_last_error()[0] == '\0';
    snprintf(r->msg, sizeof r->msg, "%s", attn_last_error());
    return NULL;
}

static void test_last_error(attn_context *ctx)
{
    attn_buffer *b = NULL;
    CHECK_ST(attn_buffer_create(ctx, 0, 64, &b), ATTN_OK);
    CHECK(attn_last_error() && attn_last_error()[0] == '\0', "not empty after success: \"%s\"",
          attn_last_error());
    CHECK_FAIL(attn_buffer_write(b, 60, "12345678", 8), INV, NULL);
    char mine[512];
    snprintf(mine, sizeof mine, "%s", attn_last_error());
    CHECK(mine[0] != '\0', "empty after a failure");

    /* ATTN_TEST_NO_THREADS: set by the qemu-aarch64 stage, where any program
     * that starts a thread hangs (qemu 7.2 there); checked natively. */
    const char *nothreads = getenv("ATTN_TEST_NO_THREADS");
    if (nothreads && *nothreads && strcmp(nothreads, "0") != 0) {
        printf("thread-local error checks skipped (ATTN_TEST_NO_THREADS)\n");
    } else {
        /* another thread: starts empty, does not see this thread's error */
        thr_result r;
        memset(&r, 0, sizeof r);
        pthread_t t;
        pthread_create(&t, NULL, thread_look, &r);
        pthread_join(t, NULL);
        CHECK(r.empty_at_start, "a new thread sees \"%s\"", r.msg);

        /* a failure on another thread does not change this thread's message */
        memset(&r, 0, sizeof r);
        pthread_create(&t, NULL, thread_fail, &r);
        pthread_join(t, NULL);
        CHECK(r.st == INV && r.msg[0], "thread failure not reported (%d, \"%s\")", (int)r.st, r.msg);
        CHECK(strcmp(attn_last_error(), mine) == 0, "this thread's message changed to \"%s\"",
              attn_last_error());
        CHECK(strcmp(r.msg, mine) != 0, "both threads report the same message");
    }

    /* success clears it again (every call, not just the failing kind) */
    char tmp[8];
    CHECK_ST(attn_buffer_read(b, 0, tmp, 8), ATTN_OK);
    CHECK(attn_last_error()[0] == '\0', "not cleared by a successful read: \"%s\"",
          attn_last_error());
    CHECK_FAIL(attn_buffer_read(b, 0, NULL, 8), INV, NULL);
    attn_context *c2 = NULL;
    CHECK_ST(attn_context_create(NULL, &c2), ATTN_OK);
    CHECK(attn_last_error()[0] == '\0', "not cleared by attn_context_create: \"%s\"",
          attn_last_error());
    attn_context_destroy(c2);
    CHECK_FAIL(attn_buffer_read(b, 0, NULL, 8), INV, NULL);
    attn_device_info info = ATTN_DEVICE_INFO_INIT;
    CHECK_ST(attn_device_get_info(ctx, 0, &info), ATTN_OK);
    CHECK(attn_last_error()[0] == '\0', "not cleared by attn_device_get_info: \"%s\"",
          attn_last_error());
    attn_buffer_destroy(b);
}

/* ---- contexts, options, environment ------------------------------------------ */

static attn_isa ctx_isa(attn_context *c, attn_isa *best)
{
    attn_device_info info = ATTN_DEVICE_INFO_INIT;
    attn_status s = attn_device_get_info(c, 0, &info);
    CHECK(s == ATTN_OK, "get_info failed");
    if (best)
        *best = info.best_isa;
    return info.isa;
}

static void test_context(void)
{
    attn_context *c = NULL;
    unsetenv("ATTN_ISA");
    unsetenv("ATTN_DEVICE");
    CHECK_FAIL(attn_context_create(NULL, NULL), INV, NULL);

    CHECK_ST(attn_context_create(NULL, &c), ATTN_OK);
    CHECK(c != NULL, "NULL context");
    attn_isa best;
    attn_isa isa = ctx_isa(c, &best);
    /* a build without some kernel sets may run a lesser one than the machine has */
    CHECK(isa == best || isa < best, "default context uses %s, best is %s",
          attn_isa_name(isa), attn_isa_name(best));
    const attn_isa dflt = isa;
    CHECK(attn_context_device(c) == 0, "default device %d", attn_context_device(c));
    attn_context_destroy(c);
    attn_context_destroy(NULL);   /* no-op */

    attn_options o = ATTN_OPTIONS_INIT;
    o.num_threads = 1;
    o.max_isa = ATTN_ISA_SCALAR;
    c = NULL;
    CHECK_ST(attn_context_create(&o, &c), ATTN_OK);
    if (c) {
        attn_device_info info = ATTN_DEVICE_INFO_INIT;
        CHECK_ST(attn_device_get_info(c, 0, &info), ATTN_OK);
        CHECK(info.isa == ATTN_ISA_SCALAR, "max_isa scalar gives %s", attn_isa_name(info.isa));
        CHECK(info.compute_units == 1, "num_threads 1 gives compute_units %d", info.compute_units);
        attn_context_destroy(c);
    }
    o.num_threads = 3;
    o.max_isa = (int)best;
    c = NULL;
    CHECK_ST(attn_context_create(&o, &c), ATTN_OK);
    if (c) {
        attn_device_info info = ATTN_DEVICE_INFO_INIT;
        CHECK_ST(attn_device_get_info(c, 0, &info), ATTN_OK);
        CHECK(info.isa == dflt, "max_isa = best gives %s, default %s", attn_isa_name(info.isa),
              attn_isa_name(dflt));
#ifdef HAVE_OPENMP
        CHECK(info.compute_units == 3, "num_threads 3 gives compute_units %d", info.compute_units);
#else
        CHECK(info.compute_units == 1, "without OpenMP, num_threads 3 gives compute_units %d",
              info.compute_units);
#endif
        attn_context_destroy(c);
    }
    o.num_threads = 0;
    o.max_isa = -1;
    o.device = 0;
    c = NULL;
    CHECK_ST(attn_context_create(&o, &c), ATTN_OK);
    attn_context_destroy(c);

    /* bad options */
    struct { attn_options o; char pad[32]; } big;
    memset(&big, 0, sizeof big);
    attn_options def = ATTN_OPTIONS_INIT;
    big.o = def;
    big.o.size = 0;
    c = (attn_context *)&big;   /* must be set to NULL or left alone, never used */
    CHECK_FAIL(attn_context_create(&big.o, &c), INV, "size");
    big.o.size = sizeof(attn_options) + 8;
    CHECK_FAIL(attn_context_create(&big.o, &c), INV, "size");
    o = def; o.num_threads = -1;
    CHECK_FAIL(attn_context_create(&o, &c), INV, "num_threads");
    o = def; o.max_isa = 99;
    CHECK_FAIL(attn_context_create(&o, &c), INV, "max_isa");
    o = def; o.max_isa = -2;
    CHECK_FAIL(attn_context_create(&o, &c), INV, "max_isa");
    o = def; o.device = 99;
    CHECK_FAIL(attn_context_create(&o, &c), INV, "device");

    /* ATTN_ISA environment */
    setenv("ATTN_ISA", "scalar", 1);
    c = NULL;
    CHECK_ST(attn_context_create(NULL, &c), ATTN_OK);
    if (c) {
        CHECK(ctx_isa(c, NULL) == ATTN_ISA_SCALAR, "ATTN_ISA=scalar gives %s",
              attn_isa_name(ctx_isa(c, NULL)));
        attn_context_destroy(c);
    }
    setenv("ATTN_ISA", attn_isa_name(best), 1);
    c = NULL;
    CHECK_ST(attn_context_create(NULL, &c), ATTN_OK);
    if (c) {
        CHECK(ctx_isa(c, NULL) == dflt, "ATTN_ISA=%s gives %s, default %s",
              attn_isa_name(best), attn_isa_name(ctx_isa(c, NULL)), attn_isa_name(dflt));
        attn_context_destroy(c);
    }
    /* an unknown value is an error (the header lists the accepted names) */
    setenv("ATTN_ISA", "sse9000", 1);
    c = NULL;
    CHECK_FAIL(attn_context_create(NULL, &c), INV, "ATTN_ISA");
    CHECK(c == NULL, "context set on failure");
    /* opts->max_isa other than -1 takes precedence over the environment */
    o = def; o.max_isa = ATTN_ISA_SCALAR;
    c = NULL;
    CHECK_ST(attn_context_create(&o, &c), ATTN_OK);
    if (c) {
        CHECK(ctx_isa(c, NULL) == ATTN_ISA_SCALAR, "max_isa overridden by env");
        attn_context_destroy(c);
    }
    unsetenv("ATTN_ISA");

    /* ATTN_CPU_DISABLE: known names mask features, an unknown one is an error */
    setenv("ATTN_CPU_DISABLE", "avx2, avx512f,asimd", 1);
    c = NULL;
    CHECK_ST(attn_context_create(NULL, &c), ATTN_OK);
    if (c) {
        attn_device_info di = ATTN_DEVICE_INFO_INIT;
        CHECK_ST(attn_device_get_info(c, 0, &di), ATTN_OK);
        CHECK(!(di.cpu_features & (ATTN_CPU_AVX2 | ATTN_CPU_AVX512F | ATTN_CPU_ASIMD)),
              "ATTN_CPU_DISABLE left features 0x%llx", (unsigned long long)di.cpu_features);
        CHECK(di.isa == ATTN_ISA_SCALAR, "without avx2/avx512f/asimd the isa is %s",
              attn_isa_name(di.isa));
        attn_context_destroy(c);
    }
    setenv("ATTN_CPU_DISABLE", "avx2,warp_drive", 1);
    c = NULL;
    CHECK_FAIL(attn_context_create(NULL, &c), INV, "ATTN_CPU_DISABLE");
    CHECK(c == NULL, "context set on failure");
    unsetenv("ATTN_CPU_DISABLE");

    /* ATTN_DEVICE environment */
    setenv("ATTN_DEVICE", "cpu", 1);
    c = NULL;
    CHECK_ST(attn_context_create(NULL, &c), ATTN_OK);
    if (c) {
        CHECK(attn_context_device(c) == 0, "ATTN_DEVICE=cpu gives device %d",
              attn_context_device(c));
        attn_context_destroy(c);
    }
    setenv("ATTN_DEVICE", "gpu-of-dreams", 1);
    c = NULL;
    attn_status s = attn_context_create(NULL, &c);
    CHECK(s != ATTN_OK && attn_last_error()[0] && strstr(attn_last_error(), "ATTN_DEVICE"),
          "ATTN_DEVICE=gpu-of-dreams: status %d", (int)s);
    if (s == ATTN_OK)
        attn_context_destroy(c);
    unsetenv("ATTN_DEVICE");
}

static void test_devices(attn_context *ctx)
{
    int n = attn_device_count(ctx);
    CHECK(n >= 1, "device count %d", n);
    CHECK(attn_device_count(NULL) == 0, "device count of NULL");
    attn_device_info info = ATTN_DEVICE_INFO_INIT;
    CHECK_ST(attn_device_get_info(ctx, 0, &info), ATTN_OK);
    CHECK(info.type == ATTN_DEVICE_CPU, "device 0 has type %d", (int)info.type);
    CHECK(info.size == sizeof info, "size field changed to %zu", info.size);
    CHECK(memchr(info.name, 0, sizeof info.name) && memchr(info.vendor, 0, sizeof info.vendor) &&
          memchr(info.driver, 0, sizeof info.driver), "strings not NUL-terminated");
    CHECK(info.compute_units >= 1, "compute_units %d", info.compute_units);
    CHECK(info.isa <= info.best_isa || info.best_isa == ATTN_ISA_SCALAR,
          "isa %d above best %d", (int)info.isa, (int)info.best_isa);
#if defined(__x86_64__)
    CHECK(info.cpu_features & ATTN_CPU_SSE2, "x86-64 without SSE2?");
    if (info.best_isa >= ATTN_ISA_AVX2 && info.best_isa <= ATTN_ISA_AVX512)
        CHECK((info.cpu_features & (ATTN_CPU_AVX2 | ATTN_CPU_FMA)) ==
              (ATTN_CPU_AVX2 | ATTN_CPU_FMA), "best isa avx2+ without avx2/fma bits");
#endif
#if defined(__aarch64__)
    CHECK(info.cpu_features & ATTN_CPU_ASIMD, "aarch64 without ASIMD?");
#endif
    for (int d = 0; d < n; d++) {
        attn_device_info di = ATTN_DEVICE_INFO_INIT;
        CHECK_ST(attn_device_get_info(ctx, d, &di), ATTN_OK);
        CHECK(di.size == sizeof di, "device %d: size field changed", d);
    }
    CHECK_FAIL(attn_device_get_info(ctx, -1, &info), INV, "device");
    CHECK_FAIL(attn_device_get_info(ctx, n, &info), INV, "device");
    CHECK_FAIL(attn_device_get_info(ctx, 1000000, &info), INV, "device");
    CHECK_FAIL(attn_device_get_info(ctx, 0, NULL), INV, "info");
    CHECK_FAIL(attn_device_get_info(NULL, 0, &info), INV, "ctx");

    /* bad size fields; a struct with room to spare catches overruns */
    struct { attn_device_info i; unsigned char pad[64]; } big;
    memset(&big, 0x5a, sizeof big);
    big.i.size = 0;
    CHECK_FAIL(attn_device_get_info(ctx, 0, &big.i), INV, "size");
    big.i.size = sizeof(attn_device_info) + 16;
    CHECK_FAIL(attn_device_get_info(ctx, 0, &big.i), INV, "size");
    /* an older, smaller struct: only `size` bytes may be written */
    memset(&big, 0x5a, sizeof big);
    size_t small = offsetof(attn_device_info, vendor);
    big.i.size = small;
    CHECK_ST(attn_device_get_info(ctx, 0, &big.i), ATTN_OK);
    const unsigned char *raw = (const unsigned char *)&big;
    int over = 0;
    for (size_t i = small; i < sizeof big; i++)
        over |= raw[i] != 0x5a;
    CHECK(!over, "get_info wrote past info->size = %zu", small);
    CHECK(big.i.type == ATTN_DEVICE_CPU && big.i.size == small, "small struct not filled");
}

/* ---- buffers ------------------------------------------------------------------ */

static void test_buffers(attn_context *ctx)
{
    attn_buffer *b = NULL;
    CHECK_FAIL(attn_buffer_create(ctx, 0, 0, &b), INV, "bytes");   /* 0 bytes: invalid */
    CHECK(b == NULL, "out set on failure");
    CHECK_FAIL(attn_buffer_create(NULL, 0, 16, &b), INV, "ctx");
    CHECK_FAIL(attn_buffer_create(ctx, 0, 16, NULL), INV, "out");
    CHECK_FAIL(attn_buffer_create(ctx, -1, 16, &b), INV, "device");
    CHECK_FAIL(attn_buffer_create(ctx, attn_device_count(ctx), 16, &b), INV, "device");
    /* absurd sizes fail cleanly */
    CHECK_FAIL(attn_buffer_create(ctx, 0, SIZE_MAX, &b), ATTN_ERR_OUT_OF_MEMORY, NULL);
    CHECK(b == NULL, "out set on OOM");
    CHECK_FAIL(attn_buffer_create(ctx, 0, SIZE_MAX - 60, &b), ATTN_ERR_OUT_OF_MEMORY, NULL);
    CHECK_FAIL(attn_buffer_create(ctx, 0, SIZE_MAX / 2, &b), ATTN_ERR_OUT_OF_MEMORY, NULL);

    const size_t N = 1000;
    CHECK_ST(attn_buffer_create(ctx, 0, N, &b), ATTN_OK);
    if (!b)
        return;
    CHECK(attn_buffer_size(b) == N, "size %zu", attn_buffer_size(b));
    CHECK(attn_buffer_device(b) == 0, "device %d", attn_buffer_device(b));
    unsigned char *h = attn_buffer_host_ptr(b);
    CHECK(h != NULL, "CPU buffer without host pointer");
    CHECK(((uintptr_t)h & 63) == 0, "host pointer %p not 64-byte aligned", (void *)h);
    CHECK(attn_buffer_size(NULL) == 0, "size(NULL)");
    CHECK(attn_buffer_device(NULL) == -1, "device(NULL)");
    CHECK(attn_buffer_host_ptr(NULL) == NULL, "host_ptr(NULL)");
    attn_buffer_destroy(NULL);

    unsigned char src[1000], dst[1000];
    for (size_t i = 0; i < N; i++)
        src[i] = (unsigned char)(i * 7 + 3);
    CHECK_ST(attn_buffer_write(b, 0, src, N), ATTN_OK);
    memset(dst, 0, N);
    CHECK_ST(attn_buffer_read(b, 0, dst, N), ATTN_OK);
    CHECK(memcmp(src, dst, N) == 0, "full round trip differs");
    CHECK(h && memcmp(h, src, N) == 0, "host pointer does not show written data");
    CHECK_ST(attn_buffer_write(b, 100, "hello", 5), ATTN_OK);
    memset(dst, 0, 16);
    CHECK_ST(attn_buffer_read(b, 99, dst, 7), ATTN_OK);
    CHECK(dst[0] == src[99] && memcmp(dst + 1, "hello", 5) == 0 && dst[6] == src[105],
          "partial round trip differs");
    CHECK_ST(attn_buffer_write(b, N - 1, "Z", 1), ATTN_OK);      /* last byte */
    CHECK_ST(attn_buffer_read(b, N - 1, dst, 1), ATTN_OK);
    CHECK(dst[0] == 'Z', "last byte");

    /* out of bounds, with the buffer and the destination untouched */
    unsigned char before[1000];
    memcpy(before, h, N);
    const struct { size_t off, n; } bad[] = {
        { N, 1 }, { N - 1, 2 }, { 0, N + 1 }, { N + 1, 0 }, { SIZE_MAX, 2 },
        { 2, SIZE_MAX }, { SIZE_MAX - 5, 10 }, { N / 2, SIZE_MAX - N / 2 + 1 },
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        unsigned char *big = calloc(1, 4096);
        attn_status s = attn_buffer_write(b, bad[i].off, big, bad[i].n);
        CHECK(s == INV && attn_last_error()[0], "write off=%zu n=%zu gave %d", bad[i].off,
              bad[i].n, (int)s);
        memset(big, 0xee, 4096);
        s = attn_buffer_read(b, bad[i].off, big, bad[i].n);
        CHECK(s == INV && attn_last_error()[0], "read off=%zu n=%zu gave %d", bad[i].off,
              bad[i].n, (int)s);
        int touched = 0;
        for (int j = 0; j < 4096; j++)
            touched |= big[j] != 0xee;
        CHECK(!touched, "failed read off=%zu n=%zu wrote to dst", bad[i].off, bad[i].n);
        free(big);
    }
    CHECK(memcmp(before, h, N) == 0, "failed writes changed the buffer");
    CHECK_FAIL(attn_buffer_write(b, 0, NULL, 4), INV, NULL);
    CHECK_FAIL(attn_buffer_read(b, 0, NULL, 4), INV, NULL);
    CHECK_FAIL(attn_buffer_write(NULL, 0, src, 4), INV, "buffer");
    CHECK_FAIL(attn_buffer_read(NULL, 0, dst, 4), INV, "buffer");
    /* empty ranges inside the buffer are fine */
    CHECK_ST(attn_buffer_write(b, 10, src, 0), ATTN_OK);
    CHECK_ST(attn_buffer_read(b, N, dst, 0), ATTN_OK);
    attn_buffer_destroy(b);
}

/* attn_buffer_copy within and between buffers of device dev (every device
 * of the context: the CPU, and PoCL / lavapipe where present). */
static void buffer_copy_on(attn_context *ctx, int dev)
{
    attn_buffer *a = NULL, *b = NULL;
    CHECK_ST(attn_buffer_create(ctx, dev, 256, &a), ATTN_OK);
    CHECK_ST(attn_buffer_create(ctx, dev, 128, &b), ATTN_OK);
    if (!a || !b) {
        attn_buffer_destroy(a);
        attn_buffer_destroy(b);
        return;
    }
    unsigned char src[256], dst[256];
    for (int i = 0; i < 256; i++)
        src[i] = (unsigned char)(i * 5 + 1);
    CHECK_ST(attn_buffer_write(a, 0, src, 256), ATTN_OK);
    CHECK_ST(attn_buffer_copy(b, 8, a, 100, 120), ATTN_OK);
    CHECK_ST(attn_buffer_read(b, 8, dst, 120), ATTN_OK);
    CHECK(memcmp(dst, src + 100, 120) == 0, "copy between buffers differs");
    CHECK_ST(attn_buffer_copy(a, 0, a, 128, 128), ATTN_OK);        /* disjoint halves of one buffer */
    CHECK_ST(attn_buffer_read(a, 0, dst, 128), ATTN_OK);
    CHECK(memcmp(dst, src + 128, 128) == 0, "copy within a buffer differs");
    CHECK_ST(attn_buffer_copy(a, 5, b, 0, 0), ATTN_OK);            /* empty */
    attn_buffer_destroy(a);
    attn_buffer_destroy(b);
}

/* attn_buffer_copy: copies on every device; every rule refused. */
static void test_buffer_copy(attn_context *ctx)
{
    for (int dev = 0; dev < attn_device_count(ctx); dev++)
        buffer_copy_on(ctx, dev);
    attn_buffer *a = NULL, *b = NULL, *other = NULL;
    CHECK_ST(attn_buffer_create(ctx, 0, 256, &a), ATTN_OK);
    CHECK_ST(attn_buffer_create(ctx, 0, 128, &b), ATTN_OK);
    if (!a || !b) {
        attn_buffer_destroy(a);
        attn_buffer_destroy(b);
        return;
    }
    CHECK_FAIL(attn_buffer_copy(a, 10, a, 0, 11), INV, "overlap");
    CHECK_FAIL(attn_buffer_copy(b, 0, a, 0, 129), INV, "outside");
    CHECK_FAIL(attn_buffer_copy(b, 0, a, 250, 7), INV, "outside");
    CHECK_FAIL(attn_buffer_copy(b, SIZE_MAX, a, 0, 2), INV, "outside");
    CHECK_FAIL(attn_buffer_copy(NULL, 0, a, 0, 4), INV, "NULL");
    CHECK_FAIL(attn_buffer_copy(b, 0, NULL, 0, 4), INV, "NULL");
    if (attn_device_count(ctx) > 1 && attn_buffer_create(ctx, 1, 64, &other) == ATTN_OK)
        CHECK_FAIL(attn_buffer_copy(other, 0, a, 0, 4), INV, "device");
    attn_buffer_destroy(other);
    attn_buffer_destroy(a);
    attn_buffer_destroy(b);
}

/* ---- attn_sdpa on buffer-backed tensors --------------------------------------- */

static void fill(float *x, size_t n, unsigned *seed)
{
    for (size_t i = 0; i < n; i++) {
        *seed = *seed * 1664525u + 1013904223u;
        x[i] = (float)((*seed >> 9) & 0x3fff) / 8192.0f - 1.0f;
    }
}

static void test_sdpa_buffers(attn_context *ctx)
{
    const int64_t B = 2, Sq = 9, Sk = 13, Hq = 4, Hkv = 2, D = 16, Dv = 8;
    const size_t nq = B * Sq * Hq * D, nk = B * Sk * Hkv * D, nv = B * Sk * Hkv * Dv,
                 no = B * Sq * Hq * Dv, nl = B * Hq * Sq;
    unsigned seed = 99;
    float *q = malloc(nq * 4), *k = malloc(nk * 4), *v = malloc(nv * 4);
    float *o_host = malloc(no * 4), *l_host = malloc(nl * 4);
    float *o_buf = malloc(no * 4), *l_buf = malloc(nl * 4);
    fill(q, nq, &seed); fill(k, nk, &seed); fill(v, nv, &seed);

    for (int variant = 0; variant < 4; variant++) {
        attn_sdpa_params p = ATTN_SDPA_PARAMS_INIT;
        p.causal = variant & 1;
        if (variant & 2) { p.window_left = 3; p.softcap = 5.0f; }

        /* host pointers */
        attn_tensor tq = attn_tensor_4d(q, ATTN_F32, B, Sq, Hq, D);
        attn_tensor tk = attn_tensor_4d(k, ATTN_F32, B, Sk, Hkv, D);
        attn_tensor tv = attn_tensor_4d(v, ATTN_F32, B, Sk, Hkv, Dv);
        attn_tensor to = attn_tensor_4d(o_host, ATTN_F32, B, Sq, Hq, Dv);
        attn_tensor tl = { 0 };
        tl.data = l_host; tl.dtype = ATTN_F32; tl.ndim = 3;
        tl.shape[0] = B; tl.shape[1] = Hq; tl.shape[2] = Sq;
        CHECK_ST(attn_sdpa(ctx, &p, &tq, &tk, &tv, &to, &tl), ATTN_OK);

        /* q, k, v packed into one buffer at offsets; out and lse in another */
        const size_t oq = 64, ok = oq + nq * 4 + 128, ov = ok + nk * 4 + 4;
        const size_t in_bytes = ov + nv * 4 + 12;
        const size_t oo = 256, ol = oo + no * 4 + 8, out_bytes = ol + nl * 4 + 40;
        attn_buffer *bin = NULL, *bout = NULL;
        CHECK_ST(attn_buffer_create(ctx, 0, in_bytes, &bin), ATTN_OK);
        CHECK_ST(attn_buffer_create(ctx, 0, out_bytes, &bout), ATTN_OK);
        if (!bin || !bout)
            break;
        CHECK_ST(attn_buffer_write(bin, oq, q, nq * 4), ATTN_OK);
        CHECK_ST(attn_buffer_write(bin, ok, k, nk * 4), ATTN_OK);
        CHECK_ST(attn_buffer_write(bin, ov, v, nv * 4), ATTN_OK);
        unsigned char *hout = attn_buffer_host_ptr(bout);
        memset(hout, 0x77, out_bytes);
        attn_tensor bq = tq, bk = tk, bv = tv, bo = to, bl = tl;
        bq.data = bk.data = bv.data = bo.data = bl.data = NULL;
        bq.buffer = bk.buffer = bv.buffer = bin;
        bo.buffer = bl.buffer = bout;
        bq.offset = oq; bk.offset = ok; bv.offset = ov; bo.offset = oo; bl.offset = ol;
        CHECK_ST(attn_sdpa(ctx, &p, &bq, &bk, &bv, &bo, &bl), ATTN_OK);
        CHECK_ST(attn_buffer_read(bout, oo, o_buf, no * 4), ATTN_OK);
        CHECK_ST(attn_buffer_read(bout, ol, l_buf, nl * 4), ATTN_OK);
        CHECK(memcmp(o_buf, o_host, no * 4) == 0, "variant %d: buffer out != host out", variant);
        CHECK(memcmp(l_buf, l_host, nl * 4) == 0, "variant %d: buffer lse != host lse", variant);
        int spill = 0;
        for (size_t i = 0; i < oo; i++) spill |= hout[i] != 0x77;
        for (size_t i = oo + no * 4; i < ol; i++) spill |= hout[i] != 0x77;
        for (size_t i = ol + nl * 4; i < out_bytes; i++) spill |= hout[i] != 0x77;
        CHECK(!spill, "variant %d: bytes outside out/lse in the buffer changed", variant);

        /* a strided view into a buffer: k stored [B, Hkv, Sk, D] */
        float *kt = malloc(nk * 4);
        for (int64_t b = 0; b < B; b++)
            for (int64_t s = 0; s < Sk; s++)
                for (int64_t h = 0; h < Hkv; h++)
                    memcpy(kt + ((b * Hkv + h) * Sk + s) * D, k + ((b * Sk + s) * Hkv + h) * D,
                           D * 4);
        attn_buffer *bk2 = NULL;
        CHECK_ST(attn_buffer_create(ctx, 0, nk * 4 + 32, &bk2), ATTN_OK);
        CHECK_ST(attn_buffer_write(bk2, 32, kt, nk * 4), ATTN_OK);
        attn_tensor sk = tk;
        sk.data = NULL; sk.buffer = bk2; sk.offset = 32;
        sk.stride[0] = Hkv * Sk * D; sk.stride[1] = D; sk.stride[2] = Sk * D; sk.stride[3] = 1;
        memset(o_buf, 0, no * 4);
        attn_tensor to2 = attn_tensor_4d(o_buf, ATTN_F32, B, Sq, Hq, Dv);
        CHECK_ST(attn_sdpa(ctx, &p, &tq, &sk, &tv, &to2, NULL), ATTN_OK);
        CHECK(memcmp(o_buf, o_host, no * 4) == 0, "variant %d: strided buffer k differs",
              variant);
        free(kt);
        attn_buffer_destroy(bk2);
        attn_buffer_destroy(bin);
        attn_buffer_destroy(bout);
    }
    free(q); free(k); free(v); free(o_host); free(l_host); free(o_buf); free(l_buf);
}

static void test_tensor_4d(void)
{
    int x;
    attn_tensor t = attn_tensor_4d(&x, ATTN_BF16, 1, 2, 3, 4);
    CHECK(t.data == &x && t.buffer == NULL && t.offset == 0 && t.dtype == ATTN_BF16 &&
          t.ndim == 4 && t.shape[0] == 1 && t.shape[1] == 2 && t.shape[2] == 3 &&
          t.shape[3] == 4 && t.stride[0] == 0 && t.stride[1] == 0 && t.stride[2] == 0 &&
          t.stride[3] == 0, "attn_tensor_4d fields");
}

int main(void)
{
    setvbuf(stdout, NULL, _IOLBF, 0);   /* keep output if a sanitizer aborts */
    test_version();
    test_status_strings();
    test_dtype_and_isa();
    test_cpu_features_string();
    test_tensor_4d();
    test_context();
    attn_context *ctx = NULL;
    if (attn_context_create(NULL, &ctx) != ATTN_OK) {
        printf("FAIL: attn_context_create: %s\n", attn_last_error());
        return 1;
    }
    test_last_error(ctx);
    test_devices(ctx);
    test_buffers(ctx);
    test_buffer_copy(ctx);
    test_sdpa_buffers(ctx);
    attn_context_destroy(ctx);
    printf("test_api: %d checks passed, %d failed\n", g_pass, g_fail);
    return g_fail ? 1 : 0;
}
