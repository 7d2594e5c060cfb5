// Helpers of the parity tests that compare a C++ pipeline with a diffusers reference script's raw dumps.
#pragma once

#include <cstring>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

namespace ditserve::testing {

// s quoted for /bin/sh.
std::string ShellQuote(const std::string& s);

// The raw little-endian values of a file written by numpy's tofile.
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
