// Philox4x32-10 (Salmon et al., SC'11) on the CPU, bit-identical to the GPU's
// shaders/philox_f32.comp and vkn::philox_reference (src/gpu/builtin_kernels.cc): the same round
// function and key schedule, the same 24-bit uniform mapping and the same Box-Muller normal
// mapping. Pure functions; thread-safe.
//
// Streams of the HMC sampler. Every random number of a run is a pure function of
// (seed, chain, iteration, stream, block), so the CPU and GPU paths draw the same numbers and a
// run can change path at any iteration:
//
//   key     = { seed & 0xffffffff, seed >> 32 }
//   counter = { block, chain, iteration, stream | (sub << 8) }
//
//   stream 0 (kStreamMomentum): block j gives the standard normals z[4j .. 4j+3] of the momentum
//            for `iteration` (p = z / sqrt(inv_metric)); coordinates past d are discarded.
//   stream 1 (kStreamAccept):   block 0, word 0, as a uniform u in [0, 1): accept when
//            u < min(1, exp(H0 - H1)); word 1, as a uniform, jitters the step size.
//   stream 2 (kStreamInit):     iteration = attempt, block j: uniforms for the initial point,
//            q = radius * (2u - 1) (Stan's uniform(-2, 2) by default).
//   stream 3 (kStreamStepSizeInit): iteration = the iteration where Stan's step-size heuristic
//            runs, sub = trial, block j: momentum normals for that trial.
//
// Iterations count from 0 at the first warm-up iteration through warm-up + draws - 1.
#pragma once

#include <array>
#include <cmath>
#include <cstdint>

namespace vkn::sampler {

using PhiloxCounter = std::array<uint32_t, 4>;
using PhiloxKey = std::array<uint32_t, 2>;

inline constexpr uint32_t kStreamMomentum = 0;
inline constexpr uint32_t kStreamAccept = 1;
inline constexpr uint32_t kStreamInit = 2;
inline constexpr uint32_t kStreamStepSizeInit = 3;

// Ten rounds of Philox4x32 (the key is bumped after every round, including the last, as the
// shader does; the tenth bump is unused).
constexpr PhiloxCounter philox4x32_10(PhiloxCounter c, PhiloxKey k) {
  for (int r = 0; r < 10; ++r) {
    const uint64_t p0 = uint64_t{0xD2511F53u} * c[0];
    const uint64_t p1 = uint64_t{0xCD9E8D57u} * c[2];
    c = {static_cast<uint32_t>(p1 >> 32) ^ c[1] ^ k[0], static_cast<uint32_t>(p1),
         static_cast<uint32_t>(p0 >> 32) ^ c[3] ^ k[1], static_cast<uint32_t>(p0)};
    k[0] += 0x9E3779B9u;
    k[1] += 0xBB67AE85u;
  }
  return c;
}

constexpr PhiloxKey philox_key(uint64_t seed) {
  return {static_cast<uint32_t>(seed), static_cast<uint32_t>(seed >> 32)};
}

constexpr PhiloxCounter philox_counter(uint32_t block, uint32_t chain, uint32_t iteration, uint32_t stream,
                                       uint32_t sub = 0) {
  return {block, chain, iteration, stream | (sub << 8)};
}

// The top 24 bits as a float in [0, 1) (exact: multiples of 2^-24).
constexpr float philox_unit(uint32_t x) { return static_cast<float>(x >> 8) * (1.0f / 16777216.0f); }

inline std::array<float, 4> philox_uniform4(PhiloxCounter c, PhiloxKey k) {
  const PhiloxCounter r = philox4x32_10(c, k);
  return {philox_unit(r[0]), philox_unit(r[1]), philox_unit(r[2]), philox_unit(r[3])};
}

// Box-Muller on words (0, 1) and (2, 3), written exactly as philox_reference does: the radius in
// float with u1 shifted into (0, 1], the angle tau * (u2 - 0.5) in [-pi, pi) (where GLSL bounds
// sin/cos to 2^-11 absolute error), its cos/sin in double, rounded to float.
inline std::array<float, 4> philox_normal4(PhiloxCounter c, PhiloxKey k) {
  constexpr double kTau = 6.28318530717958647692;
  const PhiloxCounter r = philox4x32_10(c, k);
  const float r0 = std::sqrt(-2.0f * std::log(philox_unit(r[0]) + 1.0f / 16777216.0f));
  const float r1 = std::sqrt(-2.0f * std::log(philox_unit(r[2]) + 1.0f / 16777216.0f));
  const double a0 = kTau * (philox_unit(r[1]) - 0.5f);
  const double a1 = kTau * (philox_unit(r[3]) - 0.5f);
  return {r0 * static_cast<float>(std::cos(a0)), r0 * static_cast<float>(std::sin(a0)),
          r1 * static_cast<float>(std::cos(a1)), r1 * static_cast<float>(std::sin(a1))};
}

}  // namespace vkn::sampler
