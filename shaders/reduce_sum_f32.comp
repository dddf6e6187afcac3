#version 450
// One pass of a sum: workgroup g writes the sum of its grid-stride share of
// src[0..count) to partial[g]. The host repeats passes until one value is left.
layout(local_size_x = 256) in;
layout(std430, set = 0, binding = 0) readonly buffer Src { float src[]; };
layout(std430, set = 0, binding = 1) writeonly buffer Partial { float partial[]; };
layout(push_constant) uniform Push { uint count; } pc;
shared float sums[256];
void main() {
  const uint stride = gl_NumWorkGroups.x * 256u;
  float acc = 0.0;
  for (uint i = gl_GlobalInvocationID.x; i < pc.count; i += stride) acc += src[i];
  sums[gl_LocalInvocationID.x] = acc;
  barrier();
  for (uint s = 128u; s > 0u; s >>= 1u) {
    if (gl_LocalInvocationID.x < s) sums[gl_LocalInvocationID.x] += sums[gl_LocalInvocationID.x + s];
    barrier();
  }
  if (gl_LocalInvocationID.x == 0u) partial[gl_WorkGroupID.x] = sums[0];
}
