/* Validated op descriptions handed from src/ (validation) to a backend.
 * A backend may assume everything here is consistent and in bounds. */
#ifndef ATTN_PROBLEM_H
#define ATTN_PROBLEM_H

#include "tensor.h"

typedef struct attn_sdpa_problem {
    /* q [Bt,Sq,Hq,D] k [Bt,Sk,Hkv,D] v [Bt,Sk,Hkv,Dv] out [Bt,Sq,Hq,Dv]
     * where Bt is 1 for varlen. */
    attn_view q, k, v, out;
    attn_view lse;          /* [Bt,Hq,Sq] f32;  has_lse */
    attn_view mask;         /* [B|1,Hq|1,Sq,Sk]; has_mask (stride 0 on broadcast dims) */
    attn_view gate;         /* like out;         has_gate */
    attn_view block_mask;   /* [B|1,Hq|1,nbq,nbk]; has_block_mask (broadcast strides 0) */
    int has_lse, has_mask, mask_is_bool, has_gate, has_block_mask;

    int64_t num_seqs;       /* B, or the varlen sequence count */
    int64_t hq, hkv, d, dv;
    int64_t sq, sk;         /* per-sequence lengths (longest, for varlen) */
    const int32_t *cu_q, *cu_k; /* NULL unless varlen */

    float scale, softcap, sigmoid_bias;
    attn_score score;
    int causal;
    int64_t window_left, window_right, sink_tokens; /* -1 = unlimited */
    const float *alibi_slopes, *sink_logits;
    int64_t block_q, block_k;
} attn_sdpa_problem;

typedef struct attn_merge_problem {
    int n;
    attn_view *outs, *lses;  /* n each, [B,S,H,Dv] and [B,H,S] */
    attn_view out, lse;      /* lse valid when has_lse */
    int has_lse;
    int64_t b, s, h, dv;
} attn_merge_problem;

/* attn_decode: a few query tokens per sequence against a paged KV cache.
 * Each seqs[b] is a live sequence holding at least sq tokens. */
struct attn_kv_cache;
typedef struct attn_decode_problem {
    attn_view q;            /* [B,Sq,Hq,D] */
    attn_view out;          /* [B,Sq,Hq,Dv] */
    attn_view lse;          /* [B,Hq,Sq] f32; has_lse */
    attn_view gate;         /* like out; has_gate */
    int has_lse, has_gate;
    const struct attn_kv_cache *cache;
    const int32_t *seqs;    /* [B] */
    int64_t b, sq, hq, hkv, d, dv;
    float scale, softcap, sigmoid_bias;
    attn_score score;
    int causal;
    int64_t window_left, window_right, sink_tokens; /* -1 = unlimited */
    const float *alibi_slopes, *sink_logits;
} attn_decode_problem;


typedef struct attn_linear_problem {
    /* q,k [Bt,S,H,Dk]  v,out [Bt,S,H,Dv]; Bt is 1 for varlen. */
    attn_view q, k, v, out;
    attn_view g;                    /* [Bt,S,H] or [Bt,S,H,Dk] (g_per_channel); has_g */
    attn_view beta;                 /* [Bt,S,H]; has_beta */
    attn_view state_in, state_out;  /* [N,H,Dk,Dv] f32 */
    attn_view z_in, z_out;          /* [N,H,Dk] f32 (normalize) */
    int has_g, g_per_channel, has_beta;
    int has_state_in, has_state_out, has_z_in, has_z_out;
    attn_linear_kind kind;
    attn_linear_feature feature;    /* IDENTITY for the delta kinds */
    attn_linear_algo algo;
    int normalize, l2norm_qk, chunk;
    float scale, norm_eps;
    const float *decay;             /* [H] gamma for DECAY without g, else NULL */
    int64_t num_seqs, s, h, dk, dv; /* s: per-sequence length (longest for varlen) */
    const int32_t *cu;              /* NULL unless varlen */
} attn_linear_problem;

/* ---- attn_block_select (block-sparse selection) ---- */
typedef struct attn_block_select_problem {
    attn_view q, k;         /* [B,Sq,Hq,D], [B,Sk,Hkv,D] */
    attn_view mask;         /* U8 [B,Hq,nbq,nbk] */
    attn_block_select_method method;
    int64_t b, sq, sk, hq, hkv, d;
    int64_t block_q, block_k, nbq, nbk;
    int64_t stride;         /* XATTN */
    float threshold, scale; /* XATTN; scale resolved (never 0) */
    int64_t top_k;          /* MOBA */
    int causal;
} attn_block_select_problem;
/* ---- end attn_block_select ---- */

/* attn_neighborhood: grids are held as 3 axes, outermost first; a call of
 * ndim < 3 pads the leading axes with length 1, kernel 1, dilation 1. */
typedef struct attn_neighborhood_problem {
    /* q [B,A0,A1,A2,Hq,D] k [..,Hkv,D] v [..,Hkv,Dv] out [..,Hq,Dv], 6-d views */
    attn_view q, k, v, out;
    attn_view lse;          /* [B,A0,A1,A2,Hq] f32; has_lse */
    int has_lse;
    int64_t b, hq, hkv, d, dv;
    int64_t len[3], kernel[3], dil[3];
    int causal[3];
    float scale;
} attn_neighborhood_problem;

#endif
