// UTF-8 decoding and the character classes of Python's re (\d, \s, \w) for the trace and reward code.
// Texts arrive as UTF-8 encoded with "surrogatepass", so lone surrogates decode to U+D800..U+DFFF
// like any other code point; any other malformed byte decodes to kInvalid (in no class) and the
// decoder moves one byte on, so no input can make it read out of bounds.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>

#include "unicode_tables.hpp"

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

namespace grit::unicode {

inline constexpr std::uint32_t kInvalid = 0xFFFFFFFFu;
inline constexpr std::uint32_t kNone = 0xFFFFFFFEu;  // "no character" (before the start)

template <std::size_t N>
inline const CodePointRange* find_range(const CodePointRange (&table)[N], std::uint32_t cp) {
  std::size_t lo = 0, hi = N;
  while (lo < hi) {
    const std::size_t mid = (lo + hi) / 2;
    if (table[mid].last < cp) {
      lo = mid + 1;
    } else if (table[mid].first > cp) {
      hi = mid;
    } else {
      return &table[mid];
    }
  }
  return nullptr;
}

inline bool is_ascii_digit(unsigned char c) { return c >= '0' && c <= '9'; }
inline bool is_ascii_alnum(unsigned char c) {
  return is_ascii_digit(c) || ((c | 0x20) >= 'a' && (c | 0x20) <= 'z');
}

// Python's \d (str.isdecimal): Unicode category Nd.
inline bool is_decimal(std::uint32_t cp) {
  if (cp < 0x80) return cp >= '0' && cp <= '9';
  return cp < 0x110000 && find_range(kDecimal, cp) != nullptr;
}

// The digit value of a decimal code point (every Nd run is ten consecutive code points 0..9).
inline int decimal_value(std::uint32_t cp) {
  if (cp < 0x80) return static_cast<int>(cp - '0');
  const CodePointRange* r = find_range(kDecimal, cp);
  return static_cast<int>((cp - r->first) % 10);
}

// Python's \s, str.isspace, str.split() and str.strip() whitespace.
inline bool is_space(std::uint32_t cp) {
  if (cp < 0x80) return (cp >= 0x09 && cp <= 0x0D) || (cp >= 0x1C && cp <= 0x20);
  return cp < 0x110000 && find_range(kSpace, cp) != nullptr;
}

// Python's \w (str.isalnum() or '_'), which also decides \b.
inline bool is_word(std::uint32_t cp) {
  if (cp < 0x80) return is_ascii_alnum(static_cast<unsigned char>(cp)) || cp == '_';
  return cp < 0x110000 && find_range(kWord, cp) != nullptr;
}

// Decodes the code point starting at s[i] and moves i past it.
inline std::uint32_t decode(std::string_view s, std::size_t& i) {
  const auto* p = reinterpret_cast<const unsigned char*>(s.data());
  const std::size_t n = s.size();
  const unsigned char c = p[i];
  if (c < 0x80) {
    ++i;
    return c;
  }
  int len;
  std::uint32_t cp;
  if (c >= 0xC2 && c <= 0xDF) {
    len = 2;
    cp = c & 0x1F;
  } else if (c >= 0xE0 && c <= 0xEF) {
    len = 3;
    cp = c & 0x0F;
  } else if (c >= 0xF0 && c <= 0xF4) {
    len = 4;
    cp = c & 0x07;
  } else {
    ++i;
    return kInvalid;
  }
  if (i + static_cast<std::size_t>(len) > n) {
    ++i;
    return kInvalid;
  }
  for (int k = 1; k < len; ++k) {
    const unsigned char cc = p[i + static_cast<std::size_t>(k)];
    if ((cc & 0xC0) != 0x80) {
      ++i;
      return kInvalid;
    }
    cp = (cp << 6) | (cc & 0x3F);
  }
  if ((len == 3 && cp < 0x800) || (len == 4 && (cp < 0x10000 || cp > 0x10FFFF))) {
    ++i;
    return kInvalid;
  }
  i += static_cast<std::size_t>(len);
  return cp;
}

// The code point that ends at byte i (kNone at the start).
inline std::uint32_t decode_before(std::string_view s, std::size_t i) {
  if (i == 0) return kNone;
  const auto* p = reinterpret_cast<const unsigned char*>(s.data());
  std::size_t start = i - 1;
  for (int k = 0; k < 3 && start > 0 && (p[start] & 0xC0) == 0x80; ++k) --start;
  std::size_t j = start;
  const std::uint32_t cp = decode(s, j);
  return j == i ? cp : kInvalid;
}

#if defined(__SSE2__)
// Bit k set where byte p[k] (k < 16) is >= 0x80, and where it is ASCII whitespace (\s).
inline void classify16(const unsigned char* p, unsigned& high, unsigned& space) {
  const __m128i b = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
  high = static_cast<unsigned>(_mm_movemask_epi8(b));
  // Signed compares: bytes >= 0x80 are negative, but callers only use `space` when high == 0.
  const __m128i le20 = _mm_cmplt_epi8(b, _mm_set1_epi8(0x21));
  const __m128i lt09 = _mm_cmplt_epi8(b, _mm_set1_epi8(0x09));
  const __m128i mid = _mm_and_si128(_mm_cmpgt_epi8(b, _mm_set1_epi8(0x0D)),
                                    _mm_cmplt_epi8(b, _mm_set1_epi8(0x1C)));
  space = static_cast<unsigned>(_mm_movemask_epi8(_mm_andnot_si128(_mm_or_si128(lt09, mid), le20)));
}

// Bit k set where byte p[k] (k < 16) is an ASCII digit or >= 0x80.
inline unsigned digit_or_high16(const unsigned char* p) {
  const __m128i b = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
  const __m128i digit = _mm_and_si128(_mm_cmpgt_epi8(b, _mm_set1_epi8('0' - 1)),
                                      _mm_cmplt_epi8(b, _mm_set1_epi8('9' + 1)));
  return static_cast<unsigned>(_mm_movemask_epi8(_mm_or_si128(digit, b)));
}
#endif

// The first i' >= i holding an ASCII digit or a byte >= 0x80 (n if none).
inline std::size_t next_digit_or_high(const unsigned char* p, std::size_t i, std::size_t n) {
#if defined(__SSE2__)
  for (; i + 16 <= n; i += 16) {
    const unsigned m = digit_or_high16(p + i);
    if (m != 0) return i + static_cast<std::size_t>(__builtin_ctz(m));
  }
#endif
  while (i < n && p[i] < 0x80 && !(p[i] >= '0' && p[i] <= '9')) ++i;
  return i;
}

// Converts byte offsets into Python character offsets, cheaply for nearby successive queries.
class CharIndex {
 public:
  explicit CharIndex(std::string_view s) : s_(s) {}
  std::int64_t operator()(std::size_t byte) {
    const auto* p = reinterpret_cast<const unsigned char*>(s_.data());
    if (byte < byte_) {
      byte_ = 0;
      chars_ = 0;
    }
    for (; byte_ < byte; ++byte_) chars_ += (p[byte_] & 0xC0) != 0x80;
    return chars_;
  }

 private:
  std::string_view s_;
  std::size_t byte_ = 0;
  std::int64_t chars_ = 0;
};

}  // namespace grit::unicode
