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
// SSE2 has no 64-bit compare (SSE4.1 does), so ids are screened by their low 32 bits: a superset
// of the equal pairs, and for ids below 2**32 (every vocabulary) exactly them. A hit is then
// checked exactly, one id at a time. Four ids' low halves are packed into one vector, so that
// one compare screens four ids.
inline __m128i low4(const std::int64_t* p) {
  const __m128 a = _mm_castsi128_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
  const __m128 b = _mm_castsi128_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p + 2)));
  return _mm_castps_si128(_mm_shuffle_ps(a, b, _MM_SHUFFLE(2, 0, 2, 0)));  // x86: little-endian
}

// The index of the first `pad` in ids[0, n), or n.
std::size_t first_pad(const std::int64_t* ids, std::size_t n, std::int64_t pad) {
  std::size_t k = 0;
  const __m128i value = _mm_set1_epi32(static_cast<int>(static_cast<std::uint32_t>(pad)));
  for (; k + 16 <= n; k += 16) {
    const __m128i hit =
        _mm_or_si128(_mm_or_si128(_mm_cmpeq_epi32(low4(ids + k), value),
                                  _mm_cmpeq_epi32(low4(ids + k + 4), value)),
                     _mm_or_si128(_mm_cmpeq_epi32(low4(ids + k + 8), value),
                                  _mm_cmpeq_epi32(low4(ids + k + 12), value)));
    if (_mm_movemask_epi8(hit) != 0) break;
  }
  for (; k < n; ++k)
    if (ids[k] == pad) return k;
  return n;
}

// Whether ids[k] == ids[k + 8] for some k < m.
bool any_equal_8_apart(const std::int64_t* ids, std::size_t m) {
  std::size_t k = 0;
  if (m >= 16) {
    __m128i a = low4(ids), b = low4(ids + 4);  // ids[k .. k + 8)
    for (; k + 16 <= m; k += 16) {
      const __m128i c = low4(ids + k + 8), d = low4(ids + k + 12);
      const __m128i e = low4(ids + k + 16), f = low4(ids + k + 20);
      const __m128i hit =
          _mm_or_si128(_mm_or_si128(_mm_cmpeq_epi32(a, c), _mm_cmpeq_epi32(b, d)),
                       _mm_or_si128(_mm_cmpeq_epi32(c, e), _mm_cmpeq_epi32(d, f)));
      if (_mm_movemask_epi8(hit) != 0) break;
      a = e;
      b = f;
    }
  }
  for (; k < m; ++k)
    if (ids[k] == ids[k + kN]) return true;
  return false;
}
#else
std::size_t first_pad(const std::int64_t* ids, std::size_t n, std::int64_t pad) {
  for (std::size_t k = 0; k < n; ++k)
    if (ids[k] == pad) return k;
  return n;
}

bool any_equal_8_apart(const std::int64_t* ids, std::size_t m) {
  for (std::size_t k = 0; k < m; ++k)
    if (ids[k] == ids[k + kN]) return true;
  return false;
}
#endif

}  // namespace

std::optional<double> token_repeat_score(const std::int64_t* ids, std::size_t n, bool has_pad,
                                         std::int64_t pad) {
  const std::size_t len = has_pad ? first_pad(ids, n, pad) : n;
  if (len < 2 * kN) return std::nullopt;
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
