// A JobControl for engine tests: records progress events and can cancel after a number of denoise steps.
#pragma once

#include <cstdint>
#include <vector>

#include "ditserve/engine.h"

namespace ditserve::testing {

class RecordingJobControl final : public JobControl {
 public:
  struct Event {
    Stage stage;
    int64_t step, total;
    bool operator==(const Event& o) const { return stage == o.stage && step == o.step && total == o.total; }
  };

  // cancel_after_steps < 0: never cancel; 0: cancel before the first step.
  explicit RecordingJobControl(int64_t cancel_after_steps = -1) : cancel_after_(cancel_after_steps) {}

  bool Cancelled() override {
    ++polls;
    return cancel_after_ >= 0 && denoise_steps_ >= cancel_after_;
  }
  void Progress(Stage stage, int64_t step, int64_t total) override {
    events.push_back({stage, step, total});
    if (stage == Stage::kDenoise) denoise_steps_ = step;
  }

  std::vector<Event> events;
  int64_t polls = 0;

 private:
  int64_t cancel_after_;
  int64_t denoise_steps_ = 0;
};

}  // namespace ditserve::testing
