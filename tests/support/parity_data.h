// Reading what the tests/python/*_parity_reference.py scripts write (raw little-endian arrays) and comparing
// it with the engine's output.
#pragma once

#include <cstddef>
#include <cstring>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

namespace ditserve::testing {

// s quoted for /bin/sh.
std::string ShellQuote(const std::string& s);

// The file's contents as an array of T (empty when it cannot be read).
template <typename T>
std::vector<T> ReadRaw(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::vector<char> bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  std::vector<T> out(bytes.size() / sizeof(T));
  std::memcpy(out.data(), bytes.data(), out.size() * sizeof(T));
  return out;
}

// ||got - want|| / ||want|| (L2 over all n elements).
double RelError(const std::vector<float>& got, const float* want, size_t n);

}  // namespace ditserve::testing
