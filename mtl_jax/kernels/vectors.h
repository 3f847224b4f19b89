// Vector types and helpers shared by this folder's kernels (GCC/Clang vector extensions).
#ifndef MTL_JAX_KERNELS_VECTORS_H_
#define MTL_JAX_KERNELS_VECTORS_H_

#include <algorithm>
#include <cstdint>
#include <cstring>

namespace mtl_jax::vectors {

// Element-wise passes use the widest vectors the CPU has (16 floats with
// AVX-512, else 8); a product may pick its own (attention_cpu.cc's `matmul`).
#if defined(__AVX512F__)
constexpr int kLanes = 16;
#else
constexpr int kLanes = 8;
#endif
typedef float v8f __attribute__((vector_size(32)));
typedef float v16f __attribute__((vector_size(64)));
typedef float vf __attribute__((vector_size(4 * kLanes)));
typedef uint32_t vu __attribute__((vector_size(4 * kLanes)));
typedef int32_t vi __attribute__((vector_size(4 * kLanes)));

template <typename V>
inline V loadv(const float* p) { V r; std::memcpy(&r, p, sizeof r); return r; }
template <typename V>
inline void storev(float* p, V v) { std::memcpy(p, &v, sizeof v); }
inline vf load(const float* p) { return loadv<vf>(p); }
inline void store(float* p, vf v) { storev<vf>(p, v); }
inline vf splat(float x) { return vf{} + x; }
inline int64_t round_lanes(int64_t n) { return (n + kLanes - 1) / kLanes * kLanes; }

inline float hsum(vf v) {
  float s = 0.0f;
  for (int i = 0; i < kLanes; ++i) s += v[i];
  return s;
}

inline float hmax(vf v) {
  float m = v[0];
  for (int i = 1; i < kLanes; ++i) m = std::max(m, v[i]);
  return m;
}

}  // namespace mtl_jax::vectors

#endif  // MTL_JAX_KERNELS_VECTORS_H_
