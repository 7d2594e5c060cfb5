#include "engine/runtime/torchscript.h"

namespace ditserve::runtime {

StatusOr<torch::jit::Module> LoadTorchScript(const std::string& path, const at::Device& device) {
  try {
    torch::jit::Module m = torch::jit::load(path, device);
    m.eval();
    return m;
  } catch (const c10::Error& e) {
    return Internal("loading " + path + ": " + e.what_without_backtrace());
  } catch (const std::exception& e) {
    return Internal("loading " + path + ": " + e.what());
  }
}

Status RequireMethods(const torch::jit::Module& module, const std::string& path,
                      std::initializer_list<const char*> methods) {
  for (const char* method : methods) {
    if (!module.find_method(method)) {
      return FailedPrecondition(path + " has no method '" + method + "' (exported by an older ditserve: re-export it)");
    }
  }
  return Status::Ok();
}

at::Tensor FirstTensor(const c10::IValue& v, const char* what) {
  if (v.isTensor()) return v.toTensor();
  if (v.isTuple() && !v.toTupleRef().elements().empty()) return FirstTensor(v.toTupleRef().elements()[0], what);
  if (v.isList() && v.toListRef().size() > 0) return FirstTensor(v.toListRef()[0], what);
  if (v.isGenericDict() && v.toGenericDict().size() > 0) return FirstTensor(v.toGenericDict().begin()->value(), what);
  TORCH_CHECK(false, what, " returned ", v.tagKind(), ", expected a tensor");
}

}  // namespace ditserve::runtime
