// Token-level repetition. The released loop compares every 8-gram of ids with the one right after
// it; with eq[k] = (ids[k] == ids[k + 8]), the 8-gram at j repeats exactly when eq[j..j+7] all
// hold, so repeats are counted where a run of true eq reaches length 8: one pass, no n-gram built.
#include "repetition.hpp"

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

namespace grit {
namespace {

constexpr std::size_t kN = 8;

#if defined(__SSE2__)
// SSE2 has no 64-bit compare (SSE4.1 does), so 16 ids are screened by their low 32 bits: a
// superset of the equal pairs, and for ids below 2**32 (every vocabulary) exactly them. A hit is
// then checked exactly, one id at a time.
inline __m128i load2(const std::int64_t* p) {
  return _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
}

inline bool low_halves_meet(__m128i acc) { return (_mm_movemask_epi8(acc) & 0x0F0F) != 0; }

// Whether some ids[t] (t < 16) may equal `value` (both lanes of it).
inline bool may_hold16(const std::int64_t* ids, __m128i value) {
  __m128i acc = _mm_setzero_si128();
  for (int t = 0; t < 16; t += 2) acc = _mm_or_si128(acc, _mm_cmpeq_epi32(load2(ids + t), value));
  return low_halves_meet(acc);
}

// Whether some ids[t] (t < 16) may equal ids[t + 8].
inline bool may_repeat16(const std::int64_t* ids) {
  __m128i acc = _mm_setzero_si128();
  for (int t = 0; t < 16; t += 2)
    acc = _mm_or_si128(acc, _mm_cmpeq_epi32(load2(ids + t), load2(ids + t + kN)));
  return low_halves_meet(acc);
}
#endif

// The index of the first `pad` in ids[0, n), or n.
std::size_t first_pad(const std::int64_t* ids, std::size_t n, std::int64_t pad) {
  std::size_t k = 0;
#if defined(__SSE2__)
  const __m128i value = _mm_set1_epi64x(pad);
  while (k + 16 <= n && !may_hold16(ids + k, value)) k += 16;
#endif
  for (; k < n; ++k)
    if (ids[k] == pad) return k;
  return n;
}

// Whether ids[k] == ids[k + 8] for some k < m.
bool any_equal_8_apart(const std::int64_t* ids, std::size_t m) {
  std::size_t k = 0;
#if defined(__SSE2__)
  while (k + 16 <= m && !may_repeat16(ids + k)) k += 16;
#endif
  for (; k < m; ++k)
    if (ids[k] == ids[k + kN]) return true;
  return false;
}

}  // namespace

double token_repeat_score(const std::int64_t* ids, std::size_t n, bool has_pad, std::int64_t pad) {
  const std::size_t len = has_pad ? first_pad(ids, n, pad) : n;
  if (len < 2 * kN) return 1.0;
  // Released: for j in range(len - 15) compare ids[j:j+8] with ids[j+8:j+16].
  const std::size_t comparisons = len - 2 * kN + 1;
  if (!any_equal_8_apart(ids, len - kN)) return 1.0;
  std::size_t run = 0, repeats = 0;
  for (std::size_t k = 0; k + kN < len; ++k) {
    run = ids[k] == ids[k + kN] ? run + 1 : 0;
    repeats += run >= kN;
  }
  return 1.0 - static_cast<double>(repeats) / static_cast<double>(comparisons);
}

}  // namespace grit
