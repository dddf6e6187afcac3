#version 450
// A kernel whose running time grows with `iterations`: each invocation runs a
// dependent integer recurrence and stores the result (so it cannot be elided).
// Used to make jobs that outlive a deadline.
layout(local_size_x = 64) in;
layout(std430, set = 0, binding = 0) writeonly buffer Out { uint result[]; };
layout(push_constant) uniform Push { uint iterations; uint count; } pc;
void main() {
  const uint i = gl_GlobalInvocationID.x;
  uint x = i * 747796405u + 2891336453u;
  for (uint k = 0u; k < pc.iterations; ++k) x = x * 1664525u + 1013904223u + (x >> 13);
  if (i < pc.count) result[i] = x;
}
