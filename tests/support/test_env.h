// Paths and small utilities shared by tests (binaries, tiny models, temp dirs, free ports).
#pragma once

#include <string>

namespace ditserve::testing {

std::string BinDir();         // build/server: ditserve, ditserve-worker, ditctl
std::string TestBinDir();     // build/tests: test helper binaries (fake_worker)
std::string SourceDir();
std::string TestModelsDir();  // made by scripts/make_test_models.py (ctest fixture tiny_models)
std::string PythonExe();      // the pinned venv's python
std::string MakeTempDir(const std::string& prefix);  // removed by the OS tmp cleaner; unique per call
int FreeTcpPort();            // a port that was free a moment ago on 127.0.0.1
int FreePortRange(int count);  // base of `count` consecutive such ports, below the ephemeral range

}  // namespace ditserve::testing
