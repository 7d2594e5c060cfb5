#include "engine/text/bpe_model.h"

#include <array>
#include <cstdio>
#include <queue>

#include "engine/text/utf8.h"

namespace ditserve::text {
namespace {

// tokenizers' BPE cache holds 10000 words; results do not depend on the cache.
constexpr size_t kMaxCacheEntries = 10000;

// Pre-tokens longer than this are not cached (a single huge "word" would pin its ids in memory).
constexpr size_t kMaxCachedWordBytes = 256;

}  // namespace

StatusOr<std::unique_ptr<BpeModel>> BpeModel::Build(BpeModelSpec spec) {
  std::unique_ptr<BpeModel> m(new BpeModel());
  // Insertions into a table of megabytes miss the cache: hash and prefetch kAhead tokens ahead.
  constexpr size_t kAhead = 16;
  m->vocab_.Reserve(spec.vocab.size(), spec.vocab_text.size());
  {
    const std::string_view text = spec.vocab_text;
    std::array<uint64_t, kAhead> hashes{};
    const size_t n = spec.vocab.size();
    for (size_t i = 0; i < n + kAhead; ++i) {
      if (i >= kAhead) {
        const BpeModelSpec::TokenRef& t = spec.vocab[i - kAhead];
        m->vocab_.Set(text.substr(t.offset, t.length), t.id, hashes[(i - kAhead) % kAhead]);
      }
      if (i < n) {
        const BpeModelSpec::TokenRef& t = spec.vocab[i];
        hashes[i % kAhead] = TokenIdMap::Hash(text.substr(t.offset, t.length));
        m->vocab_.Prefetch(hashes[i % kAhead]);
      }
    }
  }
  m->ignore_merges_ = spec.ignore_merges;
  m->byte_fallback_ = spec.byte_fallback;
  m->fuse_unk_ = spec.fuse_unk;
  if (spec.unk_token) {
    // tokenizers only fails when the unk token is needed; we cannot defer the error, so refuse early.
    const int32_t id = m->vocab_.Find(*spec.unk_token);
    if (id < 0) return InvalidArgument("model.unk_token \"" + *spec.unk_token + "\" is not in model.vocab");
    m->unk_id_ = id;
  }
  m->merges_.Reserve(spec.merges.size());
  // Three vocabulary lookups and one insertion per merge: a three-stage pipeline (hash + prefetch the
  // vocabulary slots; look up + prefetch the merge slot; insert) keeps kAhead merges in each stage.
  const std::string_view text = spec.merge_text;
  const size_t n = spec.merges.size();
  auto parts = [&](size_t i) {
    const BpeModelSpec::MergeRef& r = spec.merges[i];
    return std::array<std::string_view, 3>{text.substr(r.offset, r.left), text.substr(r.offset + r.left, r.right),
                                           text.substr(r.offset, r.left + r.right)};
  };
  std::array<std::array<uint64_t, 3>, kAhead> hashes{};
  std::array<std::array<int32_t, 3>, kAhead> ids{};
  for (size_t i = 0; i < n + 2 * kAhead; ++i) {
    if (i >= 2 * kAhead) {  // insert merge i - 2 kAhead
      const size_t rank = i - 2 * kAhead;
      const auto& [ia, ib, inew] = ids[rank % kAhead];
      // A repeated pair keeps its last rank, like tokenizers' HashMap collect.
      m->merges_.Set(ia, ib, MergeMap::Merge{static_cast<int32_t>(rank), inew});
    }
    if (i >= kAhead && i < n + kAhead) {  // resolve merge i - kAhead
      const size_t rank = i - kAhead;
      const auto p = parts(rank);
      const auto& h = hashes[rank % kAhead];
      auto& id = ids[rank % kAhead];
      for (size_t k = 0; k < 3; ++k) {
        id[k] = m->vocab_.Find(p[k], h[k]);
        if (id[k] < 0) {
          return InvalidArgument("model.merges[" + std::to_string(rank) + "] (\"" + std::string(p[0]) + "\", \"" +
                                 std::string(p[1]) + "\"): \"" + std::string(p[k]) + "\" is not in model.vocab");
        }
      }
      m->merges_.Prefetch(id[0], id[1]);
    }
    if (i < n) {  // hash merge i
      const auto p = parts(i);
      auto& h = hashes[i % kAhead];
      for (size_t k = 0; k < 3; ++k) {
        h[k] = TokenIdMap::Hash(p[k]);
        m->vocab_.Prefetch(h[k]);
      }
    }
  }
  return m;
}

std::optional<int32_t> BpeModel::TokenToId(std::string_view token) const {
  const int32_t id = vocab_.Find(token);
  if (id < 0) return std::nullopt;
  return id;
}

std::vector<int32_t> BpeModel::MergeWord(std::string_view word) const {
  struct Symbol {
    int32_t id;
    int32_t prev, next;  // -1: none
    bool removed;
  };
  std::vector<Symbol> symbols;
  symbols.reserve(word.size());
  auto add = [&](int32_t id) {
    const auto n = static_cast<int32_t>(symbols.size());
    if (n > 0) symbols.back().next = n;
    symbols.push_back(Symbol{id, n - 1, -1, false});
  };

  // Initial symbols: one per character (tokenizers' merge_word).
  std::optional<int32_t> pending_unk;
  char key[8];
  for (size_t i = 0; i < word.size();) {
    const size_t len = utf8::StepLen(word, i);
    const std::string_view ch = word.substr(i, len);
    i += len;
    if (const int32_t id = vocab_.Find(ch); id >= 0) {
      if (pending_unk) add(*std::exchange(pending_unk, std::nullopt));
      add(id);
      continue;
    }
    if (byte_fallback_) {
      std::vector<int32_t> bytes;
      for (unsigned char b : ch) {
        std::snprintf(key, sizeof(key), "<0x%02X>", b);
        const int32_t id = vocab_.Find(key);
        if (id < 0) break;
        bytes.push_back(id);
      }
      if (bytes.size() == ch.size()) {
        // tokenizers adds these without flushing a pending (fused) unk first.
        for (int32_t id : bytes) add(id);
        continue;
      }
    }
    if (unk_id_) {
      if (pending_unk && !fuse_unk_) add(*pending_unk);
      pending_unk = *unk_id_;
    }
  }
  if (pending_unk) add(*pending_unk);

  // Word::merge_all: a min-heap on (rank, position); stale entries are skipped when popped.
  struct Candidate {
    int32_t rank, pos, new_id;
    bool operator>(const Candidate& o) const { return rank != o.rank ? rank > o.rank : pos > o.pos; }
  };
  std::priority_queue<Candidate, std::vector<Candidate>, std::greater<Candidate>> queue;
  auto push_pair = [&](int32_t pos) {
    const Symbol& s = symbols[static_cast<size_t>(pos)];
    if (s.next < 0) return;
    const MergeMap::Merge* m = merges_.Find(s.id, symbols[static_cast<size_t>(s.next)].id);
    if (m != nullptr) queue.push(Candidate{m->rank, pos, m->new_id});
  };
  for (int32_t i = 0; i + 1 < static_cast<int32_t>(symbols.size()); ++i) push_pair(i);
  while (!queue.empty()) {
    const Candidate top = queue.top();
    queue.pop();
    Symbol& cur = symbols[static_cast<size_t>(top.pos)];
    if (cur.removed || cur.next < 0) continue;
    const Symbol right = symbols[static_cast<size_t>(cur.next)];
    const MergeMap::Merge* m = merges_.Find(cur.id, right.id);
    if (m == nullptr || m->new_id != top.new_id) continue;  // stale
    cur.id = top.new_id;
    symbols[static_cast<size_t>(cur.next)].removed = true;
    cur.next = right.next;
    if (right.next >= 0) symbols[static_cast<size_t>(right.next)].prev = top.pos;
    if (cur.prev >= 0) push_pair(cur.prev);
    push_pair(top.pos);
  }

  std::vector<int32_t> ids;
  ids.reserve(symbols.size());
  for (const Symbol& s : symbols) {
    if (!s.removed) ids.push_back(s.id);
  }
  return ids;
}

void BpeModel::Tokenize(std::string_view word, std::vector<int64_t>* out) const {
  if (word.empty()) return;
  if (ignore_merges_) {
    if (const int32_t id = vocab_.Find(word); id >= 0) {
      out->push_back(id);
      return;
    }
  }
  const bool cacheable = word.size() <= kMaxCachedWordBytes;
  if (cacheable) {
    std::lock_guard<std::mutex> lock(cache_mu_);
    if (const auto it = cache_.find(word); it != cache_.end()) {
      out->insert(out->end(), it->second.begin(), it->second.end());
      return;
    }
  }
  std::vector<int32_t> ids = MergeWord(word);
  out->insert(out->end(), ids.begin(), ids.end());
  if (cacheable) {
    std::lock_guard<std::mutex> lock(cache_mu_);
    if (cache_.size() >= kMaxCacheEntries) cache_.clear();
    cache_.emplace(std::string(word), std::move(ids));
  }
}

}  // namespace ditserve::text
