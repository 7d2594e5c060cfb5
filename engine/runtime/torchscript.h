// Loading the exported TorchScript modules and reading their outputs.
#pragma once

#include <string>

#include <ATen/ATen.h>
#include <torch/script.h>

#include "ditserve/status.h"

namespace ditserve::runtime {

// Loads a TorchScript file onto `device` in eval mode; errors name the file.
StatusOr<torch::jit::Module> LoadTorchScript(const std::string& path, const at::Device& device);

// FailedPrecondition naming the file unless `module` has every method in `methods` (an older export).
Status RequireMethods(const torch::jit::Module& module, const std::string& path,
                      std::initializer_list<const char*> methods);

// The first tensor of a module output (a tensor, or a tuple/list/dict whose first value is one).
at::Tensor FirstTensor(const c10::IValue& v, const char* what);

// An optional tensor argument: None for an undefined tensor.
inline c10::IValue Optional(const at::Tensor& t) { return t.defined() ? c10::IValue(t) : c10::IValue(); }

}  // namespace ditserve::runtime
