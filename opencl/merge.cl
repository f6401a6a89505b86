/* attn_merge: out = sum_i exp(lse_i - L) out_i / sum_i exp(lse_i - L) over
 * n partial results, L = max_i lse_i, in three kinds of launches over f32
 * scratch (M: row max, W: row weight sum, A: weighted sum of rows):
 *   attn_merge_max    once per partial, one work-item per row
 *   attn_merge_acc    once per partial, one work-item per element
 *   attn_merge_finish once, one work-item per element
 * Rows are (b, s, h) with r = (b*S + s)*H + h. */

inline long lse_index(long r, long S, long H, long l_off, long l0, long l1, long l2)
{
    const long h = r % H, s = (r / H) % S, b = r / (H * S);
    return l_off + b * l0 + h * l1 + s * l2;
}

__kernel void attn_merge_max(__global const float *lse, long l_off, long l0, long l1, long l2,
                             long S, long H, long rows, int first, __global float *M)
{
    const long r = get_global_id(0);
    if (r >= rows)
        return;
    const float x = lse[lse_index(r, S, H, l_off, l0, l1, l2)];
    M[r] = first ? x : fmax(M[r], x);
}

__kernel void attn_merge_acc(__global const uchar *o, int o_dt, long o_off,
                             long o0, long o1, long o2, long o3,
                             __global const float *lse, long l_off, long l0, long l1, long l2,
                             long S, long H, long DV, long rows, int first,
                             __global const float *M, __global float *W, __global float *A)
{
    const long e = get_global_id(0), DVe = DV > 0 ? DV : 1;  /* DV = 0: one item per row */
    if (e >= rows * DVe)
        return;
    const long r = e / DVe, c = e % DVe;
    const float mx = M[r];
    const float x = lse[lse_index(r, S, H, l_off, l0, l1, l2)];
    const float w = mx == -INFINITY ? 0.0f : exp(x - mx);   /* -inf parts weigh 0 */
    if (DV > 0) {
        float acc = first ? 0.0f : A[e];
        if (w != 0.0f) {
            const long h = r % H, s = (r / H) % S, b = r / (H * S);
            acc += w * attn_load(o, o_dt, o_off + b * o0 + s * o1 + h * o2 + c * o3);
        }
        A[e] = acc;
    }
    if (c == 0)
        W[r] = (first ? 0.0f : W[r]) + w;
}

__kernel void attn_merge_finish(__global uchar *out, int out_dt, long o_off,
                                long o0, long o1, long o2, long o3,
                                __global float *lse, long l_off, long l0, long l1, long l2,
                                int has_lse, long S, long H, long DV, long rows,
                                __global const float *M, __global const float *W,
                                __global const float *A)
{
    const long e = get_global_id(0), DVe = DV > 0 ? DV : 1;
    if (e >= rows * DVe)
        return;
    const long r = e / DVe, c = e % DVe;
    const float sum = W[r];
    const long h = r % H, s = (r / H) % S, b = r / (H * S);
    if (DV > 0)
        attn_store(out, out_dt, o_off + b * o0 + s * o1 + h * o2 + c * o3,
                   sum > 0.0f ? A[e] / sum : 0.0f);
    if (has_lse && c == 0)
        lse[lse_index(r, S, H, l_off, l0, l1, l2)] = sum > 0.0f ? M[r] + log(sum) : -INFINITY;
}
