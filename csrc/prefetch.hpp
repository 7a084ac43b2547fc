// Software prefetch for the batch loops: rows of a batch lie apart in memory (str objects, rows of
// a padded (N, T) id array a page or more apart), where hardware prefetchers stop, so each sample
// would otherwise start with cache misses. Hints only: they never change a result.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>

namespace grit {

inline void prefetch_bytes(const void* data, std::size_t bytes) {
#if defined(__GNUC__)
  const char* p = static_cast<const char*>(data);
  for (std::size_t b = 0; b < bytes; b += 64) __builtin_prefetch(p + b);
#else
  (void)data, (void)bytes;
#endif
}

// The first 4 KiB of a text (hardware prefetchers carry on from there).
inline void prefetch_text(std::string_view text) {
  prefetch_bytes(text.data(), text.size() < 4096 ? text.size() : 4096);
}

// The ids of a completion up to where its pad most likely starts: a token stands for 3-4 bytes of
// text, so a row of n ids holds about text_bytes / 3 before its padding.
inline void prefetch_ids(const std::int64_t* ids, std::size_t n, std::size_t text_bytes) {
  const std::size_t expected = text_bytes / 3 + 8;
  prefetch_bytes(ids, (expected < n ? expected : n) * sizeof(std::int64_t));
}

}  // namespace grit
