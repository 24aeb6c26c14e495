// The CUDA backend's kernels run on the CPU: each kernel's blocks one after another, each block's
// threads one after another between its barriers, calling the same per-thread functions the GPU
// runs (cnn/cuda/conv_tiles.hpp, op_elements.hpp). Only wmma's fragment multiply is emulated here,
// from the fragments' documented layouts, with TF32 rounding as cvt.rna does it.
//
// SimModel drives a Graph through the backend's own program (cnn/cuda/program.hpp: describe,
// step_specs, run_step) with host buffers standing in for device memory, so a whole model goes
// through the same plan, dispatch, kernel arguments and thread code as on the GPU.
#pragma once
#include <cnn/cuda/program.hpp>
#include <cstring>
#include <memory>

namespace cuda_sim {

using namespace cnn::cuda;

// cvt.rna.tf32.f32: to nearest, ties away from zero, 10 mantissa bits kept.
inline float tf32(float v) {
  uint32_t u;
  std::memcpy(&u, &v, 4);
  if ((u & 0x7f800000u) != 0x7f800000u) u = (u + 0x1000u) & 0xffffe000u;
  std::memcpy(&v, &u, 4);
  return v;
}
inline float value(float v) { return v; }
inline float value(Bf16 b) { return bf16_value(b); }

// The threads of one block, each with its share of the tile fetches (as constructed on the GPU).
inline std::vector<TileFetch> block_fetches(const ConvArgs& p, int block_x, int block_y, int block_z) {
  std::vector<TileFetch> f;
  f.reserve(kConvThreads);
  for (int tid = 0; tid < kConvThreads; ++tid) f.emplace_back(p, block_x, block_y, block_z, tid);
  return f;
}

// One block of conv_fp32.
inline void conv_fp32_block(const ConvArgs& p, int block_x, int block_y, int block_z) {
  auto s = std::make_unique<Tiles<float, 0>>();
  std::vector<TileFetch> f = block_fetches(p, block_x, block_y, block_z);
  std::vector<Fp32Thread> t(kConvThreads);
  for (Fp32Thread& th : t) th.zero();
  for (int kt = f[0].k_begin; kt < f[0].k_end; kt += kTileK) {
    for (int tid = 0; tid < kConvThreads; ++tid) s->store(f[tid], tid);
    for (int tid = 0; tid < kConvThreads; ++tid) {  // __syncthreads() above and below
      f[tid].fetch_next(p, kt, tid);
      t[tid].step(*s, tid);
    }
  }
  for (int tid = 0; tid < kConvThreads; ++tid) t[tid].finish(p, f[tid], tid);
}

// One block of conv_mma<Tf32> (T = float) or conv_mma<Bf16Mma> (T = Bf16): the same fetches and
// stores; each warp's wmma calls emulated on the same shared-memory addresses and ldm:
//   load_matrix_sync(fa, &s.a[kk][wm + 16i], kLdA), col_major: element (m, k) at [k * ldm + m];
//   load_matrix_sync(fb, &s.b[kk][wn + 16j], kLdB), row_major: element (k, n) at [k * ldm + n];
//   Tf32::round() on both; mma_sync: acc += fa x fb.
template <class T, int kSkew, int kK, bool kTf32>
void conv_mma_block(const ConvArgs& p, int block_x, int block_y, int block_z) {
  using TilesT = Tiles<T, kSkew>;
  auto s = std::make_unique<TilesT>();
  std::vector<TileFetch> f = block_fetches(p, block_x, block_y, block_z);
  std::vector<float> acc(std::size_t(kConvThreads / 32) * 64 * 32, 0.f);  // per warp, 64 x 32
  auto operand = [](T v) { return kTf32 ? tf32(value(v)) : value(v); };
  for (int kt = f[0].k_begin; kt < f[0].k_end; kt += kTileK) {
    for (int tid = 0; tid < kConvThreads; ++tid) s->store(f[tid], tid);
    for (int tid = 0; tid < kConvThreads; ++tid) f[tid].fetch_next(p, kt, tid);
    for (int warp = 0; warp < kConvThreads / 32; ++warp) {
      const int wm = warp_m(warp), wn = warp_n(warp);
      float* c = acc.data() + std::size_t(warp) * 64 * 32;
      for (int kk = 0; kk < kTileK; kk += kK) {
        float fa[4][16][kK], fb[2][kK][16];
        for (int i = 0; i < 4; ++i) {
          const T* a = &s->a[kk][wm + 16 * i];
          for (int r = 0; r < 16; ++r)
            for (int k = 0; k < kK; ++k) fa[i][r][k] = operand(a[k * TilesT::kLdA + r]);
        }
        for (int j = 0; j < 2; ++j) {
          const T* b = &s->b[kk][wn + 16 * j];
          for (int k = 0; k < kK; ++k)
            for (int q = 0; q < 16; ++q) fb[j][k][q] = operand(b[k * TilesT::kLdB + q]);
        }
        for (int i = 0; i < 4; ++i)
          for (int j = 0; j < 2; ++j)
            for (int r = 0; r < 16; ++r)
              for (int k = 0; k < kK; ++k)
                for (int q = 0; q < 16; ++q) c[(16 * i + r) * 32 + 16 * j + q] += fa[i][r][k] * fb[j][k][q];
      }
    }
  }
  float stage[16 * 16];
  for (int warp = 0; warp < kConvThreads / 32; ++warp) {
    const int wm = warp_m(warp), wn = warp_n(warp);
    const float* c = acc.data() + std::size_t(warp) * 64 * 32;
    for (int i = 0; i < 4; ++i)
      for (int j = 0; j < 2; ++j) {
        for (int r = 0; r < 16; ++r)  // store_matrix_sync(stage, acc[i][j], 16, mem_row_major)
          for (int q = 0; q < 16; ++q) stage[r * 16 + q] = c[(16 * i + r) * 32 + 16 * j + q];
        for (int lane = 0; lane < 32; ++lane)  // every thread's f holds the block's origin
          store_fragment(p, f[lane], f[0].m0 + wm + 16 * i, f[0].j0 + wn + 16 * j, stage, lane);
      }
  }
}

// The executor of run_step(): every kernel's grid, on the CPU.
struct Executor {
  Precision multiply = Precision::FP32;

  int conv(const ConvArgs& p) {
    const int blocks_x = int((p.g.columns() + kTileN - 1) / kTileN);  // the launch's grid
    for (int z = 0; z < p.g.groups * p.splits; ++z)
      for (int y = 0; y < p.g.m_padded / kTileM; ++y)
        for (int x = 0; x < blocks_x; ++x) {
          if (multiply == Precision::FP32) conv_fp32_block(p, x, y, z);
          else if (multiply == Precision::TF32) conv_mma_block<float, 4, 8, true>(p, x, y, z);
          else conv_mma_block<Bf16, 8, 16, false>(p, x, y, z);
        }
    if (p.splits > 1)
      for (int64_t i = 0; i < output_numel(p.g); ++i) split_sum_element(p, i);
    return 0;
  }
  int linear(const LinearArgs& a) {
    const bool vec = a.in % 4 == 0 && reinterpret_cast<uintptr_t>(a.x) % 16 == 0 && reinterpret_cast<uintptr_t>(a.w) % 16 == 0;
    for (int o = 0; o < a.out; ++o)
      for (int n0 = 0; n0 < a.batch; n0 += kLinearBatch) {
        const int nb = std::min(kLinearBatch, a.batch - n0);
        float s[32][kLinearBatch];
        for (int lane = 0; lane < 32; ++lane) linear_lane_sums(a, o, n0, nb, lane, vec, s[lane]);
        for (int d = 16; d > 0; d /= 2) {  // __shfl_xor_sync's butterfly
          float next[32][kLinearBatch];
          for (int lane = 0; lane < 32; ++lane)
            for (int q = 0; q < kLinearBatch; ++q) next[lane][q] = s[lane][q] + s[lane ^ d][q];
          std::memcpy(s, next, sizeof s);
        }
        for (int q = 0; q < nb; ++q) linear_store(a, o, n0 + q, s[q][q]);
      }
    return 0;
  }
  int pool(const PoolArgs& a) {
    for (int64_t i = 0; i < a.planes * a.oh * a.ow; ++i) pool_element(a, i);
    return 0;
  }
  int adaptive_avg_pool(const float* x, float* y, int64_t planes, int h, int w, int oh, int ow) {
    for (int64_t i = 0; i < planes * oh * ow; ++i) adaptive_avg_element(x, y, h, w, oh, ow, i);
    return 0;
  }
  int add(const float* a, const float* b, float* y, int64_t n, int act, float slope) {
    for (int64_t i = 0; i < n; ++i) y[i] = cnn::cuda::activate(a[i] + b[i], act, slope);
    return 0;
  }
  int activate(const float* x, float* y, int64_t n, int act, float slope) {
    for (int64_t i = 0; i < n; ++i) y[i] = cnn::cuda::activate(x[i], act, slope);
    return 0;
  }
  int affine(const float* x, float* y, const float* scale, const float* shift, int64_t n, int c, int64_t plane) {
    for (int64_t i = 0; i < n; ++i) y[i] = x[i] * scale[(i / plane) % c] + shift[(i / plane) % c];
    return 0;
  }
  int softmax(const float* x, float* y, int batch, int c, int64_t plane) {
    for (int64_t i = 0; i < int64_t(batch) * plane; ++i) softmax_pixel(x, y, c, plane, i);
    return 0;
  }
  int copy(float* y, const float* x, int64_t n) {
    std::memcpy(y, x, std::size_t(n) * sizeof(float));
    return 0;
  }
};

// cnn::cuda::Model's forward, on host memory.
class SimModel {
 public:
  // `multiprocessors`: the simulated GPU's, for the split-K choice (0: never split).
  SimModel(const cnn::Graph& g, int multiprocessors) : graph_(g), ops_(describe(g)), multiprocessors_(multiprocessors) {}

  std::vector<cnn::Tensor> forward(cnn::ConstTensorView input, Precision multiply) {
    const cnn::MemoryPlan m = graph_.plan_nchw(input.shape);
    const std::vector<StepSpec> specs = step_specs(m, ops_, multiprocessors_);
    int64_t partial_floats = 0;
    for (const StepSpec& spec : specs) partial_floats = std::max(partial_floats, spec.partial_floats);
    std::vector<float> partial(std::size_t(partial_floats), std::nanf(""));
    std::vector<std::vector<float>> slots;
    for (int64_t floats : m.slot_floats) slots.emplace_back(std::size_t(floats), std::nanf(""));  // as uninitialised
    auto tensor = [&](int t) {
      return t == 0 ? const_cast<float*>(input.data) : slots[std::size_t(m.slot[std::size_t(t)])].data();
    };
    Executor exec{multiply};
    for (std::size_t s = 0; s < m.steps.size(); ++s) {
      const OpSpec& op = ops_[std::size_t(m.steps[s].node)];
      const OpData d{op.weights.data(), op.bias.data(), op.scale.data(), op.shift.data()};
      run_step(m, s, op, d, specs[s], StepData{specs[s].table.data(), partial.data()}, tensor, exec);
    }
    std::vector<cnn::Tensor> out;
    for (int t : m.outputs) out.push_back(cnn::Tensor::from(m.shapes[std::size_t(t)], tensor(t)));
    return out;
  }

 private:
  const cnn::Graph& graph_;
  std::vector<OpSpec> ops_;
  int multiprocessors_;
};

}  // namespace cuda_sim
