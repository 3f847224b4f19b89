// Layer normalisation over the last axis for XLA's CPU backend (an XLA FFI custom call).
//
// Why: XLA's CPU backend runs the row reductions of layer norm (mean,
// variance, and in the backward pass mean(g) and mean(g x_hat)) as separate
// passes at a fraction of memory bandwidth; with 13 norms per encoder step
// they took about 0.1 s of a 1.5 s step (BENCHMARKS.md). Here each row is
// done in one visit (its d floats stay in L1 between the passes), rows
// spread over XLA's intra-op pool.
//
//   forward:  x f32[R, D], scale f32[D], bias f32[D]
//             -> y = x_hat scale + bias, x_hat = (x - mean) rstd, rstd f32[R]
//   backward: dy f32[R, D], x_hat f32[R, D], rstd f32[R], scale f32[D]
//             -> dx = rstd (g - mean(g) - x_hat mean(g x_hat)), g = dy scale,
//                dscale = sum_rows dy x_hat, dbias = sum_rows dy
// The variance is two-pass, as the jax.numpy version computes it. The
// parameter gradients are summed per fixed block of rows and the blocks
// added in order, so the result does not depend on thread scheduling
// (resumed runs stay bit-exact).

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

#include "parallel_for.h"
#include "vectors.h"
#include "xla/ffi/api/ffi.h"

namespace ffi = xla::ffi;

namespace {

using namespace mtl_jax::vectors;

// Rows per block of the parameter gradients' partial sums.
constexpr int64_t kBlockRows = 64;

// The forward's rows per work item: enough to amortise taking an item.
constexpr int64_t kForwardRows = 16;

int64_t row_count(ffi::Span<const int64_t> dims) {
  int64_t rows = 1;
  for (size_t i = 0; i + 1 < dims.size(); ++i) rows *= dims[i];
  return rows;
}

// sum(a) and, with b, sum(a b): kLanes partial sums, then the tail.
inline float row_sum(const float* a, int64_t d) {
  vf acc = {};
  int64_t c = 0;
  for (; c + kLanes <= d; c += kLanes) acc += load(a + c);
  float s = hsum(acc);
  for (; c < d; ++c) s += a[c];
  return s;
}

ffi::Error LayerNormForward(ffi::ThreadPool pool, ffi::Buffer<ffi::F32> x,
                            ffi::Buffer<ffi::F32> scale, ffi::Buffer<ffi::F32> bias, float eps,
                            ffi::ResultBuffer<ffi::F32> y, ffi::ResultBuffer<ffi::F32> x_hat,
                            ffi::ResultBuffer<ffi::F32> rstd) {
  const auto dims = x.dimensions();
  if (dims.size() == 0) return ffi::Error::InvalidArgument("mtl_layer_norm: x is a scalar");
  const int64_t d = dims.back(), rows = row_count(dims);
  if (static_cast<int64_t>(scale.element_count()) != d ||
      static_cast<int64_t>(bias.element_count()) != d)
    return ffi::Error::InvalidArgument("mtl_layer_norm: scale and bias must be [d]");
  if (d == 0) return ffi::Error::Success();
  const float* xp = x.typed_data();
  const float* sp = scale.typed_data();
  const float* bp = bias.typed_data();
  float* yp = y->typed_data();
  float* hp = x_hat->typed_data();
  float* rp = rstd->typed_data();
  const float inv_d = 1.0f / static_cast<float>(d);
  const int64_t items = (rows + kForwardRows - 1) / kForwardRows;
  mtl_jax::parallel_for(pool, items, 0, [&](int64_t item, float*) {
    const int64_t end = std::min(rows, (item + 1) * kForwardRows);
    for (int64_t r = item * kForwardRows; r < end; ++r) {
      const float* row = xp + r * d;
      const float mean = row_sum(row, d) * inv_d;
      vf acc = {};
      int64_t c = 0;
      for (; c + kLanes <= d; c += kLanes) {
        const vf v = load(row + c) - mean;
        acc += v * v;
      }
      float sq = hsum(acc);
      for (; c < d; ++c) sq += (row[c] - mean) * (row[c] - mean);
      const float inv = 1.0f / std::sqrt(sq * inv_d + eps);
      rp[r] = inv;
      float* h = hp + r * d;
      float* out = yp + r * d;
      for (c = 0; c + kLanes <= d; c += kLanes) {
        const vf v = (load(row + c) - mean) * inv;
        store(h + c, v);
        store(out + c, v * load(sp + c) + load(bp + c));
      }
      for (; c < d; ++c) {
        h[c] = (row[c] - mean) * inv;
        out[c] = h[c] * sp[c] + bp[c];
      }
    }
  });
  return ffi::Error::Success();
}

ffi::Error LayerNormBackward(ffi::ThreadPool pool, ffi::Buffer<ffi::F32> dy,
                             ffi::Buffer<ffi::F32> x_hat, ffi::Buffer<ffi::F32> rstd,
                             ffi::Buffer<ffi::F32> scale, ffi::ResultBuffer<ffi::F32> dx,
                             ffi::ResultBuffer<ffi::F32> dscale,
                             ffi::ResultBuffer<ffi::F32> dbias) {
  const auto dims = dy.dimensions();
  if (dims.size() == 0) return ffi::Error::InvalidArgument("mtl_layer_norm: dy is a scalar");
  const int64_t d = dims.back(), rows = row_count(dims);
  if (x_hat.element_count() != dy.element_count() ||
      static_cast<int64_t>(rstd.element_count()) != rows ||
      static_cast<int64_t>(scale.element_count()) != d)
    return ffi::Error::InvalidArgument("mtl_layer_norm: backward operands do not match");
  const float* gp = dy.typed_data();
  const float* hp = x_hat.typed_data();
  const float* rp = rstd.typed_data();
  const float* sp = scale.typed_data();
  float* dxp = dx->typed_data();
  float* dsp = dscale->typed_data();
  float* dbp = dbias->typed_data();
  std::fill(dsp, dsp + d, 0.0f);
  std::fill(dbp, dbp + d, 0.0f);
  if (d == 0 || rows == 0) return ffi::Error::Success();
  const float inv_d = 1.0f / static_cast<float>(d);
  const int64_t blocks = (rows + kBlockRows - 1) / kBlockRows;
  // Each block's [dscale | dbias] partial sums, added in block order below.
  std::vector<float> partial(blocks * 2 * d);
  mtl_jax::parallel_for(pool, blocks, 0, [&](int64_t block, float*) {
    float* ds = partial.data() + block * 2 * d;
    float* db = ds + d;
    std::fill(ds, ds + 2 * d, 0.0f);
    const int64_t end = std::min(rows, (block + 1) * kBlockRows);
    for (int64_t r = block * kBlockRows; r < end; ++r) {
      const float* g = gp + r * d;
      const float* h = hp + r * d;
      vf acc_g = {}, acc_gh = {};
      int64_t c = 0;
      for (; c + kLanes <= d; c += kLanes) {
        const vf gs = load(g + c) * load(sp + c);
        acc_g += gs;
        acc_gh += gs * load(h + c);
      }
      float sum_g = hsum(acc_g), sum_gh = hsum(acc_gh);
      for (; c < d; ++c) {
        sum_g += g[c] * sp[c];
        sum_gh += g[c] * sp[c] * h[c];
      }
      const float mean_g = sum_g * inv_d, mean_gh = sum_gh * inv_d, inv = rp[r];
      float* out = dxp + r * d;
      for (c = 0; c + kLanes <= d; c += kLanes) {
        const vf gv = load(g + c), hv = load(h + c);
        store(out + c, inv * (gv * load(sp + c) - mean_g - hv * mean_gh));
        store(ds + c, load(ds + c) + gv * hv);
        store(db + c, load(db + c) + gv);
      }
      for (; c < d; ++c) {
        out[c] = inv * (g[c] * sp[c] - mean_g - h[c] * mean_gh);
        ds[c] += g[c] * h[c];
        db[c] += g[c];
      }
    }
  });
  for (int64_t block = 0; block < blocks; ++block) {
    const float* ds = partial.data() + block * 2 * d;
    for (int64_t c = 0; c < d; ++c) {
      dsp[c] += ds[c];
      dbp[c] += ds[d + c];
    }
  }
  return ffi::Error::Success();
}

}  // namespace

XLA_FFI_DEFINE_HANDLER_SYMBOL(MtlLayerNormForward, LayerNormForward,
                              ffi::Ffi::Bind()
                                  .Ctx<ffi::ThreadPool>()
                                  .Arg<ffi::Buffer<ffi::F32>>()  // x
                                  .Arg<ffi::Buffer<ffi::F32>>()  // scale
                                  .Arg<ffi::Buffer<ffi::F32>>()  // bias
                                  .Attr<float>("eps")
                                  .Ret<ffi::Buffer<ffi::F32>>()  // y
                                  .Ret<ffi::Buffer<ffi::F32>>()  // x_hat
                                  .Ret<ffi::Buffer<ffi::F32>>());  // rstd

XLA_FFI_DEFINE_HANDLER_SYMBOL(MtlLayerNormBackward, LayerNormBackward,
                              ffi::Ffi::Bind()
                                  .Ctx<ffi::ThreadPool>()
                                  .Arg<ffi::Buffer<ffi::F32>>()  // dy
                                  .Arg<ffi::Buffer<ffi::F32>>()  // x_hat
                                  .Arg<ffi::Buffer<ffi::F32>>()  // rstd
                                  .Arg<ffi::Buffer<ffi::F32>>()  // scale
                                  .Ret<ffi::Buffer<ffi::F32>>()  // dx
                                  .Ret<ffi::Buffer<ffi::F32>>()  // dscale
                                  .Ret<ffi::Buffer<ffi::F32>>());  // dbias
