// Flat hash tables for BPE vocabularies: a Llama-3 tokenizer.json has 128k tokens and 280k merges, and
// node-based std::unordered_maps made building them the larger part of the tokenizer's start-up (one
// allocation per entry, a cache miss per probe). Open addressing with linear probing; keys of TokenIdMap
// live in one arena. Not thread-safe for writes; concurrent reads are fine.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

namespace ditserve::text {

// token (UTF-8 string) -> id (>= 0).
class TokenIdMap {
 public:
  void Reserve(size_t entries, size_t key_bytes);
  // Inserts, or overwrites the id of an existing key.
  void Set(std::string_view key, int32_t id) { Set(key, id, Hash(key)); }
  void Set(std::string_view key, int32_t id, uint64_t hash);
  // The id, or -1.
  int32_t Find(std::string_view key) const { return Find(key, Hash(key)); }
  // The same in two steps, so that a batch of lookups can first prefetch its slots.
  static uint64_t Hash(std::string_view key) { return std::hash<std::string_view>{}(key); }
  void Prefetch(uint64_t hash) const;
  int32_t Find(std::string_view key, uint64_t hash) const;
  size_t size() const { return size_; }

 private:
  // Keys of up to kInline bytes (most byte-level tokens) are stored in the slot itself, so that a probe
  // touches one cache line.
  static constexpr size_t kInline = 20;
  struct Slot {
    uint32_t hash = 0;    // low 32 bits of the key's hash, to skip most key compares
    int32_t id = -1;      // -1: empty slot
    uint32_t length = 0;
    union {
      char bytes[kInline];
      uint32_t offset;  // into arena_, for longer keys
    } key{};
  };
  std::string_view KeyOf(const Slot& s) const {
    return s.length <= kInline ? std::string_view(s.key.bytes, s.length)
                               : std::string_view(arena_).substr(s.key.offset, s.length);
  }
  size_t Probe(std::string_view key, uint64_t hash) const;  // slot of key, or the empty slot to fill
  void Grow();

  std::vector<Slot> slots_;  // size: a power of two, at most 70% full
  std::string arena_;
  size_t size_ = 0;
};

// (left id, right id) -> (rank, merged id).
class MergeMap {
 public:
  struct Merge {
    int32_t rank;
    int32_t new_id;
  };
  void Reserve(size_t entries);
  void Set(int32_t left, int32_t right, Merge merge);
  void Prefetch(int32_t left, int32_t right) const;
  // nullptr when the pair does not merge.
  const Merge* Find(int32_t left, int32_t right) const;
  size_t size() const { return size_; }

 private:
  struct Slot {
    uint64_t key = kEmpty;
    Merge merge{};
  };
  static constexpr uint64_t kEmpty = ~uint64_t{0};  // ids are < 2^31, so no real key
  static uint64_t Key(int32_t l, int32_t r) {
    return (static_cast<uint64_t>(static_cast<uint32_t>(l)) << 32) | static_cast<uint32_t>(r);
  }
  size_t Probe(uint64_t key) const;
  void Grow();

  std::vector<Slot> slots_;
  size_t size_ = 0;
};

}  // namespace ditserve::text
