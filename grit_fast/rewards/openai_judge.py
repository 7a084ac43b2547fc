"""A judge that asks any OpenAI-compatible chat-completions endpoint, as the paper's GPT-4o judge.

:class:`OpenAIJudge` is a judge callable (``judge(questions, answers, predictions) -> [0, 1] floats``)
built on the standard library only (``urllib`` + a thread pool):

* prompt and score parsing of the released GRIT reward (``gpt_score_reward``): one user message
  (:data:`JUDGE_PROMPT`, with its typographic apostrophes and trailing blanks); the reply is
  lower-cased, stripped of characters other than word characters, blanks and dots, cut to the five
  characters after its last ``score``, reduced to digits and dots and read as a float; the score is
  clipped to [0, 1] (the released code would pass e.g. 10 through; a reward in [0, 1] is what the
  scorer expects);
* ``concurrency`` requests in flight, ``timeout`` seconds each, up to ``retries`` further attempts
  after a failed one (connection error, HTTP 429/5xx, malformed body or unparseable score) with
  exponential back-off ``backoff * 2**attempt`` seconds; a 4xx other than 408/429 is not retried;
* a sample whose attempts all fail scores 0.0 with a warning, as in the released code, or raises
  :class:`JudgeError` with ``on_failure="raise"``; failures are never cached;
* an on-disk cache (``cache_path``, a JSONL file) keyed by (model, question, answer, prediction), so
  a re-run costs nothing; identical samples in one call are asked once.

The endpoint is ``{base_url}/chat/completions``; ``base_url`` defaults to ``$OPENAI_BASE_URL`` or
``https://api.openai.com/v1``, the key is read from the environment variable ``api_key_env``
(default ``OPENAI_API_KEY``; no key sends no Authorization header, for local servers).
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import re
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

__all__ = ["JUDGE_PROMPT", "JudgeError", "OpenAIJudge", "parse_judge_score"]

log = logging.getLogger(__name__)

# The released reward's prompt, byte for byte (U+2019 apostrophes, a blank before each newline).
JUDGE_PROMPT = (
    "You are responsible for proofreading the answers, you need to give a score to the model\u2019s "
    "answer by referring to the standard answer, based on the given question. The full score is 1 "
    'point and the minimum score is 0 points. Please output the score in the json form "{{score: '
    '<score>}}". The evaluation criteria require that the closer the model\u2019s answer is to the '
    "standard answer, the higher the score.\nQuestion: {question} \nStandard answer: {answer} "
    "\nModel\u2019s answer: {prediction}"
)

_NOT_WORD_SPACE_DOT = re.compile(r"[^\w\s\.]")
_NOT_DIGIT_DOT = re.compile(r"[^\d.]")
_RETRY_STATUS = frozenset((408, 409, 425, 429, 500, 502, 503, 504))


class JudgeError(RuntimeError):
    """The endpoint gave no usable score for a sample after every attempt."""


def parse_judge_score(reply: str) -> float:
    """The score in a judge reply, parsed as the released reward does, clipped to [0, 1].

    ``'{score: 0.8}'`` -> 0.8, ``'Score: 1'`` -> 1.0. Raises ValueError when no number is found.
    """
    text = _NOT_WORD_SPACE_DOT.sub("", reply.strip().lower())
    digits = _NOT_DIGIT_DOT.sub("", text.split("score")[-1][:5])
    value = float(digits)  # ValueError on '' or '1.2.3'
    if not math.isfinite(value):
        raise ValueError(f"judge score {value!r} is not finite")
    return min(1.0, max(0.0, value))


class _RetryableError(Exception):
    pass


class OpenAIJudge:
    """Judge answers with an OpenAI-compatible chat-completions endpoint (see the module doc).

    Args:
        model: model name sent in each request (the paper used ``gpt-4o``).
        base_url: API root, e.g. ``http://127.0.0.1:8000/v1``; default ``$OPENAI_BASE_URL`` or
            OpenAI's.
        api_key_env: environment variable holding the API key.
        concurrency: requests in flight at once.
        timeout: seconds per request.
        retries: further attempts after a failed one.
        backoff: seconds before the first retry; doubles each time.
        cache_path: JSONL cache file (created on first write); None disables the cache.
        on_failure: ``"zero"`` (score 0.0 and a warning, as released) or ``"raise"``.
        max_tokens, temperature: sent with each request when set; None (the default, as released)
            leaves them to the API (its default temperature, no length limit). ``temperature=0``
            makes a deterministic judge.
    """

    __name__ = "OpenAIJudge"

    def __init__(
        self,
        model: str = "gpt-4o",
        base_url: str | None = None,
        api_key_env: str = "OPENAI_API_KEY",
        concurrency: int = 8,
        timeout: float = 60.0,
        retries: int = 3,
        backoff: float = 1.0,
        cache_path: str | os.PathLike | None = None,
        on_failure: str = "zero",
        max_tokens: int | None = None,
        temperature: float | None = None,
    ) -> None:
        if on_failure not in ("zero", "raise"):
            raise ValueError(f"on_failure must be 'zero' or 'raise', got {on_failure!r}")
        if concurrency < 1 or retries < 0 or timeout <= 0 or backoff < 0:
            raise ValueError(
                "OpenAIJudge needs concurrency >= 1, retries >= 0, timeout > 0 and backoff >= 0; "
                f"got {concurrency}, {retries}, {timeout}, {backoff}"
            )
        base = base_url or os.environ.get("OPENAI_BASE_URL") or "https://api.openai.com/v1"
        self.url = base.rstrip("/") + "/chat/completions"
        self.model = model
        self.api_key_env = api_key_env
        self.concurrency = int(concurrency)
        self.timeout = float(timeout)
        self.retries = int(retries)
        self.backoff = float(backoff)
        self.on_failure = on_failure
        self.max_tokens = None if max_tokens is None else int(max_tokens)
        self.temperature = None if temperature is None else float(temperature)
        self.cache_path = None if cache_path is None else Path(cache_path)
        self._cache: dict[str, float] = {}
        self._lock = threading.Lock()
        self.requests_sent = 0  # HTTP requests made (for logs and tests)
        if self.cache_path is not None:
            self._load_cache()

    # ----- cache
    def _key(self, question: str, answer: str, prediction: str) -> str:
        blob = json.dumps([self.model, question, answer, prediction], ensure_ascii=False)
        return hashlib.sha256(blob.encode("utf-8", "surrogatepass")).hexdigest()

    def _load_cache(self) -> None:
        assert self.cache_path is not None
        if not self.cache_path.exists():
            return
        bad = 0
        with self.cache_path.open(encoding="utf-8") as f:
            for line in f:
                try:
                    entry = json.loads(line)
                    self._cache[str(entry["key"])] = float(entry["score"])
                except (ValueError, KeyError, TypeError):
                    bad += 1  # a line cut short by an interrupted run
        if bad:
            log.warning("judge cache %s: skipped %d unreadable lines", self.cache_path, bad)

    def _store(self, key: str, score: float) -> None:
        with self._lock:
            self._cache[key] = score
            if self.cache_path is not None:
                self.cache_path.parent.mkdir(parents=True, exist_ok=True)
                with self.cache_path.open("a", encoding="utf-8") as f:
                    f.write(json.dumps({"key": key, "score": score}) + "\n")

    # ----- requests
    def _headers(self) -> dict[str, str]:
        headers = {"Content-Type": "application/json"}
        key = os.environ.get(self.api_key_env)
        if key:
            headers["Authorization"] = f"Bearer {key}"
        return headers

    def _ask_once(self, prompt: str) -> float:
        request_body: dict[str, Any] = {
            "model": self.model,
            "messages": [{"role": "user", "content": prompt}],
        }
        for key in ("max_tokens", "temperature"):
            if getattr(self, key) is not None:
                request_body[key] = getattr(self, key)
        body = json.dumps(request_body).encode("utf-8", "surrogatepass")
        request = urllib.request.Request(self.url, data=body, headers=self._headers())
        with self._lock:
            self.requests_sent += 1
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                raw = response.read()
        except urllib.error.HTTPError as exc:
            if exc.code in _RETRY_STATUS:
                raise _RetryableError(f"HTTP {exc.code} from {self.url}") from None
            raise JudgeError(f"HTTP {exc.code} from {self.url}: {exc.reason}") from None
        except (urllib.error.URLError, TimeoutError, OSError) as exc:
            raise _RetryableError(f"request to {self.url} failed: {exc}") from None
        try:
            content = json.loads(raw)["choices"][0]["message"]["content"]
            return parse_judge_score(str(content))
        except (ValueError, KeyError, IndexError, TypeError) as exc:
            raise _RetryableError(
                f"unusable reply from {self.url}: {raw[:200]!r} ({exc})"
            ) from None

    def _ask(self, prompt: str) -> float | None:
        """The score, retrying with back-off; None when every attempt failed (on_failure='zero')."""
        last = ""
        for attempt in range(self.retries + 1):
            try:
                return self._ask_once(prompt)
            except _RetryableError as exc:
                last = str(exc)
                if attempt < self.retries:
                    time.sleep(self.backoff * 2**attempt)
            except JudgeError as exc:
                last = str(exc)
                break
        if self.on_failure == "raise":
            raise JudgeError(f"no usable judge score after {self.retries + 1} attempts: {last}")
        log.warning("judge gave no score (scored 0.0): %s", last)
        return None

    def __call__(
        self, questions: Sequence[str], answers: Sequence[str], predictions: Sequence[str]
    ) -> list[float]:
        if not len(questions) == len(answers) == len(predictions):
            raise ValueError(
                f"OpenAIJudge: {len(questions)} questions, {len(answers)} answers and "
                f"{len(predictions)} predictions; expected equal lengths"
            )
        keys = [self._key(q, a, p) for q, a, p in zip(questions, answers, predictions, strict=True)]
        todo: dict[str, str] = {}
        for key, q, a, p in zip(keys, questions, answers, predictions, strict=True):
            if key not in self._cache and key not in todo:
                todo[key] = JUDGE_PROMPT.format(question=q, answer=a, prediction=p)
        fresh: dict[str, float] = {}
        if todo:
            with ThreadPoolExecutor(max_workers=min(self.concurrency, len(todo))) as pool:
                for key, score in zip(todo, pool.map(self._ask, todo.values()), strict=True):
                    if score is None:
                        fresh[key] = 0.0
                    else:
                        self._store(key, score)
        return [self._cache.get(k, fresh.get(k, 0.0)) for k in keys]

    def __repr__(self) -> str:
        return f"OpenAIJudge(model={self.model!r}, url={self.url!r})"
