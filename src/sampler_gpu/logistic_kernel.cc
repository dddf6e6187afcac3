// The logistic-regression transition kernel (see kernel_source.h and docs/sampler.md).
#include <algorithm>
#include <cmath>
#include <span>
#include <vector>

#include "sampler/glsl_math.h"
#include "sampler_gpu/kernel_source.h"
#include "util/strformat.h"

namespace vkn::sampler::detail {
namespace {

// Invocation lid = slice * VKN_CW + lane; chain = workgroup * VKN_CW + lane. Every slice of a
// chain computes the same momentum, accept decision and leapfrog updates from the same
// reduced gradient, so they agree bit for bit; slice 0 writes. Loops that contain barriers
// have workgroup-uniform trip counts; invocations of diverged or absent chains compute on and
// discard their values.
constexpr std::string_view kLogisticMain = R"(
layout(push_constant) uniform Push {
  uint key0; uint key1; uint chains; uint first; uint count; uint proposal_at; uint keep_draws; float jitter;
} pc;

const uint VKN_WG = VKN_CW * VKN_S;
const uint VKN_D1 = uint(VKN_DIM) + 1u;  // gradient and the log likelihood
// VKN_P slots of partial sums: slices s, s + P, s + 2P, ... add into slot s in turn.
shared REAL vkn_part[VKN_P * VKN_D1 * VKN_CW];
// The chain's state at the start of the iteration, for a rejection (slice 0 writes it; reading
// it back from the state buffer would need buffer coherence between invocations).
shared REAL vkn_q0[VKN_DIM * VKN_CW];
shared REAL vkn_g0[VKN_DIM * VKN_CW];

// Row n's log likelihood (added to ll) and gradient (added to grad) at q.
void vkn_add_row(uint n, in REAL q[VKN_DIM], inout REAL grad[VKN_DIM], inout REAL ll) {
  // The row once into registers (16-byte loads where rows are), for eta and the gradient.
  REAL xr[VKN_DIM];
#ifdef VKN_X4
  [[unroll]] for (int k = 0; k < VKN_DIM / 4; ++k) {
    const vec4 v = vkn_X4[n * uint(VKN_DIM / 4) + uint(k)];
    xr[4 * k] = REAL(v.x);
    xr[4 * k + 1] = REAL(v.y);
    xr[4 * k + 2] = REAL(v.z);
    xr[4 * k + 3] = REAL(v.w);
  }
#else
  [[unroll]] for (int j = 0; j < VKN_DIM; ++j) xr[j] = REAL(vkn_X[n * uint(VKN_DIM) + uint(j)]);
#endif
  REAL e4[4] = REAL[4](REAL(0), REAL(0), REAL(0), REAL(0));  // four chains of FMAs, not one
  [[unroll]] for (int j = 0; j < VKN_DIM; ++j) e4[j % 4] += xr[j] * q[j];
  const REAL eta = (e4[0] + e4[1]) + (e4[2] + e4[3]);
  const REAL e = vkn_exp(-abs(eta));
  const REAL yn = REAL(vkn_y[n]);
  // One division for both: log1p(e) = log(u) corrected for the rounding of u = 1 + e, and the
  // logistic of eta is 1 / u or e / u.
  const REAL u = REAL(1) + e;
  const REAL inv = REAL(1) / u;
  ll += yn * eta - (max(eta, REAL(0)) + (vkn_log(u) - ((u - REAL(1)) - e) * inv));
  const REAL r = yn - (eta >= REAL(0) ? inv : e * inv);
  [[unroll]] for (int j = 0; j < VKN_DIM; ++j) grad[j] += r * xr[j];
}

// Log likelihood (returned) and gradient (grad) at q of rows slice, slice + S, ..., summed over
// all slices of the chain; every invocation of the chain gets the totals.
REAL vkn_likelihood(in REAL q[VKN_DIM], out REAL grad[VKN_DIM], uint slice, uint lane, uint lid) {
  REAL ll = REAL(0);
  for (int j = 0; j < VKN_DIM; ++j) grad[j] = REAL(0);
  uint n = slice;
  // VKN_ROWS rows at a time: independent chains of loads and FMAs in flight.
  for (; n + (VKN_ROWS - 1u) * VKN_S < uint(VKN_N); n += VKN_ROWS * VKN_S) {
    [[unroll]] for (uint k = 0u; k < VKN_ROWS; ++k) vkn_add_row(n + k * VKN_S, q, grad, ll);
  }
  for (; n < uint(VKN_N); n += VKN_S) vkn_add_row(n, q, grad, ll);
  const uint mine = (slice % VKN_P) * VKN_D1 * VKN_CW + lane;
  for (uint round = 0u; round < VKN_S / VKN_P; ++round) {
    if (slice / VKN_P == round) {
      for (int j = 0; j < VKN_DIM; ++j) {
        const uint at = mine + uint(j) * VKN_CW;
        vkn_part[at] = round == 0u ? grad[j] : vkn_part[at] + grad[j];
      }
      const uint at = mine + uint(VKN_DIM) * VKN_CW;
      vkn_part[at] = round == 0u ? ll : vkn_part[at] + ll;
    }
    barrier();
  }
  for (uint o = lid; o < VKN_D1 * VKN_CW; o += VKN_WG) {  // o = j * CW + lane: sum the slots
    REAL sum = REAL(0);
    for (uint s = 0u; s < VKN_P; ++s) sum += vkn_part[s * VKN_D1 * VKN_CW + o];
    vkn_part[o] = sum;
  }
  barrier();
  for (int j = 0; j < VKN_DIM; ++j) grad[j] = vkn_part[uint(j) * VKN_CW + lane];
  ll = vkn_part[uint(VKN_DIM) * VKN_CW + lane];
  barrier();
  return ll;
}

void main() {
  const uint lid = gl_LocalInvocationID.x;
  const uint slice = lid / VKN_CW, lane = lid % VKN_CW;
  const uint C = pc.chains;
  const uint c = gl_WorkGroupID.x * VKN_CW + lane;
  const bool live = c < C;
  const bool writer = live && slice == 0u;
  const uint cc = live ? c : 0u;
  const uvec2 key = uvec2(pc.key0, pc.key1);
  const uint chain = cnt[cc];
  REAL q[VKN_DIM], p[VKN_DIM], g[VKN_DIM], m[VKN_DIM], gl[VKN_DIM];
  for (int i = 0; i < VKN_DIM; ++i) {
    q[i] = qv[uint(i) * C + cc];
    g[i] = gv[uint(i) * C + cc];
    m[i] = mv[uint(i) * C + cc];
  }
  REAL lp = sv[cc];
  const REAL eps0 = sv[C + cc];
  for (uint t = pc.first; t < pc.first + pc.count; ++t) {
    const uint it = cnt[C + cc] + t;
    const uint K = cnt[2u * C + t];
    if (slice == 0u) {
      for (int i = 0; i < VKN_DIM; ++i) {
        vkn_q0[uint(i) * VKN_CW + lane] = q[i];
        vkn_g0[uint(i) * VKN_CW + lane] = g[i];
      }
    }
    barrier();
    for (int j = 0; 4 * j < VKN_DIM; ++j) {
      const vec4 z = vkn_normal4(vkn_philox(uvec4(uint(j), chain, it, 0u), key));
      for (int k = 0; k < 4; ++k) {
        if (4 * j + k < VKN_DIM) p[4 * j + k] = REAL(z[k]) / sqrt(m[4 * j + k]);
      }
    }
    REAL ke = REAL(0);
    for (int i = 0; i < VKN_DIM; ++i) ke += m[i] * p[i] * p[i];
    const REAL h0 = -lp + REAL(0.5) * ke;
    const uvec4 ra = vkn_philox(uvec4(0u, chain, it, 1u), key);
    REAL eps = eps0;
    if (pc.jitter > 0.0) eps *= REAL(1.0) + REAL(pc.jitter) * (REAL(2.0) * REAL(vkn_unit(ra.y)) - REAL(1.0));
    const REAL half_eps = REAL(0.5) * eps;
    REAL h = h0, lp1 = lp;
    uint n = 0u;
    bool divergent = false;
    for (uint s = 0u; s < K; ++s) {
      if (!divergent) {
        for (int i = 0; i < VKN_DIM; ++i) p[i] += half_eps * g[i];
        for (int i = 0; i < VKN_DIM; ++i) q[i] += eps * m[i] * p[i];
      }
      const REAL ll = vkn_likelihood(q, gl, slice, lane, lid);
      if (!divergent) {
        REAL prior = REAL(0);
        ke = REAL(0);
        for (int i = 0; i < VKN_DIM; ++i) {
          g[i] = gl[i] - VKN_INV_VAR * q[i];
          p[i] += half_eps * g[i];
          prior += q[i] * q[i];
          ke += m[i] * p[i] * p[i];
        }
        lp1 = VKN_C0 - REAL(0.5) * VKN_INV_VAR * prior + ll;
        h = -lp1 + REAL(0.5) * ke;
        ++n;
        if (!(h - h0 <= REAL(1000.0))) divergent = true;  // also true for NaN
      }
    }
    if (writer && t == pc.proposal_at) {
      for (int i = 0; i < VKN_DIM; ++i) {
        pv[uint(i) * C + c] = q[i];
        pv[uint(VKN_DIM + i) * C + c] = m[i] * p[i];
      }
    }
    const REAL accept = vkn_accept_stat(divergent, h0, h);
    const bool accepted = !divergent && REAL(vkn_unit(ra.x)) < accept;
    if (accepted) {
      lp = lp1;
    } else {
      for (int i = 0; i < VKN_DIM; ++i) {
        q[i] = vkn_q0[uint(i) * VKN_CW + lane];
        g[i] = vkn_g0[uint(i) * VKN_CW + lane];
      }
    }
    // Every slice has read the saved state before slice 0 overwrites it next iteration.
    barrier();
    if (writer) {
      if (accepted) {
        for (int i = 0; i < VKN_DIM; ++i) {
          qv[uint(i) * C + c] = q[i];
          gv[uint(i) * C + c] = g[i];
        }
      }
      if (pc.keep_draws != 0u) {
        for (int i = 0; i < VKN_DIM; ++i) dv[(t * uint(VKN_DIM) + uint(i)) * C + c] = q[i];
      }
      vkn_write_stats(t, c, C, lp, eps, accept, accepted ? h : h0, n, divergent, accepted);
    }
  }
  if (writer) sv[c] = lp;
}
)";

// The log likelihood and its gradient (added to grad) on the f32 data, as the model computes it.
double log_likelihood(const std::vector<float>& x, const std::vector<float>& y,
                      std::span<const double> q, std::span<double> grad) {
  const size_t d = q.size();
  double ll = 0;
  for (size_t n = 0; n < y.size(); ++n) {
    double eta = 0;
    for (size_t j = 0; j < d; ++j) eta += x[n * d + j] * q[j];
    const double e = std::exp(-std::abs(eta)), yn = y[n];
    ll += yn * eta - (std::max(eta, 0.0) + std::log1p(e));
    const double r = yn - (eta >= 0 ? 1.0 / (1.0 + e) : e / (1.0 + e));
    for (size_t j = 0; j < d; ++j) grad[j] += r * x[n * d + j];
  }
  return ll;
}

}  // namespace

std::optional<LogisticConstants> logistic_structure(const Model& model) {
  const size_t d = model.dimension();
  if (model.name().rfind("logistic_regression(", 0) != 0 || d == 0) return std::nullopt;
  const auto buffers = model.data_buffers();
  if (buffers.size() != 2 || buffers[0].name != "X" || buffers[1].name != "y") return std::nullopt;
  const auto& x = buffers[0].values;
  const auto& y = buffers[1].values;
  if (y.empty() || x.size() != y.size() * d) return std::nullopt;
  // lp(q) = c0 - inv_var |q|^2 / 2 + ll(q): c0 from q = 0, inv_var from q = e_1.
  std::vector<double> q(d, 0.0), g(d), scratch(d);
  LogisticConstants k;
  k.c0 = model.log_density(q, g) - log_likelihood(x, y, q, scratch);
  q[0] = 1.0;
  k.inv_var = 2.0 * (k.c0 - (model.log_density(q, g) - log_likelihood(x, y, q, scratch)));
  if (!std::isfinite(k.c0) || !(k.inv_var > 0) || !std::isfinite(k.inv_var)) return std::nullopt;
  for (int trial = 0; trial < 2; ++trial) {
    double sq = 0;
    for (size_t j = 0; j < d; ++j) {
      q[j] = 0.37 * std::sin(1.7 * static_cast<double>(j + 1) + trial);
      sq += q[j] * q[j];
    }
    std::vector<double> mine(d);
    for (size_t j = 0; j < d; ++j) mine[j] = -k.inv_var * q[j];
    const double lp = model.log_density(q, g);
    const double replica = k.c0 - 0.5 * k.inv_var * sq + log_likelihood(x, y, q, mine);
    if (!(std::abs(lp - replica) <= 1e-9 * std::max(1.0, std::abs(lp)))) return std::nullopt;
    double scale = 1.0;
    for (double v : g) scale = std::max(scale, std::abs(v));
    for (size_t j = 0; j < d; ++j) {
      if (!(std::abs(g[j] - mine[j]) <= 1e-9 * scale)) return std::nullopt;
    }
  }
  return k;
}

LogisticLayout logistic_layout(size_t d, Precision precision, size_t shared_limit,
                               uint32_t max_invocations) {
  LogisticLayout l;
  const size_t rb = precision == Precision::f64 ? 8 : 4;
  const size_t per_slice = (d + 1) * l.chains_per_group * rb;
  const size_t saved = 2 * d * l.chains_per_group * rb;  // vkn_q0, vkn_g0
  // Measured on the H200 for B (N = 10000, d = 32, 1024 chains; kernel only): 32 slices x 1
  // row 63.9 ms, 32 x 4 rows 46.8 ms, 64 x 4 rows 39.4 ms, 128 slices 251-287 ms (registers
  // spill at 1024 invocations). Up to d = 32 a chain's state still fits the registers of 512
  // invocations; beyond, 32 slices and 2 rows.
  uint32_t s = 1, slots = 1;
  const uint32_t max_slices = d <= 32 ? 64 : 32;
  l.rows = d <= 32 ? 4 : 2;
  while (s < max_slices && 2 * s * l.chains_per_group <= max_invocations) {
    if (saved + (2 * slots) * per_slice <= shared_limit) slots *= 2;
    s *= 2;
  }
  l.slices = s >= 2 && slots >= 2 ? s : 0;
  l.slots = slots;
  l.shared_bytes = saved + slots * per_slice;
  return l;
}

std::string logistic_transition_source(const Model& model, Precision p, const LogisticLayout& l,
                                       const LogisticConstants& k) {
  const std::string real = p == Precision::f64 ? "double" : "float";
  std::string s = "#version 450\n#extension GL_EXT_control_flow_attributes : require\n";
  s += vkn::format("layout(local_size_x = {}) in;\n", l.chains_per_group * l.slices);
  s += model.glsl({p});
  // X again as 16-byte elements (the same binding) when rows are whole multiples of them.
  const size_t d = model.dimension();
  if (d % 4 == 0) {
    s += vkn::format("#define VKN_X4 1\nlayout(std430, set = 0, binding = {}) readonly buffer BX4 {{ vec4 vkn_X4[]; }};\n",
                     kDataBindingBase);
  }
  s += philox_glsl();
  s += vkn::format("const uint VKN_CW = {}u;\nconst uint VKN_S = {}u;\nconst uint VKN_P = {}u;\nconst uint VKN_ROWS = {}u;\n",
                   l.chains_per_group, l.slices, l.slots, l.rows);
  s += vkn::format("const {} VKN_C0 = {};\nconst {} VKN_INV_VAR = {};\n", real,
                   glsl_literal(k.c0, p), real, glsl_literal(k.inv_var, p));
  s += transition_buffers(p);
  s += glsl_with_real(kLogisticMain, p);
  return s;
}

}  // namespace vkn::sampler::detail
