// The `kivi` policy: per-channel key groups, per-token value groups, an exact f32 residual window (kivi_kv_cache.h).
#include "kv/kivi_kv_cache.h"

#include <algorithm>
#include <string>

#include "kv/decoded_attention.h"
#include "kv/kivi_codes.h"
#include "kv/kv_policy.h"
#include "ops/f16.h"
#include "util/error.h"

namespace shadowkv {

namespace {

const KvPolicyRegistration kKivi{
    {"kivi",
     "global-layer keys quantised per channel, values per token, asymmetric 2/4-bit; recent tokens exact "
     "(arXiv 2402.02750)",
     {{"bits", SettingType::Int, "2", "bits per key/value code: 2 or 4"},
      {"group", SettingType::Int, "32", "tokens per key group (per channel) and channels per value group (per token)"},
      {"residual", SettingType::Int, "128", "most recent tokens kept exact (f32)"}},
     [](const KvGeometry& g, const KvOptions& o) { return std::make_unique<KiviKvCache>(g, o); },
     20}};

// Rows of one layer as attention reads them: quantised rows dequantised, the residual rows copied.
class KiviRows : public RowDecoder {
 public:
  KiviRows(const KiviKvCache::Layer& L, int hd, int bits, int group) : L_(L), hd_(hd), bits_(bits), group_(group) {}

  void decode(int h, int64_t begin, int64_t n, float* k, float* v) const override {
    const KiviKvCache::Head& H = L_.heads[h];
    const int64_t krow = kivi::packed_bytes(hd_, bits_), n_cg = (hd_ + group_ - 1) / group_;
    std::vector<float> s(hd_), mn(hd_);
    int64_t have_group = -1;  // key group whose parameters are in s, mn
    for (int64_t t = begin; t < begin + n; ++t) {
      float* kd = k + (t - begin) * hd_;
      if (t < L_.kq) {
        if (t / group_ != have_group) {
          have_group = t / group_;
          f16_to_f32_params(&H.kscale[have_group * hd_], &H.kmin[have_group * hd_], 1, s.data(), mn.data());
        }
        kivi::dequantize_codes(&H.kcodes[t * krow], hd_, bits_, s.data(), mn.data(), kd);
      } else {
        std::copy_n(&H.ktail[(t - L_.kq) * hd_], hd_, kd);
      }
    }
    const int64_t vrow = kivi::packed_bytes(hd_, bits_);
    for (int64_t t = begin; t < begin + n; ++t) {
      float* vd = v + (t - begin) * hd_;
      if (t < L_.vq) {
        f16_to_f32_params(&H.vscale[t * n_cg], &H.vmin[t * n_cg], group_, s.data(), mn.data());
        kivi::dequantize_codes(&H.vcodes[t * vrow], hd_, bits_, s.data(), mn.data(), vd);
      } else {
        std::copy_n(&H.vtail[(t - L_.vq) * hd_], hd_, vd);
      }
    }
  }

 private:
  // s[c], mn[c] for every channel c from parameters given per run of `run` channels.
  void f16_to_f32_params(const uint16_t* scale, const uint16_t* min, int run, float* s, float* mn) const {
    for (int c = 0; c < hd_; ++c) {
      s[c] = f16_to_f32(scale[c / run]);
      mn[c] = f16_to_f32(min[c / run]);
    }
  }

  const KiviKvCache::Layer& L_;
  int hd_, bits_, group_;
};

}  // namespace

KiviKvCache::KiviKvCache(const KvGeometry& g, const KvOptions& o) : LayeredKvCache(g, false) {
  const int64_t bits = o.integer("bits"), group = o.integer("group"), residual = o.integer("residual");
  if (bits != 2 && bits != 4) throw Error("kivi: --bits must be 2 or 4, got " + std::to_string(bits));
  if (group < 1 || group > (1 << 20)) throw Error("kivi: --group must be in 1..1048576, got " + std::to_string(group));
  if (residual < 0 || residual > (int64_t)1 << 30)
    throw Error("kivi: --residual must be >= 0, got " + std::to_string(residual));
  bits_ = (int)bits, group_ = (int)group, residual_ = (int)residual;
  layers_.resize(n_global());
  for (int gi = 0; gi < n_global(); ++gi) layers_[gi].heads.resize(global_geometry(gi).n_kv_head);
}

void KiviKvCache::attend_global(int gi, int64_t pos0, int n, const float* q, const float*, const float* k,
                                const float* v, float* out) {
  const LayerGeometry& g = global_geometry(gi);
  Layer& L = layers_[gi];
  const int hd = g.head_dim, width = g.n_kv_head * hd;
  for (int h = 0; h < g.n_kv_head; ++h) {
    Head& H = L.heads[h];
    for (int i = 0; i < n; ++i) {
      const float* ks = k + (int64_t)i * width + h * hd;
      const float* vs = v + (int64_t)i * width + h * hd;
      H.ktail.insert(H.ktail.end(), ks, ks + hd);
      H.vtail.insert(H.vtail.end(), vs, vs + hd);
    }
  }
  L.n = pos0 + n;
  attend_decoded(g, KiviRows(L, hd, bits_, group_), pos0, n, q, out);
  while (L.n - L.kq >= (int64_t)residual_ + group_) quantize_key_group(gi);
  if (L.n - L.vq > residual_) quantize_values(gi, L.n - L.vq - residual_);
}

void KiviKvCache::quantize_key_group(int gi) {
  Layer& L = layers_[gi];
  const int hd = global_geometry(gi).head_dim;
  const int64_t krow = kivi::packed_bytes(hd, bits_);
  std::vector<float> s(hd), mn(hd);
  std::vector<int> codes(hd);
  for (Head& H : L.heads) {
    const float* x = H.ktail.data();  // the group: rows 0 .. group-1 of the tail
    const size_t p0 = H.kscale.size();
    H.kscale.resize(p0 + hd), H.kmin.resize(p0 + hd);
    for (int c = 0; c < hd; ++c) {
      kivi::group_params(x + c, group_, hd, bits_, &H.kscale[p0 + c], &H.kmin[p0 + c]);
      s[c] = f16_to_f32(H.kscale[p0 + c]), mn[c] = f16_to_f32(H.kmin[p0 + c]);
    }
    const size_t c0 = H.kcodes.size();
    H.kcodes.resize(c0 + (size_t)group_ * krow);
    for (int t = 0; t < group_; ++t) {
      for (int c = 0; c < hd; ++c) codes[c] = kivi::code_of(x[(int64_t)t * hd + c], s[c], mn[c], bits_);
      kivi::pack_codes(codes.data(), hd, bits_, &H.kcodes[c0 + (size_t)t * krow]);
    }
    H.ktail.erase(H.ktail.begin(), H.ktail.begin() + (int64_t)group_ * hd);
  }
  L.kq += group_;
}

void KiviKvCache::quantize_values(int gi, int64_t count) {
  Layer& L = layers_[gi];
  const int hd = global_geometry(gi).head_dim;
  const int64_t vrow = kivi::packed_bytes(hd, bits_), n_cg = (hd + group_ - 1) / group_;
  std::vector<int> codes(hd);
  for (Head& H : L.heads) {
    const size_t p0 = H.vscale.size(), c0 = H.vcodes.size();
    H.vscale.resize(p0 + count * n_cg), H.vmin.resize(p0 + count * n_cg);
    H.vcodes.resize(c0 + count * vrow);
    for (int64_t t = 0; t < count; ++t) {
      const float* x = &H.vtail[t * hd];
      for (int64_t j = 0; j < n_cg; ++j) {
        const int c_begin = (int)j * group_, c_end = std::min(hd, c_begin + group_);
        const size_t p = p0 + t * n_cg + j;
        kivi::group_params(x + c_begin, c_end - c_begin, 1, bits_, &H.vscale[p], &H.vmin[p]);
        const float s = f16_to_f32(H.vscale[p]), mn = f16_to_f32(H.vmin[p]);
        for (int c = c_begin; c < c_end; ++c) codes[c] = kivi::code_of(x[c], s, mn, bits_);
      }
      kivi::pack_codes(codes.data(), hd, bits_, &H.vcodes[c0 + t * vrow]);
    }
    H.vtail.erase(H.vtail.begin(), H.vtail.begin() + count * hd);
  }
  L.vq += count;
}

void KiviKvCache::decode_rows(int gi, int kv_head, int64_t begin, int64_t n, float* k, float* v) const {
  const Layer& L = layers_.at(gi);
  if (kv_head < 0 || kv_head >= (int)L.heads.size() || begin < 0 || begin + n > L.n)
    throw Error("kivi: no rows [" + std::to_string(begin) + ", " + std::to_string(begin + n) + ")");
  KiviRows(L, global_geometry(gi).head_dim, bits_, group_).decode(kv_head, begin, n, k, v);
}

void KiviKvCache::global_memory(KvMemory& m) const {
  int64_t codes = 0, params = 0, exact = 0;
  for (const Layer& L : layers_)
    for (const Head& H : L.heads) {
      codes += (int64_t)(H.kcodes.size() + H.vcodes.size());
      params += 2 * (int64_t)(H.kscale.size() + H.kmin.size() + H.vscale.size() + H.vmin.size());
      exact += 4 * (int64_t)(H.ktail.size() + H.vtail.size());
    }
  m.parts.emplace_back("codes", codes);
  m.parts.emplace_back("scales", params);
  m.parts.emplace_back("residual", exact);
  m.hot += codes + params + exact;
}

std::vector<std::pair<std::string, double>> KiviKvCache::counters() const {
  int64_t n = 0, kq = 0, vq = 0;
  for (const Layer& L : layers_) n += L.n, kq += L.kq, vq += L.vq;
  if (n == 0) return {};
  return {{"keys_quantized", (double)kq / n}, {"values_quantized", (double)vq / n}};
}

}  // namespace shadowkv
