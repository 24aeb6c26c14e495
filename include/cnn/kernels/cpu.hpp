// cnn/kernels/cpu.hpp — which SIMD instruction set the kernels use, chosen at run time.
//
// The engine never needs -march=native to be correct: each fast kernel is compiled for its ISA with
// function-level target attributes and picked by cpuid (and the OS's register-state support). The
// choice can be forced down for tests and benchmarks with set_isa() or the environment variable
// CNN_ISA=generic|avx2|avx512.
#pragma once
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string>

#if (defined(__x86_64__) || defined(__i386__)) && (defined(__GNUC__) || defined(__clang__))
#define CNN_X86 1
#include <cpuid.h>
#include <immintrin.h>
#endif

namespace cnn {

enum class Isa { Generic = 0, AVX2 = 1, AVX512 = 2 };

inline const char* isa_name(Isa i) {
  switch (i) {
    case Isa::Generic: return "generic";
    case Isa::AVX2: return "avx2";
    case Isa::AVX512: return "avx512";
  }
  return "?";
}

// The best ISA this CPU and OS support: AVX2+FMA needs YMM state enabled, AVX-512 (F, VL, BW, DQ)
// needs opmask and ZMM state enabled too (XCR0 bits 1-2 and 5-7).
inline Isa detect_isa() {
#ifdef CNN_X86
  unsigned a, b, c, d;
  if (!__get_cpuid(1, &a, &b, &c, &d)) return Isa::Generic;
  const bool osxsave = c & (1u << 27), fma = c & (1u << 12), avx = c & (1u << 28);
  if (!osxsave || !avx || !fma) return Isa::Generic;
  unsigned xlo, xhi;
  __asm__ volatile("xgetbv" : "=a"(xlo), "=d"(xhi) : "c"(0));
  if ((xlo & 0x6) != 0x6) return Isa::Generic;
  if (!__get_cpuid_count(7, 0, &a, &b, &c, &d)) return Isa::Generic;
  const bool avx2 = b & (1u << 5);
  const bool avx512 = (b & (1u << 16)) && (b & (1u << 17)) && (b & (1u << 30)) && (b & (1u << 31));  // F DQ BW VL
  if (avx512 && (xlo & 0xE6) == 0xE6) return Isa::AVX512;
  if (avx2) return Isa::AVX2;
#endif
  return Isa::Generic;
}

namespace detail {
inline Isa& isa_setting() {
  static Isa isa = [] {
    Isa best = detect_isa();
    if (const char* env = std::getenv("CNN_ISA")) {
      for (Isa i : {Isa::Generic, Isa::AVX2, Isa::AVX512})
        if (std::strcmp(env, isa_name(i)) == 0 && i <= best) return i;
    }
    return best;
  }();
  return isa;
}
}  // namespace detail

// The ISA kernels use now.
inline Isa active_isa() { return detail::isa_setting(); }
// Forces kernels down to `isa` (never above what the CPU supports); returns the ISA now active.
inline Isa set_isa(Isa isa) {
  const Isa best = detect_isa();
  detail::isa_setting() = isa <= best ? isa : best;
  return detail::isa_setting();
}

// An on/off switch from the environment: on unless the variable is "0".
inline bool env_switch(const char* name) {
  const char* env = std::getenv(name);
  return !(env && std::strcmp(env, "0") == 0);
}

// Whether 3x3 stride-1 convolutions may use Winograd (faster; rounding differs from direct
// convolution by about 1e-6 relative). Default on; CNN_WINOGRAD=0 turns it off.
inline bool& winograd_setting() {
  static bool on = env_switch("CNN_WINOGRAD");
  return on;
}
inline void set_winograd(bool on) { winograd_setting() = on; }
inline bool winograd_enabled() { return winograd_setting(); }

// Whether convolutions that run as a GEMM (1x1 and strided ones the other kernels leave, im2col)
// multiply in bf16 with fp32 sums (kernels/gemm_bf16.hpp), where the CPU has AVX512_BF16. Default
// off (outputs move by about 1e-3 relative); CNN_BF16=1 or set_bf16(true) turns it on.
inline bool& bf16_setting() {
  static bool on = [] {
    const char* env = std::getenv("CNN_BF16");
    return env && std::strcmp(env, "1") == 0;
  }();
  return on;
}
inline void set_bf16(bool on) { bf16_setting() = on; }
inline bool bf16_enabled() { return bf16_setting(); }

// Whether stride-2 convolutions may use the direct kernel (kernels/direct_conv.hpp) with AVX-512.
// Default on; CNN_DIRECT=0 turns it off (they run as implicit-im2col GEMM).
inline bool& direct_setting() {
  static bool on = env_switch("CNN_DIRECT");
  return on;
}
inline void set_direct(bool on) { direct_setting() = on; }
inline bool direct_enabled() { return direct_setting(); }

// Whether convolutions with few input taps (a first layer on an RGB image) may use the row kernel
// (kernels/rowconv.hpp) with AVX-512. Default on; CNN_ROWCONV=0 keeps them on the direct kernel or GEMM.
inline bool& rowconv_setting() {
  static bool on = env_switch("CNN_ROWCONV");
  return on;
}
inline void set_rowconv(bool on) { rowconv_setting() = on; }
inline bool rowconv_enabled() { return rowconv_setting(); }
// Whether convolutions may run on the channel-blocked layout (kernels/blocked.hpp) where it pays,
// with AVX-512. Default on; CNN_BLOCKED=0 keeps every tensor NCHW.
inline bool& blocked_setting() {
  static bool on = env_switch("CNN_BLOCKED");
  return on;
}
inline void set_blocked(bool on) { blocked_setting() = on; }
inline bool blocked_enabled() { return blocked_setting(); }

}  // namespace cnn

// Per-function target attributes: code inside these compiles for that ISA whatever the global flags.
#if defined(CNN_X86)
#define CNN_TARGET_AVX2 __attribute__((target("avx2,fma")))
#define CNN_TARGET_AVX512 __attribute__((target("avx512f,avx512vl,avx512bw,avx512dq,avx2,fma")))
#endif

// GCC 12 warns inside its own AVX-512 headers (_mm512_undefined_ps) once the kernels are inlined:
// the kernel headers wrap their code in these.
#if defined(__GNUC__) && !defined(__clang__)
#define CNN_KERNELS_BEGIN                                                                      \
  _Pragma("GCC diagnostic push") _Pragma("GCC diagnostic ignored \"-Wmaybe-uninitialized\"") \
      _Pragma("GCC diagnostic ignored \"-Wuninitialized\"")                                    \
      _Pragma("GCC diagnostic ignored \"-Wpsabi\"")
#define CNN_KERNELS_END _Pragma("GCC diagnostic pop")
#else
#define CNN_KERNELS_BEGIN
#define CNN_KERNELS_END
#endif
