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

// Every loop has a trip count uniform over the workgroup and every barrier is reached by all
// invocations; threads of diverged or absent chains compute on and discard their values.
constexpr std::string_view kLogisticMain = R"(
layout(push_constant) uniform Push {
  uint key0; uint key1; uint chains; uint first; uint count; uint proposal_at; uint keep_draws; float jitter;
} pc;

const uint VKN_WG = VKN_T * VKN_G;
const uint VKN_TILES = (uint(VKN_N) + VKN_R - 1u) / VKN_R;
// Odd row stride: the pairs of a warp read one column of consecutive rows without bank conflicts.
const uint VKN_XS = uint(VKN_DIM) + 1u - uint(VKN_DIM) % 2u;
shared float vkn_xs[VKN_R * VKN_XS];
shared float vkn_ys[VKN_R];
shared REAL vkn_res[VKN_G * VKN_R];   // residuals, then log-likelihood terms, per (chain, row)
shared REAL vkn_beta[VKN_G * uint(VKN_DIM)];
shared REAL vkn_red_a[VKN_WG];
shared REAL vkn_red_b[VKN_WG];

// Sums a and b over the VKN_T threads of each chain (segments of the workgroup).
void vkn_chain_sum2(inout REAL a, inout REAL b, uint lid, uint base) {
  vkn_red_a[lid] = a;
  vkn_red_b[lid] = b;
  barrier();
  for (uint s = VKN_T / 2u; s > 0u; s >>= 1u) {
    if (lid - base < s) {
      vkn_red_a[lid] += vkn_red_a[lid + s];
      vkn_red_b[lid] += vkn_red_b[lid + s];
    }
    barrier();
  }
  a = vkn_red_a[base];
  b = vkn_red_b[base];
  barrier();
}

// One gradient pass for the workgroup's chains at the q in vkn_beta: returns this thread's
// share of the log likelihood of its chain and adds X^T r to gacc (its own coordinates).
REAL vkn_likelihood_pass(uint lid, uint seg, uint tid, inout REAL gacc[VKN_PER]) {
  REAL ll[VKN_PAIRS];
  for (int k = 0; k < VKN_PAIRS; ++k) ll[k] = REAL(0);
  for (int k = 0; k < VKN_PER; ++k) gacc[k] = REAL(0);
  for (uint tile = 0u; tile < VKN_TILES; ++tile) {
    const uint row0 = tile * VKN_R;
    for (uint idx = lid; idx < VKN_R * uint(VKN_DIM); idx += VKN_WG) {
      const uint r = idx / uint(VKN_DIM);
      vkn_xs[r * VKN_XS + idx % uint(VKN_DIM)] = row0 + r < uint(VKN_N) ? vkn_X[row0 * uint(VKN_DIM) + idx] : 0.0;
    }
    for (uint r = lid; r < VKN_R; r += VKN_WG) vkn_ys[r] = row0 + r < uint(VKN_N) ? vkn_y[row0 + r] : 0.0;
    barrier();
    for (int k = 0; k < VKN_PAIRS; ++k) {
      const uint pair = lid + uint(k) * VKN_WG;  // (chain, row) = (pair / R, pair % R)
      if (pair >= VKN_G * VKN_R) break;
      const uint cl = pair / VKN_R, r = pair % VKN_R;
      REAL eta = REAL(0);
      for (int j = 0; j < VKN_DIM; ++j) eta += REAL(vkn_xs[r * VKN_XS + uint(j)]) * vkn_beta[cl * uint(VKN_DIM) + uint(j)];
      const REAL e = vkn_exp(-abs(eta));
      const REAL yn = REAL(vkn_ys[r]);
      const bool in_data = row0 + r < uint(VKN_N);
      ll[k] += in_data ? yn * eta - (max(eta, REAL(0)) + vkn_log1p(e)) : REAL(0);
      vkn_res[pair] = in_data ? yn - (eta >= REAL(0) ? REAL(1) / (REAL(1) + e) : e / (REAL(1) + e)) : REAL(0);
    }
    barrier();
    for (int k = 0; k < VKN_PER; ++k) {
      const uint j = tid * uint(VKN_PER) + uint(k);
      if (j < uint(VKN_DIM)) {
        REAL acc = REAL(0);
        for (uint r = 0u; r < VKN_R; ++r) acc += REAL(vkn_xs[r * VKN_XS + j]) * vkn_res[seg * VKN_R + r];
        gacc[k] += acc;
      }
    }
    barrier();
  }
  for (int k = 0; k < VKN_PAIRS; ++k) {
    if (lid + uint(k) * VKN_WG < VKN_G * VKN_R) vkn_res[lid + uint(k) * VKN_WG] = ll[k];
  }
  barrier();
  REAL share = REAL(0);
  for (uint r = tid; r < VKN_R; r += VKN_T) share += vkn_res[seg * VKN_R + r];
  barrier();
  return share;
}

void main() {
  const uint lid = gl_LocalInvocationID.x;
  const uint seg = lid / VKN_T, tid = lid % VKN_T, base = seg * VKN_T;
  const uint C = pc.chains;
  const uint c = gl_WorkGroupID.x * VKN_G + seg;
  const bool live = c < C;
  const uint cc = live ? c : 0u;
  const uvec2 key = uvec2(pc.key0, pc.key1);
  const uint chain = cnt[cc];
  REAL q[VKN_PER], p[VKN_PER], g[VKN_PER], m[VKN_PER], gacc[VKN_PER];
  bool own[VKN_PER];
  for (int k = 0; k < VKN_PER; ++k) {
    const uint i = tid * uint(VKN_PER) + uint(k);
    own[k] = i < uint(VKN_DIM);
    q[k] = own[k] ? qv[i * C + cc] : REAL(0);
    g[k] = own[k] ? gv[i * C + cc] : REAL(0);
    m[k] = own[k] ? mv[i * C + cc] : REAL(1);
    p[k] = REAL(0);
  }
  REAL lp = sv[cc];
  const REAL eps0 = sv[C + cc];
  for (uint t = pc.first; t < pc.first + pc.count; ++t) {
    const uint it = cnt[C + cc] + t;
    const uint K = cnt[2u * C + t];
    REAL ke = REAL(0), unused = REAL(0);
    for (int k = 0; k < VKN_PER; ++k) {
      const uint i = tid * uint(VKN_PER) + uint(k);
      const vec4 z = vkn_normal4(vkn_philox(uvec4(i / 4u, chain, it, 0u), key));
      p[k] = own[k] ? REAL(z[i % 4u]) / sqrt(m[k]) : REAL(0);
      ke += m[k] * p[k] * p[k];
    }
    vkn_chain_sum2(ke, unused, lid, base);
    const REAL h0 = -lp + REAL(0.5) * ke;
    const uvec4 ra = vkn_philox(uvec4(0u, chain, it, 1u), key);
    REAL eps = eps0;
    if (pc.jitter > 0.0) eps *= REAL(1.0) + REAL(pc.jitter) * (REAL(2.0) * REAL(vkn_unit(ra.y)) - REAL(1.0));
    const REAL half_eps = REAL(0.5) * eps;
    REAL h = h0, lp1 = lp;
    uint n = 0u;
    bool divergent = false;
    for (uint s = 0u; s < K; ++s) {
      for (int k = 0; k < VKN_PER; ++k) {
        const uint i = tid * uint(VKN_PER) + uint(k);
        if (!divergent && own[k]) {
          p[k] += half_eps * g[k];
          q[k] += eps * m[k] * p[k];
        }
        if (own[k]) vkn_beta[seg * uint(VKN_DIM) + i] = q[k];
      }
      barrier();
      REAL lpart = vkn_likelihood_pass(lid, seg, tid, gacc);
      REAL kpart = REAL(0);
      for (int k = 0; k < VKN_PER; ++k) {
        if (!own[k]) continue;
        lpart -= REAL(0.5) * VKN_INV_VAR * q[k] * q[k];
        if (!divergent) {
          g[k] = gacc[k] - VKN_INV_VAR * q[k];
          p[k] += half_eps * g[k];
        }
        kpart += m[k] * p[k] * p[k];
      }
      vkn_chain_sum2(lpart, kpart, lid, base);
      if (!divergent) {
        ++n;
        lp1 = VKN_C0 + lpart;
        h = -lp1 + REAL(0.5) * kpart;
        if (!(h - h0 <= REAL(1000.0))) divergent = true;  // also true for NaN
      }
    }
    if (live && t == pc.proposal_at) {
      for (int k = 0; k < VKN_PER; ++k) {
        const uint i = tid * uint(VKN_PER) + uint(k);
        if (own[k]) {
          pv[i * C + c] = q[k];
          pv[(uint(VKN_DIM) + i) * C + c] = m[k] * p[k];
        }
      }
    }
    REAL accept = REAL(0);
    if (!divergent) {
      accept = min(REAL(1), vkn_exp(h0 - h));
      if (isnan(accept)) accept = REAL(0);
    }
    const bool accepted = !divergent && REAL(vkn_unit(ra.x)) < accept;
    if (accepted) lp = lp1;
    for (int k = 0; k < VKN_PER; ++k) {
      const uint i = tid * uint(VKN_PER) + uint(k);
      if (!own[k]) continue;
      if (accepted) {
        if (live) {
          qv[i * C + c] = q[k];
          gv[i * C + c] = g[k];
        }
      } else {
        q[k] = qv[i * C + cc];
        g[k] = gv[i * C + cc];
      }
      if (live && pc.keep_draws != 0u) dv[(t * uint(VKN_DIM) + i) * C + c] = q[k];
    }
    if (live && tid == 0u) {
      const uint st = t * 6u * C + c;
      stv[st] = lp;
      stv[st + C] = eps;
      stv[st + 2u * C] = accept;
      stv[st + 3u * C] = accepted ? h : h0;
      stv[st + 4u * C] = REAL(n);
      stv[st + 5u * C] = REAL((divergent ? 1u : 0u) + (accepted ? 2u : 0u));
    }
  }
  if (live && tid == 0u) sv[c] = lp;
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

LogisticLayout logistic_layout(size_t d, Precision precision) {
  LogisticLayout l;
  while (l.threads_per_chain < 32 && l.threads_per_chain < d) l.threads_per_chain *= 2;
  l.per_thread = static_cast<uint32_t>((d + l.threads_per_chain - 1) / l.threads_per_chain);
  l.chains_per_group = std::max<uint32_t>(1, 256 / l.threads_per_chain);
  // Shared memory within the 16 KiB every Vulkan device offers: the X and y tile and the
  // residuals (per row), q of the workgroup's chains and the reduction buffers (fixed).
  const size_t rb = precision == Precision::f64 ? 8 : 4,
               wg = l.threads_per_chain * l.chains_per_group;
  const size_t fixed = l.chains_per_group * d * rb + 2 * wg * rb + 256;
  const size_t per_row = 4 * (d + 1 - d % 2) + 4 + l.chains_per_group * rb;
  size_t rows = fixed < 16384 ? (16384 - fixed) / per_row : 1;
  size_t pow2 = 1;
  while (pow2 * 2 <= rows) pow2 *= 2;
  // At least one row per thread of a chain, so that the (chain, row) pairs fill whole passes.
  l.rows_per_tile = static_cast<uint32_t>(std::max<size_t>(l.threads_per_chain, pow2));
  l.shared_bytes = fixed + l.rows_per_tile * per_row;
  return l;
}

std::string logistic_transition_source(const Model& model, Precision p, const LogisticLayout& l,
                                       const LogisticConstants& k) {
  const std::string real = p == Precision::f64 ? "double" : "float";
  const uint32_t wg = l.threads_per_chain * l.chains_per_group;
  std::string s = "#version 450\n";
  s += vkn::format("layout(local_size_x = {}) in;\n", wg);
  s += model.glsl({p});
  s += philox_glsl();
  s += vkn::format(
      "const uint VKN_T = {}u;\nconst uint VKN_G = {}u;\nconst int VKN_PER = {};\nconst uint VKN_R "
      "= {}u;\n",
      l.threads_per_chain, l.chains_per_group, l.per_thread, l.rows_per_tile);
  // (chain, row) pairs of a tile per thread.
  s += vkn::format("const int VKN_PAIRS = {};\n",
                   (l.chains_per_group * l.rows_per_tile + wg - 1) / wg);
  s += vkn::format("const {} VKN_C0 = {};\nconst {} VKN_INV_VAR = {};\n", real,
                   glsl_literal(k.c0, p), real, glsl_literal(k.inv_var, p));
  s += transition_buffers(p);
  s += glsl_with_real(kLogisticMain, p);
  return s;
}

}  // namespace vkn::sampler::detail
