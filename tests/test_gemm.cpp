// The blocked GEMM against the reference definition, on random shapes and strides.
#include <array>
#include <doctest/doctest.h>

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
