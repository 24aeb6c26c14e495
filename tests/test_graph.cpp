// Graph mechanics: buffer planning, BN/activation fusion, summaries, run-time shape errors.
#include <doctest/doctest.h>

#include <atomic>
#include <thread>

#include "test_util.hpp"

using namespace cnn;

namespace {
// The same random-weight model twice: one fused by load, one evaluated op by op unfused.
struct Reference : WeightSource {
  std::map<std::string, Param> params;
  std::string origin() const override { return "memory"; }
  std::vector<std::string> names() const override {
    std::vector<std::string> n;
    for (auto& kv : params) n.push_back(kv.first);
    return n;
  }
  bool contains(const std::string& n) const override { return params.count(n) != 0; }
  std::vector<int64_t> dims(const std::string& n) const override { return params.at(n).dims; }
  void read(const std::string& n, std::vector<float>& out) const override { out = params.at(n).values; }
};

Reference random_params(Graph& g, uint32_t seed) {
  Reference r;
  std::mt19937 rng(seed);
  for (std::size_t i = 1; i < g.num_nodes(); ++i)
    for (auto& p : g.layer(int(i))->params()) {
      Param q;
      q.dims = p.dims;
      q.values.resize(std::size_t(q.numel()));
      test::fill_random(q.values.data(), q.numel(), rng, 0.3f);
      if (p.key == "running_var") for (auto& v : q.values) v = 0.5f + std::abs(v);
      r.params[g.layer(int(i))->name() + "." + p.key] = q;
    }
  return r;
}

// Runs the nodes one by one without fusion, through the layers' own forward().
Tensor run_unfused(Graph& g, const Reference& w, const Tensor& x) {
  for (std::size_t i = 1; i < g.num_nodes(); ++i)
    for (auto& p : g.layer(int(i))->params()) {
      p.param->dims = p.dims;
      w.read(g.layer(int(i))->name() + "." + p.key, p.param->values);
    }
  for (std::size_t i = 1; i < g.num_nodes(); ++i) g.layer(int(i))->prepare();
  std::vector<Tensor> vals;
  vals.push_back(x.clone());
  for (std::size_t i = 1; i < g.num_nodes(); ++i) {
    std::vector<ConstTensorView> ins;
    std::vector<Shape> shapes;
    for (int j : g.inputs_of(int(i))) ins.push_back(vals[j].view()), shapes.push_back(vals[j].shape());
    Tensor y(g.layer(int(i))->output_shape(shapes));
    std::vector<float> ws(std::size_t(g.layer(int(i))->workspace_floats(shapes)) + 1);
    g.layer(int(i))->forward(ins, y.view(), ws.data());
    vals.push_back(std::move(y));
  }
  return std::move(vals.back());
}
}  // namespace

TEST_CASE("fusing BatchNorm and ReLU into convolutions does not change the result") {
  for (const char* arch : {"resnet18", "vgg11_bn", "resnet50", "mobilenet_v2"}) {
    ModelConfig c;
    c.arch = arch;
    c.width = 0.125;
    c.num_classes = 5;
    c.vgg_hidden = 16;
    c.vgg_pool = 1;
    Graph fused = build_model(c), plain = build_model(c);
    const std::size_t before = fused.num_nodes();
    Reference w = random_params(fused, 11);
    fused.load_weights(w);
    CHECK(fused.num_nodes() < before);  // BN and ReLU nodes are gone
    Tensor x(Shape{2, 3, 45, 45});
    std::mt19937 rng(1);
    test::fill_random(x.data(), x.numel(), rng);
    Tensor a = fused.forward_single(x.view());
    Tensor b = run_unfused(plain, w, x);
    INFO(arch);
    CHECK(test::rel_error(a.data(), b.data(), a.numel()) < 1e-5);
  }
}

TEST_CASE("the buffer plan reuses memory and keeps live values apart") {
  ModelConfig c;
  c.arch = "resnet50";
  Graph g = build_model(c);
  g.init_random();
  const MemoryPlan& p = g.plan(Shape{1, 3, 224, 224});
  int64_t naive = 0;
  for (auto& s : p.shapes) naive += s.numel() * 4;
  CHECK(p.slot_floats.size() <= 5);                 // a residual network needs only a few buffers
  int64_t planned = 0;
  for (auto f : p.slot_floats) planned += f * 4;
  CHECK(planned * 4 < naive);  // far below one buffer per layer
  // No step may write a buffer that a still-needed tensor lives in (a node's output, or a copy in
  // the other layout), unless it is that step's own input, read for the last time.
  const int S = int(p.steps.size()), T = int(p.shapes.size());
  std::vector<int> made(T, -1), last(T, -1);
  for (int s = 0; s < S; ++s) {
    const auto& st = p.steps[std::size_t(s)];
    made[st.out] = s;
    for (int t : st.ins) last[t] = s;
    if (st.from >= 0) last[st.from] = s;
  }
  for (int t : p.outputs) last[t] = S;
  for (int s = 0; s < S; ++s) {
    const auto& st = p.steps[std::size_t(s)];
    for (int t = 1; t < T; ++t) {
      if (t == st.out || p.slot[t] != p.slot[st.out] || made[t] < 0 || made[t] >= s) continue;
      const bool live_after = last[t] > s;
      const bool in_place = last[t] == s && std::count(st.ins.begin(), st.ins.end(), t) == 1;
      CHECK_MESSAGE(!(live_after || (last[t] == s && !in_place)), "step ", s, " overwrites live tensor ", t);
    }
  }
  CHECK(S >= int(g.num_nodes()) - 1);  // every node runs once, conversions besides
}

TEST_CASE("summary lists layers, output shapes and parameter counts like torchvision") {
  ModelConfig c;
  c.arch = "resnet18";
  Graph g = build_model(c);
  CHECK(g.param_count() == 11689512);  // torchvision resnet18: sum(p.numel() for p in parameters())
  const std::string s = g.summary(Shape{1, 3, 224, 224});
  CHECK(s.find("layer4.1.conv2") != std::string::npos);
  CHECK(s.find("(1, 512, 7, 7)") != std::string::npos);
  CHECK(s.find("Total params: 11689512") != std::string::npos);
  c.arch = "vgg16";
  CHECK(build_model(c).param_count() == 138357544);  // torchvision vgg16
  c.arch = "resnet50";
  CHECK(build_model(c).param_count() == 25557032);   // torchvision resnet50
}

TEST_CASE("any input size works; a wrong channel count or tiny input is a clear error") {
  ModelConfig c;
  c.arch = "vgg11";
  c.width = 0.125;
  c.vgg_hidden = 8;
  Graph g = build_model(c);
  g.init_random();
  for (int64_t side : {32, 50, 97}) {
    Tensor x(Shape{1, 3, side, side + 3});
    CHECK(g.forward_single(x.view()).shape() == Shape{1, 1000, 1, 1});
  }
  Tensor grey(Shape{1, 1, 64, 64});
  CHECK_THROWS_WITH_AS(g.forward(grey.view()), doctest::Contains("input has 1 channels, expected 3"), Error);
  Tensor tiny(Shape{1, 3, 16, 16});  // five 2x2 poolings need 32 pixels
  CHECK_THROWS_WITH_AS(g.forward(tiny.view()), doctest::Contains("features."), Error);
  Graph unloaded = build_model(c);
  CHECK_THROWS_AS(unloaded.forward(grey.view()), Error);
}

TEST_CASE("forward() on one graph from two threads gives each caller the serial result") {
  ModelConfig c;
  c.arch = "resnet18";
  c.num_classes = 10;
  Graph g = build_model(c);
  g.init_random(3);
  Tensor x(Shape{1, 3, 40, 40});
  std::mt19937 rng(5);
  test::fill_random(x.data(), x.numel(), rng);
  const Tensor want = g.forward_single(x.view());
  std::atomic<int> wrong{0};
  auto run = [&] {
    for (int i = 0; i < 30; ++i) {
      const Tensor got = g.forward_single(x.view());
      if (!std::equal(want.data(), want.data() + want.numel(), got.data())) wrong.fetch_add(1);
    }
  };
  std::thread other(run);
  run();
  other.join();
  CHECK(wrong.load() == 0);
}

TEST_CASE("an exception in a parallel_for item reaches the caller, and the pool runs on") {
  test::ThreadScope threads(2);
  for (int trial = 0; trial < 200; ++trial) {
    std::atomic<int> ran{0};
    CHECK_THROWS_WITH_AS(parallel_for(64, kMinParallelWork,
                                      [&](int64_t i) {
                                        ran.fetch_add(1);
                                        if (i == trial % 64) fail("item ", i, " failed");
                                      }),
                         doctest::Contains("failed"), Error);
    CHECK(ran.load() >= 1);
  }
  std::atomic<int64_t> sum{0};
  parallel_for(1000, kMinParallelWork, [&](int64_t i) { sum.fetch_add(i); });
  CHECK(sum.load() == 999 * 1000 / 2);
}

TEST_CASE("parallel_for never runs an item of a loop that has returned, nor one of a loop not yet started") {
  // Many short loops back to back, so that the caller often claims every item before the worker
  // looks: a worker that took up an old loop late must not run anything of it, nor of the next.
  test::ThreadScope threads(2);
  constexpr int kLoops = 60000, kMaxItems = 4;
  std::vector<std::atomic<int>> hits(static_cast<std::size_t>(kLoops * kMaxItems));
  for (int loop = 0; loop < kLoops; ++loop) {
    const int64_t count = 2 + loop % (kMaxItems - 1);
    std::atomic<int>* mine = hits.data() + loop * kMaxItems;  // captured by value: a late run of an
    parallel_for(count, kMinParallelWork, [mine](int64_t i) {  // old loop would count twice here
      mine[i].fetch_add(1);
    });
  }
  int64_t wrong = 0;
  for (int loop = 0; loop < kLoops; ++loop)
    for (int i = 0; i < kMaxItems; ++i) wrong += hits[loop * kMaxItems + i].load() != (i < 2 + loop % (kMaxItems - 1));
  CHECK(wrong == 0);
}

TEST_CASE("parallel_for runs every item exactly once, small items grouped into runs") {
  const int saved = num_threads();
  set_num_threads(2);
  // Tiny items (grouped), large items (one by one), and counts that leave a short last run.
  for (int64_t work : {int64_t(1), int64_t(49), int64_t(1) << 20})
    for (int64_t count : {int64_t(2), int64_t(7), int64_t(2048), int64_t(2053)}) {
      std::vector<std::atomic<int>> hits(static_cast<std::size_t>(count));
      parallel_for(count, work, [&](int64_t i) { hits[std::size_t(i)].fetch_add(1); });
      int64_t wrong = 0;
      for (auto& h : hits) wrong += h.load() != 1;
      CHECK_MESSAGE(wrong == 0, "work ", work, ", count ", count);
    }
  set_num_threads(saved);
}
