// Fused multi-head self-attention for XLA's CPU backend (an XLA FFI custom call).
//
// Why: XLA's CPU backend lowers attention to batched [l, k] x [k, l] products
// that run at a third of its dense GEMM rate and gain nothing from a second
// core, plus separate passes for the mask, softmax and dropout. Here each
// (example, head) pair is one work item, done start to finish in cache by one
// thread, the items spread over XLA's intra-op thread pool.
//
// Layouts are the encoder's, so no transposes surround the call:
//   qkv   f32[B..., L, 3, H, K]  the fused projection (queries unscaled)
//   bias  f32[B..., L]           added to every query's scores (0 or -huge)
//   seeds u32[2]                 the dropout hash key (mtl_jax/encoders/dropout.py)
//   ctx   f32[B..., L, H, K]     softmax(q k^T * scale + bias) (dropped) v
//   stats f32[B..., H, L, 2]     each query row's score max and 1 / sum(exp(score - max))
// The backward recomputes the probabilities from q, k and the stats (as flash
// attention does) rather than keeping them: [L, L] floats per head would be
// the largest residual of the layer (25 MB per layer at 32 x 128 tokens).
// Dropout keeps probs[b, h, q, s] where the keyed murmur3 hash of its flat
// position is >= `threshold`: the very mask of `dropout.keep_mask`, so this
// kernel and the XLA path compute the same function for the same key.

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <memory>
#include <mutex>
#include <vector>

#include "parallel_for.h"
#include "vectors.h"
#include "xla/ffi/api/ffi.h"

namespace ffi = xla::ffi;

namespace {

using namespace mtl_jax::vectors;

// Rows i..i+MR of C[M, N] = op(A) B[D, N], columns j..j+W NV (W floats per
// vector V); op(A) = A[M, D] or, with TransA, the transpose of A[D, M]
// (row-major, leading dims lda/ldb/ldc). The MR x NV accumulators stay in
// registers across the D loop and the MR rows share each load of B (at most
// 16 accumulators, so with the loads they fit AVX-512's 32 registers).
template <typename V, int NV, int MR, bool TransA>
inline void matmul_tile(const float* A, int64_t lda, const float* B, int64_t ldb, float* C,
                        int64_t ldc, int64_t i, int64_t D, int64_t j) {
  constexpr int W = sizeof(V) / sizeof(float);
  V c[MR][NV] = {};
  for (int64_t d = 0; d < D; ++d) {
    const float* b = B + d * ldb + j;
    V bv[NV];
#pragma GCC unroll 8
    for (int v = 0; v < NV; ++v) bv[v] = loadv<V>(b + W * v);
#pragma GCC unroll 8
    for (int r = 0; r < MR; ++r) {
      const V x = V{} + (TransA ? A[d * lda + i + r] : A[(i + r) * lda + d]);
#pragma GCC unroll 8
      for (int v = 0; v < NV; ++v) c[r][v] += x * bv[v];
    }
  }
#pragma GCC unroll 8
  for (int r = 0; r < MR; ++r)
#pragma GCC unroll 8
    for (int v = 0; v < NV; ++v) storev<V>(C + (i + r) * ldc + j + W * v, c[r][v]);
}

// Columns j..j+W NV of C, all M rows: MR at a time, then one at a time.
template <typename V, int NV, int MR, bool TransA>
inline void matmul_block(const float* A, int64_t lda, const float* B, int64_t ldb,
                         float* C, int64_t ldc, int64_t M, int64_t D, int64_t j) {
  int64_t i = 0;
  for (; i + MR <= M; i += MR) matmul_tile<V, NV, MR, TransA>(A, lda, B, ldb, C, ldc, i, D, j);
  for (; i < M; ++i) matmul_tile<V, NV, 1, TransA>(A, lda, B, ldb, C, ldc, i, D, j);
}

// C[M, N] = op(A) B for N a multiple of 8. With AVX-512, 16-float vectors:
// twice the multiply-adds per instruction of the 8-float ones, which on
// AVX2 would need more registers than there are.
template <bool TransA = false>
void matmul(const float* A, int64_t lda, const float* B, int64_t ldb, float* C,
            int64_t ldc, int64_t M, int64_t D, int64_t N) {
  int64_t j = 0;
#if defined(__AVX512F__)
  for (; j + 64 <= N; j += 64) matmul_block<v16f, 4, 4, TransA>(A, lda, B, ldb, C, ldc, M, D, j);
  for (; j + 32 <= N; j += 32) matmul_block<v16f, 2, 8, TransA>(A, lda, B, ldb, C, ldc, M, D, j);
  for (; j + 16 <= N; j += 16) matmul_block<v16f, 1, 8, TransA>(A, lda, B, ldb, C, ldc, M, D, j);
#else
  for (; j + 32 <= N; j += 32) matmul_block<v8f, 4, 4, TransA>(A, lda, B, ldb, C, ldc, M, D, j);
#endif
  for (; j + 8 <= N; j += 8) matmul_block<v8f, 1, 4, TransA>(A, lda, B, ldb, C, ldc, M, D, j);
}

// exp(x) for x <= 0 (softmax arguments), Cephes' expf polynomial; exactly 0
// below the float range, as XLA's exp gives for the padding bias.
inline vf exp_nonpositive(vf x) {
  const vi underflow = x < -87.3f;
  x = x < -87.3f ? splat(-87.3f) : x;
  vf fx = x * 1.44269504088896341f + 0.5f;
  vi n = __builtin_convertvector(fx, vi);
  n -= (vi)(__builtin_convertvector(n, vf) > fx) & 1;  // floor
  vf nf = __builtin_convertvector(n, vf);
  x = x - nf * 0.693359375f + nf * 2.12194440e-4f;
  vf y = splat(1.9875691500e-4f);
  y = y * x + 1.3981999507e-3f;
  y = y * x + 8.3334519073e-3f;
  y = y * x + 4.1665795894e-2f;
  y = y * x + 1.6666665459e-1f;
  y = y * x + 5.0000001201e-1f;
  y = y * x * x + x + 1.0f;
  vi pow2 = (n + 127) << 23;
  vf r;
  std::memcpy(&r, &pow2, sizeof r);
  return (vf)((vi)(y * r) & ~underflow);
}

inline vu lane_index() {
  vu r;
  for (int i = 0; i < kLanes; ++i) r[i] = i;
  return r;
}

inline vu fmix32(vu h) {
  h ^= h >> 16;
  h *= 0x85EBCA6Bu;
  h ^= h >> 13;
  h *= 0xC2B2AE35u;
  return h ^ (h >> 16);
}

// Dropout multipliers (keep_scale or 0) of 8 consecutive positions from `pos`.
struct Dropout {
  bool on;
  uint32_t k0, k1, threshold;
  float keep_scale;

  inline vf scale(uint32_t pos) const {
    if (!on) return splat(1.0f);
    vu p = lane_index() + pos;
    vu h = fmix32(fmix32((p * 0x9E3779B9u) ^ k0) ^ k1);
    vi keep = h >= threshold;
    return (vf)((vi)splat(keep_scale) & keep);
  }
};

struct Shape {
  int64_t batch, length, heads, head_dim;
  int64_t lp, kp;  // length and head_dim rounded up to kLanes (zero padded in scratch)

  int64_t qkv_row() const { return 3 * heads * head_dim; }  // stride of one position
};

Shape shape_of(ffi::Span<const int64_t> dims) {
  Shape s;
  const size_t r = dims.size();
  s.length = dims[r - 4];
  s.heads = dims[r - 2];
  s.head_dim = dims[r - 1];
  s.batch = 1;
  for (size_t i = 0; i + 4 < r; ++i) s.batch *= dims[i];
  s.lp = round_lanes(s.length);
  s.kp = round_lanes(s.head_dim);
  return s;
}

// One head's rows lie 3 H K floats apart in qkv (4.5 KiB in a 384-wide
// encoder; H K in the context, 1.5 KiB), a stride the hardware's prefetchers
// do not follow: without these hints each row's first read waits on memory.
constexpr int64_t kPrefetchRows = 8;

inline void prefetch_floats(const float* p, int64_t n, bool write = false) {
  for (int64_t i = 0; i < n; i += 16) {
    if (write) __builtin_prefetch(p + i, 1);
    else __builtin_prefetch(p + i, 0);
  }
}

// Copies head h of example b out of qkv in one pass over its L rows (the
// rows lie 3 H K floats apart, so one pass touches each cache line and page
// once): q (times `scale`) as rows [lp][kp], k and v as rows [lp][kp] or,
// with k_t / v_t, transposed [kp][lp]; zero padded past L and K.
void gather_qkv(const float* qkv, const Shape& s, int64_t b, int64_t h, float scale,
                float* q, float* k, bool k_t, float* v, bool v_t) {
  const int64_t K = s.head_dim, lp = s.lp, kp = s.kp;
  if (s.length != lp || K != kp) {
    for (float* out : {q, k, v}) std::fill(out, out + lp * kp, 0.0f);
  }
  const float* base = qkv + b * s.length * s.qkv_row() + h * K;
  const int64_t part = s.heads * K;
  for (int64_t l = 0; l < s.length; ++l) {
    const float* src = base + l * s.qkv_row();
    if (l + kPrefetchRows < s.length) {
      const float* ahead = src + kPrefetchRows * s.qkv_row();
      for (int64_t p = 0; p < 3; ++p) prefetch_floats(ahead + p * part, K);
    }
    for (int64_t c = 0; c < K; ++c) q[l * kp + c] = src[c] * scale;
    for (int64_t c = 0; c < K; ++c) k[k_t ? c * lp + l : l * kp + c] = src[part + c];
    for (int64_t c = 0; c < K; ++c) v[v_t ? c * lp + l : l * kp + c] = src[2 * part + c];
  }
}

// Copies head h of example b of an [B, L, H, K] array into rows [lp][kp] of
// `out`, zero padded past L and K.
void gather_context(const float* in, const Shape& s, int64_t b, int64_t h, float* out) {
  const int64_t row = s.heads * s.head_dim;
  if (s.length != s.lp || s.head_dim != s.kp) std::fill(out, out + s.lp * s.kp, 0.0f);
  const float* base = in + b * s.length * row + h * s.head_dim;
  for (int64_t l = 0; l < s.length; ++l) {
    if (l + kPrefetchRows < s.length) prefetch_floats(base + (l + kPrefetchRows) * row, s.head_dim);
    std::memcpy(out + l * s.kp, base + l * row, s.head_dim * sizeof(float));
  }
}

// Writes rows [L][kp] of `in` to head h of example b of an [B, L, H, K] array.
void scatter_context(const float* in, const Shape& s, int64_t b, int64_t h, float* out) {
  const int64_t row = s.heads * s.head_dim;
  float* base = out + b * s.length * row + h * s.head_dim;
  for (int64_t l = 0; l < s.length; ++l) {
    if (l + kPrefetchRows < s.length)
      prefetch_floats(base + (l + kPrefetchRows) * row, s.head_dim, /*write=*/true);
    std::memcpy(base + l * row, in + l * s.kp, s.head_dim * sizeof(float));
  }
}

// Writes the gradients of head h of example b (rows [L][kp]; dq times
// `scale`) into dqkv [B, L, 3, H, K] in one pass over its rows.
void scatter_qkv(const float* dq, const float* dk, const float* dv, const Shape& s,
                 int64_t b, int64_t h, float scale, float* dqkv) {
  const int64_t K = s.head_dim, part = s.heads * K;
  float* base = dqkv + b * s.length * s.qkv_row() + h * K;
  for (int64_t l = 0; l < s.length; ++l) {
    float* dst = base + l * s.qkv_row();
    if (l + kPrefetchRows < s.length) {
      float* ahead = dst + kPrefetchRows * s.qkv_row();
      for (int64_t p = 0; p < 3; ++p) prefetch_floats(ahead + p * part, K, /*write=*/true);
    }
    for (int64_t c = 0; c < K; ++c) dst[c] = dq[l * s.kp + c] * scale;
    std::memcpy(dst + part, dk + l * s.kp, K * sizeof(float));
    std::memcpy(dst + 2 * part, dv + l * s.kp, K * sizeof(float));
  }
}

// scores[i, j] = q_i . k_j + bias[j] for the L query rows (q already scaled),
// -inf on the columns past L (scratch padding), so exp gives them 0; with
// `row_max`, each row's maximum too (taken in the same pass).
void biased_scores(const float* q, const float* kt, const float* bias, int64_t L, int64_t lp,
                   int64_t kp, float* scores, float* bias_row, float* row_max = nullptr) {
  matmul(q, kp, kt, lp, scores, lp, L, kp, lp);
  for (int64_t j = 0; j < lp; ++j) bias_row[j] = j < L ? bias[j] : -INFINITY;
  for (int64_t i = 0; i < L; ++i) {
    vf m = splat(-INFINITY);
    for (int64_t j = 0; j < lp; j += kLanes) {
      const vf x = load(scores + i * lp + j) + load(bias_row + j);
      store(scores + i * lp + j, x);
      m = m > x ? m : x;
    }
    if (row_max != nullptr) row_max[i] = hmax(m);
  }
}

ffi::Error CheckShapes(ffi::Span<const int64_t> qkv, ffi::Span<const int64_t> bias) {
  if (qkv.size() < 4 || qkv[qkv.size() - 3] != 3)
    return ffi::Error::InvalidArgument("qkv must be [..., L, 3, H, K]");
  if (bias.size() != qkv.size() - 3 ||
      !std::equal(bias.begin(), bias.end(), qkv.begin()))
    return ffi::Error::InvalidArgument("bias must be [..., L] matching qkv");
  if (qkv[qkv.size() - 4] > 65536)
    return ffi::Error::InvalidArgument("sequence length above 65536");
  return ffi::Error::Success();
}

ffi::Error AttentionForward(ffi::ThreadPool pool, ffi::Buffer<ffi::F32> qkv,
                            ffi::Buffer<ffi::F32> bias, ffi::Buffer<ffi::U32> seeds,
                            float scale, float keep_scale, uint32_t threshold, bool dropout,
                            ffi::ResultBuffer<ffi::F32> ctx,
                            ffi::ResultBuffer<ffi::F32> stats) {
  if (auto e = CheckShapes(qkv.dimensions(), bias.dimensions()); e.failure()) return e;
  const Shape s = shape_of(qkv.dimensions());
  const Dropout drop{dropout, seeds.typed_data()[0], seeds.typed_data()[1], threshold,
                     keep_scale};
  const float* qkv_p = qkv.typed_data();
  const float* bias_p = bias.typed_data();
  float* ctx_p = ctx->typed_data();
  float* stats_p = stats->typed_data();
  const int64_t lp = s.lp, kp = s.kp, L = s.length;
  // q [lp, kp] | kT [kp, lp] | v [lp, kp] | scores [L, lp] | out [L, kp] | bias [lp] |
  // row max, row 1 / sum [L]
  const size_t scratch = 3 * lp * kp + L * lp + L * kp + lp + 2 * L;
  mtl_jax::parallel_for(pool, s.batch * s.heads, scratch, [&](int64_t item, float* buf) {
    const int64_t b = item / s.heads, h = item % s.heads;
    float *q = buf, *kt = q + lp * kp, *v = kt + kp * lp, *scores = v + lp * kp,
          *out = scores + L * lp, *bias_row = out + L * kp, *row_max = bias_row + lp,
          *row_inv = row_max + L;
    gather_qkv(qkv_p, s, b, h, scale, q, kt, true, v, false);
    biased_scores(q, kt, bias_p + b * L, L, lp, kp, scores, bias_row, row_max);
    // exp(score - max), dropped, in place; the softmax's 1 / sum scales the
    // context's rows afterwards (one pass over the scores fewer).
    for (int64_t i = 0; i < L; ++i) {
      float* row = scores + i * lp;
      const float mx = row_max[i];
      const uint32_t pos = static_cast<uint32_t>(((b * s.heads + h) * L + i) * L);
      vf sum = {};
      for (int64_t j = 0; j < lp; j += kLanes) {
        const vf e = exp_nonpositive(load(row + j) - mx);
        sum += e;
        store(row + j, drop.on ? e * drop.scale(pos + static_cast<uint32_t>(j)) : e);
      }
      row_inv[i] = 1.0f / hsum(sum);
      float* row_stats = stats_p + ((b * s.heads + h) * L + i) * 2;
      row_stats[0] = mx;
      row_stats[1] = row_inv[i];
    }
    matmul(scores, lp, v, kp, out, kp, L, lp, kp);
    for (int64_t i = 0; i < L; ++i)
      for (int64_t c = 0; c < kp; c += kLanes) store(out + i * kp + c, load(out + i * kp + c) * row_inv[i]);
    scatter_context(out, s, b, h, ctx_p);
  });
  return ffi::Error::Success();
}

ffi::Error AttentionBackward(ffi::ThreadPool pool, ffi::Buffer<ffi::F32> qkv,
                             ffi::Buffer<ffi::F32> bias, ffi::Buffer<ffi::U32> seeds,
                             ffi::Buffer<ffi::F32> stats, ffi::Buffer<ffi::F32> ctx,
                             ffi::Buffer<ffi::F32> dctx, float scale, float keep_scale,
                             uint32_t threshold, bool dropout,
                             ffi::ResultBuffer<ffi::F32> dqkv) {
  if (auto e = CheckShapes(qkv.dimensions(), bias.dimensions()); e.failure()) return e;
  const Shape s = shape_of(qkv.dimensions());
  const Dropout drop{dropout, seeds.typed_data()[0], seeds.typed_data()[1], threshold,
                     keep_scale};
  const float* qkv_p = qkv.typed_data();
  const float* bias_p = bias.typed_data();
  const float* stats_p = stats.typed_data();
  const float* ctx_p = ctx.typed_data();
  const float* dctx_p = dctx.typed_data();
  float* dqkv_p = dqkv->typed_data();
  const int64_t lp = s.lp, kp = s.kp, L = s.length;
  // q, k, dout, out, dq, dk, dv [lp, kp] | vT, kT [kp, lp] | dscores, pd [lp, lp] | bias [lp]
  const size_t scratch = 9 * lp * kp + 2 * lp * lp + lp;
  mtl_jax::parallel_for(pool, s.batch * s.heads, scratch, [&](int64_t item, float* buf) {
    const int64_t b = item / s.heads, h = item % s.heads;
    float *q = buf, *k = q + lp * kp, *dout = k + lp * kp, *out = dout + lp * kp,
          *dq = out + lp * kp, *dk = dq + lp * kp, *dv = dk + lp * kp, *vt = dv + lp * kp,
          *kt = vt + kp * lp, *ds = kt + kp * lp, *pd = ds + lp * lp, *bias_row = pd + lp * lp;
    gather_qkv(qkv_p, s, b, h, scale, q, k, false, vt, true);
    for (int64_t l = 0; l < lp; ++l)
      for (int64_t c = 0; c < kp; ++c) kt[c * lp + l] = k[l * kp + c];
    gather_context(dctx_p, s, b, h, dout);
    gather_context(ctx_p, s, b, h, out);
    // The forward's biased scores (the same products in the same order), in pd.
    biased_scores(q, kt, bias_p + b * L, L, lp, kp, pd, bias_row);
    // dPd = dout v^T, rows past L unused.
    matmul(dout, kp, vt, lp, ds, lp, lp, kp, lp);
    for (int64_t i = 0; i < lp; ++i) {
      float* ds_row = ds + i * lp;
      float* pd_row = pd + i * lp;
      if (i >= L) {
        std::fill(ds_row, ds_row + lp, 0.0f);
        std::fill(pd_row, pd_row + lp, 0.0f);
        continue;
      }
      // rowsum(dP * P) equals dout . out: a K-long sum instead of an L-long one.
      vf acc = {};
      for (int64_t c = 0; c < kp; c += kLanes) acc += load(dout + i * kp + c) * load(out + i * kp + c);
      const float delta = hsum(acc);
      const float* row_stats = stats_p + ((b * s.heads + h) * L + i) * 2;
      const float mx = row_stats[0], inv_total = row_stats[1];
      const uint32_t pos = static_cast<uint32_t>(((b * s.heads + h) * L + i) * L);
      for (int64_t j = 0; j < lp; j += kLanes) {
        // The forward's probabilities, recomputed; exactly 0 past L (-inf bias).
        vf p = exp_nonpositive(load(pd_row + j) - mx) * inv_total;
        vf m = drop.scale(pos + static_cast<uint32_t>(j));
        store(ds_row + j, p * (load(ds_row + j) * m - delta));
        store(pd_row + j, p * m);
      }
    }
    // dv = pd^T dout; dq = ds k; dk = ds^T q (q already scaled).
    matmul<true>(pd, lp, dout, kp, dv, kp, L, lp, kp);
    matmul(ds, lp, k, kp, dq, kp, L, lp, kp);
    matmul<true>(ds, lp, q, kp, dk, kp, L, lp, kp);
    scatter_qkv(dq, dk, dv, s, b, h, scale, dqkv_p);
  });
  return ffi::Error::Success();
}

}  // namespace

XLA_FFI_DEFINE_HANDLER_SYMBOL(MtlAttentionForward, AttentionForward,
                              ffi::Ffi::Bind()
                                  .Ctx<ffi::ThreadPool>()
                                  .Arg<ffi::Buffer<ffi::F32>>()  // qkv
                                  .Arg<ffi::Buffer<ffi::F32>>()  // bias
                                  .Arg<ffi::Buffer<ffi::U32>>()  // seeds
                                  .Attr<float>("scale")
                                  .Attr<float>("keep_scale")
                                  .Attr<uint32_t>("threshold")
                                  .Attr<bool>("dropout")
                                  .Ret<ffi::Buffer<ffi::F32>>()  // ctx
                                  .Ret<ffi::Buffer<ffi::F32>>());  // stats

XLA_FFI_DEFINE_HANDLER_SYMBOL(MtlAttentionBackward, AttentionBackward,
                              ffi::Ffi::Bind()
                                  .Ctx<ffi::ThreadPool>()
                                  .Arg<ffi::Buffer<ffi::F32>>()  // qkv
                                  .Arg<ffi::Buffer<ffi::F32>>()  // bias
                                  .Arg<ffi::Buffer<ffi::U32>>()  // seeds
                                  .Arg<ffi::Buffer<ffi::F32>>()  // stats
                                  .Arg<ffi::Buffer<ffi::F32>>()  // ctx
                                  .Arg<ffi::Buffer<ffi::F32>>()  // dctx
                                  .Attr<float>("scale")
                                  .Attr<float>("keep_scale")
                                  .Attr<uint32_t>("threshold")
                                  .Attr<bool>("dropout")
                                  .Ret<ffi::Buffer<ffi::F32>>());  // dqkv
