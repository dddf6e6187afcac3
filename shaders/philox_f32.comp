#version 450
// Philox4x32-10 counter-based random numbers (Salmon et al., SC'11).
// Thread t produces out[4t..4t+3] from counter (t + counter_lo, counter_hi, 0, 0) and
// key (key0, key1): uniform floats in [0, 1), or standard normals (Box-Muller) when
// mode == 1. Matches vkn::philox4x32 on the CPU.
layout(local_size_x = 256) in;
layout(std430, set = 0, binding = 0) writeonly buffer Out { float outv[]; };
layout(push_constant) uniform Push {
  uint count;
  uint key0;
  uint key1;
  uint counter_lo;
  uint counter_hi;
  uint mode;
} pc;

uvec4 philox(uvec4 c, uvec2 k) {
  for (int r = 0; r < 10; ++r) {
    uint hi0, lo0, hi1, lo1;
    umulExtended(0xD2511F53u, c.x, hi0, lo0);
    umulExtended(0xCD9E8D57u, c.z, hi1, lo1);
    c = uvec4(hi1 ^ c.y ^ k.x, lo1, hi0 ^ c.w ^ k.y, lo0);
    k += uvec2(0x9E3779B9u, 0xBB67AE85u);
  }
  return c;
}

float to_unit(uint x) { return float(x >> 8) * (1.0 / 16777216.0); }

void main() {
  const uint t = gl_GlobalInvocationID.x;
  if (4u * t >= pc.count) return;
  const uvec4 r = philox(uvec4(t + pc.counter_lo, pc.counter_hi, 0u, 0u), uvec2(pc.key0, pc.key1));
  vec4 v;
  if (pc.mode == 1u) {
    // u1 in (0, 1] keeps log() finite.
    const float r0 = sqrt(-2.0 * log(to_unit(r.x) + 1.0 / 16777216.0));
    const float r1 = sqrt(-2.0 * log(to_unit(r.z) + 1.0 / 16777216.0));
    // Angles in [-pi, pi), where GLSL bounds sin/cos to an absolute error of 2^-11.
    const float tau = 6.28318530717958647692;
    const float a0 = tau * (to_unit(r.y) - 0.5);
    const float a1 = tau * (to_unit(r.w) - 0.5);
    v = vec4(r0 * cos(a0), r0 * sin(a0), r1 * cos(a1), r1 * sin(a1));
  } else {
    v = vec4(to_unit(r.x), to_unit(r.y), to_unit(r.z), to_unit(r.w));
  }
  for (uint j = 0u; j < 4u; ++j) {
    if (4u * t + j < pc.count) outv[4u * t + j] = v[j];
  }
}
