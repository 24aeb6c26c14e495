// cnn/error.hpp — the one exception type the engine throws, and a helper to build its message.
#pragma once
#include <sstream>
#include <stdexcept>
#include <string>
#include <utility>

namespace cnn {

// Every failure the engine detects (bad file, wrong shape, bad parameter) is reported as a
// cnn::Error whose message names the file / tensor / layer and the problem.
class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

template <class... Parts>
[[noreturn]] inline void fail(Parts&&... parts) {
  std::ostringstream s;
  (s << ... << std::forward<Parts>(parts));
  throw Error(s.str());
}

}  // namespace cnn
