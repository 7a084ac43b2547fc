// The fused pass over a completion. Blocks of 64 bytes are classified with SSE2 into bit masks
// (whitespace, '<', digits, bytes >= 0x80); tags are checked only at '<' bits, box matches tried
// only at digit-run starts after a non-word byte. For the words of str.split(), each block's
// in-word bits are kept and only every 8th word is located (by selecting bits of the word-start
// mask, no branch per word); the 8-gram repeat count then reads the words it needs off the bits.
// Anything the ASCII masks cannot decide exactly falls back to the exact per-character code:
// blocks that may hold non-ASCII whitespace are classified character by character, and a
// non-ASCII byte before the first <rethink> hands the box count to count_official_boxes.
#include "scan.hpp"

#include <cstdint>
#include <cstring>

#include "unicode.hpp"
#include "word_repeats.hpp"

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

namespace grit {
namespace {

constexpr std::size_t npos = static_cast<std::size_t>(-1);

// ASCII \w: [0-9A-Za-z_].
inline bool is_ascii_word_byte(unsigned char c) { return unicode::is_ascii_alnum(c) || c == '_'; }

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
  using words_detail::word_bits_exact;
  using words_detail::WordBits;
  using words_detail::WordBlocks;
  TextScan out;
  out.tags.first.fill(npos);
  out.tags.last.fill(npos);
  const auto* p = reinterpret_cast<const unsigned char*>(s.data());
  const std::size_t n = s.size();
  const std::size_t blocks = (n + 63) / 64;
  WordBlocks words(want_words ? blocks : 0);
  std::size_t pending = 0;     // bytes at the next block's start that finish a character
  bool pending_word = false;   // ... which is not whitespace
  bool boxes_exact = true;     // every block before the first <rethink> so far was ASCII
#if defined(__SSE2__)
  std::uint64_t prev_digit = 0;  // the byte before this block is a digit
  std::size_t resume = 0;   // no box starts inside the last match
  // The last partial block is copied into spaces: they end a word, start none, match nothing.
  alignas(16) unsigned char tail[64];
  for (std::size_t i = 0, b = 0; i < n; i += 64, ++b) {
    const std::size_t avail = n - i;
    const std::size_t width = avail < 64 ? avail : 64;
    const unsigned char* block = p + i;
    if (avail < 64) {
      std::memset(tail, ' ', sizeof tail);
      std::memcpy(tail, p + i, avail);
      block = tail;
    }
    const std::uint64_t high = mask64(block, [](__m128i v) { return v; });
    for (std::uint64_t lt = mask64(block, [](__m128i v) {
           return _mm_cmpeq_epi8(v, _mm_set1_epi8('<'));
         });
         lt != 0; lt &= lt - 1)
      note_tag(s, i + static_cast<std::size_t>(__builtin_ctzll(lt)), out.tags);
    // Box matches start at a digit after a non-word character, before the first <rethink>.
    const std::size_t limit = out.tags.first[2];
    if (boxes_exact && i < limit) {
      if (high != 0) {
        boxes_exact = false;
      } else {
        // Digit runs start where a digit follows a non-digit; \b also needs the byte before
        // (ASCII: every block so far was) to be no letter or '_'.
        const std::uint64_t digits = mask64(block, is_digit16);
        std::uint64_t starts = digits & ~((digits << 1) | prev_digit);
        prev_digit = digits >> 63;
        if (limit - i < 64) starts &= (std::uint64_t{1} << (limit - i)) - 1;
        for (; starts != 0; starts &= starts - 1) {
          const std::size_t at = i + static_cast<std::size_t>(__builtin_ctzll(starts));
          if (at > 0 && is_ascii_word_byte(p[at - 1])) continue;
          std::size_t end = 0;
          if (at >= resume && match_official_box(s, at, end)) {
            ++out.boxes;
            resume = end;
          }
        }
      }
    }
    if (!want_words) continue;
    if (high != 0 && mask64(block, may_start_unicode_space16) != 0) {
      words.add(b, word_bits_exact(s, i, width, pending, pending_word));
      continue;
    }
    // Bytes >= 0x80 here belong to non-space characters, except the continuation bytes of a
    // space that began in the previous block.
    std::uint64_t word = ~mask64(block, [](__m128i v) {
      const __m128i le20 = _mm_cmplt_epi8(v, _mm_set1_epi8(0x21));
      const __m128i not_space = _mm_or_si128(_mm_cmplt_epi8(v, _mm_set1_epi8(0x09)),
                                             in_range(v, 0x0E, 0x1B));
      return _mm_andnot_si128(not_space, le20);  // \x09-\x0D, \x1C-\x20
    });
    if (pending != 0 && !pending_word) word &= ~((std::uint64_t{1} << pending) - 1);
    pending = 0;
    words.add(b, word);
  }
#else
  out.tags = scan_tags(s);
  boxes_exact = false;
  if (want_words)
    for (std::size_t i = 0, b = 0; i < n; i += 64, ++b)
      words.add(b, word_bits_exact(s, i, n - i < 64 ? n - i : 64, pending, pending_word));
#endif
  if (!boxes_exact) out.boxes = count_official_boxes(s.substr(0, out.tags.first[2]));
  if (want_words) {
    out.words = words.words();
    out.word_score = words_detail::word_repeats(WordBits(s.data(), n, words.bits(), blocks),
                                                s.data(), words.every8(), words.words());
  }
  return out;
}

}  // namespace grit
