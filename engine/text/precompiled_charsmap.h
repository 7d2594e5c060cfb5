// SentencePiece's precompiled normalisation rules (NormalizerSpec.precompiled_charsmap, e.g. the
// `nmt_nfkc` form T5 ships), applied the way the `tokenizers` Precompiled normaliser applies them.
//
// Blob layout: [u32 little-endian trie size in bytes][darts-clone double-array units][replacement
// strings, each NUL-terminated]. The trie maps a UTF-8 byte sequence to the offset of its replacement.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "ditserve/status.h"

namespace ditserve::text {

class PrecompiledCharsmap {
 public:
  PrecompiledCharsmap() = default;  // empty: Normalize() is the identity
  static StatusOr<PrecompiledCharsmap> Parse(const std::string& blob);

  bool empty() const { return units_.empty(); }

  // tokenizers' Precompiled::normalize: per extended grapheme cluster (ICU), the cluster's replacement
  // when it is shorter than 6 bytes and Lookup() finds one, else each character's replacement (or the
  // character itself when it has none).
  std::string Normalize(std::string_view text) const;

  // The replacement for the *shortest* trie key that is a prefix of `chunk` (spm_precompiled's
  // transform, as tokenizers uses it); false when no key is a prefix.
  bool Lookup(std::string_view chunk, std::string_view* replacement) const;

 private:
  std::vector<uint32_t> units_;
  std::string normalized_;
};

}  // namespace ditserve::text
