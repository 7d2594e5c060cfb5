#include "engine/text/token_id_map.h"

#include <functional>

namespace ditserve::text {
namespace {

// At most 70% full: linear probing stays short, and a 280k-merge table is 8 MB rather than 16.
size_t TableSize(size_t entries) {
  size_t n = 16;
  while (n * 7 < entries * 10) n <<= 1;
  return n;
}

// Fibonacci hashing spreads the (small, dense) ids over the whole table.
uint64_t MixPair(uint64_t key) { return key * 0x9E3779B97F4A7C15ull; }

}  // namespace

void TokenIdMap::Reserve(size_t entries, size_t key_bytes) {
  arena_.reserve(key_bytes);
  if (TableSize(entries) <= slots_.size()) return;
  std::vector<Slot> old;
  old.swap(slots_);
  slots_.resize(TableSize(entries));
  for (const Slot& s : old) {
    // Probe starts at the hash's high half, which the slot does not keep: hash the key again.
    if (s.id >= 0) slots_[Probe(KeyOf(s), Hash(KeyOf(s)))] = s;
  }
}

size_t TokenIdMap::Probe(std::string_view key, uint64_t hash) const {
  const size_t mask = slots_.size() - 1;
  const auto h32 = static_cast<uint32_t>(hash);
  for (size_t i = (hash >> 32) & mask;; i = (i + 1) & mask) {
    const Slot& s = slots_[i];
    if (s.id < 0) return i;
    if (s.hash == h32 && s.length == key.size() && KeyOf(s) == key) return i;
  }
}

void TokenIdMap::Grow() { Reserve(size_ * 2 + 16, arena_.size() * 2); }

void TokenIdMap::Set(std::string_view key, int32_t id, uint64_t hash) {
  if (TableSize(size_ + 1) > slots_.size()) Grow();
  Slot& s = slots_[Probe(key, hash)];
  if (s.id < 0) {
    s.length = static_cast<uint32_t>(key.size());
    s.hash = static_cast<uint32_t>(hash);
    if (key.size() <= kInline) {
      key.copy(s.key.bytes, key.size());
    } else {
      s.key.offset = static_cast<uint32_t>(arena_.size());
      arena_.append(key);
    }
    ++size_;
  }
  s.id = id;
}

void TokenIdMap::Prefetch(uint64_t hash) const {
  if (!slots_.empty()) __builtin_prefetch(&slots_[(hash >> 32) & (slots_.size() - 1)]);
}

int32_t TokenIdMap::Find(std::string_view key, uint64_t hash) const {
  if (slots_.empty()) return -1;
  return slots_[Probe(key, hash)].id;
}

void MergeMap::Reserve(size_t entries) {
  if (TableSize(entries) <= slots_.size()) return;
  std::vector<Slot> old;
  old.swap(slots_);
  slots_.resize(TableSize(entries));
  for (const Slot& s : old) {
    if (s.key != kEmpty) slots_[Probe(s.key)] = s;
  }
}

size_t MergeMap::Probe(uint64_t key) const {
  const size_t mask = slots_.size() - 1;
  for (size_t i = (MixPair(key) >> 32) & mask;; i = (i + 1) & mask) {
    if (slots_[i].key == key || slots_[i].key == kEmpty) return i;
  }
}

void MergeMap::Grow() { Reserve(size_ * 2 + 16); }

void MergeMap::Prefetch(int32_t left, int32_t right) const {
  if (!slots_.empty()) __builtin_prefetch(&slots_[(MixPair(Key(left, right)) >> 32) & (slots_.size() - 1)]);
}

void MergeMap::Set(int32_t left, int32_t right, Merge merge) {
  if (TableSize(size_ + 1) > slots_.size()) Grow();
  const uint64_t key = Key(left, right);
  Slot& s = slots_[Probe(key)];
  if (s.key == kEmpty) {
    s.key = key;
    ++size_;
  }
  s.merge = merge;
}

const MergeMap::Merge* MergeMap::Find(int32_t left, int32_t right) const {
  if (slots_.empty()) return nullptr;
  const Slot& s = slots_[Probe(Key(left, right))];
  return s.key == kEmpty ? nullptr : &s.merge;
}

}  // namespace ditserve::text
