// The blocked GEMM (fp32, and bf16 where the CPU has AVX512_BF16) against the reference
// definitions, on random shapes and strides.
#include <array>
#include <cstring>
#include <doctest/doctest.h>

#include <cnn/kernels/gemm_bf16.hpp>

#include "test_util.hpp"

using namespace cnn;

TEST_CASE("gemm matches gemm_reference on random shapes, strides and epilogues, on every ISA") {
  for (Isa isa : test::available_isas()) {
  test::IsaScope scope(isa);
  std::mt19937 rng(42);
  std::uniform_int_distribution<int> dim(1, 70), big(1, 600), pick(0, 3), act(0, 4);
  for (int trial = 0; trial < 60; ++trial) {
    const int64_t M = trial % 7 == 0 ? big(rng) : dim(rng), N = trial % 5 == 0 ? big(rng) : dim(rng);
    const int64_t K = trial % 3 == 0 ? big(rng) : dim(rng);
    const bool ta = pick(rng) & 1, tb = pick(rng) & 1, tc = pick(rng) == 0;
    std::vector<float> a(M * K), b(K * N), bias(M), c1(M * N, 7.f), c2(M * N, -7.f);
    test::fill_random(a.data(), M * K, rng);
    test::fill_random(b.data(), K * N, rng);
    test::fill_random(bias.data(), M, rng);
    ConstMat A = ta ? ConstMat{a.data(), 1, M} : ConstMat{a.data(), K, 1};
    ConstMat B = tb ? ConstMat{b.data(), 1, K} : ConstMat{b.data(), N, 1};
    Mat C1 = tc ? Mat{c1.data(), 1, M} : Mat{c1.data(), N, 1};
    Mat C2 = tc ? Mat{c2.data(), 1, M} : Mat{c2.data(), N, 1};
    const Activation acts[] = {Activation::None, Activation::ReLU, Activation::LeakyReLU, Activation::Sigmoid,
                               Activation::ReLU6};
    Epilogue ep{pick(rng) ? bias.data() : nullptr, acts[act(rng)], 0.1f};
    kernels::gemm_reference(M, N, K, A, B, C1, ep);
    {
      test::ThreadScope threads(1 + trial % 2);
      kernels::gemm(M, N, K, A, B, C2, ep);
    }
    INFO(isa_name(isa) << " M=" << M << " N=" << N << " K=" << K << " ta=" << ta << " tb=" << tb << " tc=" << tc);
    double worst = 0;
    for (int64_t i = 0; i < M * N; ++i)
      worst = std::max(worst, std::abs(double(c1[i]) - c2[i]) / (1.0 + std::abs(double(c1[i]))));
    CHECK(worst < 1e-4 * std::sqrt(double(K)));
  }
  }
}

TEST_CASE("linear_forward matches gemm_reference on every ISA") {
  std::mt19937 rng(8);
  std::uniform_int_distribution<int> dim(1, 40), kdim(1, 300);
  for (Isa isa : test::available_isas()) {
    test::IsaScope scope(isa);
    for (int trial = 0; trial < 30; ++trial) {
      const int64_t M = dim(rng), N = 1 + trial % 9, K = kdim(rng);
      std::vector<float> w(M * K), x(N * K), bias(M), y1(N * M), y2(N * M);
      test::fill_random(w.data(), M * K, rng);
      test::fill_random(x.data(), N * K, rng);
      test::fill_random(bias.data(), M, rng);
      const Epilogue ep{bias.data(), trial % 2 ? (trial % 4 == 3 ? Activation::ReLU6 : Activation::ReLU) : Activation::None};
      kernels::gemm_reference(M, N, K, ConstMat{w.data(), K, 1}, ConstMat{x.data(), 1, K}, Mat{y1.data(), 1, M}, ep);
      kernels::linear_forward(M, N, K, w.data(), x.data(), y2.data(), ep);
      INFO(isa_name(isa) << " M=" << M << " N=" << N << " K=" << K);
      for (int64_t i = 0; i < M * N; ++i) REQUIRE(y2[i] == doctest::Approx(y1[i]).epsilon(1e-4).scale(std::sqrt(double(K))));
    }
  }
}

TEST_CASE("gemm gives bit-identical results for any thread count") {
  std::mt19937 rng(3);
  const int64_t M = 96, N = 700, K = 300;
  std::vector<float> a(M * K), b(K * N), c1(M * N), c2(M * N);
  test::fill_random(a.data(), M * K, rng);
  test::fill_random(b.data(), K * N, rng);
  {
    test::ThreadScope t(1);
    kernels::gemm(M, N, K, ConstMat{a.data(), K, 1}, ConstMat{b.data(), N, 1}, Mat{c1.data(), N, 1});
  }
  {
    test::ThreadScope t(2);
    kernels::gemm(M, N, K, ConstMat{a.data(), K, 1}, ConstMat{b.data(), N, 1}, Mat{c2.data(), N, 1});
  }
  CHECK(std::memcmp(c1.data(), c2.data(), c1.size() * 4) == 0);
}

TEST_CASE("a gathered B is packed once and shared when threads split the rows") {
  // Many rows, few columns, several K blocks: threads split M; a source marked `gathers` is packed
  // by all threads together before the multiply. Same values as the reference, on any thread count.
  std::mt19937 rng(4);
  for (const auto& [M, N, K] : {std::array<int64_t, 3>{512, 49, 700}, {300, 20, 257}, {1024, 100, 64}}) {
    std::vector<float> a(M * K), b(K * N), c1(M * N), c2(M * N), ref(M * N), bias(M);
    test::fill_random(a.data(), M * K, rng);
    test::fill_random(b.data(), K * N, rng);
    test::fill_random(bias.data(), M, rng);
    const Epilogue ep{bias.data(), Activation::ReLU};
    const ConstMat B{b.data(), N, 1};
    const kernels::PackedA pa = kernels::pack_a(M, K, ConstMat{a.data(), K, 1});
    kernels::BSource gathered = kernels::matrix_source(B);
    gathered.gathers = true;
    {
      test::ThreadScope t(1);
      kernels::gemm_packed(M, N, K, pa, gathered, Mat{c1.data(), N, 1}, ep);
    }
    {
      test::ThreadScope t(2);
      kernels::gemm_packed(M, N, K, pa, gathered, Mat{c2.data(), N, 1}, ep);
    }
    kernels::gemm_reference(M, N, K, ConstMat{a.data(), K, 1}, B, Mat{ref.data(), N, 1}, ep);
    INFO(M << "x" << N << "x" << K);
    CHECK(std::memcmp(c1.data(), c2.data(), c1.size() * 4) == 0);
    CHECK(test::rel_error(c2.data(), ref.data(), M * N) < 1e-5);
  }
}

TEST_CASE("gemm with K = 0 writes the epilogue of an empty sum") {
  float bias[2] = {1.f, -2.f}, c[6] = {9, 9, 9, 9, 9, 9};
  kernels::gemm(2, 3, 0, ConstMat{nullptr, 0, 1}, ConstMat{nullptr, 3, 1}, Mat{c, 3, 1},
                Epilogue{bias, Activation::ReLU});
  CHECK(c[0] == 1.f);
  CHECK(c[5] == 0.f);
}

// ---- bf16 (gemm_bf16.hpp) -----------------------------------------------------------------------

TEST_CASE("to_bf16 rounds to the nearest bf16, ties to even") {
  std::mt19937 rng(5);
  std::uniform_real_distribution<float> u(-1e4f, 1e4f);
  for (int i = 0; i < 10000; ++i) {
    const float x = i % 2 ? u(rng) : u(rng) * 1e-30f;
    const float r = kernels::round_bf16(x);
    uint32_t bits;
    std::memcpy(&bits, &r, 4);
    CHECK((bits & 0xffffu) == 0u);
    // no bf16 is nearer: the neighbours one bf16 step either side are at least as far
    const float step = std::ldexp(1.f, std::ilogb(r == 0.f ? x : r) - 7);
    CHECK(std::abs(r - x) <= step / 2);
  }
  // exactly half way: to the even neighbour
  for (float base : {1.f, 1.0078125f, -3.f, 1000.f}) {  // bf16 values (1.0078125 = 1 + 2^-7, odd mantissa)
    const float half = std::ldexp(1.f, std::ilogb(base) - 8);
    const float up = kernels::round_bf16(base + std::copysign(half, base));
    uint32_t bits;
    std::memcpy(&bits, &up, 4);
    CHECK(((bits >> 16) & 1u) == 0u);
  }
  CHECK(std::isnan(kernels::round_bf16(std::nanf(""))));
  CHECK(kernels::round_bf16(INFINITY) == INFINITY);
}

TEST_CASE("gemm_bf16 matches gemm_bf16_reference on random shapes, strides and epilogues") {
  if (!kernels::bf16_available()) {
    MESSAGE("this CPU has no AVX512_BF16: the bf16 GEMM is not run here");
    return;
  }
  std::mt19937 rng(43);
  std::uniform_int_distribution<int> dim(1, 70), big(1, 600), pick(0, 3), act(0, 4);
  for (int trial = 0; trial < 60; ++trial) {
    const int64_t M = trial % 7 == 0 ? big(rng) : dim(rng), N = trial % 5 == 0 ? big(rng) : dim(rng);
    const int64_t K = trial % 3 == 0 ? big(rng) : dim(rng);
    const bool ta = pick(rng) & 1, tb = pick(rng) & 1, tc = pick(rng) == 0;
    std::vector<float> a(M * K), b(K * N), bias(M), c1(M * N, 7.f), c2(M * N, -7.f), c3(M * N, 3.f);
    test::fill_random(a.data(), M * K, rng);
    test::fill_random(b.data(), K * N, rng);
    test::fill_random(bias.data(), M, rng);
    ConstMat A = ta ? ConstMat{a.data(), 1, M} : ConstMat{a.data(), K, 1};
    ConstMat B = tb ? ConstMat{b.data(), 1, K} : ConstMat{b.data(), N, 1};
    auto out = [&](std::vector<float>& c) { return tc ? Mat{c.data(), 1, M} : Mat{c.data(), N, 1}; };
    const Activation acts[] = {Activation::None, Activation::ReLU, Activation::LeakyReLU, Activation::Sigmoid,
                               Activation::ReLU6};
    Epilogue ep{pick(rng) ? bias.data() : nullptr, acts[act(rng)], 0.1f};
    kernels::gemm_bf16_reference(M, N, K, A, B, out(c1), ep);
    {
      test::ThreadScope threads(1);
      kernels::gemm_bf16(M, N, K, A, B, out(c2), ep);
    }
    {
      test::ThreadScope threads(2);
      kernels::gemm_bf16(M, N, K, A, B, out(c3), ep);
    }
    INFO("M=" << M << " N=" << N << " K=" << K << " ta=" << ta << " tb=" << tb << " tc=" << tc);
    // fp32 sums of exact products against double sums: within K roundings of the sum of |terms|
    double worst = 0;
    for (int64_t i = 0; i < M; ++i)
      for (int64_t j = 0; j < N; ++j) {
        double terms = 1.0;
        for (int64_t k = 0; k < K; ++k)
          terms += std::abs(double(kernels::round_bf16(A(i, k))) * kernels::round_bf16(B(k, j)));
        const int64_t at = tc ? j * M + i : i * N + j;
        worst = std::max(worst, std::abs(double(c1[std::size_t(at)]) - c2[std::size_t(at)]) / terms);
      }
    CHECK(worst < 1e-7 * double(K + 8));
    CHECK(c2 == c3);  // the thread count does not change the sums
  }
}

TEST_CASE("gemm_bf16 stays within 1e-2 of the fp32 GEMM (relative, over the output)") {
  if (!kernels::bf16_available()) {
    MESSAGE("this CPU has no AVX512_BF16: the bf16 GEMM is not run here");
    return;
  }
  std::mt19937 rng(44);
  for (int64_t K : {27, 576, 2304}) {  // a first layer, 3x3x64, 3x3x256
    const int64_t M = 64, N = 200;
    std::vector<float> a(M * K), b(K * N), c32(M * N), c16(M * N);
    test::fill_random(a.data(), M * K, rng);
    test::fill_random(b.data(), K * N, rng);
    const ConstMat A{a.data(), K, 1}, B{b.data(), N, 1};
    kernels::gemm(M, N, K, A, B, Mat{c32.data(), N, 1});
    kernels::gemm_bf16(M, N, K, A, B, Mat{c16.data(), N, 1});
    double diff = 0, norm = 0;
    for (int64_t i = 0; i < M * N; ++i) diff += std::pow(double(c16[i]) - c32[i], 2), norm += std::pow(double(c32[i]), 2);
    INFO("K=" << K << " relative error " << std::sqrt(diff / norm));
    CHECK(std::sqrt(diff / norm) < 1e-2);
  }
}

TEST_CASE("linear_forward_bf16 matches gemm_bf16_reference") {
  if (!kernels::bf16_available()) {
    MESSAGE("this CPU has no AVX512_BF16: the bf16 linear kernel is not run here");
    return;
  }
  std::mt19937 rng(45);
  std::uniform_int_distribution<int> dim(1, 40), kdim(1, 300), act(0, 4);
  for (int trial = 0; trial < 40; ++trial) {
    const int64_t M = dim(rng), N = 1 + trial % 6, K = kdim(rng);
    std::vector<float> w(M * K), x(N * K), bias(M), y1(N * M), y2(N * M), y3(N * M);
    test::fill_random(w.data(), M * K, rng);
    test::fill_random(x.data(), N * K, rng);
    test::fill_random(bias.data(), M, rng);
    const Activation acts[] = {Activation::None, Activation::ReLU, Activation::LeakyReLU, Activation::Sigmoid,
                               Activation::ReLU6};
    const Epilogue ep{trial % 2 ? bias.data() : nullptr, acts[act(rng)], 0.1f};
    // y (N x M) = x (N x K) * W^T: the reference's A is x, its B is W read transposed
    kernels::gemm_bf16_reference(N, M, K, ConstMat{x.data(), K, 1}, ConstMat{w.data(), 1, K}, Mat{y1.data(), M, 1},
                                 Epilogue{});
    for (int64_t b = 0; b < N; ++b)
      for (int64_t o = 0; o < M; ++o) y1[b * M + o] = ep.apply(y1[b * M + o], o);
    const kernels::LinearBf16Weights packed = kernels::pack_linear_bf16(M, K, w.data());
    {
      test::ThreadScope threads(1);
      kernels::linear_forward_bf16(N, packed, x.data(), y2.data(), ep);
    }
    {
      test::ThreadScope threads(2);
      kernels::linear_forward_bf16(N, packed, x.data(), y3.data(), ep);
    }
    INFO("M=" << M << " N=" << N << " K=" << K);
    for (int64_t i = 0; i < N * M; ++i) CHECK(std::abs(y1[i] - y2[i]) <= 1e-5f * (1.f + std::sqrt(float(K))));
    CHECK(y2 == y3);
  }
}
