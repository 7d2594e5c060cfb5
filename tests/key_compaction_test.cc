// KeyCompaction (engine/runtime/key_compaction.h), the real keys behind masked attention's fast path on CUDA: rows
// found from prefix and scattered masks, the cache, and masks made under InferenceMode (as the engine runs every
// request): those have no version counter, and reading it threw, which sent every served masked attention (Mochi,
// HunyuanVideo) to SDPA's masked kernel for good.
#include <ATen/ATen.h>
#include <c10/core/InferenceMode.h>
#include <gtest/gtest.h>

#include "engine/runtime/key_compaction.h"

namespace ditserve::runtime {
namespace {

at::Tensor Mask(const std::vector<std::vector<bool>>& rows) {
  at::Tensor m = at::zeros({static_cast<int64_t>(rows.size()), static_cast<int64_t>(rows[0].size())}, at::kBool);
  for (size_t b = 0; b < rows.size(); ++b) {
    for (size_t i = 0; i < rows[b].size(); ++i) m[b][i] = static_cast<bool>(rows[b][i]);
  }
  return m;
}

TEST(KeyCompaction, PrefixRowsAreViewsAndScatteredRowsIndexed) {
  KeyCompaction kc;
  const at::Tensor mask = Mask({{true, true, true, false, false}, {true, false, true, true, false}});
  const std::vector<KeyCompaction::Row> rows = kc.Rows(mask);
  ASSERT_EQ(rows.size(), 2u);
  EXPECT_EQ(rows[0].prefix, 3);
  EXPECT_EQ(rows[1].prefix, -1);
  EXPECT_TRUE(at::equal(rows[1].index, at::tensor(std::vector<int64_t>{0, 2, 3})));

  const at::Tensor k = at::arange(2 * 2 * 5 * 4, at::kFloat).view({2, 2, 5, 4});
  const at::Tensor k0 = KeyCompaction::Select(k, 0, rows[0]);
  EXPECT_EQ(k0.sizes(), (std::vector<int64_t>{1, 2, 3, 4}));
  EXPECT_EQ(k0.data_ptr(), k.data_ptr()) << "a prefix is a view";
  EXPECT_TRUE(at::equal(k0, k.narrow(0, 0, 1).narrow(2, 0, 3)));
  EXPECT_TRUE(at::equal(KeyCompaction::Select(k, 1, rows[1]), k.narrow(0, 1, 1).index_select(2, rows[1].index)));
}

TEST(KeyCompaction, RecomputesWhenTheMaskChangesInPlace) {
  KeyCompaction kc;
  at::Tensor mask = Mask({{true, true, false, false}});
  EXPECT_EQ(kc.Rows(mask)[0].prefix, 2);
  EXPECT_EQ(kc.Rows(mask)[0].prefix, 2);  // cached
  mask[0][2] = true;                       // bumps the version counter
  EXPECT_EQ(kc.Rows(mask)[0].prefix, 3);
  EXPECT_EQ(kc.Rows(Mask({{true, false, false, false}}))[0].prefix, 1);  // another tensor
}

TEST(KeyCompaction, InferenceTensorMasksWork) {
  KeyCompaction kc;
  c10::InferenceMode guard;
  const at::Tensor mask = at::cat({at::ones({2, 6}, at::kBool), at::zeros({2, 3}, at::kBool)}, 1);
  ASSERT_TRUE(mask.is_inference());
  for (int call = 0; call < 2; ++call) {  // the first finds the rows, the second hits the cache
    std::vector<KeyCompaction::Row> rows;
    ASSERT_NO_THROW(rows = kc.Rows(mask));
    ASSERT_EQ(rows.size(), 2u);
    EXPECT_EQ(rows[0].prefix, 6);
    EXPECT_EQ(rows[1].prefix, 6);
  }
}

}  // namespace
}  // namespace ditserve::runtime
