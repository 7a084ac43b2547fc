// GRPO-GR reward components (presets "official" and "paper") for one sample, and BLEU-1.
// Plain C++17; bit-identical to grit_fast/rewards/reference.py (the released GRIT functions).
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string_view>

namespace grit {

// One sample's inputs. `ids` may be null (no token ids: the token factor of repetition is 1).
struct RewardInput {
  std::string_view completion, answer, dataset;
  const std::int64_t* ids = nullptr;
  std::size_t num_ids = 0;
  bool has_ids = false;
  bool has_pad = true;
  std::int64_t pad_token_id = 151643;
  std::int64_t int_max_str_digits = 4300;  // Python's sys.get_int_max_str_digits() (0 = no limit)
};

// What the judge needs: whether it scores this sample and the predicted answer's byte span.
struct JudgeRequest {
  bool needed = false;
  std::size_t begin = 0, end = 0;
};

struct OfficialRewards {
  double answer_bleu = 0, answer_format = 0, repetition = 0, grounding_format = 0, think_format = 0;
  JudgeRequest judge;
};

struct PaperRewards {
  double format = 0, count = 0, answer_bleu = 0;
  JudgeRequest judge;
};

// NLTK sentence_bleu([reference], hypothesis, weights=(1, 0, 0, 0)) over the words of the two
// texts after the official normalisation ([^a-zA-Z0-9\s] -> ' ', lower(), split()).
double bleu1(std::string_view reference, std::string_view hypothesis);

// Python's int(text) for a base-10 str, or nullopt where int() raises ValueError. Values beyond
// int64 saturate (they only ever compare unequal to a box count).
std::optional<std::int64_t> python_int(std::string_view text, std::int64_t max_str_digits);

OfficialRewards official_rewards(const RewardInput& in);
PaperRewards paper_rewards(const RewardInput& in);
JudgeRequest judge_request(std::string_view completion, std::string_view dataset);

// Individual components, exposed for tests.
double answer_format_reward(std::string_view completion);
double think_format_reward(std::string_view completion);
double repetition_reward(const RewardInput& in);

}  // namespace grit
