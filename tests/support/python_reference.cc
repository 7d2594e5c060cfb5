#include "support/python_reference.h"

#include <cstdlib>
#include <fstream>
#include <sstream>

#include "support/test_env.h"

namespace ditserve::testing {

std::string ReadFileBytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

PythonReference RunPythonReference(const std::string& script) {
  PythonReference ref;
  const std::string dir = MakeTempDir("ditserve-pyref");
  const std::string log = dir + "/python.log";
  const std::string cmd =
      "'" + PythonExe() + "' '" + SourceDir() + "/" + script + "' '" + dir + "' > '" + log + "' 2>&1";
  const int rc = std::system(cmd.c_str());
  if (rc != 0) {
    ref.error = "reference script failed (rc=" + std::to_string(rc) + "): " + cmd + "\n" + ReadFileBytes(log);
    return ref;
  }
  ref.data = nlohmann::json::parse(ReadFileBytes(dir + "/reference.json"), nullptr, /*allow_exceptions=*/false);
  if (ref.data.is_discarded()) {
    ref.error = "cannot parse " + dir + "/reference.json";
    return ref;
  }
  ref.ok = true;
  return ref;
}

std::string ShowText(const std::string& text) {
  std::string s = nlohmann::json(text).dump(-1, ' ', /*ensure_ascii=*/true);
  if (s.size() > 300) s = s.substr(0, 300) + "...(" + std::to_string(text.size()) + " bytes)";
  return s;
}

}  // namespace ditserve::testing
