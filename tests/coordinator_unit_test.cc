// Coordinator pieces without processes: the bounded request queue, a Job's cancel/start/finish races,
// and the gRPC status mapping at the edge. Threaded cases are meant for TSan too (scripts/sanitize.sh).
#include <atomic>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "server/grpc_status.h"
#include "server/job.h"
#include "server/request_queue.h"

namespace ditserve::server {
namespace {

std::shared_ptr<Job> MakeJob(const std::string& id, const std::string& model = "m") {
  v1::GenerateRequest r;
  r.set_model(model);
  return std::make_shared<Job>(id, r);
}

std::vector<uint32_t> Positions(Job& job) {
  std::vector<uint32_t> out;
  v1::GenerateEvent ev;
  Status st;
  while (job.WaitNext(&ev, &st, std::chrono::milliseconds(0)) == Job::Next::kEvent) {
    if (ev.has_queued()) out.push_back(ev.queued().position());
  }
  return out;
}

TEST(RequestQueue, BoundedFifoAmongRunnableWithPositions) {
  RequestQueue q(3);
  auto a = MakeJob("a", "x"), b = MakeJob("b", "y"), c = MakeJob("c", "x"), d = MakeJob("d");
  EXPECT_TRUE(q.TryPush(a));
  EXPECT_TRUE(q.TryPush(b));
  EXPECT_TRUE(q.TryPush(c));
  EXPECT_FALSE(q.TryPush(d)) << "full";
  EXPECT_EQ(q.size(), 3u);
  EXPECT_EQ(Positions(*c), std::vector<uint32_t>{2});
  // Only model y can run: b leaves first although a is older; the others move up.
  auto first = q.PopFirst([](const Job& j) { return j.request().model() == "y"; });
  EXPECT_EQ(first, b);
  EXPECT_EQ(Positions(*c), std::vector<uint32_t>{1});
  EXPECT_EQ(q.PopFirst([](const Job&) { return false; }), nullptr);
  EXPECT_TRUE(q.Remove(a.get()));
  EXPECT_FALSE(q.Remove(a.get())) << "already gone";
  EXPECT_EQ(Positions(*c), std::vector<uint32_t>{0});
  q.Close();
  EXPECT_FALSE(q.TryPush(MakeJob("e"))) << "closed while draining";
  EXPECT_EQ(q.PopFirst([](const Job&) { return true; }), c);
  EXPECT_EQ(q.size(), 0u);
}

TEST(RequestQueue, ConcurrentPushPopRemoveLosesNothing) {
  RequestQueue q(64);
  constexpr int kJobs = 2000;
  std::atomic<int> pushed{0}, popped{0}, removed{0}, refused{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kJobs / 4; ++i) {
        auto j = MakeJob(std::to_string(t) + "-" + std::to_string(i));
        if (!q.TryPush(j)) {
          ++refused;
          continue;
        }
        ++pushed;
        if (i % 3 == 0 && q.Remove(j.get())) ++removed;
      }
    });
  }
  std::atomic<bool> done{false};
  std::thread consumer([&] {
    while (!done || q.size() > 0) {
      if (q.PopFirst([](const Job&) { return true; })) ++popped;
    }
  });
  for (auto& t : threads) t.join();
  done = true;
  consumer.join();
  EXPECT_EQ(pushed + refused, kJobs);
  EXPECT_EQ(popped + removed, pushed) << "every accepted job left the queue exactly once";
}

TEST(Job, FinishIsFinalAndEventsAfterItAreDropped) {
  auto j = MakeJob("j");
  j->Finish(Unavailable("group failed"));
  j->Finish(Cancelled("late cancel"));  // a crash racing a cancel reports one status: the first
  v1::GenerateEvent ev;
  ev.mutable_progress()->set_step(1);
  j->PushEvent(ev);
  Status st;
  EXPECT_EQ(j->WaitNext(&ev, &st, std::chrono::milliseconds(0)), Job::Next::kDone);
  EXPECT_EQ(st.code(), StatusCode::kUnavailable);
  EXPECT_TRUE(j->finished());
}

TEST(Job, CancelBeforeStartFiresTheCancellerWhenInstalled) {
  auto j = MakeJob("j");
  j->RequestCancel(DeadlineExceeded("deadline"));
  j->RequestCancel(Cancelled("second reason ignored"));
  int fired = 0;
  j->SetCanceller([&] { ++fired; });  // the group starts it after the cancel: stop right away
  EXPECT_EQ(fired, 1);
  EXPECT_EQ(j->cancel_reason()->code(), StatusCode::kDeadlineExceeded);
}

TEST(Job, CancelAfterFinishIsIgnored) {
  auto j = MakeJob("j");
  int fired = 0;
  j->SetCanceller([&] { ++fired; });
  j->Finish(Status::Ok());
  j->RequestCancel(Cancelled("too late"));
  EXPECT_EQ(fired, 0);
  EXPECT_FALSE(j->cancel_reason().has_value());
}

// The race of a client cancelling while the group installs and clears its canceller and finishes:
// the canceller runs at most once and never after it was cleared.
TEST(Job, CancelStartFinishRace) {
  for (int round = 0; round < 300; ++round) {
    auto j = MakeJob("j");
    std::atomic<int> fired{0};
    std::atomic<bool> cleared{false}, fired_after_clear{false};
    std::thread group([&] {
      j->SetCanceller([&] {
        if (cleared) fired_after_clear = true;
        ++fired;
      });
      j->SetCanceller(nullptr);
      cleared = true;
      j->Finish(Status::Ok());
    });
    std::thread client([&] { j->RequestCancel(Cancelled("client went away")); });
    group.join();
    client.join();
    EXPECT_LE(fired.load(), 1);
    EXPECT_FALSE(fired_after_clear.load());
    EXPECT_TRUE(j->finished());
  }
}

TEST(Job, ConsumerSeesEveryEventThenTheStatus) {
  auto j = MakeJob("j");
  std::thread producer([&] {
    for (uint32_t i = 1; i <= 500; ++i) {
      v1::GenerateEvent ev;
      ev.mutable_progress()->set_step(i);
      j->PushEvent(std::move(ev));
    }
    j->Finish(Status::Ok());
  });
  uint32_t last = 0;
  Status st = Internal("not finished");
  while (true) {
    v1::GenerateEvent ev;
    auto next = j->WaitNext(&ev, &st, std::chrono::milliseconds(100));
    if (next == Job::Next::kDone) break;
    if (next == Job::Next::kEvent) {
      EXPECT_EQ(ev.progress().step(), last + 1);
      last = ev.progress().step();
    }
  }
  producer.join();
  EXPECT_EQ(last, 500u);
  EXPECT_TRUE(st.ok());
}

TEST(GrpcStatus, MapsBothWaysAndUnknownCodesBecomeInternal) {
  for (auto code : {StatusCode::kCancelled, StatusCode::kInvalidArgument, StatusCode::kDeadlineExceeded,
                    StatusCode::kNotFound, StatusCode::kResourceExhausted, StatusCode::kFailedPrecondition,
                    StatusCode::kInternal, StatusCode::kUnavailable}) {
    Status s(code, "why");
    grpc::Status g = ToGrpc(s);
    EXPECT_EQ(static_cast<int>(g.error_code()), static_cast<int>(code));
    EXPECT_EQ(g.error_message(), "why");
    Status back = FromGrpc(g);
    EXPECT_EQ(back.code(), code);
    EXPECT_EQ(back.message(), "why");
  }
  EXPECT_TRUE(ToGrpc(Status::Ok()).ok());
  EXPECT_TRUE(FromGrpc(grpc::Status::OK).ok());
  // A worker cannot make the coordinator answer, say, UNAUTHENTICATED: codes outside the engine's set
  // become INTERNAL with the message kept.
  Status odd = FromGrpc(grpc::Status(grpc::StatusCode::UNAUTHENTICATED, "odd"));
  EXPECT_EQ(odd.code(), StatusCode::kInternal);
  EXPECT_EQ(odd.message(), "odd");
}

}  // namespace
}  // namespace ditserve::server
