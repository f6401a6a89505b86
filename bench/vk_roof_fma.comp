#version 450
/* bench/vk-roof: the fp32 FMA rate. Each invocation runs 8 independent
 * chains (enough to cover the FMA latency), 16 steps per loop iteration. */
#extension GL_EXT_control_flow_attributes : require
layout(local_size_x = 256) in;
layout(std430, binding = 0) buffer Ob { float f[]; } O;
layout(push_constant) uniform PC { int iters; float a; float b; } pc;

void main()
{
    float x[8];
    [[unroll]] for (int i = 0; i < 8; i++)
        x[i] = float(gl_LocalInvocationID.x + i);
    for (int it = 0; it < pc.iters; it++)
        [[unroll]] for (int r = 0; r < 16; r++)
            [[unroll]] for (int i = 0; i < 8; i++)
                x[i] = fma(x[i], pc.a, pc.b);
    float s = 0.0;
    [[unroll]] for (int i = 0; i < 8; i++)
        s += x[i];
    O.f[gl_GlobalInvocationID.x] = s;   /* keeps the chains live */
}
