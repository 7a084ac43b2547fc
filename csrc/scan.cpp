// The fused pass over a completion. Blocks of 64 bytes are classified with SSE2 into bit masks
// (whitespace, '<', digits, word characters, bytes >= 0x80); tags are checked only at '<' bits,
// box matches tried only at digit-run starts, words read off where the whitespace bits change.
// Anything the ASCII masks cannot decide exactly falls back to the exact per-character code:
// blocks that may hold non-ASCII whitespace are split character by character, and a non-ASCII
// byte before the first <rethink> hands the box count to count_official_boxes.
#include "scan.hpp"

#include <cstdint>
#include <cstring>

#include "unicode.hpp"

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

namespace grit {
namespace {

constexpr std::size_t kN = 8;
constexpr std::size_t npos = static_cast<std::size_t>(-1);

// The released loop compares every word 8-gram with the one right after it. With
// eq[k] = (words[k] == words[k + 8]), the 8-gram at j repeats exactly when eq[j..j+7] all hold,
// so repeats are counted where a run of true eq reaches length 8. Such a run covers a multiple of
// 8, so eq is first evaluated only at checkpoints c = 0, 8, 16, ...: when eq[c - 8] and eq[c] are
// both false, no run of 8 ends in (c - 8, c] and the 7 positions between are skipped; otherwise
// they are evaluated in order. Text that does not loop costs one word comparison per 8 words;
// the count is exact. Words are kept in a ring of the last 16.
class WordRepeats {
 public:
  explicit WordRepeats(const char* end) : end_(end) {}

  void push(const char* p, std::size_t len) {
    const std::size_t w = count_++;
    ptr_[w & kMask] = p;
    len_[w & kMask] = len;
    if (w >= kN && (w & (kN - 1)) == 0) checkpoint(w - kN);
  }

  // Released: for j in range(len(words) - 8), so len(words) - 8 comparisons (the last 7 against
  // a short tail, never equal); 1.0 when there are none.
  double score() {
    if (count_ <= kN) return 1.0;
    // Positions after the last checkpoint, up to len(words) - 9.
    const std::size_t done = (count_ - 1 - kN) & ~(kN - 1);  // the last checkpoint evaluated
    for (std::size_t k = done + 1; k + kN < count_; ++k) step(k);
    return 1.0 - static_cast<double>(repeats_) / static_cast<double>(count_ - kN);
  }

 private:
  static constexpr std::size_t kRing = 2 * kN, kMask = kRing - 1;

  // Positions (c - 8, c]; words up to c + 8 have arrived.
  void checkpoint(std::size_t c) {
    if (run_ == 0 && !equal(c)) return;  // run_ == 0: eq[c - 8] was false (or c == 0)
    for (std::size_t k = c < kN ? 0 : c - kN + 1; k <= c; ++k) step(k);
  }

  void step(std::size_t k) {
    run_ = equal(k) ? run_ + 1 : 0;
    repeats_ += run_ >= kN;
  }

  bool equal(std::size_t k) const {
    const std::size_t a = k & kMask, b = (k + kN) & kMask;
    const std::size_t len = len_[a];
    if (len != len_[b]) return false;
    if (len > 8) return std::memcmp(ptr_[a], ptr_[b], len) == 0;
    return head(ptr_[a], len) == head(ptr_[b], len);
  }

  // The word's bytes (len <= 8) as one integer: one load where 8 bytes are readable.
  std::uint64_t head(const char* p, std::size_t len) const {
    std::uint64_t h = 0;
    if (p + 8 <= end_) {
      std::memcpy(&h, p, 8);
      return h & kKeep[len];
    }
    std::memcpy(&h, p, len);
    return h;
  }

  // kKeep[k]: the bits of a word's first k bytes in an 8-byte load.
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
  static constexpr std::uint64_t kKeep[9] = {0, 0xFFull << 56, 0xFFFFull << 48, 0xFFFFFFull << 40,
                                             0xFFFFFFFFull << 32, 0xFFFFFFFFFFull << 24,
                                             0xFFFFFFFFFFFFull << 16, 0xFFFFFFFFFFFFFFull << 8,
                                             ~0ull};
#else
  static constexpr std::uint64_t kKeep[9] = {0,          0xFF,           0xFFFF,
                                             0xFFFFFF,   0xFFFFFFFF,     0xFFFFFFFFFF,
                                             0xFFFFFFFFFFFF, 0xFFFFFFFFFFFFFF, ~0ull};
#endif
  const char* end_;
  // Word w at slot w % 16; a slot is read only once written.
  const char* ptr_[kRing];
  std::size_t len_[kRing];
  std::size_t count_ = 0, run_ = 0, repeats_ = 0;
};

#if defined(__SSE2__)
// Bit k set where pred(p[k]) holds, k < 64; pred maps 16 bytes to 0xFF/0x00 lanes.
template <class Pred>
std::uint64_t mask64(const unsigned char* p, Pred pred) {
  std::uint64_t out = 0;
  for (int k = 0; k < 4; ++k) {
    const __m128i b = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p + 16 * k));
    out |= static_cast<std::uint64_t>(static_cast<unsigned>(_mm_movemask_epi8(pred(b))))
           << (16 * k);
  }
  return out;
}

// Signed byte compares: bytes >= 0x80 are negative, so they fall in none of the ASCII ranges.
__m128i in_range(__m128i b, char lo, char hi) {
  return _mm_and_si128(_mm_cmpgt_epi8(b, _mm_set1_epi8(static_cast<char>(lo - 1))),
                       _mm_cmplt_epi8(b, _mm_set1_epi8(static_cast<char>(hi + 1))));
}

__m128i is_digit16(__m128i b) { return in_range(b, '0', '9'); }

// ASCII \w: [0-9A-Za-z_].
__m128i is_word16(__m128i b) {
  const __m128i alpha = in_range(_mm_or_si128(b, _mm_set1_epi8(0x20)), 'a', 'z');
  return _mm_or_si128(_mm_or_si128(is_digit16(b), alpha), _mm_cmpeq_epi8(b, _mm_set1_epi8('_')));
}

// Every non-ASCII whitespace code point (U+0085, U+00A0, U+1680, U+2000..U+200A, U+2028, U+2029,
// U+202F, U+205F, U+3000) starts with byte C2, E1, E2 or E3. Blocks without these bytes split on
// ASCII whitespace alone: their other bytes >= 0x80 belong to non-space characters.
__m128i may_start_unicode_space16(__m128i b) {
  // b - 0x61 as a signed byte is below -125 exactly for b in E1..E3 (unsigned b - E1 < 3).
  const __m128i e1_e3 = _mm_cmplt_epi8(_mm_sub_epi8(b, _mm_set1_epi8(0x61)), _mm_set1_epi8(-125));
  return _mm_or_si128(e1_e3, _mm_cmpeq_epi8(b, _mm_set1_epi8(static_cast<char>(0xC2))));
}
#endif

}  // namespace

TextScan scan_text(std::string_view s, bool want_words) {
  TextScan out;
  out.tags.first.fill(npos);
  out.tags.last.fill(npos);
  const auto* p = reinterpret_cast<const unsigned char*>(s.data());
  const std::size_t n = s.size();
  WordRepeats words(s.data() + n);
  std::size_t i = 0, start = npos;  // start: where the open word began
  // One character of str.split(): exact Unicode whitespace.
  const auto step = [&](std::size_t& k) {
    const std::size_t at = k;
    bool space;
    if (p[k] < 0x80) {
      space = unicode::is_space(p[k]);
      ++k;
    } else {
      space = unicode::is_space(unicode::decode(s, k));
    }
    if (space) {
      if (start != npos) words.push(s.data() + start, at - start);
      start = npos;
    } else if (start == npos) {
      start = at;
    }
  };
  bool boxes_exact = true;  // every block before the first <rethink> so far was ASCII
#if defined(__SSE2__)
  bool prev_word = false;   // the byte before this block is \w
  std::size_t resume = 0;   // no box starts inside the last match
  // The last partial block is copied into spaces: they end a word, start none, match nothing.
  alignas(16) unsigned char tail[64];
  while (i < n) {
    const std::size_t avail = n - i;
    const std::size_t width = avail < 64 ? avail : 64;
    const unsigned char* block = p + i;
    if (avail < 64) {
      std::memset(tail, ' ', sizeof tail);
      std::memcpy(tail, p + i, avail);
      block = tail;
    }
    const std::uint64_t high = mask64(block, [](__m128i b) { return b; });
    for (std::uint64_t lt = mask64(block, [](__m128i b) {
           return _mm_cmpeq_epi8(b, _mm_set1_epi8('<'));
         });
         lt != 0; lt &= lt - 1)
      note_tag(s, i + static_cast<std::size_t>(__builtin_ctzll(lt)), out.tags);
    // Box matches start at a digit after a non-word character, before the first <rethink>.
    const std::size_t limit = out.tags.first[2];
    if (boxes_exact && i < limit) {
      if (high != 0) {
        boxes_exact = false;
      } else {
        const std::uint64_t word = mask64(block, is_word16);
        std::uint64_t starts = mask64(block, is_digit16) & ~((word << 1) | prev_word);
        prev_word = word >> 63;
        if (limit - i < 64) starts &= (std::uint64_t{1} << (limit - i)) - 1;
        for (; starts != 0; starts &= starts - 1) {
          const std::size_t at = i + static_cast<std::size_t>(__builtin_ctzll(starts));
          std::size_t end = 0;
          if (at >= resume && match_official_box(s, at, end)) {
            ++out.boxes;
            resume = end;
          }
        }
      }
    }
    if (!want_words) {
      i += width;
      continue;
    }
    if (high != 0 && mask64(block, may_start_unicode_space16) != 0) {
      const std::size_t end = i + width;
      while (i < end) step(i);  // may stop up to 3 bytes past `end`, inside no '<'
      continue;
    }
    // Word starts and ends; they alternate, so the k-th end closes the k-th word.
    const std::uint64_t word = ~mask64(block, [](__m128i b) {
      const __m128i le20 = _mm_cmplt_epi8(b, _mm_set1_epi8(0x21));
      const __m128i not_space = _mm_or_si128(_mm_cmplt_epi8(b, _mm_set1_epi8(0x09)),
                                             in_range(b, 0x0E, 0x1B));
      return _mm_andnot_si128(not_space, le20);  // \x09-\x0D, \x1C-\x20
    });
    const std::uint64_t before = (word << 1) | (start != npos ? 1u : 0u);
    std::uint64_t starts = word & ~before, ends = ~word & before;
    if (start != npos && ends != 0) {
      words.push(s.data() + start, i + static_cast<std::size_t>(__builtin_ctzll(ends)) - start);
      ends &= ends - 1;
      start = npos;
    }
    while (ends != 0) {
      const auto b = static_cast<std::size_t>(__builtin_ctzll(starts));
      const auto e = static_cast<std::size_t>(__builtin_ctzll(ends));
      starts &= starts - 1;
      ends &= ends - 1;
      words.push(s.data() + i + b, e - b);
    }
    if (starts != 0) start = i + static_cast<std::size_t>(__builtin_ctzll(starts));
    i += width;
  }
#else
  out.tags = scan_tags(s);
  boxes_exact = false;
  if (want_words) {
    while (i < n) step(i);
  }
#endif
  if (start != npos) words.push(s.data() + start, n - start);
  if (!boxes_exact) out.boxes = count_official_boxes(s.substr(0, out.tags.first[2]));
  if (want_words) out.word_score = words.score();
  return out;
}

double word_repeat_score(std::string_view text) { return scan_text(text, true).word_score; }

}  // namespace grit
