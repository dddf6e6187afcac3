#include "sampler_gpu/kernel_source.h"

#include <algorithm>

#include "util/strformat.h"

namespace vkn::sampler::detail {
namespace {

// Philox4x32-10 and the 24-bit uniform / Box-Muller mappings of src/sampler/philox.h.
constexpr std::string_view kPhilox = R"(
uvec4 vkn_philox(uvec4 c, uvec2 k) {
  for (int r = 0; r < 10; ++r) {
    uint hi0, lo0, hi1, lo1;
    umulExtended(0xD2511F53u, c.x, hi0, lo0);
    umulExtended(0xCD9E8D57u, c.z, hi1, lo1);
    c = uvec4(hi1 ^ c.y ^ k.x, lo1, hi0 ^ c.w ^ k.y, lo0);
    k += uvec2(0x9E3779B9u, 0xBB67AE85u);
  }
  return c;
}
float vkn_unit(uint x) { return float(x >> 8) * (1.0 / 16777216.0); }
vec4 vkn_normal4(uvec4 r) {
  const float r0 = sqrt(-2.0 * log(vkn_unit(r.x) + 1.0 / 16777216.0));
  const float r1 = sqrt(-2.0 * log(vkn_unit(r.z) + 1.0 / 16777216.0));
  const float tau = 6.28318530717958647692;
  const float a0 = tau * (vkn_unit(r.y) - 0.5);
  const float a1 = tau * (vkn_unit(r.w) - 0.5);
  return vec4(r0 * cos(a0), r0 * sin(a0), r1 * cos(a1), r1 * sin(a1));
}
)";

std::string header(const Model& model, Precision p, uint32_t wg, std::string_view extensions = {}) {
  std::string s = "#version 450\n";
  s += extensions;
  s += vkn::format("layout(local_size_x = {}) in;\n", wg);
  s += model.glsl({p});
  s += kPhilox;
  return s;
}

std::string buffer(uint32_t binding, std::string_view qualifier, std::string_view type,
                   std::string_view name) {
  return vkn::format("layout(std430, set = 0, binding = {}) {} buffer B{} {{ {} {}[]; }};\n",
                     binding, qualifier, binding, type, name);
}

// The transition of leapfrog_backend.h; one invocation per chain, its q, p, grad and metric in
// registers for all iterations of the dispatch. The old state stays in global memory, so a
// rejection reloads it instead of keeping a second copy in registers.
constexpr std::string_view kTransitionMain = R"(
layout(push_constant) uniform Push {
  uint key0; uint key1; uint chains; uint first; uint count; uint proposal_at; uint keep_draws; float jitter;
} pc;

REAL vkn_kinetic(in REAL p[VKN_DIM], in REAL m[VKN_DIM]) {
  REAL k = REAL(0);
  for (int i = 0; i < VKN_DIM; ++i) k += m[i] * p[i] * p[i];
  return REAL(0.5) * k;
}

void main() {
  const uint c = gl_GlobalInvocationID.x;
  const uint C = pc.chains;
  if (c >= C) return;
  const uvec2 key = uvec2(pc.key0, pc.key1);
  const uint chain = cnt[c];
  REAL q[VKN_DIM], p[VKN_DIM], g[VKN_DIM], m[VKN_DIM];
  for (int i = 0; i < VKN_DIM; ++i) {
    q[i] = qv[uint(i) * C + c];
    g[i] = gv[uint(i) * C + c];
    m[i] = mv[uint(i) * C + c];
  }
  REAL lp = sv[c];
  const REAL eps0 = sv[C + c];
  for (uint t = pc.first; t < pc.first + pc.count; ++t) {
    const uint it = cnt[C + c] + t;
    const uint K = cnt[2u * C + t];
    for (int j = 0; 4 * j < VKN_DIM; ++j) {
      const vec4 z = vkn_normal4(vkn_philox(uvec4(uint(j), chain, it, 0u), key));
      for (int k = 0; k < 4; ++k) {
        if (4 * j + k < VKN_DIM) p[4 * j + k] = REAL(z[k]) / sqrt(m[4 * j + k]);
      }
    }
    const REAL h0 = -lp + vkn_kinetic(p, m);
    const uvec4 ra = vkn_philox(uvec4(0u, chain, it, 1u), key);
    REAL eps = eps0;
    if (pc.jitter > 0.0) eps *= REAL(1.0) + REAL(pc.jitter) * (REAL(2.0) * REAL(vkn_unit(ra.y)) - REAL(1.0));
    const REAL half_eps = REAL(0.5) * eps;
    REAL lp1 = lp, h = h0;
    uint n = 0u;
    bool divergent = false;
    for (uint k = 0u; k < K; ++k) {
      for (int i = 0; i < VKN_DIM; ++i) p[i] += half_eps * g[i];
      for (int i = 0; i < VKN_DIM; ++i) q[i] += eps * m[i] * p[i];
      lp1 = vkn_log_density(q, g);
      for (int i = 0; i < VKN_DIM; ++i) p[i] += half_eps * g[i];
      ++n;
      h = -lp1 + vkn_kinetic(p, m);
      if (!(h - h0 <= REAL(1000.0))) {  // also true for NaN
        divergent = true;
        break;
      }
    }
    if (t == pc.proposal_at) {
      for (int i = 0; i < VKN_DIM; ++i) {
        pv[uint(i) * C + c] = q[i];
        pv[uint(VKN_DIM + i) * C + c] = m[i] * p[i];
      }
    }
    const REAL accept = vkn_accept_stat(divergent, h0, h);
    const bool accepted = !divergent && REAL(vkn_unit(ra.x)) < accept;
    if (accepted) {
      lp = lp1;
      for (int i = 0; i < VKN_DIM; ++i) {
        qv[uint(i) * C + c] = q[i];
        gv[uint(i) * C + c] = g[i];
      }
    } else {
      for (int i = 0; i < VKN_DIM; ++i) {
        q[i] = qv[uint(i) * C + c];
        g[i] = gv[uint(i) * C + c];
      }
    }
    vkn_write_stats(t, c, C, lp, eps, accept, accepted ? h : h0, n, divergent, accepted);
    if (pc.keep_draws != 0u) {
      for (int i = 0; i < VKN_DIM; ++i) dv[(t * uint(VKN_DIM) + uint(i)) * C + c] = q[i];
    }
  }
  sv[c] = lp;
}
)";

// One invocation per trajectory; writes every point (s = 0 .. steps) as [n][s][d].
constexpr std::string_view kTrajectoryMain = R"(
layout(push_constant) uniform Push { uint count; uint steps; } pc;

void main() {
  const uint c = gl_GlobalInvocationID.x;
  const uint N = pc.count;
  if (c >= N) return;
  REAL q[VKN_DIM], p[VKN_DIM], g[VKN_DIM], m[VKN_DIM];
  for (int i = 0; i < VKN_DIM; ++i) {
    q[i] = q0v[uint(i) * N + c];
    p[i] = p0v[uint(i) * N + c];
    m[i] = mv[uint(i) * N + c];
  }
  const REAL eps = ev[c];
  const REAL half_eps = REAL(0.5) * eps;
  REAL lp = vkn_log_density(q, g);
  for (uint s = 0u;; ++s) {
    const uint at = c * (pc.steps + 1u) + s;
    for (int i = 0; i < VKN_DIM; ++i) {
      oq[at * uint(VKN_DIM) + uint(i)] = q[i];
      op[at * uint(VKN_DIM) + uint(i)] = p[i];
      og[at * uint(VKN_DIM) + uint(i)] = g[i];
    }
    olp[at] = lp;
    if (s == pc.steps) break;
    for (int i = 0; i < VKN_DIM; ++i) p[i] += half_eps * g[i];
    for (int i = 0; i < VKN_DIM; ++i) q[i] += eps * m[i] * p[i];
    lp = vkn_log_density(q, g);
    for (int i = 0; i < VKN_DIM; ++i) p[i] += half_eps * g[i];
  }
}
)";

// The separable transition: chain c = workgroup * CPW + segment; its coordinate i lives in
// thread i / PER of the segment, slot i % PER. Positions, gradients, metrics and draws are
// chain-major ([chain][i]), so a segment's loads and stores are contiguous. The state before a
// trajectory stays in registers, so a rejection costs no memory traffic.
//
// When a chain is one whole subgroup (VKN_SUBGROUP_SUMS and gl_SubgroupSize == VKN_T at run
// time), a trajectory runs in chunks of VKN_T leapfrog steps: every thread keeps its share of
// H after each step, one transposed butterfly (VKN_T - 1 shuffles for the chunk instead of
// log2(VKN_T) dependent ones per step) leaves step j's total in lane j, and a ballot finds the
// first divergent step, to which the chunk is replayed from its start. Otherwise each step
// sums H across the segment through shared memory with barriers; every thread then runs every
// loop with the same trip counts and joins every barrier (threads of finished or absent chains
// compute on dummies).
constexpr std::string_view kSeparableMain = R"(
layout(push_constant) uniform Push {
  uint key0; uint key1; uint chains; uint first; uint count; uint proposal_at; uint keep_draws; float jitter;
} pc;

shared REAL vkn_red[VKN_T * VKN_CPW];

REAL q[VKN_PER], p[VKN_PER], g[VKN_PER], m[VKN_PER];
REAL em[VKN_PER];  // eps * m, per trajectory
bool own[VKN_PER];
REAL eps, half_eps;

REAL vkn_chain_sum(REAL x, uint lid, uint base, bool whole_subgroup) {
#ifdef VKN_SUBGROUP_SUMS
  if (whole_subgroup) return subgroupAdd(x);
#endif
  vkn_red[lid] = x;
  barrier();
  for (uint s = VKN_T / 2u; s > 0u; s >>= 1u) {
    if (lid - base < s) vkn_red[lid] += vkn_red[lid + s];
    barrier();
  }
  const REAL r = vkn_red[base];
  barrier();
  return r;
}

// One leapfrog step of this thread's coordinates: its share of H (kinetic - lp); its share of
// lp in lp_share.
REAL vkn_step(out REAL lp_share) {
  REAL e = REAL(0), l = REAL(0);
  [[unroll]] for (int k = 0; k < VKN_PER; ++k) {
    if (!own[k]) continue;
    p[k] += half_eps * g[k];
    q[k] += em[k] * p[k];
    REAL d;
    l += vkn_iid_element(q[k], d);
    g[k] = d;
    p[k] += half_eps * g[k];
    e += m[k] * p[k] * p[k];
  }
  lp_share = l;
  return REAL(0.5) * e - l;
}

#ifdef VKN_SUBGROUP_SUMS
void vkn_trajectory_chunked(uint K, REAL h0, uint tid, inout uint n, inout bool divergent,
                            inout REAL h, inout REAL lp_share) {
  REAL qs[VKN_PER], ps[VKN_PER], gs[VKN_PER], e[VKN_CH];
  for (uint s0 = 0u; s0 < K; s0 += VKN_CH) {
    const uint kc = min(VKN_CH, K - s0);
    [[unroll]] for (int k = 0; k < VKN_PER; ++k) {
      qs[k] = q[k];
      ps[k] = p[k];
      gs[k] = g[k];
    }
    [[unroll]] for (uint j = 0u; j < VKN_CH; ++j) {
      e[j] = REAL(0);
      if (j < kc) e[j] = vkn_step(lp_share);
    }
    [[unroll]] for (uint o = VKN_CH / 2u; o > 0u; o >>= 1u) {
      const bool upper = (tid & o) != 0u;
      [[unroll]] for (uint x = 0u; x < o; ++x) {
        const REAL send = upper ? e[x] : e[x + o];
        const REAL keep = upper ? e[x + o] : e[x];
        e[x] = keep + subgroupShuffleXor(send, o);
      }
    }
    const REAL hj = e[0];  // H after step s0 + tid
    const bool bad = tid < kc && !(hj - h0 <= REAL(1000.0));  // also true for NaN
    const uvec4 ballot = subgroupBallot(bad);
    if (ballot != uvec4(0u)) {
      const uint f = subgroupBallotFindLSB(ballot);
      [[unroll]] for (int k = 0; k < VKN_PER; ++k) {
        q[k] = qs[k];
        p[k] = ps[k];
        g[k] = gs[k];
      }
      for (uint j = 0u; j <= f; ++j) vkn_step(lp_share);
      n += f + 1u;
      h = subgroupShuffle(hj, f);
      divergent = true;
      return;
    }
    n += kc;
    h = subgroupShuffle(hj, kc - 1u);
  }
}
#endif

void vkn_trajectory_stepwise(uint K, REAL h0, uint lid, uint base, inout uint n,
                             inout bool divergent, inout REAL h, inout REAL lp_share) {
  for (uint s = 0u; s < K; ++s) {
    REAL e_local = REAL(0);
    if (!divergent) e_local = vkn_step(lp_share);
    const REAL hs = vkn_chain_sum(e_local, lid, base, false);
    if (!divergent) {
      ++n;
      h = hs;
      if (!(h - h0 <= REAL(1000.0))) divergent = true;  // also true for NaN
    }
  }
}

void main() {
  const uint lid = gl_LocalInvocationID.x;
  bool whole_subgroup = false;
  uint seg = lid / VKN_T, tid = lid % VKN_T;
#ifdef VKN_SUBGROUP_SUMS
  whole_subgroup = gl_SubgroupSize == VKN_T;  // uniform: one branch per dispatch
  if (whole_subgroup) {
    seg = gl_SubgroupID;
    tid = gl_SubgroupInvocationID;
  }
#endif
  const uint base = seg * VKN_T;
  const uint C = pc.chains;
  const uint c = gl_WorkGroupID.x * VKN_CPW + seg;
  const bool live = c < C;
  const uint cc = live ? c : 0u;
  const uvec2 key = uvec2(pc.key0, pc.key1);
  const uint chain = cnt[cc];
  REAL qo[VKN_PER], go[VKN_PER];
  [[unroll]] for (int k = 0; k < VKN_PER; ++k) {
    const uint i = tid * uint(VKN_PER) + uint(k);
    own[k] = live && i < uint(VKN_DIM);
    const uint at = c * uint(VKN_DIM) + i;
    q[k] = own[k] ? qv[at] : REAL(0);
    g[k] = own[k] ? gv[at] : REAL(0);
    m[k] = own[k] ? mv[at] : REAL(1);
    p[k] = REAL(0);
  }
  REAL lp = sv[cc];
  const REAL eps0 = sv[C + cc];
  for (uint t = pc.first; t < pc.first + pc.count; ++t) {
    const uint it = cnt[C + cc] + t;
    const uint K = cnt[2u * C + t];
    REAL ke = REAL(0);
    uint block = 0xffffffffu;  // one Philox call per block of 4 coordinates this thread owns
    vec4 z = vec4(0.0);
    [[unroll]] for (int k = 0; k < VKN_PER; ++k) {
      const uint i = tid * uint(VKN_PER) + uint(k);
      if (i / 4u != block) {
        block = i / 4u;
        z = vkn_normal4(vkn_philox(uvec4(block, chain, it, 0u), key));
      }
      p[k] = own[k] ? REAL(z[i % 4u]) / sqrt(m[k]) : REAL(0);
      ke += m[k] * p[k] * p[k];
      qo[k] = q[k];
      go[k] = g[k];
    }
    const REAL h0 = -lp + REAL(0.5) * vkn_chain_sum(ke, lid, base, whole_subgroup);
    const uvec4 ra = vkn_philox(uvec4(0u, chain, it, 1u), key);
    eps = eps0;
    if (pc.jitter > 0.0) eps *= REAL(1.0) + REAL(pc.jitter) * (REAL(2.0) * REAL(vkn_unit(ra.y)) - REAL(1.0));
    half_eps = REAL(0.5) * eps;
    [[unroll]] for (int k = 0; k < VKN_PER; ++k) em[k] = eps * m[k];
    REAL h = h0, lp_share = REAL(0);
    uint n = 0u;
    bool divergent = false;
#ifdef VKN_SUBGROUP_SUMS
    if (whole_subgroup) {
      vkn_trajectory_chunked(K, h0, tid, n, divergent, h, lp_share);
    } else {
      vkn_trajectory_stepwise(K, h0, lid, base, n, divergent, h, lp_share);
    }
#else
    vkn_trajectory_stepwise(K, h0, lid, base, n, divergent, h, lp_share);
#endif
    const REAL lp1 = K > 0u ? vkn_chain_sum(lp_share, lid, base, whole_subgroup) : lp;
    if (t == pc.proposal_at) {
      [[unroll]] for (int k = 0; k < VKN_PER; ++k) {
        const uint i = tid * uint(VKN_PER) + uint(k);
        if (own[k]) {
          pv[c * uint(VKN_DIM) + i] = q[k];
          pv[(C + c) * uint(VKN_DIM) + i] = m[k] * p[k];
        }
      }
    }
    const REAL accept = vkn_accept_stat(divergent, h0, h);
    const bool accepted = !divergent && REAL(vkn_unit(ra.x)) < accept;
    if (accepted) lp = lp1;
    [[unroll]] for (int k = 0; k < VKN_PER; ++k) {
      if (!accepted) {
        q[k] = qo[k];
        g[k] = go[k];
      }
      const uint i = tid * uint(VKN_PER) + uint(k);
      if (own[k] && pc.keep_draws != 0u) dv[(t * C + c) * uint(VKN_DIM) + i] = q[k];
    }
    if (live && tid == 0u) {
      vkn_write_stats(t, c, C, lp, eps, accept, accepted ? h : h0, n, divergent, accepted);
    }
  }
  [[unroll]] for (int k = 0; k < VKN_PER; ++k) {
    const uint at = c * uint(VKN_DIM) + tid * uint(VKN_PER) + uint(k);
    if (own[k]) {
      qv[at] = q[k];
      gv[at] = g[k];
    }
  }
  if (live && tid == 0u) sv[c] = lp;
}
)";

// Shared by every transition kernel, after its buffers (leapfrog_backend.h, steps 4 and 5).
constexpr std::string_view kTransitionHelpers = R"(
REAL vkn_accept_stat(bool divergent, REAL h0, REAL h) {
  if (divergent) return REAL(0);
  const REAL a = min(REAL(1), vkn_exp(h0 - h));
  return isnan(a) ? REAL(0) : a;  // a NaN energy accepts nothing
}
void vkn_write_stats(uint t, uint c, uint C, REAL lp, REAL eps, REAL accept, REAL energy, uint n,
                     bool divergent, bool accepted) {
  const uint st = t * 6u * C + c;
  stv[st] = lp;
  stv[st + C] = eps;
  stv[st + 2u * C] = accept;
  stv[st + 3u * C] = energy;
  stv[st + 4u * C] = REAL(n);
  stv[st + 5u * C] = REAL((divergent ? 1u : 0u) + (accepted ? 2u : 0u));
}
)";

}  // namespace

std::string glsl_with_real(std::string_view text, Precision p) {
  const std::string real = p == Precision::f64 ? "double" : "float";
  std::string out;
  out.reserve(text.size());
  for (size_t i = 0; i < text.size();) {
    if (text.compare(i, 4, "REAL") == 0) {
      out += real;
      i += 4;
    } else {
      out += text[i++];
    }
  }
  return out;
}

std::string philox_glsl() { return std::string(kPhilox); }

std::string transition_buffers(Precision p) {
  const std::string real = p == Precision::f64 ? "double" : "float";
  std::string s;
  s += buffer(kBindQ, "", real, "qv");
  s += buffer(kBindGrad, "", real, "gv");
  s += buffer(kBindMetric, "readonly", real, "mv");
  s += buffer(kBindScalars, "", real, "sv");
  s += buffer(kBindCounters, "readonly", "uint", "cnt");
  s += buffer(kBindStats, "writeonly", real, "stv");
  s += buffer(kBindDraws, "writeonly", real, "dv");
  s += buffer(kBindProposals, "writeonly", real, "pv");
  s += glsl_with_real(kTransitionHelpers, p);
  return s;
}

std::string transition_source(const Model& model, Precision p, uint32_t wg) {
  std::string s = header(model, p, wg);
  s += transition_buffers(p);
  s += glsl_with_real(kTransitionMain, p);
  return s;
}

bool is_separable(const std::string& model_glsl) {
  return model_glsl.find(" vkn_iid_element(") != std::string::npos;
}

SeparableLayout separable_layout(size_t d, uint32_t subgroup_size) {
  // At least 4 coordinates per thread (a Philox block's worth of work between reductions), at
  // most 32 threads per chain (one warp on NVIDIA), 64 threads per workgroup. With subgroup
  // arithmetic and enough coordinates, a chain is one subgroup instead.
  SeparableLayout l;
  const size_t want = (d + 3) / 4;
  while (l.threads_per_chain < 32 && l.threads_per_chain < want) l.threads_per_chain *= 2;
  if (subgroup_size >= 4 && subgroup_size <= 64 && (subgroup_size & (subgroup_size - 1)) == 0 &&
      want >= subgroup_size / 2) {
    l.threads_per_chain = subgroup_size;
    l.subgroup_sums = true;
  }
  l.per_thread = static_cast<uint32_t>((d + l.threads_per_chain - 1) / l.threads_per_chain);
  l.chains_per_group = std::max<uint32_t>(1, 64 / l.threads_per_chain);
  // On the H200 (d = 100, 4096 chains) batches of 8, 16 or 32 steps and 1, 2 or 4 chains per
  // workgroup measured within 10 % of one another.
  return l;
}

std::string separable_transition_source(const Model& model, Precision p, const SeparableLayout& l) {
  std::string s =
      header(model, p, l.threads_per_chain * l.chains_per_group,
             std::string("#extension GL_EXT_control_flow_attributes : require\n") +
                 (l.subgroup_sums ? "#extension GL_KHR_shader_subgroup_arithmetic : require\n"
                                    "#extension GL_KHR_shader_subgroup_ballot : require\n"
                                    "#extension GL_KHR_shader_subgroup_shuffle : require\n"
                                    "#define VKN_SUBGROUP_SUMS 1\n"
                                  : ""));
  // VKN_CH: leapfrog steps per batch of H sums, one per lane of the chain's subgroup.
  s += vkn::format("const uint VKN_T = {}u;\nconst uint VKN_CPW = {}u;\nconst int VKN_PER = {};\n"
                   "const uint VKN_CH = VKN_T;\n",
                   l.threads_per_chain, l.chains_per_group, l.per_thread);
  s += transition_buffers(p);
  s += glsl_with_real(kSeparableMain, p);
  return s;
}

std::string trajectory_source(const Model& model, Precision p, uint32_t wg) {
  const std::string real = p == Precision::f64 ? "double" : "float";
  std::string s = header(model, p, wg);
  s += buffer(kBindQ0, "readonly", real, "q0v");
  s += buffer(kBindP0, "readonly", real, "p0v");
  s += buffer(kBindTMetric, "readonly", real, "mv");
  s += buffer(kBindEps, "readonly", real, "ev");
  s += buffer(kBindOutQ, "writeonly", real, "oq");
  s += buffer(kBindOutP, "writeonly", real, "op");
  s += buffer(kBindOutGrad, "writeonly", real, "og");
  s += buffer(kBindOutLp, "writeonly", real, "olp");
  s += glsl_with_real(kTrajectoryMain, p);
  return s;
}

}  // namespace vkn::sampler::detail
