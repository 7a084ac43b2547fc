// Software prefetch for the batch loops: rows of a batch lie apart in memory (str objects, rows of
// a padded (N, T) id array a page or more apart), where hardware prefetchers stop, so each sample
// would otherwise start with cache misses. Hints only: they never change a result.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>

namespace grit {

// Where a prefetch puts the data: kL1 for what is needed next, kL2 for what is needed after that
// (filling L1 that early only evicts the data in use).
enum class Cache { kL1, kL2 };

inline void prefetch_bytes(const void* data, std::size_t bytes, Cache to = Cache::kL1) {
#if defined(__GNUC__)
  const char* p = static_cast<const char*>(data);
  if (to == Cache::kL1) {
    for (std::size_t b = 0; b < bytes; b += 64) __builtin_prefetch(p + b);
  } else {
    for (std::size_t b = 0; b < bytes; b += 64) __builtin_prefetch(p + b, 0, 2);
  }
#else
  (void)data, (void)bytes, (void)to;
#endif
}

// The first 4 KiB of a text (hardware prefetchers carry on from there).
inline void prefetch_text(std::string_view text, Cache to = Cache::kL1) {
  prefetch_bytes(text.data(), text.size() < 4096 ? text.size() : 4096, to);
}

// The ids of a completion up to where its pad most likely starts: a token stands for 3-4 bytes of
// text, so a row of n ids holds about text_bytes / 3 before its padding.
inline void prefetch_ids(const std::int64_t* ids, std::size_t n, std::size_t text_bytes,
                         Cache to = Cache::kL1) {
  const std::size_t expected = text_bytes / 3 + 8;
  prefetch_bytes(ids, (expected < n ? expected : n) * sizeof(std::int64_t), to);
}

}  // namespace grit
