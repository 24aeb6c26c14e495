// cnn/io/file.hpp — whole-file reading (memory-mapped where the OS allows) and atomic writing:
// an output file appears complete under its name or not at all.
#pragma once
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include "../error.hpp"

#if defined(__unix__) || defined(__APPLE__)
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#define CNN_HAVE_MMAP 1
#endif

namespace cnn {

// Read-only bytes of a file, mapped or loaded. Movable, shareable through shared_ptr.
class FileBytes {
 public:
  static std::shared_ptr<const FileBytes> open(const std::string& path) {
    auto f = std::shared_ptr<FileBytes>(new FileBytes());
#ifdef CNN_HAVE_MMAP
    const int fd = ::open(path.c_str(), O_RDONLY);
    if (fd < 0) fail(path, ": cannot open (", std::strerror(errno), ")");
    struct stat st {};
    if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
      ::close(fd);
      fail(path, ": not a regular file");
    }
    f->size_ = static_cast<std::size_t>(st.st_size);
    if (f->size_ > 0) {
      void* m = ::mmap(nullptr, f->size_, PROT_READ, MAP_PRIVATE, fd, 0);
      if (m == MAP_FAILED) {
        ::close(fd);
        fail(path, ": cannot map the file (", std::strerror(errno), ")");
      }
      f->map_ = m;
      f->data_ = static_cast<const uint8_t*>(m);
    }
    ::close(fd);
#else
    std::ifstream in(path, std::ios::binary);
    if (!in) fail(path, ": cannot open");
    f->copy_.assign(std::istreambuf_iterator<char>(in), {});
    f->size_ = f->copy_.size();
    f->data_ = reinterpret_cast<const uint8_t*>(f->copy_.data());
#endif
    return f;
  }
  static std::shared_ptr<const FileBytes> from_memory(std::vector<uint8_t> bytes) {
    auto f = std::shared_ptr<FileBytes>(new FileBytes());
    f->copy_.assign(bytes.begin(), bytes.end());
    f->size_ = f->copy_.size();
    f->data_ = reinterpret_cast<const uint8_t*>(f->copy_.data());
    return f;
  }
  ~FileBytes() {
#ifdef CNN_HAVE_MMAP
    if (map_) ::munmap(map_, size_);
#endif
  }
  FileBytes(const FileBytes&) = delete;
  FileBytes& operator=(const FileBytes&) = delete;

  const uint8_t* data() const { return data_; }
  std::size_t size() const { return size_; }

 private:
  FileBytes() = default;
  void* map_ = nullptr;
  std::string copy_;
  const uint8_t* data_ = nullptr;
  std::size_t size_ = 0;
};

// Writes `bytes` to a temporary file beside `path`, then renames it over `path`. On any failure
// the temporary is removed and nothing is left under `path`.
inline void write_file_atomic(const std::string& path, const std::string& bytes) {
  const std::string tmp = path + ".tmp" + std::to_string(reinterpret_cast<uintptr_t>(&bytes) & 0xffff);
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    if (!out) fail(path, ": cannot create file");
    out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
    out.flush();
    if (!out) {
      out.close();
      std::remove(tmp.c_str());
      fail(path, ": write failed");
    }
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    std::remove(tmp.c_str());
    fail(path, ": cannot rename the temporary file into place");
  }
}

}  // namespace cnn
