#version 450
/* attn_buffer_copy on the shader cores: n units (16-byte uvec4 when VEC,
 * else 32-bit words) from unit src of binding 0/2 to unit dst of binding
 * 1/3 (the same buffer may be bound to both: the ranges are disjoint).
 * A copy command may run on a DMA engine slower than the memory (on some
 * discrete GPUs a fraction of it); this runs at the rate the kernels read.
 * Each invocation moves four units a grid apart per pass, the four loads
 * issued before the stores so that they are in flight together. */
layout(local_size_x_id = 0) in;
layout(constant_id = 1) const int VEC = 1;

layout(std430, binding = 0) readonly buffer Src4 { uvec4 w[]; } S4;
layout(std430, binding = 1) writeonly buffer Dst4 { uvec4 w[]; } D4;
layout(std430, binding = 2) readonly buffer Src1 { uint w[]; } S1;
layout(std430, binding = 3) writeonly buffer Dst1 { uint w[]; } D1;

layout(push_constant) uniform Push { uint src, dst, n; } pc;

void main()
{
    const uint grid = gl_NumWorkGroups.x * gl_WorkGroupSize.x;
    for (uint i = gl_GlobalInvocationID.x; i < pc.n; i += 4u * grid) {
        if (VEC != 0) {
            uvec4 v[4];
            for (uint k = 0u; k < 4u; k++)
                if (i + k * grid < pc.n)
                    v[k] = S4.w[pc.src + i + k * grid];
            for (uint k = 0u; k < 4u; k++)
                if (i + k * grid < pc.n)
                    D4.w[pc.dst + i + k * grid] = v[k];
        } else {
            uint v[4];
            for (uint k = 0u; k < 4u; k++)
                if (i + k * grid < pc.n)
                    v[k] = S1.w[pc.src + i + k * grid];
            for (uint k = 0u; k < 4u; k++)
                if (i + k * grid < pc.n)
                    D1.w[pc.dst + i + k * grid] = v[k];
        }
    }
}
