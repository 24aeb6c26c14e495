// safetensors and .npy readers: round trips, conversions, and every kind of broken file.
#include <doctest/doctest.h>

#include <cstdio>
#include <fstream>

#include "test_util.hpp"

using namespace cnn;

namespace {

std::vector<uint8_t> to_bytes(const std::string& s) { return std::vector<uint8_t>(s.begin(), s.end()); }

// A file made of a literal header and `data_bytes` bytes of data.
std::vector<uint8_t> raw_file(const std::string& header, std::size_t data_bytes) {
  std::string out(8, '\0');
  for (int i = 0; i < 8; ++i) out[i] = char((uint64_t(header.size()) >> (8 * i)) & 0xFF);
  return to_bytes(out + header + std::string(data_bytes, '\0'));
}

std::string load_error(std::vector<uint8_t> bytes) {
  try {
    SafeTensors::from_memory("bad.safetensors", std::move(bytes));
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

std::string temp_path(const std::string& name) { return "/tmp/facecnn_test_" + name; }

}  // namespace

TEST_CASE("safetensors round trip in F32, F16 and BF16 with metadata") {
  SafeTensorsWriter w;
  w.add("a.weight", {2, 3}, {1.f, -2.f, 0.5f, 3.25f, -0.f, 65504.f});
  w.add("b", {3}, {0.1f, 1e-6f, -7.f}, "F16");
  w.add("c", {2}, {1.5f, -3.0f}, "BF16");
  w.metadata["arch"] = "resnet18";
  w.metadata["quote\"d"] = "line\nbreak";
  const SafeTensors st = SafeTensors::from_memory("mem", to_bytes(w.bytes()));
  CHECK(st.names().size() == 3);
  CHECK(st.meta("arch") == "resnet18");
  CHECK(st.meta("quote\"d") == "line\nbreak");
  CHECK(st.dims("a.weight") == std::vector<int64_t>{2, 3});
  std::vector<float> v;
  st.read("a.weight", v);
  CHECK(v[3] == 3.25f);
  st.read("b", v);
  CHECK(v[0] == doctest::Approx(0.1).epsilon(1e-3));
  CHECK(v[1] == doctest::Approx(1e-6).epsilon(1e-2));  // an F16 subnormal
  st.read("c", v);
  CHECK(v[1] == -3.0f);
}

TEST_CASE("half-precision conversions are exact round trips") {
  for (uint32_t h = 0; h < 65536; ++h) {
    const float f = half::f16_to_f32(uint16_t(h));
    if (f != f) continue;  // NaN payloads
    REQUIRE(half::f32_to_f16(f) == h);
  }
  CHECK(half::f16_to_f32(0x3C00) == 1.f);
  CHECK(half::f16_to_f32(0x0001) == std::ldexp(1.f, -24));
  CHECK(half::f32_to_f16(1e9f) == 0x7C00);
  CHECK(half::f32_to_bf16(1.f) == 0x3F80);
  CHECK(half::bf16_to_f32(0xC040) == -3.f);
}

TEST_CASE("broken safetensors files give one clear error each") {
  const std::string ok_entry = R"("t":{"dtype":"F32","shape":[2],"data_offsets":[0,8]})";
  CHECK(load_error(raw_file("{" + ok_entry + "}", 8)).empty());
  CHECK(load_error(to_bytes("abc")).find("too short") != std::string::npos);
  {
    auto b = raw_file("{" + ok_entry + "}", 8);
    b[0] = 0xFF, b[1] = 0xFF;  // header length beyond the file
    CHECK(load_error(b).find("runs past the end of the file") != std::string::npos);
  }
  CHECK(load_error(raw_file("{\"t\":", 0)).find("not valid JSON") != std::string::npos);
  CHECK(load_error(raw_file("[1,2]", 0)).find("not a JSON object") != std::string::npos);
  CHECK(load_error(raw_file("{" + ok_entry + "}", 4)).find("outside the data section") != std::string::npos);
  CHECK(load_error(raw_file("{" + ok_entry + "}", 12)).find("stray bytes") != std::string::npos);
  CHECK(load_error(raw_file(R"({"t":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}})", 8))
            .find("needs 12") != std::string::npos);
  CHECK(load_error(raw_file(R"({"t":{"dtype":"Q7","shape":[2],"data_offsets":[0,8]}})", 8))
            .find("unknown dtype") != std::string::npos);
  CHECK(load_error(raw_file(R"({"t":{"dtype":"F32","shape":[2],"data_offsets":[8,0]}})", 8))
            .find("begin after end") != std::string::npos);
  CHECK(load_error(raw_file(R"({"t":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
                            R"("u":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})", 8))
            .find("overlap") != std::string::npos);
  CHECK(load_error(raw_file(R"({"t":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})", 8))
            .find("gap") != std::string::npos);
  CHECK(load_error(raw_file(R"({"t":{"dtype":"F32","shape":[-1],"data_offsets":[0,8]}})", 8))
            .find("invalid shape") != std::string::npos);
  CHECK(load_error(raw_file(R"({"t":{"dtype":"F32","shape":[2]}})", 8)).find("data_offsets") != std::string::npos);
  CHECK(load_error(raw_file(R"({"__metadata__":{"k":1}})", 0)).find("not a string") != std::string::npos);
  CHECK(load_error(raw_file(std::string(200, '[') + std::string(200, ']'), 0)).find("nested too deeply") !=
        std::string::npos);
  // Every message names the file.
  CHECK(load_error(to_bytes("abc")).rfind("bad.safetensors:", 0) == 0);
}

TEST_CASE("reading a non-float tensor as weights names the tensor and its dtype") {
  const auto bytes = raw_file(R"({"n":{"dtype":"I64","shape":[1],"data_offsets":[0,8]}})", 8);
  const SafeTensors st = SafeTensors::from_memory("w.safetensors", bytes);
  std::vector<float> v;
  CHECK_THROWS_WITH_AS(st.read("n", v), doctest::Contains("'n' has dtype I64"), Error);
}

TEST_CASE("a missing weights file is reported with its path") {
  CHECK_THROWS_WITH_AS(SafeTensors::open("/nonexistent/model.safetensors"),
                       doctest::Contains("/nonexistent/model.safetensors: cannot open"), Error);
}

TEST_CASE("npy round trip and broken npy files") {
  const std::string p = temp_path("x.npy");
  std::vector<float> v{1, 2, 3, 4, 5, 6};
  write_npy(p, {1, 2, 1, 3}, v.data());
  Tensor t = read_npy_nchw(p);
  CHECK(t.shape() == Shape{1, 2, 1, 3});
  CHECK(t[5] == 6.f);

  auto write_raw = [&](const std::string& header, std::size_t data) {
    std::string s("\x93NUMPY\x01\x00", 8);
    s += char(header.size() & 0xFF);
    s += char(header.size() >> 8);
    s += header + std::string(data, '\0');
    std::ofstream(p, std::ios::binary) << s;
  };
  write_raw("{'descr': '<f8', 'fortran_order': False, 'shape': (1, 1, 1, 2), }", 16);
  CHECK_THROWS_WITH_AS(read_npy_nchw(p), doctest::Contains("'<f8' is not float32"), Error);
  write_raw("{'descr': '<f4', 'fortran_order': True, 'shape': (1, 1, 2, 2), }", 16);
  CHECK_THROWS_WITH_AS(read_npy_nchw(p), doctest::Contains("Fortran"), Error);
  write_raw("{'descr': '<f4', 'fortran_order': False, 'shape': (3, 4), }", 48);
  CHECK_THROWS_WITH_AS(read_npy_nchw(p), doctest::Contains("expected a 4-D array"), Error);
  write_raw("{'descr': '<f4', 'fortran_order': False, 'shape': (1, 3, 4, 4), }", 100);
  CHECK_THROWS_WITH_AS(read_npy_nchw(p), doctest::Contains("truncated"), Error);
  write_raw("{'descr': '<f4', 'fortran_order': False, 'shape': (1, 3, 0, 4), }", 0);
  CHECK_THROWS_WITH_AS(read_npy_nchw(p), doctest::Contains("empty"), Error);
  std::ofstream(p, std::ios::binary) << "hello, not numpy";
  CHECK_THROWS_WITH_AS(read_npy_nchw(p), doctest::Contains("bad magic"), Error);
  std::remove(p.c_str());
}

TEST_CASE("atomic writes leave no file behind when the directory does not exist") {
  std::vector<float> v{1};
  CHECK_THROWS_AS(write_npy("/nonexistent_dir/out.npy", {1}, v.data()), Error);
}
