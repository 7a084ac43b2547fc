// Reward components. Floating-point expressions keep the released Python code's order of operations
// so that results are bit-identical (same libm log/exp, same correctly rounded divisions).
#include "rewards.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <string>
#include <unordered_map>
#include <vector>

#include "repetition.hpp"
#include "scan.hpp"
#include "trace.hpp"
#include "unicode.hpp"

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

namespace grit {
namespace {

constexpr std::size_t npos = std::string_view::npos;
constexpr double kBleuWeight = 0.1;

// Words of the BLEU normalisation: after [^a-zA-Z0-9\s] -> ' ', every non-space character left is
// ASCII alphanumeric, so split() yields exactly the maximal runs of [A-Za-z0-9]; lower() makes
// them lowercase, so words compare ASCII-case-insensitively.
void bleu_words(std::string_view text, std::vector<std::string_view>& words) {
  words.clear();
  const auto* p = reinterpret_cast<const unsigned char*>(text.data());
  const std::size_t n = text.size();
  std::size_t i = 0;
  while (i < n) {
    while (i < n && !unicode::is_ascii_alnum(p[i])) ++i;
    const std::size_t b = i;
    while (i < n && unicode::is_ascii_alnum(p[i])) ++i;
    if (i > b) words.emplace_back(text.data() + b, i - b);
  }
}

bool same_word(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (std::size_t k = 0; k < a.size(); ++k)
    if ((a[k] | 0x20) != (b[k] | 0x20)) return false;  // alnum only: | 0x20 folds A-Z, keeps 0-9
  return true;
}

std::string lowered(std::string_view w) {
  std::string out(w);
  for (char& c : out) c = static_cast<char>(c | 0x20);
  return out;
}

bool is_counting_dataset(std::string_view dataset) { return dataset == "tallyqa"; }


}  // namespace

namespace {

// Bit k set where p[k] (k < width <= 64) is ASCII alphanumeric.
std::uint64_t alnum_bits(const unsigned char* p, std::size_t width) {
#if defined(__SSE2__)
  alignas(16) unsigned char tail[64];
  if (width < 64) {
    std::memset(tail, 0, sizeof tail);
    std::memcpy(tail, p, width);
    p = tail;
  }
  const auto in_range = [](__m128i v, char lo, char hi) {
    return _mm_and_si128(_mm_cmpgt_epi8(v, _mm_set1_epi8(static_cast<char>(lo - 1))),
                         _mm_cmplt_epi8(v, _mm_set1_epi8(static_cast<char>(hi + 1))));
  };
  std::uint64_t out = 0;
  for (int k = 0; k < 4; ++k) {
    const __m128i v = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p + 16 * k));
    const __m128i letter = in_range(_mm_or_si128(v, _mm_set1_epi8(0x20)), 'a', 'z');
    const __m128i alnum = _mm_or_si128(in_range(v, '0', '9'), letter);
    out |= static_cast<std::uint64_t>(static_cast<unsigned>(_mm_movemask_epi8(alnum))) << (16 * k);
  }
  return out;
#else
  std::uint64_t out = 0;
  for (std::size_t k = 0; k < width; ++k)
    out |= static_cast<std::uint64_t>(unicode::is_ascii_alnum(p[k])) << k;
  return out;
#endif
}

// Calls f(word) for each word of the BLEU normalisation of `text` (see bleu_words), in order,
// reading 64 bytes at a time without a branch per byte.
template <class F>
void for_each_bleu_word(std::string_view text, F&& f) {
  const auto* p = reinterpret_cast<const unsigned char*>(text.data());
  const std::size_t n = text.size();
  std::size_t open = npos;  // where the word still open began
  for (std::size_t i = 0; i < n; i += 64) {
    const std::uint64_t alnum = alnum_bits(p + i, n - i < 64 ? n - i : 64);
    const std::uint64_t before = (alnum << 1) | (open != npos ? 1u : 0u);
    // Starts and ends alternate; a bit past the text's end is clear, so a word ends there.
    std::uint64_t starts = alnum & ~before, ends = ~alnum & before;
    if (open != npos && ends != 0) {
      f(text.substr(open, i + static_cast<std::size_t>(__builtin_ctzll(ends)) - open));
      ends &= ends - 1;
      open = npos;
    }
    while (ends != 0) {
      const auto b = static_cast<std::size_t>(__builtin_ctzll(starts));
      const auto e = static_cast<std::size_t>(__builtin_ctzll(ends));
      starts &= starts - 1;
      ends &= ends - 1;
      f(text.substr(i + b, e - b));
    }
    if (starts != 0) open = i + static_cast<std::size_t>(__builtin_ctzll(starts));
  }
  if (open != npos) f(text.substr(open));
}

// BLEU-1's brevity penalty (c hypothesis words, r reference words) and exp(log(precision)) for
// `matches` of c words, as NLTK computes them.
double brevity_penalty(std::int64_t c, std::int64_t r) {
  return c > r ? 1.0 : std::exp(1.0 - static_cast<double>(r) / static_cast<double>(c));
}
double exp_log_precision(std::int64_t matches, std::int64_t c) {
  const double p1 = static_cast<double>(matches) / static_cast<double>(c > 1 ? c : 1);
  return std::exp(std::log(p1));
}

// Both for up to kSmall words, computed once per process (with the same exp and log, so the
// values are identical): short answers make the same few ratios over and over, and a sample's
// BLEU would otherwise call exp and log up to three times.
struct BleuTables {
  static constexpr std::int64_t kSmall = 40;
  double penalty[kSmall + 1][kSmall + 1];    // [c][r], c >= 1
  double precision[kSmall + 1][kSmall + 1];  // [c][matches], 1 <= matches <= c
  BleuTables() {
    for (std::int64_t c = 1; c <= kSmall; ++c)
      for (std::int64_t k = 0; k <= kSmall; ++k) {
        penalty[c][k] = brevity_penalty(c, k);
        precision[c][k] = k >= 1 && k <= c ? exp_log_precision(k, c) : 0.0;
      }
  }
};

double bleu_from(std::int64_t matches, std::int64_t c, std::int64_t r) {
  if (matches == 0) return 0.0;
  constexpr std::int64_t kSmall = BleuTables::kSmall;
  if (c <= kSmall && r <= kSmall) {
    static const BleuTables tables;
    return tables.penalty[c][r] * tables.precision[c][matches];
  }
  return brevity_penalty(c, r) * exp_log_precision(matches, c);
}

// bleu1 for references of any length: word counts in a hash map.
double bleu1_long(std::string_view reference, std::string_view hypothesis) {
  thread_local std::vector<std::string_view> ref;
  bleu_words(reference, ref);
  std::unordered_map<std::string, std::int64_t> budget;
  budget.reserve(ref.size());
  for (const auto w : ref) ++budget[lowered(w)];
  std::int64_t matches = 0, c = 0;
  for_each_bleu_word(hypothesis, [&](std::string_view w) {
    ++c;
    const auto it = budget.find(lowered(w));
    if (it != budget.end() && it->second > 0) {
      --it->second;
      ++matches;
    }
  });
  return bleu_from(matches, c, static_cast<std::int64_t>(ref.size()));
}

}  // namespace

double bleu1(std::string_view reference, std::string_view hypothesis) {
  // Clipped unigram matches: sum over words of min(count in hyp, count in ref), found by
  // spending each reference word's budget. Short references (the usual case) use a flat table
  // on the stack, and the hypothesis is read word by word without storing it.
  constexpr std::size_t kFlat = 32;
  std::string_view word[kFlat];
  std::int64_t budget[kFlat];
  std::size_t unique = 0;
  std::int64_t r = 0;
  for_each_bleu_word(reference, [&](std::string_view w) {
    if (++r > static_cast<std::int64_t>(kFlat)) return;
    std::size_t k = 0;
    while (k < unique && !same_word(word[k], w)) ++k;
    if (k == unique) {
      word[unique] = w;
      budget[unique++] = 0;
    }
    ++budget[k];
  });
  if (r > static_cast<std::int64_t>(kFlat)) return bleu1_long(reference, hypothesis);
  std::int64_t matches = 0, c = 0;
  for_each_bleu_word(hypothesis, [&](std::string_view w) {
    ++c;
    for (std::size_t k = 0; k < unique; ++k) {
      if (same_word(word[k], w)) {
        if (budget[k] > 0) {
          --budget[k];
          ++matches;
        }
        break;
      }
    }
  });
  return bleu_from(matches, c, r);
}

std::optional<std::int64_t> python_int(std::string_view s, std::int64_t max_str_digits) {
  // int(str): non-ASCII whitespace and decimal digits first become ASCII, any other character
  // from U+007F up makes it invalid; then optional blanks, a sign, digits with single underscores
  // between them, optional blanks, end.
  std::string converted;
  std::string_view ascii = s;  // below 127 throughout (the usual case): used as it is
  const auto below_127 = [](char c) { return static_cast<unsigned char>(c) < 127; };
  if (!std::all_of(s.begin(), s.end(), below_127)) {
    converted.reserve(s.size());
    for (std::size_t i = 0; i < s.size();) {
      const std::uint32_t cp = unicode::decode(s, i);
      // CPython keeps code points below 127 as they are (so U+001C is no blank here).
      if (cp < 127) {
        converted.push_back(static_cast<char>(cp));
      } else if (unicode::is_space(cp)) {
        converted.push_back(' ');
      } else if (unicode::is_decimal(cp)) {
        converted.push_back(static_cast<char>('0' + unicode::decimal_value(cp)));
      } else {
        return std::nullopt;
      }
    }
    ascii = converted;
  }
  std::size_t i = 0;
  const std::size_t n = ascii.size();
  const auto blank = [&](std::size_t k) {
    return ascii[k] == ' ' || (ascii[k] >= '\t' && ascii[k] <= '\r');
  };
  while (i < n && blank(i)) ++i;
  bool negative = false;
  if (i < n && (ascii[i] == '+' || ascii[i] == '-')) negative = ascii[i++] == '-';
  std::int64_t value = 0, digits = 0;
  constexpr std::int64_t kSaturate = std::int64_t{1} << 62;
  bool expect_digit = true;
  for (; i < n; ++i) {
    const char c = ascii[i];
    if (c >= '0' && c <= '9') {
      value = value >= kSaturate / 10 ? kSaturate : value * 10 + (c - '0');
      ++digits;
      expect_digit = false;
    } else if (c == '_' && !expect_digit) {
      expect_digit = true;
    } else {
      break;
    }
  }
  if (digits == 0 || expect_digit) return std::nullopt;
  while (i < n && blank(i)) ++i;
  if (i != n) return std::nullopt;
  if (max_str_digits > 0 && digits > 640 && digits > max_str_digits) return std::nullopt;
  return negative ? -value : value;
}

namespace {

// s.find(kTags[k], from), mostly answered by the tag scan's first and last occurrence.
std::size_t find_tag(std::string_view s, const TagScan& tags, std::size_t k, std::size_t from) {
  if (tags.last[k] == npos || tags.last[k] < from) return npos;
  if (tags.first[k] >= from) return tags.first[k];
  return s.find(kTags[k], from);
}

// think_format from the tag scan: kTags[0..3] are <think>, </think>, <rethink>, </rethink>.
double think_format_from(std::string_view s, const TagScan& tags) {
  double reward = 0.0;
  std::size_t base = 0;
  for (std::size_t k = 0; k < 4; ++k) {
    const std::size_t last = tags.last[k];
    if (last != npos && last >= base) {
      reward += 1.0;
      base = last + kTags[k].size();
    }
  }
  if (reward == 4.0) {
    const std::size_t b = tags.last[0] + 7;
    std::size_t e = find_tag(s, tags, 1, b);
    if (e == npos) e = s.size();
    std::string_view inside = s.substr(b, e - b);
    // strip() Unicode whitespace at both ends.
    while (!inside.empty()) {
      std::size_t i = 0;
      if (!unicode::is_space(unicode::decode(inside, i))) break;
      inside.remove_prefix(i);
    }
    while (!inside.empty()) {
      const std::uint32_t cp = unicode::decode_before(inside, inside.size());
      if (!unicode::is_space(cp)) break;
      std::size_t k = inside.size() - 1;
      while (k > 0 && (static_cast<unsigned char>(inside[k]) & 0xC0) == 0x80) --k;
      inside.remove_suffix(inside.size() - k);
    }
    // len(inside) > 1 and the normalised text has a ' ' (an original ' ' or a replaced character).
    std::size_t chars = 0;
    bool has_space = false;
    for (std::size_t i = 0; i < inside.size() && !(chars > 1 && has_space);) {
      const std::uint32_t cp = unicode::decode(inside, i);
      ++chars;
      const bool alnum = cp < 0x80 && unicode::is_ascii_alnum(static_cast<unsigned char>(cp));
      if (cp == ' ' || (!alnum && !unicode::is_space(cp))) has_space = true;
    }
    if (chars > 1 && has_space) reward += 1.0;
  }
  return reward / 5 * 0.5;
}

double answer_format_from(const TagScan& tags) {
  const std::size_t count = tags.count[4];
  double reward = 0.0;
  if (count >= 1) reward += 1.0;
  if (count == 1) reward += 1.0;
  return reward / 1 / 2 * 0.5;
}

JudgeRequest judge_from(std::string_view s, const TagScan& tags, std::string_view dataset) {
  JudgeRequest req;
  if (tags.first[4] == npos || dataset.find("ovd") != npos) return req;
  req.needed = true;
  req.begin = tags.first[4] + 8;
  req.end = find_tag(s, tags, 5, req.begin);
  if (req.end == npos) req.end = s.size();
  return req;
}

}  // namespace

double think_format_reward(std::string_view s) { return think_format_from(s, scan_tags(s)); }

double answer_format_reward(std::string_view completion) {
  return answer_format_from(scan_tags(completion));
}

namespace {

// (s_tok - (1 - s_word)) * 0.5, from the text's words (scan_text with its word score) and the ids.
// As released, fewer than 8 words or fewer than 16 ids left after the cut at the first pad give
// 0.5 outright: the word factor is not applied then.
double repetition_from(const TextScan& scan, const RewardInput& in) {
  if (scan.words < 8) return 0.5;
  double token_score = 1.0;
  if (in.has_ids) {
    const std::optional<double> score =
        token_repeat_score(in.ids, in.num_ids, in.has_pad, in.pad_token_id);
    if (!score) return 0.5;
    token_score = *score;
  }
  return (token_score - (1 - scan.word_score)) * 0.5;
}

}  // namespace

double repetition_reward(const RewardInput& in) {
  return repetition_from(scan_text(in.completion, true), in);
}

JudgeRequest judge_request(std::string_view completion, std::string_view dataset) {
  return judge_from(completion, scan_tags(completion), dataset);
}

namespace {

double answer_bleu_reward(std::string_view completion, std::string_view answer, std::size_t at) {
  if (at == npos) return 0.0;
  return (0.0 + bleu1(answer, completion.substr(at + 8))) * kBleuWeight;
}

bool count_matches(const RewardInput& in, std::size_t count) {
  const auto value = python_int(in.answer, in.int_max_str_digits);
  return value.has_value() && *value == static_cast<std::int64_t>(count);
}

}  // namespace

OfficialRewards official_rewards(const RewardInput& in) {
  OfficialRewards r;
  const std::string_view s = in.completion;
  const TextScan scan = scan_text(s, true);
  const TagScan& tags = scan.tags;
  r.answer_bleu = answer_bleu_reward(s, in.answer, tags.first[4]);
  r.answer_format = answer_format_from(tags);
  r.repetition = repetition_from(scan, in);
  if (tags.first[2] != npos) {
    double reward = 0.0;
    if (scan.boxes > 0) reward += 0.5;
    if (in.dataset == "tallyqa" && count_matches(in, scan.boxes)) reward += 1;
    r.grounding_format = reward;
  }
  r.think_format = think_format_from(s, tags);
  r.judge = judge_from(s, tags, in.dataset);
  return r;
}

PaperRewards paper_rewards(const RewardInput& in) {
  PaperRewards r;
  const std::string_view s = in.completion;
  const std::size_t think = s.find("<think>");
  const std::size_t think_end = think == npos ? npos : s.find("</think>", think + 7);
  if (think_end != npos) {
    r.format += 0.5;
    const std::size_t rethink = s.find("<rethink>", think_end + 8);
    if (rethink != npos && s.find("</rethink>", rethink + 9) != npos) r.format += 0.5;
  }
  const TextScan scan = scan_text(s, false);
  const TagScan& tags = scan.tags;
  if (scan.boxes > 0) r.format += 0.5;
  if (is_counting_dataset(in.dataset) && count_matches(in, scan.boxes)) r.count = 0.5;
  r.answer_bleu = answer_bleu_reward(s, in.answer, tags.first[4]);
  r.judge = judge_from(s, tags, in.dataset);
  return r;
}

}  // namespace grit
