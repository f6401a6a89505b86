/* Version, status names and small enum helpers. */
#include <stdio.h>
#include <string.h>
#include "attn.h"
#include "cpu_features.h"
#include "dtype_size.h"

#define ATTN_STR2(x) #x
#define ATTN_STR(x) ATTN_STR2(x)

ATTN_API const char *attn_version(void)
{
    return ATTN_STR(ATTN_VERSION_MAJOR) "." ATTN_STR(ATTN_VERSION_MINOR) "."
           ATTN_STR(ATTN_VERSION_PATCH);
}

ATTN_API const char *attn_status_string(attn_status s)
{
    switch (s) {
    case ATTN_OK:                   return "ATTN_OK: success";
    case ATTN_ERR_INVALID_ARGUMENT: return "ATTN_ERR_INVALID_ARGUMENT: an argument is invalid";
    case ATTN_ERR_UNSUPPORTED:      return "ATTN_ERR_UNSUPPORTED: not supported by this build or device";
    case ATTN_ERR_OUT_OF_MEMORY:    return "ATTN_ERR_OUT_OF_MEMORY: an allocation failed";
    case ATTN_ERR_DEVICE:           return "ATTN_ERR_DEVICE: the device or its driver failed";
    case ATTN_ERR_INTERNAL:         return "ATTN_ERR_INTERNAL: internal error in libattn";
    }
    return "unknown attn_status";
}

ATTN_API size_t attn_dtype_size(attn_dtype t)
{
    return attn_dtype_bytes(t);
}

ATTN_API const char *attn_isa_name(attn_isa isa)
{
    switch (isa) {
    case ATTN_ISA_SCALAR: return "scalar";
    case ATTN_ISA_AVX2:   return "avx2";
    case ATTN_ISA_AVX512: return "avx512";
    case ATTN_ISA_NEON:   return "neon";
    }
    return "unknown";
}

static const struct { uint64_t bit; const char *name; } feature_names[] = {
    { ATTN_CPU_SSE2, "sse2" },         { ATTN_CPU_AVX, "avx" },
    { ATTN_CPU_AVX2, "avx2" },         { ATTN_CPU_FMA, "fma" },
    { ATTN_CPU_F16C, "f16c" },         { ATTN_CPU_AVX512F, "avx512f" },
    { ATTN_CPU_AVX512BW, "avx512bw" }, { ATTN_CPU_AVX512VL, "avx512vl" },
    { ATTN_CPU_AVX512DQ, "avx512dq" }, { ATTN_CPU_AVX512_BF16, "avx512_bf16" },
    { ATTN_CPU_AVX512_FP16, "avx512_fp16" }, { ATTN_CPU_AVX512_VNNI, "avx512_vnni" },
    { ATTN_CPU_AMX_TILE, "amx_tile" }, { ATTN_CPU_AMX_BF16, "amx_bf16" },
    { ATTN_CPU_AMX_INT8, "amx_int8" }, { ATTN_CPU_AMX_FP16, "amx_fp16" },
    { ATTN_CPU_ASIMD, "asimd" },       { ATTN_CPU_ASIMDHP, "asimdhp" },
    { ATTN_CPU_ASIMDDP, "asimddp" },   { ATTN_CPU_I8MM, "i8mm" },
    { ATTN_CPU_SVE, "sve" },           { ATTN_CPU_BF16, "bf16" },
};

ATTN_API size_t attn_cpu_features_string(uint64_t features, char *buf, size_t n)
{
    size_t len = 0;
    if (buf && n > 0)
        buf[0] = '\0';
    for (size_t i = 0; i < sizeof feature_names / sizeof feature_names[0]; i++) {
        if (!(features & feature_names[i].bit))
            continue;
        const char *name = feature_names[i].name;
        size_t add = strlen(name) + (len ? 1 : 0);
        if (buf && len + add < n) {
            if (len)
                buf[len] = ' ';
            memcpy(buf + len + (len ? 1 : 0), name, strlen(name) + 1);
        }   /* else: the words that fitted stay, NUL-terminated */
        len += add;
    }
    return len;
}

uint64_t attn_cpu_feature_from_name(const char *name, size_t len)
{
    for (size_t i = 0; i < sizeof feature_names / sizeof feature_names[0]; i++)
        if (strlen(feature_names[i].name) == len && strncmp(feature_names[i].name, name, len) == 0)
            return feature_names[i].bit;
    return 0;
}
