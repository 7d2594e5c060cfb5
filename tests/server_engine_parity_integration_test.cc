// The same request through the gRPC server and through a direct Engine call gives the same PNG bytes.
#include <gtest/gtest.h>

#include "ditserve/engine.h"
#include "support/recording_job_control.h"
#include "support/server_process.h"
#include "support/test_env.h"

namespace ditserve {
namespace {

TEST(ServerEngineParity, GrpcResultEqualsDirectEngineCall) {
  testing::ServerOptions opts;
  opts.groups = 1;
  testing::ServerProcess server(opts);
  std::string err;
  ASSERT_TRUE(server.WaitReady(180, &err)) << err;

  v1::GenerateRequest req;
  req.set_model("flux-tiny-dev");
  req.set_prompt("a watercolor map of an island");
  req.set_negative_prompt("blurry");
  req.set_true_cfg_scale(2.0f);
  req.set_width(96);
  req.set_height(64);
  req.set_num_inference_steps(3);
  req.set_guidance_scale(4.0f);
  req.set_seed(1234);
  auto stub = server.NewStub();
  grpc::ClientContext ctx;
  auto reader = stub->Generate(&ctx, req);
  v1::GenerateEvent ev;
  std::string grpc_png;
  while (reader->Read(&ev)) {
    ASSERT_FALSE(ev.has_result_chunk()) << "small images arrive in one Result";
    if (ev.has_result()) {
      grpc_png = ev.result().data();
      ASSERT_EQ(ev.result().data_size(), grpc_png.size());
    }
  }
  auto st = reader->Finish();
  ASSERT_TRUE(st.ok()) << st.error_message();
  ASSERT_FALSE(grpc_png.empty());

  EngineOptions eo;
  eo.model_dir = testing::TestModelsDir() + "/flux-tiny-dev";
  eo.intra_op_threads = 1;
  auto engine = Engine::Create(eo);
  ASSERT_TRUE(engine.ok()) << engine.status().ToString();
  GenerateParams p;
  p.prompt = req.prompt();
  p.negative_prompt = req.negative_prompt();
  p.true_cfg_scale = req.true_cfg_scale();
  p.width = req.width();
  p.height = req.height();
  p.steps = req.num_inference_steps();
  p.guidance_scale = req.guidance_scale();
  p.seed = req.seed();
  testing::RecordingJobControl control;
  auto out = (*engine)->Generate(p, control);
  ASSERT_TRUE(out.ok()) << out.status().ToString();
  EXPECT_EQ(std::string(out->data.begin(), out->data.end()), grpc_png);
}

}  // namespace
}  // namespace ditserve
