// Exit codes of ditserve-worker, shared with the coordinator, which tells a start failure that cannot
// succeed on retry (the model does not load on this device) from one that may.
#pragma once

namespace ditserve::worker {

inline constexpr int kExitOrphaned = 1;      // its coordinator was gone at start
inline constexpr int kExitBadArguments = 2;  // bad arguments, or its socket cannot be served
inline constexpr int kExitCannotLoad = 3;    // the engine failed: model files, device, group rendezvous

}  // namespace ditserve::worker
