// The token-level score of the repetition reward (the word-level one is in scan.hpp).
// Plain C++17; bit-identical to grit_fast/rewards/reference.py's repetition().
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>

namespace grit {

// 1 - (immediately repeated 8-grams) / (len - 15) over ids[:first pad] (all n ids when has_pad is
// false or no pad occurs), with len - 15 comparisons; nullopt when fewer than 16 ids remain (the
// released reward then gives 0.5 outright).
std::optional<double> token_repeat_score(const std::int64_t* ids, std::size_t n, bool has_pad,
                                         std::int64_t pad);

}  // namespace grit
