// Dense matrix products through a BLAS sgemm for XLA's CPU backend (an XLA FFI custom call).
//
// Why: on the CPU we measured, XLA's own CPU GEMMs (YNNPACK, Eigen or oneDNN)
// run the encoder's products below MKL's rate, and feed YNNPACK transposed
// copies of the gradients' operands; the products are about two thirds of a
// train step. This call hands them to a BLAS chosen at run time, and reads
// transposed operands in place: about 15% off the step (BENCHMARKS.md, "The
// dense products through MKL").
//
// The BLAS is not linked: Python passes the address of a Fortran-interface
// `sgemm` (MKL's, or any other) to `MtlSetSgemm` once, before the first call.
// It should be single-threaded (MKL's sequential layer): the call splits the
// output into one block per thread of XLA's intra-op pool and runs one sgemm
// per block, so the BLAS and XLA never compete for the cores.
//
//   a  f32[M, K], or f32[K, M] with trans_a   (row-major)
//   b  f32[K, N], or f32[N, K] with trans_b
//   c  f32[M, N] = op(a) op(b)
// Transposed operands are read in place: the weight gradient x^T dy and the
// input gradient dy w^T need no transposed copies.

#include <algorithm>
#include <atomic>
#include <cstdint>

#include "parallel_for.h"
#include "xla/ffi/api/ffi.h"

namespace ffi = xla::ffi;

namespace {

// The Fortran BLAS interface: column-major, every argument by pointer.
using Sgemm = void (*)(const char* transa, const char* transb, const int* m, const int* n,
                       const int* k, const float* alpha, const float* a, const int* lda,
                       const float* b, const int* ldb, const float* beta, float* c,
                       const int* ldc);

std::atomic<Sgemm> g_sgemm{nullptr};

// Below this many multiply-adds per block, splitting costs more than it saves.
constexpr int64_t kMinBlockWork = int64_t{1} << 21;

// Row-major C[rows, cols] (leading dim ldc) = op(A) op(B) for a block: the
// column-major BLAS sees C^T = op(B)^T op(A)^T, which is the same memory.
void block_gemm(Sgemm sgemm, bool trans_a, bool trans_b, int64_t rows, int64_t cols,
                int64_t k, const float* a, int64_t lda, const float* b, int64_t ldb, float* c,
                int64_t ldc) {
  const char ta = trans_a ? 'T' : 'N', tb = trans_b ? 'T' : 'N';
  const int m_ = static_cast<int>(cols), n_ = static_cast<int>(rows), k_ = static_cast<int>(k);
  const int lda_ = static_cast<int>(lda), ldb_ = static_cast<int>(ldb),
            ldc_ = static_cast<int>(ldc);
  const float one = 1.0f, zero = 0.0f;
  sgemm(&tb, &ta, &m_, &n_, &k_, &one, b, &ldb_, a, &lda_, &zero, c, &ldc_);
}

ffi::Error Gemm(ffi::ThreadPool pool, ffi::Buffer<ffi::F32> a, ffi::Buffer<ffi::F32> b,
                bool trans_a, bool trans_b, ffi::ResultBuffer<ffi::F32> c) {
  const Sgemm sgemm = g_sgemm.load();
  if (sgemm == nullptr) return ffi::Error::Internal("mtl_gemm: no sgemm was set");
  const auto ad = a.dimensions(), bd = b.dimensions(), cd = c->dimensions();
  if (ad.size() != 2 || bd.size() != 2 || cd.size() != 2)
    return ffi::Error::InvalidArgument("mtl_gemm takes matrices");
  const int64_t M = trans_a ? ad[1] : ad[0], K = trans_a ? ad[0] : ad[1];
  const int64_t N = trans_b ? bd[0] : bd[1];
  if ((trans_b ? bd[1] : bd[0]) != K || cd[0] != M || cd[1] != N)
    return ffi::Error::InvalidArgument("mtl_gemm: shapes do not match");
  if (std::max({M, N, K, ad[1], bd[1]}) > INT32_MAX)
    return ffi::Error::InvalidArgument("mtl_gemm: a dimension exceeds the BLAS's int32");
  const float* A = a.typed_data();
  const float* B = b.typed_data();
  float* C = c->typed_data();
  if (M == 0 || N == 0) return ffi::Error::Success();
  if (K == 0) {
    std::fill(C, C + M * N, 0.0f);
    return ffi::Error::Success();
  }
  // One block per thread (fewer for small products), along the longer side
  // of C; a block of rows of op(A) or columns of op(B) is a pointer offset.
  const int64_t threads = std::max<int64_t>(1, pool.num_threads());
  const int64_t blocks = std::max<int64_t>(
      1, std::min<int64_t>(threads, M * N * K / kMinBlockWork));
  const bool by_rows = M >= N;
  const int64_t extent = by_rows ? M : N;
  // Multiples of 16 keep each block's edge aligned to the BLAS's panels.
  const int64_t step = ((extent + blocks - 1) / blocks + 15) & ~int64_t{15};
  const int64_t count = (extent + step - 1) / step;
  mtl_jax::parallel_for(pool, count, 0, [&](int64_t i, float*) {
    const int64_t lo = i * step, size = std::min(step, extent - lo);
    if (by_rows) {
      const float* a_block = trans_a ? A + lo : A + lo * ad[1];
      block_gemm(sgemm, trans_a, trans_b, size, N, K, a_block, ad[1], B, bd[1], C + lo * N, N);
    } else {
      const float* b_block = trans_b ? B + lo * bd[1] : B + lo;
      block_gemm(sgemm, trans_a, trans_b, M, size, K, A, ad[1], b_block, bd[1], C + lo, N);
    }
  });
  return ffi::Error::Success();
}

}  // namespace

extern "C" void MtlSetSgemm(void* sgemm) { g_sgemm.store(reinterpret_cast<Sgemm>(sgemm)); }

XLA_FFI_DEFINE_HANDLER_SYMBOL(MtlGemm, Gemm,
                              ffi::Ffi::Bind()
                                  .Ctx<ffi::ThreadPool>()
                                  .Arg<ffi::Buffer<ffi::F32>>()  // a
                                  .Arg<ffi::Buffer<ffi::F32>>()  // b
                                  .Attr<bool>("trans_a")
                                  .Attr<bool>("trans_b")
                                  .Ret<ffi::Buffer<ffi::F32>>());  // c
