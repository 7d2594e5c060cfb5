// Reference data computed by a tests/python/*_reference.py script (run with the pinned venv's python):
// the script takes an output folder and writes reference.json there.
#pragma once

#include <string>

#include <nlohmann/json.hpp>

namespace ditserve::testing {

struct PythonReference {
  bool ok = false;
  std::string error;    // the command and the script's output when it failed
  nlohmann::json data;  // reference.json
};

// script: path under the source tree, e.g. "tests/python/tokenizer_reference.py". A failing script is an
// error (ok = false), never a skip.
PythonReference RunPythonReference(const std::string& script);

// The file's bytes ("" when it cannot be read).
std::string ReadFileBytes(const std::string& path);

// text as a JSON string with non-ASCII escaped, cut to about 300 characters: for failure messages.
std::string ShowText(const std::string& text);

}  // namespace ditserve::testing
