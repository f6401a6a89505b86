/* CPU feature probing. Instruction support is not enough: AVX and AVX-512
 * also need the OS to save their registers on context switch, which XCR0
 * (read with xgetbv) reports. */
#include <stdio.h>
#include <string.h>
#include "cpu_features.h"

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>

static uint64_t xgetbv0(void)
{
    uint32_t lo, hi;
    __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    return ((uint64_t)hi << 32) | lo;
}

uint64_t attn_cpu_probe(void)
{
    unsigned a, b, c, d;
    uint64_t f = 0;
    if (!__get_cpuid(1, &a, &b, &c, &d))
        return 0;
    if (d & (1u << 26)) f |= ATTN_CPU_SSE2;
    const int osxsave = (c >> 27) & 1, avx = (c >> 28) & 1;
    const int fma = (c >> 12) & 1, f16c = (c >> 29) & 1;
    uint64_t xcr0 = osxsave ? xgetbv0() : 0;
    const int ymm_ok = (xcr0 & 0x6) == 0x6;            /* SSE + AVX state */
    const int zmm_ok = ymm_ok && (xcr0 & 0xe0) == 0xe0; /* opmask, ZMM_Hi256, Hi16_ZMM */
    const int amx_ok = (xcr0 & 0x60000) == 0x60000;     /* XTILECFG + XTILEDATA */
    if (!ymm_ok)
        return f;
    if (avx) f |= ATTN_CPU_AVX;
    if (avx && fma) f |= ATTN_CPU_FMA;
    if (avx && f16c) f |= ATTN_CPU_F16C;
    if (__get_cpuid_max(0, NULL) < 7)
        return f;
    __cpuid_count(7, 0, a, b, c, d);
    if (avx && (b & (1u << 5))) f |= ATTN_CPU_AVX2;
    if (zmm_ok) {
        if (b & (1u << 16)) f |= ATTN_CPU_AVX512F;
        if (b & (1u << 17)) f |= ATTN_CPU_AVX512DQ;
        if (b & (1u << 30)) f |= ATTN_CPU_AVX512BW;
        if (b & (1u << 31)) f |= ATTN_CPU_AVX512VL;
        if (c & (1u << 11)) f |= ATTN_CPU_AVX512_VNNI;
        if (d & (1u << 23)) f |= ATTN_CPU_AVX512_FP16;
    }
    if (amx_ok) {
        if (d & (1u << 24)) f |= ATTN_CPU_AMX_TILE;
        if (d & (1u << 22)) f |= ATTN_CPU_AMX_BF16;
        if (d & (1u << 25)) f |= ATTN_CPU_AMX_INT8;
    }
    unsigned max7 = a;
    if (max7 >= 1) {
        __cpuid_count(7, 1, a, b, c, d);
        if (zmm_ok && (a & (1u << 5))) f |= ATTN_CPU_AVX512_BF16;
        if (amx_ok && (a & (1u << 21))) f |= ATTN_CPU_AMX_FP16;
    }
    return f;
}

#if defined(__linux__)
#include <pthread.h>
#include <sys/syscall.h>
#include <unistd.h>

/* Linux >= 5.16 keeps AMX tile data off until the process asks for it
 * (arch/x86/include/uapi/asm/prctl.h; the permission covers every thread). */
#define ARCH_REQ_XCOMP_PERM 0x1023
#define XFEATURE_XTILEDATA  18

static pthread_once_t amx_once = PTHREAD_ONCE_INIT;
static int amx_granted;

static void amx_request(void)
{
    amx_granted = syscall(SYS_arch_prctl, ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA) == 0;
}

int attn_cpu_amx_permit(void)
{
    pthread_once(&amx_once, amx_request);
    return amx_granted;
}
#else
/* Elsewhere the OS's permission protocol is not known: no AMX. */
int attn_cpu_amx_permit(void) { return 0; }
#endif

void attn_cpu_name(char *buf, size_t n, char *vendor, size_t vn)
{
    unsigned r[12];
    char brand[49] = { 0 }, ven[13] = { 0 };
    unsigned a, b, c, d;
    if (__get_cpuid(0, &a, &b, &c, &d)) {
        memcpy(ven, &b, 4); memcpy(ven + 4, &d, 4); memcpy(ven + 8, &c, 4);
    }
    if (__get_cpuid_max(0x80000000u, NULL) >= 0x80000004u) {
        for (unsigned i = 0; i < 3; i++)
            __get_cpuid(0x80000002u + i, &r[4 * i], &r[4 * i + 1], &r[4 * i + 2], &r[4 * i + 3]);
        memcpy(brand, r, 48);
    }
    const char *s = brand;
    while (*s == ' ')
        s++;
    snprintf(buf, n, "%s", *s ? s : "x86-64 CPU");
    snprintf(vendor, vn, "%s", ven[0] ? ven : "unknown");
}

#elif defined(__aarch64__) && defined(__linux__)
#include <sys/auxv.h>

/* Bit numbers from the kernel's uapi asm/hwcap.h (stable ABI). */
#define HWCAP_ASIMD_BIT    (1ul << 1)
#define HWCAP_FPHP_BIT     (1ul << 9)
#define HWCAP_ASIMDHP_BIT  (1ul << 10)
#define HWCAP_ASIMDDP_BIT  (1ul << 20)
#define HWCAP_SVE_BIT      (1ul << 22)
#define HWCAP2_I8MM_BIT    (1ul << 13)
#define HWCAP2_BF16_BIT    (1ul << 14)

uint64_t attn_cpu_probe(void)
{
    unsigned long h = getauxval(AT_HWCAP), h2 = getauxval(AT_HWCAP2);
    uint64_t f = 0;
    if (h & HWCAP_ASIMD_BIT)   f |= ATTN_CPU_ASIMD;
    if (h & HWCAP_ASIMDHP_BIT) f |= ATTN_CPU_ASIMDHP;
    if (h & HWCAP_ASIMDDP_BIT) f |= ATTN_CPU_ASIMDDP;
    if (h & HWCAP_SVE_BIT)     f |= ATTN_CPU_SVE;
    if (h2 & HWCAP2_I8MM_BIT)  f |= ATTN_CPU_I8MM;
    if (h2 & HWCAP2_BF16_BIT)  f |= ATTN_CPU_BF16;
    return f;
}

int attn_cpu_amx_permit(void) { return 0; }

void attn_cpu_name(char *buf, size_t n, char *vendor, size_t vn)
{
    snprintf(buf, n, "aarch64 CPU");
    snprintf(vendor, vn, "arm");
    FILE *fp = fopen("/proc/cpuinfo", "r");
    if (!fp)
        return;
    char line[256];
    while (fgets(line, sizeof line, fp)) {
        unsigned impl;
        if (sscanf(line, "CPU implementer : %x", &impl) == 1) {
            snprintf(vendor, vn, "arm implementer 0x%02x", impl);
            break;
        }
    }
    fclose(fp);
}

#else

uint64_t attn_cpu_probe(void) { return 0; }

int attn_cpu_amx_permit(void) { return 0; }

void attn_cpu_name(char *buf, size_t n, char *vendor, size_t vn)
{
    snprintf(buf, n, "generic CPU");
    snprintf(vendor, vn, "unknown");
}

#endif

attn_isa attn_cpu_best_isa(uint64_t f)
{
    const uint64_t avx512 = ATTN_CPU_AVX512F | ATTN_CPU_AVX512BW | ATTN_CPU_AVX512VL |
                            ATTN_CPU_AVX512DQ | ATTN_CPU_FMA | ATTN_CPU_F16C;
    const uint64_t avx2 = ATTN_CPU_AVX2 | ATTN_CPU_FMA | ATTN_CPU_F16C;
    if ((f & avx512) == avx512) return ATTN_ISA_AVX512;
    if ((f & avx2) == avx2)     return ATTN_ISA_AVX2;
    if (f & ATTN_CPU_ASIMD)     return ATTN_ISA_NEON;
    return ATTN_ISA_SCALAR;
}
