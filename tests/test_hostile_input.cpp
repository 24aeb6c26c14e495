// Hostile sizes in files: the checked size arithmetic (cnn/checked.hpp) and the readers that use
// it. Each broken file is refused with one error naming it; none wraps, crashes or is accepted.
#include <doctest/doctest.h>

#include <climits>

#include "cnn/quantize.hpp"
#include "test_util.hpp"

using namespace cnn;

namespace {
const std::string kData = FACECNN_SOURCE_DIR "/tests/data/hostile/";

template <class F>
std::string error_of(F&& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}
bool has(const std::string& s, const std::string& sub) { return s.find(sub) != std::string::npos; }

std::vector<uint8_t> safetensors_with_shape(const std::string& shape) {
  std::string h = "{\"w\":{\"dtype\":\"F32\",\"shape\":[" + shape + "],\"data_offsets\":[0,0]}}";
  std::string out(8, '\0');
  for (int i = 0; i < 8; ++i) out[i] = char((uint64_t(h.size()) >> (8 * i)) & 0xFF);
  out += h;
  return std::vector<uint8_t>(out.begin(), out.end());
}

std::string npy_with_shape(const std::string& shape) {
  std::string h = "{'descr': '<f4', 'fortran_order': False, 'shape': (" + shape + "), }\n";
  std::string out("\x93NUMPY\x01\x00", 8);
  out += char(h.size() & 0xFF);
  out += char(h.size() >> 8);
  return out + h;
}
}  // namespace

TEST_CASE("checked size arithmetic: products and sums never wrap") {
  int64_t out = -7;
  CHECK(checked::mul(0, INT64_MAX, INT64_MAX, out));
  CHECK(out == 0);
  CHECK(checked::mul(3037000499LL, 3037000499LL, INT64_MAX, out));  // floor(sqrt(2^63 - 1))
  CHECK_FALSE(checked::mul(3037000500LL, 3037000500LL, INT64_MAX, out));
  CHECK_FALSE(checked::mul(int64_t(1) << 32, int64_t(1) << 32, INT64_MAX, out));  // wraps to 0 unchecked
  CHECK_FALSE(checked::mul(-1, -1, INT64_MAX, out));
  CHECK_FALSE(checked::mul(2, 3, 5, out));
  CHECK(checked::mul(2, 3, 6, out));
  CHECK(out == 6);
  CHECK(checked::add(INT64_MAX - 1, 1, INT64_MAX, out));
  CHECK_FALSE(checked::add(INT64_MAX, 1, INT64_MAX, out));
  CHECK(checked::add(INT_MAX, 2, int64_t(1) << 40, out));  // fine in 64 bits
  CHECK(out == int64_t(INT_MAX) + 2);
  CHECK_FALSE(checked::add(-1, 2, 10, out));
  const std::vector<int64_t> wrap{65536, 65536, 65536, 65536};  // 2^64: 0 in unchecked int64
  CHECK_FALSE(checked::product(wrap.begin(), wrap.end(), INT64_MAX, out));
  const std::vector<int64_t> none;
  CHECK(checked::product(none.begin(), none.end(), 10, out));
  CHECK(out == 1);
  CHECK(checked_product("x", {2, 3, 4}) == 24);
  CHECK(has(error_of([&] { checked_product("f.npy: shape", wrap); }),
            "f.npy: shape: size 65536 x 65536 x 65536 x 65536 exceeds the limit of 1099511627776"));
  CHECK(has(error_of([&] { checked_product("ctx", {3, -2}); }), "ctx: negative size in 3 x -2"));
  CHECK(has(error_of([&] { checked_sum("ctx", INT64_MAX, 1); }), "ctx: "));
  CHECK(checked_sum("ctx", 2, 3) == 5);
}

TEST_CASE("a tensor shape whose element count overflows is refused, not wrapped") {
  CHECK(has(error_of([] { Tensor t(Shape{65536, 65536, 65536, 65536}); }), "exceeds the limit"));
  CHECK(has(error_of([] { Tensor t(Shape{INT64_MAX, 2, 1, 1}); }), "exceeds the limit"));
  CHECK(has(error_of([] { Tensor t(Shape{1, 1, -1, 1}); }), "negative tensor shape"));
  CHECK(Shape{1, 2, 3, 4}.checked_numel("s") == 24);
}

TEST_CASE(".npy whose shape product overflows: refused by name (regression: was read as empty)") {
  const std::string path = kData + "overflow_shape.npy";
  const std::string e = error_of([&] { read_npy(path); });
  CHECK(has(e, path + ": .npy shape: size 4294967296 x 4294967296 x 1 x 1 exceeds the limit"));
  CHECK(has(error_of([&] { read_npy_nchw(path); }), path + ": "));
  for (const char* shape : {"65536, 65536, 65536, 65536", "1099511627776, 1099511627776", "1099511627777,",
                            "18446744073709551616, 1"}) {
    const std::string b = npy_with_shape(shape);
    CAPTURE(shape);
    CHECK(has(error_of([&] { parse_npy(reinterpret_cast<const uint8_t*>(b.data()), b.size(), "mem.npy"); }),
              "mem.npy: .npy shape"));
  }
  const std::string many = npy_with_shape("1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, "
                                          "1, 1, 1, 1, 1, 1, 1, 1");
  CHECK(has(error_of([&] { parse_npy(reinterpret_cast<const uint8_t*>(many.data()), many.size(), "m.npy"); }),
            "more than 32 dimensions"));
  const std::string zero = npy_with_shape("0, 3");  // a real empty array is still fine
  CHECK(parse_npy(reinterpret_cast<const uint8_t*>(zero.data()), zero.size(), "z.npy").values.empty());
}

TEST_CASE("safetensors whose shape product overflows: refused by name at the shape") {
  const std::string path = kData + "overflow_shape.safetensors";
  CHECK(has(error_of([&] { SafeTensors::open(path); }),
            path + ": tensor 'w' shape: size 4294967296 x 4294967296 exceeds the limit"));
  for (const char* shape : {"65536,65536,65536,65536", "1000000000000,1000000000000", "4294967296,4294967296,1"}) {
    CAPTURE(shape);
    CHECK(has(error_of([&] { SafeTensors::from_memory("m.safetensors", safetensors_with_shape(shape)); }),
              "m.safetensors: tensor 'w' shape: size"));
  }
  CHECK(SafeTensors::from_memory("ok.safetensors", safetensors_with_shape("0,7")).dims("w") ==
        std::vector<int64_t>{0, 7});
}

TEST_CASE("an int8 form over non-finite weights is refused by name (fuzz reproducer: was undefined behaviour)") {
  // tests/data/hostile/int8_nan_weight.safetensors: a tiny graph file with an int8 form whose
  // layer's float weights hold a NaN; quantizing them converted NaN to int8.
  const SafeTensors st = SafeTensors::open(kData + "int8_nan_weight.safetensors");
  Model m = load_model(st);
  const std::string e = error_of([&] { QuantizedModel q(m.graph, st); });
  CHECK(has(e, "int8_nan_weight.safetensors"));
  CHECK(has(e, "non-finite weight"));
}
