// The (a, b) tuple a TorchScript method returns (a transformer's two streams) as a TensorList.
#pragma once

#include <ATen/core/ivalue.h>

#include "engine/runtime/denoiser.h"

namespace ditserve::runtime {

inline TensorList TensorPair(const c10::IValue& v) {
  const auto& e = v.toTupleRef().elements();
  return {e[0].toTensor(), e[1].toTensor()};
}

}  // namespace ditserve::runtime
