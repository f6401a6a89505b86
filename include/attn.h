/*
 * libattn — portable attention kernels.
 *
 * The only public header. C99, opaque handles, every call returns an
 * attn_status; on failure attn_last_error() gives a message naming the
 * offending argument. Nothing in the library aborts on bad input.
 *
 * Conventions
 *   - Tensors are described by attn_tensor: a host pointer (CPU) or a
 *     device buffer plus byte offset, a dtype, a shape and strides counted
 *     in elements. All-zero strides mean contiguous row-major.
 *   - Params structs begin with `size_t size` and are initialised with the
 *     matching ATTN_*_PARAMS_INIT macro, which sets every default. New
 *     fields are only ever appended, so an application built against an
 *     older header keeps working.
 *   - Validation happens before any kernel runs: a call that fails leaves
 *     its outputs untouched.
 */
#ifndef ATTN_H
#define ATTN_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(_WIN32)
#  define ATTN_API
#elif defined(__GNUC__) && __GNUC__ >= 4
#  define ATTN_API __attribute__((visibility("default")))
#else
#  define ATTN_API
#endif

#define ATTN_VERSION_MAJOR 0
#define ATTN_VERSION_MINOR 1
#define ATTN_VERSION_PATCH 0

/* ------------------------------------------------------------------------ */
/* Status, errors, version                                                  */
/* ------------------------------------------------------------------------ */

typedef enum attn_status {
    ATTN_OK = 0,
    ATTN_ERR_INVALID_ARGUMENT, /* bad shape, stride, pointer, value, ...      */
    ATTN_ERR_UNSUPPORTED,      /* valid request this build/device cannot run  */
    ATTN_ERR_OUT_OF_MEMORY,    /* host or device allocation failed            */
    ATTN_ERR_DEVICE,           /* driver or device error (message has detail) */
    ATTN_ERR_INTERNAL          /* a bug in libattn: please report it          */
} attn_status;

/* "major.minor.patch" of the library that is loaded (not of this header). */
ATTN_API const char *attn_version(void);

/* A static English name for a status code ("ATTN_ERR_INVALID_ARGUMENT: ..."). */
ATTN_API const char *attn_status_string(attn_status s);

/* Detail of the last failure on the calling thread ("" if none). The string
 * stays valid until the next libattn call on this thread. */
ATTN_API const char *attn_last_error(void);

/* ------------------------------------------------------------------------ */
/* Data types                                                               */
/* ------------------------------------------------------------------------ */

typedef enum attn_dtype {
    ATTN_F32 = 0,
    ATTN_F16,   /* IEEE binary16                                     */
    ATTN_BF16,  /* bfloat16                                          */
    ATTN_U8,    /* boolean masks: nonzero = visible                  */
    ATTN_Q8,    /* KV-cache storage only                             */
    ATTN_Q4     /* KV-cache storage only                             */
} attn_dtype;

/* Size in bytes of one element of a plain dtype (F32/F16/BF16/U8), 0 for
 * block-quantised types. */
ATTN_API size_t attn_dtype_size(attn_dtype t);

/* ------------------------------------------------------------------------ */
/* Context and devices                                                      */
/* ------------------------------------------------------------------------ */

typedef struct attn_context attn_context;
typedef struct attn_buffer  attn_buffer;

typedef enum attn_device_type {
    ATTN_DEVICE_CPU = 0,
    ATTN_DEVICE_OPENCL,
    ATTN_DEVICE_VULKAN
} attn_device_type;

/* CPU kernel sets, in the order the CPU backend prefers them. */
typedef enum attn_isa {
    ATTN_ISA_SCALAR = 0, /* portable C, runs everywhere */
    ATTN_ISA_AVX2,       /* x86-64 AVX2 + FMA + F16C    */
    ATTN_ISA_AVX512,     /* x86-64 AVX-512 F/BW/VL      */
    ATTN_ISA_NEON        /* aarch64 Advanced SIMD       */
} attn_isa;

/* Name of a kernel set: "scalar", "avx2", "avx512", "neon". */
ATTN_API const char *attn_isa_name(attn_isa isa);

/* CPU feature bits reported in attn_device_info.cpu_features. */
#define ATTN_CPU_SSE2         (UINT64_C(1) << 0)
#define ATTN_CPU_AVX          (UINT64_C(1) << 1)
#define ATTN_CPU_AVX2         (UINT64_C(1) << 2)
#define ATTN_CPU_FMA          (UINT64_C(1) << 3)
#define ATTN_CPU_F16C         (UINT64_C(1) << 4)
#define ATTN_CPU_AVX512F      (UINT64_C(1) << 5)
#define ATTN_CPU_AVX512BW     (UINT64_C(1) << 6)
#define ATTN_CPU_AVX512VL     (UINT64_C(1) << 7)
#define ATTN_CPU_AVX512DQ     (UINT64_C(1) << 8)
#define ATTN_CPU_AVX512_BF16  (UINT64_C(1) << 9)
#define ATTN_CPU_AVX512_FP16  (UINT64_C(1) << 10)
#define ATTN_CPU_AVX512_VNNI  (UINT64_C(1) << 11)
#define ATTN_CPU_AMX_TILE     (UINT64_C(1) << 12)
#define ATTN_CPU_AMX_BF16     (UINT64_C(1) << 13)
#define ATTN_CPU_AMX_INT8     (UINT64_C(1) << 14)
#define ATTN_CPU_AMX_FP16     (UINT64_C(1) << 15)
#define ATTN_CPU_ASIMD        (UINT64_C(1) << 32) /* aarch64 NEON     */
#define ATTN_CPU_ASIMDHP      (UINT64_C(1) << 33) /* fp16 arithmetic  */
#define ATTN_CPU_ASIMDDP      (UINT64_C(1) << 34) /* int8 dot product */
#define ATTN_CPU_I8MM         (UINT64_C(1) << 35)
#define ATTN_CPU_SVE          (UINT64_C(1) << 36)
#define ATTN_CPU_BF16         (UINT64_C(1) << 37) /* aarch64 BF16 ext */

/* Writes the space-separated names of the bits set in `features`
 * ("avx2 fma f16c ...") into buf (always NUL-terminated when n > 0).
 * Returns the length the full string needs, excluding the NUL. */
ATTN_API size_t attn_cpu_features_string(uint64_t features, char *buf, size_t n);

typedef struct attn_device_info {
    size_t           size;             /* sizeof(attn_device_info), set by caller */
    attn_device_type type;
    char             name[128];        /* "Intel(R) Xeon(R) ...", "NVIDIA H100" */
    char             vendor[64];
    char             driver[64];       /* driver / runtime version, "" for CPU */
    int              compute_units;    /* CPU: threads the context will use */
    int              is_software;      /* 1 for PoCL-on-CPU, lavapipe, ... */
    uint64_t         global_mem_bytes; /* 0 if unknown */
    uint64_t         local_mem_bytes;  /* GPU shared memory per work-group */
    int              max_work_group_size;
    int              subgroup_size;
    int              fp16;             /* fp16 arithmetic available */
    /* CPU only */
    uint64_t         cpu_features;     /* ATTN_CPU_* bits detected */
    attn_isa         isa;              /* kernel set this context uses */
    attn_isa         best_isa;         /* best kernel set the machine supports */
    /* GPU only: space-separated capabilities ("vulkan 1.3 subgroup:32
     * shaderFloat16 coopmat:16x16x16:f16*f16+f32 ..."), "" if none */
    char             features[256];
} attn_device_info;

#define ATTN_DEVICE_INFO_INIT { sizeof(attn_device_info), ATTN_DEVICE_CPU, {0}, {0}, {0}, \
                                0, 0, 0, 0, 0, 0, 0, 0, ATTN_ISA_SCALAR, ATTN_ISA_SCALAR, {0} }

typedef struct attn_options {
    size_t size;        /* sizeof(attn_options) */
    int    num_threads; /* CPU threads; 0 = all cores (or OMP_NUM_THREADS) */
    int    device;      /* preferred device index; -1 = from ATTN_DEVICE, else CPU */
    int    max_isa;     /* cap on the CPU kernel set (attn_isa); -1 = from ATTN_ISA, else best */
} attn_options;

#define ATTN_OPTIONS_INIT { sizeof(attn_options), 0, -1, -1 }

/* Creates a context: probes the CPU (and, in builds that have them, GPU
 * runtimes loaded with dlopen). opts may be NULL for defaults.
 * Environment: ATTN_ISA=scalar|avx2|avx512|neon caps the CPU kernel set;
 * ATTN_DEVICE=cpu|opencl[:N]|vulkan[:N] chooses the preferred device;
 * ATTN_CPU_DISABLE=name[,name...] treats CPU features (as attn-info prints
 * them, e.g. avx512_bf16) as absent, to test every kernel variant. */
ATTN_API attn_status attn_context_create(const attn_options *opts, attn_context **out);

/* Destroys a context. Buffers created on it must be destroyed first. NULL is a no-op. */
ATTN_API void attn_context_destroy(attn_context *ctx);

/* Number of devices; device 0 is always the CPU. Returns 0 for NULL. */
ATTN_API int attn_device_count(const attn_context *ctx);

/* The device index chosen by options / ATTN_DEVICE (0 = CPU). */
ATTN_API int attn_context_device(const attn_context *ctx);

/* Fills *info (whose size field the caller sets) for a device index. */
ATTN_API attn_status attn_device_get_info(const attn_context *ctx, int device, attn_device_info *info);

/* ------------------------------------------------------------------------ */
/* Buffers                                                                  */
/* ------------------------------------------------------------------------ */

/* Allocates `bytes` of memory on a device (64-byte aligned host memory for
 * the CPU). Contents are undefined until written. */
ATTN_API attn_status attn_buffer_create(attn_context *ctx, int device, size_t bytes, attn_buffer **out);

/* Copies between host memory and a buffer; offset + bytes must lie inside it. */
ATTN_API attn_status attn_buffer_write(attn_buffer *b, size_t offset, const void *src, size_t bytes);
ATTN_API attn_status attn_buffer_read(attn_buffer *b, size_t offset, void *dst, size_t bytes);

/* Copies bytes from src to dst, two buffers of the same device, on that
 * device (e.g. to measure its copy bandwidth); the two ranges must lie
 * inside their buffers and must not overlap. ATTN_ERR_UNSUPPORTED where the
 * backend has no device-side copy. */
ATTN_API attn_status attn_buffer_copy(attn_buffer *dst, size_t dst_offset, attn_buffer *src,
                                      size_t src_offset, size_t bytes);

/* Size in bytes and device index of a buffer (0 for NULL / -1 for NULL). */
ATTN_API size_t attn_buffer_size(const attn_buffer *b);
ATTN_API int    attn_buffer_device(const attn_buffer *b);

/* Host address of a CPU buffer's memory, NULL for device buffers. */
ATTN_API void *attn_buffer_host_ptr(attn_buffer *b);

/* Frees a buffer. NULL is a no-op. */
ATTN_API void attn_buffer_destroy(attn_buffer *b);

/* ------------------------------------------------------------------------ */
/* Tensors                                                                  */
/* ------------------------------------------------------------------------ */

#define ATTN_MAX_DIMS 6

/* Any element-aligned host pointer works; rows that start on 64-byte
 * boundaries (a 64-byte aligned base, row strides of whole cache lines)
 * are faster on the CPU: a row then spans the fewest lines, and large f32
 * outputs are stored past the caches (128x128 neighborhood attention,
 * D=64: 9% slower with malloc's 16-byte offset). CPU buffers from
 * attn_buffer_create start on 64-byte boundaries. */
typedef struct attn_tensor {
    void        *data;                   /* host pointer when buffer is NULL (CPU) */
    attn_buffer *buffer;                 /* device memory; the op runs on its device */
    size_t       offset;                 /* bytes into buffer */
    attn_dtype   dtype;
    int          ndim;
    int64_t      shape[ATTN_MAX_DIMS];
    int64_t      stride[ATTN_MAX_DIMS];  /* elements; all zero = contiguous row-major */
} attn_tensor;

/* Convenience: a contiguous 4-d host tensor (strides all zero). */
ATTN_API attn_tensor attn_tensor_4d(void *data, attn_dtype dtype,
                                    int64_t d0, int64_t d1, int64_t d2, int64_t d3);

/* ------------------------------------------------------------------------ */
/* Softmax (and sigmoid) attention                                          */
/* ------------------------------------------------------------------------ */

typedef enum attn_score {
    ATTN_SCORE_SOFTMAX = 0, /* O = softmax(s) V                               */
    ATTN_SCORE_SIGMOID = 1  /* O = sigmoid(s + sigmoid_bias) V, no normaliser */
} attn_score;

/*
 * For query row i and key j of one sequence (Sq queries, Sk keys), the
 * query's diagonal is d(i) = i + Sk - Sq (bottom-right alignment). The score
 *   s = scale * q_i . k_j
 *   s = softcap * tanh(s / softcap)            if softcap > 0
 *   s = s - alibi_slopes[h] * |d(i) - j|       if alibi_slopes
 *   s = s + mask[b,h,i,j]                      if mask is f32/f16 (additive)
 * Key j is visible to query i when all of these hold:
 *   causal:        j <= d(i)
 *   window_left:   j >= d(i) - window_left  or j < sink_tokens   (if >= 0)
 *   window_right:  j <= d(i) + window_right or j < sink_tokens   (if >= 0)
 *   mask (U8):     mask[b,h,i,j] != 0
 *   block_mask:    block_mask[b,h,i/block_q,j/block_k] != 0
 * Softmax: O_i = sum_j exp(s_ij - L_i) v_j with
 *   L_i = log(sum_{visible j} exp(s_ij) + exp(sink_logits[h]))  (sink term only if given)
 * and lse[b,h,i] = L_i. A row with no visible key gets O_i = 0 and L_i = -inf
 * (or L_i = sink logit when sink_logits is set).
 * Sigmoid: O_i = sum_{visible j} sigmoid(s_ij + sigmoid_bias) v_j; no lse.
 * Gate: O_i *= sigmoid(gate[b,i,h,:]) elementwise, after normalisation.
 */
typedef struct attn_sdpa_params {
    size_t   size;                 /* sizeof(attn_sdpa_params) */
    float    scale;                /* 0 = 1/sqrt(D) */
    attn_score score;              /* softmax, or sigmoid(s + sigmoid_bias) */
    float    sigmoid_bias;
    int      causal;               /* aligned bottom-right when Sq != Sk */
    int64_t  window_left;          /* keys at most this far before the query's diagonal; -1 = unlimited */
    int64_t  window_right;         /* ... after it; -1 = unlimited */
    int64_t  sink_tokens;          /* the first N keys are visible to every query (causality still applies) */
    float    softcap;              /* 0 = off, else s = cap * tanh(s / cap) */
    const float *alibi_slopes;     /* [Hq] or NULL: adds -slope * |i - j| (diagonal-aligned) */
    const float *sink_logits;      /* [Hq] or NULL: an extra logit in each softmax denominator */
    const attn_tensor *mask;       /* f32/f16 additive or ATTN_U8 boolean (nonzero = visible),
                                      [B|1, Hq|1, Sq, Sk], or NULL */
    const attn_tensor *gate;       /* [B, Sq, Hq, Dv]: out *= sigmoid(gate), or NULL */
    const int32_t *cu_seqlens_q;   /* varlen: num_seqs+1 offsets into a packed [1, total, H, D], or NULL */
    const int32_t *cu_seqlens_k;
    const attn_tensor *block_mask; /* ATTN_U8 [B|1, Hq|1, ceil(Sq/block_q), ceil(Sk/block_k)], or NULL */
    int64_t  block_q, block_k;
    int64_t  num_seqs;             /* varlen: number of sequences (entries in cu_seqlens minus one) */
} attn_sdpa_params;

#define ATTN_SDPA_PARAMS_INIT { sizeof(attn_sdpa_params), 0.0f, ATTN_SCORE_SOFTMAX, 0.0f, \
                                0, -1, -1, 0, 0.0f, NULL, NULL, NULL, NULL, NULL, NULL, \
                                NULL, 0, 0, 0 }

/*
 * Scaled dot-product attention.
 *   q   [B, Sq, Hq, D]     k [B, Sk, Hkv, D]     v [B, Sk, Hkv, Dv]
 *   out [B, Sq, Hq, Dv]    lse [B, Hq, Sq] f32, or NULL
 * Hq must be a multiple of Hkv (MHA, GQA, MQA). q, k and v share one dtype
 * (F32, F16 or BF16); out and gate may be any of the three. Any strides, so
 * [B,H,S,D] storage is passed as a strided view. Accumulation is in f32.
 * Variable length: set cu_seqlens_q/k and num_seqs; q/k/v/out/gate are then
 * [1, total, H, *], lse [1, Hq, total_q], and mask/block_mask index each
 * sequence from its own row/column 0 with Sq/Sk = the longest sequence.
 */
ATTN_API attn_status attn_sdpa(attn_context *ctx, const attn_sdpa_params *p,
                               const attn_tensor *q, const attn_tensor *k, const attn_tensor *v,
                               const attn_tensor *out, const attn_tensor *lse);

/*
 * Merges n partial attention results over disjoint key sets (split-KV,
 * ring attention): out = sum_i exp(lse_i - L) outs[i], L = log sum_i exp(lse_i).
 *   outs[i] [B, S, H, Dv] (F32/F16/BF16)   lses[i] [B, H, S] f32
 *   out     [B, S, H, Dv]                  lse [B, H, S] f32 or NULL
 * Rows whose every lse_i is -inf get zeros and L = -inf.
 */
ATTN_API attn_status attn_merge(attn_context *ctx, const attn_tensor *outs, const attn_tensor *lses,
                                int n, const attn_tensor *out, const attn_tensor *lse);

/* ------------------------------------------------------------------------ */
/* Decoding: paged KV cache and attn_decode                                 */
/* ------------------------------------------------------------------------ */

/*
 * A KV cache holds the keys and values of many sequences in fixed-size
 * pages taken from one pool allocated at creation, so its memory is bounded:
 * growing past the pool is ATTN_ERR_OUT_OF_MEMORY, never a crash. Each
 * sequence (a caller-chosen id in [0, max_seqs)) has its own page table.
 * Pages are reference-counted: attn_kv_cache_fork shares a prefix without
 * copying, and appending to a shared, partially filled last page copies that
 * one page first (copy-on-write).
 *
 * Storage types (per token and head, K and V alike):
 *   ATTN_F32, ATTN_F16, ATTN_BF16: the values, rounded to nearest even.
 *   ATTN_Q8: blocks of 32 values: int8 q in [-127, 127] and one f16 scale
 *            d = f16(max|x| / 127); x ~ d * q, q = round(x / d).
 *   ATTN_Q4: blocks of 32 values: 4-bit q in [0, 15], an f16 scale d and an
 *            f16 minimum m = f16(min x), d = f16((max x - m) / 15);
 *            x ~ d * q + m, q = clamp(round((x - m) / d), 0, 15).
 *            Its own error is about 12% rms of N(0,1) values. attn_decode
 *            of Q4 values may also round the attention weights to 8 bits
 *            (the CPU kernels with AVX512-VNNI do): per run of at most 64
 *            keys and per value block, w_j = p_j d_j (p the normalised
 *            attention weights) on 127 levels of the run's largest p times
 *            its largest d, round to nearest, with the run's total weight
 *            kept exact at q = 7.5. Output element e then moves by sum_j
 *            delta_j (q_je - 7.5), |delta_j| <= min(half a level, w_j): on
 *            N(0,1) data 0.3-0.7% rms of the outputs, 15-35x below Q4's own
 *            error (tests/test_decode.c derives a bound and checks it).
 * Q8 and Q4 need head dims that are multiples of 32. They have no code for
 * NaN: a NaN is stored as q = 0 (Q8: 0; Q4: the block's minimum) and
 * infinities saturate; f32, f16 and bf16 keep both.
 *
 * Streaming (StreamingLLM): with stream_window W > 0, a sequence keeps its
 * first stream_sink tokens and its last W tokens; older tokens in between are
 * evicted as new ones are appended. Attention then sees the kept tokens as
 * one contiguous sequence: attn_kv_cache_seq_len counts the kept tokens, and
 * key index j of attn_decode (for causal, window, sink_tokens and ALiBi) is
 * the j-th kept token, as in StreamingLLM's positions-within-the-cache.
 * attn_kv_cache_seq_pos gives the absolute position (tokens ever appended),
 * e.g. for rotary embeddings applied by the caller before appending.
 *
 * Thread safety: calls that change a cache (append, truncate, fork, remove)
 * must not run concurrently with any other call on the same cache;
 * attn_decode, seq_len and read only read it.
 */
typedef struct attn_kv_cache attn_kv_cache;

typedef struct attn_kv_cache_desc {
    size_t     size;          /* sizeof(attn_kv_cache_desc) */
    attn_dtype dtype;         /* storage: F32, F16, BF16, Q8 or Q4 */
    int32_t    num_kv_heads;  /* Hkv >= 1 */
    int32_t    head_dim;      /* D of keys, 1..4096 (multiple of 32 for Q8/Q4) */
    int32_t    head_dim_v;    /* Dv of values; 0 = head_dim */
    int32_t    page_size;     /* tokens per page, 1..65536 */
    int64_t    max_pages;     /* capacity of the pool, in pages (>= 1) */
    int32_t    max_seqs;      /* sequence ids are [0, max_seqs) */
    int64_t    stream_sink;   /* streaming: tokens kept at the start */
    int64_t    stream_window; /* streaming: tokens kept at the end; 0 = streaming off */
    int32_t    device;        /* device whose memory holds the pool (0 = CPU) */
} attn_kv_cache_desc;

#define ATTN_KV_CACHE_DESC_INIT { sizeof(attn_kv_cache_desc), ATTN_F16, 0, 0, 0, 64, 0, 1, 0, 0, 0 }

/* Creates an empty cache and allocates its whole page pool (max_pages pages)
 * in the memory of desc->device, where attn_decode on it then runs: a GPU
 * cache keeps the tokens resident on the GPU, and attn_decode takes q, out,
 * lse and gate in buffers of that device. Page tables and bookkeeping stay on
 * the host; append converts (quantises) tokens on the host and uploads only
 * the rows it wrote. A desc from before the device field (its size ends at
 * stream_window) means device 0. Returns ATTN_ERR_INVALID_ARGUMENT for a bad
 * desc, ATTN_ERR_OUT_OF_MEMORY if the pool cannot be allocated (or the
 * device's error if its allocation fails). */
ATTN_API attn_status attn_kv_cache_create(attn_context *ctx, const attn_kv_cache_desc *d,
                                          attn_kv_cache **out);

/* Frees a cache and all its pages. NULL is a no-op. */
ATTN_API void attn_kv_cache_destroy(attn_kv_cache *c);

/* Appends n tokens to sequence seq (which is created if it holds nothing):
 *   k [n, Hkv, D], v [n, Hkv, Dv], host tensors of F32, F16 or BF16, any strides.
 * Values are converted (quantised) to the storage type. Atomic: on any error
 * (bad shape, ATTN_ERR_OUT_OF_MEMORY when the pool has too few free pages)
 * the cache is unchanged. n = 0 is allowed. */
ATTN_API attn_status attn_kv_cache_append(attn_kv_cache *c, int32_t seq,
                                          const attn_tensor *k, const attn_tensor *v);

/* *len = number of tokens sequence seq holds (kept tokens in streaming
 * mode); 0 for an id that holds nothing. */
ATTN_API attn_status attn_kv_cache_seq_len(const attn_kv_cache *c, int32_t seq, int64_t *len);

/* *pos = absolute position of the next token of seq: tokens appended minus
 * tokens truncated, counting evicted ones (equals seq_len unless streaming). */
ATTN_API attn_status attn_kv_cache_seq_pos(const attn_kv_cache *c, int32_t seq, int64_t *pos);

/* Removes a sequence and releases its pages (shared pages stay with the
 * other sequences). Fails if seq holds nothing. */
ATTN_API attn_status attn_kv_cache_remove(attn_kv_cache *c, int32_t seq);

/* Keeps the first new_len tokens of seq (0 <= new_len <= seq_len) and drops
 * the rest, e.g. speculative tokens the target model rejected. Tokens
 * evicted by streaming do not come back. */
ATTN_API attn_status attn_kv_cache_truncate(attn_kv_cache *c, int32_t seq, int64_t new_len);

/* Makes dst (which must hold nothing, and differ from src) a sequence whose
 * tokens are the first prefix_len tokens of src (0 <= prefix_len <=
 * seq_len(src)). Pages are shared, not copied; either sequence copies a
 * shared partially filled page when it next appends into it. In streaming
 * mode dst inherits src's eviction state. */
ATTN_API attn_status attn_kv_cache_fork(attn_kv_cache *c, int32_t src_seq, int32_t dst_seq,
                                        int64_t prefix_len);

/* Copies tokens [start, start + n) of seq, dequantised, into host tensors
 * k [n, Hkv, D] and v [n, Hkv, Dv] of F32, F16 or BF16 (either may be NULL). */
ATTN_API attn_status attn_kv_cache_read(const attn_kv_cache *c, int32_t seq, int64_t start,
                                        const attn_tensor *k, const attn_tensor *v);

/* Pages currently free in the pool (-1 for NULL). */
ATTN_API int64_t attn_kv_cache_free_pages(const attn_kv_cache *c);

/* Bytes one token occupies in the cache, K and V of all heads together,
 * including Q8/Q4 scales (0 for NULL); for bandwidth accounting. */
ATTN_API size_t attn_kv_cache_token_bytes(const attn_kv_cache *c);

/*
 * Attention of a few new query tokens per sequence against the cache.
 *   q   [B, Sq, Hq, D]  (F32, F16 or BF16), 1 <= Sq <= 16
 *   seqs[B]             sequence ids; each must hold at least Sq tokens
 *   out [B, Sq, Hq, Dv] (F32, F16 or BF16)   lse [B, Hq, Sq] f32 or NULL
 * The Sq new tokens must already be appended: they are the last Sq tokens of
 * their sequence, so query i of sequence b (holding L tokens) sits on
 * diagonal i + L - Sq, the bottom-right alignment of attn_sdpa. The result
 * equals attn_sdpa with k/v = the sequence's (dequantised) tokens. From
 * params: scale, score (softmax or sigmoid), sigmoid_bias, causal,
 * window_left/right, sink_tokens, softcap, alibi_slopes, sink_logits and
 * gate ([B, Sq, Hq, Dv]) apply; mask, block_mask and cu_seqlens must be
 * NULL. Hq must be a multiple of the cache's Hkv and D/Dv must match it.
 */
ATTN_API attn_status attn_decode(attn_context *ctx, const attn_sdpa_params *p,
                                 const attn_tensor *q, attn_kv_cache *cache,
                                 const int32_t *seqs, const attn_tensor *out,
                                 const attn_tensor *lse);

/* ------------------------------------------------------------------------ */
/* Linear attention (state-space form)                                      */
/* ------------------------------------------------------------------------ */

/*
 * Every kind keeps a state S in R^{Dk x Dv} per (sequence, head), in f32
 * whatever the input dtype, and walks the tokens t = 0, 1, ... in order
 * (always causal). With q_t, k_t in R^Dk, v_t in R^Dv of one head:
 *
 *   PLAIN        S_t = S_{t-1} + phi(k_t) v_t^T
 *   DECAY        S_t = gamma_t S_{t-1} + k_t v_t^T          gamma_t = exp(g_t) (scalar gate
 *                                                           g [B,S,H]) or params->decay[h]
 *   GLA          S_t = diag(alpha_t) S_{t-1} + k_t v_t^T    alpha_t = exp(g_t), g [B,S,H,Dk]
 *   DELTA        S_t = S_{t-1} + beta_t k_t (v_t - S_{t-1}^T k_t)^T
 *   GATED_DELTA  S'  = alpha_t S_{t-1},  alpha_t = exp(g_t), g [B,S,H] (Gated DeltaNet)
 *                S_t = S' + beta_t k_t (v_t - S'^T k_t)^T
 *   KDA          S'  = diag(alpha_t) S_{t-1}, alpha_t = exp(g_t), g [B,S,H,Dk]
 *                S_t = S' + beta_t k_t (v_t - S'^T k_t)^T  (Kimi Delta Attention)
 *
 *   o_t = scale * q_t^T S_t            (after the update at step t)
 *
 * Gates are given in log space: g <= 0 (a decay in (0, 1]); g = -inf is an
 * exact reset. Positive g (growth) is computed as given and may overflow.
 *
 * Input preprocessing, applied to q and k of every token before anything else:
 * l2norm_qk (x / sqrt(sum x^2 + 1e-6), any kind), then the feature map phi
 * (identity, elu+1 or relu; PLAIN, DECAY and GLA only; it is the identity for
 * the delta kinds). q is multiplied by scale after phi.
 *
 * normalize (PLAIN only; classic linear attention):
 *   z_t = z_{t-1} + phi(k_t),  o_t = q'^T S_t / (q'^T z_t + norm_eps),
 *   q' = scale * phi(q_t).
 * The normaliser sum z [N,H,Dk] f32 is state too: pass it in params->z_in and
 * get it back in params->z_out (either may be NULL: NULL z_in starts at 0),
 * exactly like S, so normalisation carries across calls. Use a positive
 * feature map (elu+1, relu) with normalize; with the identity the denominator
 * can cross zero.
 *
 * Algorithms: the chunkwise-parallel form (intra-chunk masked matrix
 * products, the state passed between chunks; the delta kinds through the
 * WY/UT representation solved by forward substitution; gates as decay ratios
 * exp(G_i - G_j), i >= j, of within-chunk cumulative log-gates, so nothing
 * overflows however long the sequence or strong the gate) and the recurrent
 * form (one token at a time; for decode). Both give the same answer to f32
 * rounding. ATTN_LINEAR_ALGO_AUTO uses the recurrent form for sequences of at
 * most 16 tokens and the chunkwise form otherwise.
 *
 * State in / state out: processing tokens [0, T) in one call equals
 * processing [0, t) and then [t, T) passing state_out (and z_out) of the
 * first call as state_in (z_in) of the second.
 */
typedef enum attn_linear_kind {
    ATTN_LINEAR_PLAIN = 0,
    ATTN_LINEAR_DECAY,
    ATTN_LINEAR_GLA,
    ATTN_LINEAR_DELTA,
    ATTN_LINEAR_GATED_DELTA,
    ATTN_LINEAR_KDA
} attn_linear_kind;

typedef enum attn_linear_feature {
    ATTN_LINEAR_FEATURE_IDENTITY = 0, /* phi(x) = x                          */
    ATTN_LINEAR_FEATURE_ELU1,         /* phi(x) = elu(x) + 1 = x + 1 or e^x   */
    ATTN_LINEAR_FEATURE_RELU          /* phi(x) = max(x, 0)                   */
} attn_linear_feature;

typedef enum attn_linear_algo {
    ATTN_LINEAR_ALGO_AUTO = 0,   /* recurrent for <= 16 tokens, else chunkwise */
    ATTN_LINEAR_ALGO_RECURRENT,
    ATTN_LINEAR_ALGO_CHUNKWISE
} attn_linear_algo;

/* The chunk of the chunkwise form when params->chunk_size is 0. Smaller
 * chunks do fewer intra-chunk products (their share of a token's work grows
 * with C) but pass the state through the cache more often per token; on an
 * AVX-512 CPU at Dk = Dv = 128, C = 32 took 7-9% less time per token than
 * C = 64 for GLA and PLAIN, and no more for the delta kinds. */
#define ATTN_LINEAR_DEFAULT_CHUNK 32

typedef struct attn_linear_params {
    size_t              size;        /* sizeof(attn_linear_params) */
    attn_linear_kind    kind;
    float               scale;       /* 0 = 1/sqrt(Dk) */
    attn_linear_algo    algo;
    int                 chunk_size;  /* chunkwise form: 0 = ATTN_LINEAR_DEFAULT_CHUNK; else 1..256 */
    attn_linear_feature feature;     /* phi on q and k: PLAIN, DECAY, GLA */
    int                 normalize;   /* PLAIN: divide by q'^T z_t (see above) */
    float               norm_eps;    /* added to that denominator; >= 0 */
    int                 l2norm_qk;   /* L2-normalise q and k per token and head */
    const float        *decay;       /* DECAY without g: [H] per-head gamma in (0, 1] */
    const int32_t      *cu_seqlens;  /* varlen: num_seqs+1 offsets into packed [1,total,H,*] */
    int64_t             num_seqs;
    const attn_tensor  *z_in;        /* normalize: [N,H,Dk] f32 normaliser state, or NULL */
    const attn_tensor  *z_out;       /* normalize: [N,H,Dk] f32, or NULL */
} attn_linear_params;

#define ATTN_LINEAR_PARAMS_INIT { sizeof(attn_linear_params), ATTN_LINEAR_PLAIN, 0.0f, \
                                  ATTN_LINEAR_ALGO_AUTO, 0, ATTN_LINEAR_FEATURE_IDENTITY, 0, \
                                  1e-6f, 0, NULL, NULL, 0, NULL, NULL }

/*
 * Linear attention of any kind above.
 *   q, k      [B, S, H, Dk]      v [B, S, H, Dv]      out [B, S, H, Dv]
 *   g         NULL, [B, S, H] (scalar log-gate: DECAY, GATED_DELTA) or
 *             [B, S, H, Dk] (per-channel log-gate: GLA, KDA)
 *   beta      [B, S, H] (DELTA, GATED_DELTA, KDA; NULL for the others)
 *   state_in  [N, H, Dk, Dv] f32 or NULL (= zeros)
 *   state_out [N, H, Dk, Dv] f32 or NULL; it may be the very same view as
 *             state_in (an in-place update), but must not otherwise overlap
 *             any argument.
 * N is B, or params->num_seqs with varlen (cu_seqlens): then q/k/v/g/beta/out
 * are packed [1, total, H, *] and every sequence has its own state; tokens
 * past cu_seqlens[num_seqs] are not touched.
 * q, k and v share a dtype (F32/F16/BF16); g, beta and out may be any of the
 * three. Any strides. Accumulation and state are f32.
 * What each kind requires: g NULL for PLAIN and DELTA; DECAY exactly one of
 * a [B,S,H] g and params->decay; GLA and KDA a [B,S,H,Dk] g; GATED_DELTA a
 * [B,S,H] g; beta for the three delta kinds only. Anything else, and any bad
 * shape, stride, pointer or aliasing, is ATTN_ERR_INVALID_ARGUMENT.
 */
ATTN_API attn_status attn_linear(attn_context *ctx, const attn_linear_params *p,
                                 const attn_tensor *q, const attn_tensor *k, const attn_tensor *v,
                                 const attn_tensor *g, const attn_tensor *beta,
                                 const attn_tensor *state_in, const attn_tensor *out,
                                 const attn_tensor *state_out);

/* ------------------------------------------------------------------------ */
/* Block selection for block-sparse attention (attn_block_select)           */
/* ------------------------------------------------------------------------ */

/*
 * attn_block_select writes a block mask for attn_sdpa's params->block_mask
 * (with the same block_q/block_k) from Q and K. Notation, per sequence b and
 * query head h (KV head h / (Hq/Hkv)): query block I holds rows
 * [I*bq, min((I+1)*bq, Sq)), key block J keys [J*bk, min((J+1)*bk, Sk)),
 * d(i) = i + Sk - Sq is row i's diagonal (bottom-right alignment, as in
 * attn_sdpa) and i_I = min((I+1)*bq, Sq) - 1 is the last row of block I.
 *
 * Allowed blocks: every J; with causal only J*bk <= d(i_I) (no future
 * block). The diagonal block of I is D_I = clamp(d(i_I), 0, Sk-1) / bk; when
 * causal and d(i_I) < 0, block row I has no allowed block and stays all 0.
 *
 * ATTN_BLOCK_SELECT_XATTN (XAttention, antidiagonal scoring). With stride s
 * (block_q and block_k multiples of s), query segment r holds rows
 * [r*s, r*s+s) and key segment c keys [c*s, c*s+s); rows and keys past the
 * sequence count as zero vectors. The antidiagonal sum of the s x s cell is
 *     a(r, c) = sum_{t<s} q[r*s + s-1-t] . k[c*s + t]
 * (a GEMM of ceil(Sq/s) x ceil(Sk/s) on q, k reshaped to rows of s*D).
 * Cell (r, c) takes part when c's block is allowed for r's block and, with
 * causal, c*s <= d(min(r*s+s, Sq) - 1). Each row r is softmax-normalised over
 * its cells: p(r, c) = exp(x(r,c) - max_c x) / sum_c exp(x(r,c) - max_c x),
 * x = scale * a / s. The share of block (I, J) is
 *     w(I, J) = sum_{r in I, c in J} p(r, c) / sum_{J'} (same over J').
 * Kept: the first block J = 0 and D_I (if allowed), then the other allowed
 * blocks in order of decreasing w (equal w: lower J first) while the kept
 * share is below threshold * (total share); threshold = 1 keeps every
 * allowed block. Cost: the GEMM is 1/(2s) of the QK^T and PV flops of dense
 * attention (1/32 at s = 16), plus ceil(Sq/s) x ceil(Sk/s) exps.
 *
 * ATTN_BLOCK_SELECT_MOBA (MoBA-style top-k). kbar_J = mean of the keys of
 * block J, qbar_I = mean of the queries of block I, score(I, J) =
 * qbar_I . kbar_J. Kept: D_I, then the other allowed blocks in order of
 * decreasing score (equal score: lower J first) until top_k blocks are kept
 * (fewer if fewer are allowed). Cost: O((Sq + Sk) D + nbq nbk D).
 *
 * Output: block_mask U8 [B, Hq, ceil(Sq/block_q), ceil(Sk/block_k)], 1 =
 * kept, 0 = skipped; every element is written. q [B, Sq, Hq, D] and
 * k [B, Sk, Hkv, D] share a dtype (F32, F16, BF16); any strides; Hq a
 * multiple of Hkv. Computed in f32 (results may differ from an exact
 * computation only where shares or scores are within rounding of each other).
 */
typedef enum attn_block_select_method {
    ATTN_BLOCK_SELECT_XATTN = 0,  /* antidiagonal scores, cumulative threshold */
    ATTN_BLOCK_SELECT_MOBA        /* pooled query vs pooled keys, top-k         */
} attn_block_select_method;

typedef struct attn_block_select_params {
    size_t   size;         /* sizeof(attn_block_select_params) */
    attn_block_select_method method;
    int64_t  block_q;      /* rows per query block, >= 1 */
    int64_t  block_k;      /* keys per key block, >= 1 */
    int64_t  stride;       /* XATTN: antidiagonal stride s >= 1 dividing block_q and block_k */
    float    threshold;    /* XATTN: share to keep, in (0, 1]; 1 keeps every allowed block */
    int64_t  top_k;        /* MOBA: blocks kept per query block, >= 1 */
    int      causal;       /* no future blocks (bottom-right aligned) */
    float    scale;        /* XATTN: 0 = 1/sqrt(D) */
} attn_block_select_params;

#define ATTN_BLOCK_SELECT_PARAMS_INIT { sizeof(attn_block_select_params), \
                                        ATTN_BLOCK_SELECT_XATTN, 128, 128, 16, 0.9f, 8, 0, 0.0f }

/* Writes block_mask (see above) from q and k. */
ATTN_API attn_status attn_block_select(attn_context *ctx, const attn_block_select_params *p,
                                       const attn_tensor *q, const attn_tensor *k,
                                       const attn_tensor *block_mask);

/* ------------------------------------------------------------------------ */
/* Neighborhood attention (issue #6 part 1)                                 */
/* ------------------------------------------------------------------------ */

/*
 * Neighborhood attention (NATTEN semantics) over a grid of 1, 2 or 3 token
 * axes. Each query attends only to a window of neighbours around it, per axis:
 *
 *   For one axis of length L with kernel size K (odd, 3 <= K <= L), dilation
 *   d (>= 1, d * K <= L) and a query at index i: the axis splits into d
 *   position classes; class c = i mod d is the sub-grid c, c+d, c+2d, ... of
 *   n = ceil((L - c) / d) tokens, and the query sits at p = i / d on it.
 *     non-causal: the K sub-grid positions [s, s+K) with
 *                 s = clamp(p - (K-1)/2, 0, n - K)
 *                 (centred, shifted inward at the borders: always exactly K)
 *     causal:     the sub-grid positions [max(0, p-K+1), p]
 *                 (the query and the K-1 before it; fewer near the start)
 *   Sub-grid position t is grid index c + t*d.
 *
 * Key j (a grid point) is visible to query i when, on every axis, j's index
 * is in i's window on that axis. Then
 *   s_ij = scale * q_i . k_j,   out_i = sum_{visible j} softmax_j(s_ij) v_j,
 *   lse_i = log sum_{visible j} exp(s_ij).
 * This equals attn_sdpa with the boolean mask "visible" over the flattened
 * grid. Every query sees at least itself.
 */
typedef struct attn_neighborhood_params {
    size_t  size;           /* sizeof(attn_neighborhood_params) */
    int     ndim;           /* token axes: 1, 2 or 3 */
    int64_t kernel_size[3]; /* per axis (first ndim used): odd, 3..axis length */
    int64_t dilation[3];    /* per axis: >= 1, dilation * kernel_size <= axis length */
    int     is_causal[3];   /* per axis: nonzero = see only the past and present */
    float   scale;          /* 0 = 1/sqrt(D) */
} attn_neighborhood_params;

#define ATTN_NEIGHBORHOOD_PARAMS_INIT { sizeof(attn_neighborhood_params), 2, {7, 7, 7}, \
                                        {1, 1, 1}, {0, 0, 0}, 0.0f }

/*
 * Neighborhood attention.
 *   q   [B, X(, Y(, Z)), Hq, D]     k [B, X(, Y(, Z)), Hkv, D]
 *   v   [B, X(, Y(, Z)), Hkv, Dv]   out [B, X(, Y(, Z)), Hq, Dv]
 *   lse [B, X(, Y(, Z)), Hq] f32, or NULL
 * (ndim + 3 dims each, ndim + 2 for lse). Hq must be a multiple of Hkv.
 * q, k and v share one dtype (F32, F16 or BF16); out may be any of the
 * three. Any strides. Accumulation is in f32. The CPU computes it tile by
 * tile: neighbouring queries share most of their keys, so each row of keys
 * is packed once for a block of queries and read in place by every query
 * tile of the block; the windows are never materialised.
 */
ATTN_API attn_status attn_neighborhood(attn_context *ctx, const attn_neighborhood_params *p,
                                       const attn_tensor *q, const attn_tensor *k,
                                       const attn_tensor *v, const attn_tensor *out,
                                       const attn_tensor *lse);

/* ---------------------- end of neighborhood attention -------------------- */

#ifdef __cplusplus
}
#endif

#endif /* ATTN_H */
