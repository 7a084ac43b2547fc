// The word-level 8-gram repeat count of the official repetition reward, read off per-block bit
// masks of a text's non-whitespace bytes (filled by scan_text's block pass, scan.cpp). Internal to
// scan.cpp; header-only so that the per-block work inlines into that pass.
// Plain C++17; the count equals the reference's loop over str.split() words.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string_view>
#include <vector>

#include "unicode.hpp"

// Internal linkage (this header belongs to scan.cpp alone) leaves the compiler free to inline
// and specialise everything into the block pass.
namespace grit::words_detail {
namespace {

inline constexpr std::size_t kN = 8;
inline constexpr std::size_t npos = static_cast<std::size_t>(-1);

// Words of str.split() read off an in-word bit mask: bit k of bits[k / 64] is set where byte k
// belongs to a non-whitespace character. A word starts at a set bit after a clear one (or at 0)
// and ends at the next clear bit (or at the end of the text); bits past the text are clear.
class WordBits {
 public:
  WordBits(const char* text, std::size_t n, const std::uint64_t* bits, std::size_t blocks)
      : text_(text), n_(n), bits_(bits), blocks_(blocks) {}

  // The start of the first word at or after `pos`; one must exist.
  std::size_t next_start(std::size_t pos) const {
    std::size_t b = pos >> 6;
    std::uint64_t x = bits_[b] & (~std::uint64_t{0} << (pos & 63));
    while (x == 0) x = bits_[++b];
    return (b << 6) + static_cast<std::size_t>(__builtin_ctzll(x));
  }

  // Where the word that holds byte `pos` ends.
  std::size_t end_of(std::size_t pos) const {
    std::size_t b = pos >> 6;
    std::uint64_t x = ~bits_[b] & (~std::uint64_t{0} << (pos & 63));
    while (x == 0) {
      if (++b == blocks_) return n_;
      x = ~bits_[b];
    }
    return (b << 6) + static_cast<std::size_t>(__builtin_ctzll(x));
  }

  // One past the last in-word byte before `pos`; one must exist.
  std::size_t prev_end(std::size_t pos) const {
    std::size_t b = pos >> 6;
    std::uint64_t x = (pos & 63) != 0 ? bits_[b] & ((std::uint64_t{1} << (pos & 63)) - 1) : 0;
    while (x == 0) x = bits_[--b];
    return (b << 6) + 64 - static_cast<std::size_t>(__builtin_clzll(x));
  }

  // The start of the word that ends at `end`.
  std::size_t start_before(std::size_t end) const {
    std::size_t b = (end - 1) >> 6;
    const unsigned keep = static_cast<unsigned>((end - 1) & 63) + 1;  // bits below `end`
    std::uint64_t x = ~bits_[b] & (keep == 64 ? ~std::uint64_t{0} : (std::uint64_t{1} << keep) - 1);
    while (x == 0) {
      if (b == 0) return 0;
      x = ~bits_[--b];
    }
    return (b << 6) + 64 - static_cast<std::size_t>(__builtin_clzll(x));
  }

  // Whether the words [a, a + la) and [b, b + lb) are equal.
  bool same(std::size_t a, std::size_t la, std::size_t b, std::size_t lb) const {
    if (a + 8 > n_ || b + 8 > n_) return la == lb && std::memcmp(text_ + a, text_ + b, la) == 0;
    // The first 8 bytes (fewer for a short word) with one load each; the rest only when needed.
    std::uint64_t ha, hb;
    std::memcpy(&ha, text_ + a, 8);
    std::memcpy(&hb, text_ + b, 8);
    const bool head = ((ha ^ hb) & kKeep[la < 8 ? la : 8]) == 0;
    if (!(head & (la == lb))) return false;
    return la <= 8 || std::memcmp(text_ + a + 8, text_ + b + 8, la - 8) == 0;
  }

 private:
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
  const char* text_;
  std::size_t n_;
  const std::uint64_t* bits_;
  std::size_t blocks_;
};

// kSelect[x][k]: the position of the k-th set bit of the byte x (k < popcount(x)).
struct SelectTable {
  unsigned char at[256][8];
  constexpr SelectTable() : at{} {
    for (int x = 0; x < 256; ++x) {
      int k = 0;
      for (int bit = 0; bit < 8; ++bit)
        if (x >> bit & 1) at[x][k++] = static_cast<unsigned char>(bit);
    }
  }
};
inline constexpr SelectTable kSelect;

inline constexpr std::uint64_t kOnes = 0x0101010101010101ull;

// Byte j of the result: the number of set bits of x in bytes 0..j (byte 7: popcount(x)).
inline std::uint64_t byte_prefix_counts(std::uint64_t x) {
  x = x - ((x >> 1) & 0x5555555555555555ull);
  x = (x & 0x3333333333333333ull) + ((x >> 2) & 0x3333333333333333ull);
  x = (x + (x >> 4)) & 0x0F0F0F0F0F0F0F0Full;
  return x * kOnes;
}

// The position of the k-th set bit of x (k < popcount(x)); prefix = byte_prefix_counts(x).
inline unsigned select_bit(std::uint64_t x, std::uint64_t prefix, unsigned k) {
  constexpr std::uint64_t kHigh = 0x8080808080808080ull;
  // Bytes whose prefix count is <= k lie wholly before the k-th set bit; they are the low ones.
  const std::uint64_t before = (((k * kOnes) | kHigh) - prefix) & kHigh;
  const unsigned byte = static_cast<unsigned>(((before >> 7) * kOnes) >> 56);
  const unsigned shift = 8 * byte;
  const unsigned skipped = static_cast<unsigned>(((prefix << 8) >> shift) & 0xFF);
  return shift + kSelect.at[(x >> shift) & 0xFF][k - skipped];
}

// A word of the text: bytes [start, end).
struct Word {
  std::size_t start, end;
};

// The released loop compares every word 8-gram with the one right after it. With
// eq[k] = (words[k] == words[k + 8]), the 8-gram at j repeats exactly when eq[j..j+7] all hold,
// so repeats are counted where a run of true eq reaches length 8. Such a run covers a multiple of
// 8, so eq is first evaluated only at checkpoints c = 0, 8, 16, ...: when eq[c - 8] and eq[c] are
// both false, no run of 8 ends in (c - 8, c] and the 7 positions between are skipped. Otherwise
// the run through (c - 8, c] is followed from c - 7 while eq holds, and the run that ends at c is
// measured backwards from c. Only every 8th word is located (by selecting set bits of the
// word-start masks); the words around a checkpoint are read off the bits when needed. Text that
// does not loop costs one word comparison per 8 words; the count is exact.
// Released: for j in range(len(words) - 8), so len(words) - 8 comparisons (the last 7 against a
// short tail, never equal); 1.0 when there are none.
class WordRepeats {
 public:
  explicit WordRepeats(const WordBits& words) : words_(words) {}

  // Checkpoint c: words c - 8 (when c >= 8), c and c + 8.
  void checkpoint(std::size_t c, const Word& prev, const Word& x, const Word& y) {
    if (run_ == 0) {
      if (!same(x, y)) return;
      // eq[c - 8] is false: no repeat ends in (c - 8, c); the run at c is at most 8 long.
      run_ = back_run(x, y, c < kN ? c + 1 : kN);
      repeats_ += run_ >= kN;
      return;
    }
    // A run reaches c - 8 (so c >= 8): follow it from c - 7.
    Word a = next(prev), b = next(x);
    if (same_span(a.start, x.end, b.start, y.end)) {  // eq[c - 7 .. c] all hold
      repeats_ += run_ + 1 < kN ? run_ + 1 : kN;
      run_ += kN;
      return;
    }
    std::size_t f = 0;  // eq holds for c - 7 .. c - 8 + f
    for (; f < kN; ++f) {
      if (f == kN - 1) {
        a = x;
        b = y;
      } else if (f > 0) {
        a = next(a);
        b = next(b);
      }
      if (!same(a, b)) break;
      ++run_;
      repeats_ += run_ >= kN;
    }
    // eq[c - 7 + f] is false: the run at c is shorter than 8 and adds no repeat.
    if (f < kN) run_ = back_run(x, y, kN - 1 - f);
  }

  // Positions k = from .. to (to < from + 8) one by one; `at` is word from - 1's start and
  // `ahead` word from + 7's.
  void tail(std::size_t from, std::size_t to, const Word& at, const Word& ahead) {
    Word a = at, b = ahead;
    for (std::size_t k = from; k <= to; ++k) {
      a = next(a);
      b = next(b);
      run_ = same(a, b) ? run_ + 1 : 0;
      repeats_ += run_ >= kN;
    }
  }

  std::size_t repeats() const { return repeats_; }
  // No run of true eq reaches the last checkpoint.
  bool idle() const { return run_ == 0; }

 private:
public:
  Word word(std::size_t start) const { return {start, words_.end_of(start)}; }
private:
  Word next(const Word& w) const { return word(words_.next_start(w.end)); }
  Word prev(const Word& w) const {
    const std::size_t end = words_.prev_end(w.start);
    return {words_.start_before(end), end};
  }
  bool same(const Word& a, const Word& b) const {
    return words_.same(a.start, a.end - a.start, b.start, b.end - b.start);
  }
  bool same_span(std::size_t a, std::size_t a_end, std::size_t b, std::size_t b_end) const {
    return words_.same(a, a_end - a, b, b_end - b);
  }

  // The number of consecutive true eq ending at the pair (x, y), at most `limit`.
  std::size_t back_run(Word x, Word y, std::size_t limit) const {
    std::size_t n = 0;
    while (n < limit && same(x, y)) {
      if (++n == limit) break;
      x = prev(x);
      y = prev(y);
    }
    return n;
  }

  const WordBits& words_;
  std::size_t run_ = 0, repeats_ = 0;
};

// The in-word bits of a text's 64-byte blocks, the number of words, and the starts of words
// 0, 8, 16, ... (found by selecting bits of each block's word-start mask), on the stack (in
// per-thread buffers for long texts). bits[-1] is 0: nothing comes before the text.
class WordBlocks {
 public:
  // A word takes a byte and a space: at most blocks * 4 + 1 starts of every 8th word, and
  // add() writes up to 2 ahead. Texts up to kLocalBlocks blocks use storage on the stack.
  explicit WordBlocks(std::size_t blocks) {
    std::uint64_t* bits = local_bits_;
    every8_ = local_every8_;
    if (blocks > kLocalBlocks) {
      static thread_local std::vector<std::uint64_t> heap_bits;
      static thread_local std::vector<std::size_t> heap_every8;
      if (heap_bits.size() < blocks + 1) {
        heap_bits.resize(blocks + 1);
        heap_every8.resize(4 * blocks + 8);
      }
      bits = heap_bits.data();
      every8_ = heap_every8.data();
    }
    bits[0] = 0;
    bits_ = bits + 1;
  }
  WordBlocks(const WordBlocks&) = delete;
  WordBlocks& operator=(const WordBlocks&) = delete;

  // Block b's in-word bits, after block b - 1's.
  void add(std::size_t b, std::uint64_t w) {
    bits_[b] = w;
    const std::uint64_t starts = w & ~((w << 1) | carry_);
    carry_ = w >> 63;
    if (starts == 0) return;
    const std::uint64_t prefix = byte_prefix_counts(starts);
    const std::size_t found = static_cast<std::size_t>(prefix >> 56);
    // The block's words r, r + 8, ... are words 0 mod 8 of the text. Two without a branch
    // (writes past the last one found are overwritten later), more in a loop that rarely runs.
    // (Locals: the stores through every8_ could alias the members.)
    std::size_t* const out = every8_;
    std::size_t located = located_;
    const std::size_t r = (kN - (words_ & (kN - 1))) & (kN - 1);
    const std::size_t last = found - 1;
    const std::size_t base = b << 6;
    const std::size_t first =
        base + select_bit(starts, prefix, static_cast<unsigned>(r < last ? r : last));
    const std::size_t second =
        base + select_bit(starts, prefix, static_cast<unsigned>(r + kN < last ? r + kN : last));
    out[located] = first;
    located += r < found;
    out[located] = second;
    located += r + kN < found;
    for (std::size_t k = r + 2 * kN; k < found; k += kN)
      out[located++] = base + select_bit(starts, prefix, static_cast<unsigned>(k));
    located_ = located;
    words_ += found;
  }

  const std::uint64_t* bits() const { return bits_; }
  std::size_t words() const { return words_; }
  // every8()[j]: the start of word 8 * j (j < (words() + 7) / 8).
  const std::size_t* every8() const { return every8_; }

 private:
  std::uint64_t* bits_;
  std::size_t* every8_;
  std::size_t words_ = 0, located_ = 0;
  std::uint64_t carry_ = 0;  // the last byte of the previous block is in a word
  static constexpr std::size_t kLocalBlocks = 48;  // texts up to 3 KiB
  std::uint64_t local_bits_[kLocalBlocks + 1];
  std::size_t local_every8_[4 * kLocalBlocks + 8];
};

// The word score of a text: every8[j] is the start of word 8 * j, count the number of words.
inline double word_repeats(const WordBits& words, const char* text, const std::size_t* every8,
                           std::size_t count) {
  if (count <= kN) return 1.0;
  WordRepeats repeats(words);
  for (std::size_t k = kN, j = 1; k < count; k += kN, ++j) {
    // Most checkpoints outside a run compare words with different first bytes.
    if (repeats.idle() && text[every8[j - 1]] != text[every8[j]]) continue;
    const Word prev = j >= 2 ? repeats.word(every8[j - 2]) : Word{npos, npos};
    repeats.checkpoint(k - kN, prev, repeats.word(every8[j - 1]), repeats.word(every8[j]));
  }
  // Positions after the last checkpoint (word done), up to len(words) - 9.
  const std::size_t done = (count - 1 - kN) & ~(kN - 1);
  if (done + 1 + kN < count)
    repeats.tail(done + 1, count - 1 - kN, repeats.word(every8[done / kN]),
                 repeats.word(every8[done / kN + 1]));
  return 1.0 - static_cast<double>(repeats.repeats()) / static_cast<double>(count - kN);
}

// The in-word bits of the bytes [i, i + width) (width <= 64), character by character with exact
// Unicode whitespace. `pending` bytes at i finish the previous block's last character, which was
// whitespace unless `pending_word`; both are updated for the next block.
inline std::uint64_t word_bits_exact(std::string_view s, std::size_t i, std::size_t width,
                                     std::size_t& pending, bool& pending_word) {
  const auto* p = reinterpret_cast<const unsigned char*>(s.data());
  const std::size_t end = i + width;
  std::uint64_t w = pending_word ? (std::uint64_t{1} << pending) - 1 : 0;
  std::size_t k = i + pending;
  bool word = pending_word;
  while (k < end) {
    const std::size_t at = k;
    if (p[k] < 0x80) {
      word = !unicode::is_space(p[k]);
      ++k;
    } else {
      word = !unicode::is_space(unicode::decode(s, k));
    }
    if (word) {
      const std::size_t stop = k < end ? k : end;
      const std::size_t len = stop - at;
      const std::uint64_t ones = len >= 64 ? ~std::uint64_t{0} : (std::uint64_t{1} << len) - 1;
      w |= ones << (at - i);
    }
  }
  pending = k - end;
  pending_word = word;
  return w;
}

}  // namespace
}  // namespace grit::words_detail
