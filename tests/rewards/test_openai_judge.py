"""OpenAIJudge against a real HTTP server on 127.0.0.1 that the test starts (no internet)."""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from grit_fast.rewards.openai_judge import (
    JUDGE_PROMPT,
    JudgeError,
    OpenAIJudge,
    parse_judge_score,
)


class _Handler(BaseHTTPRequestHandler):
    """Behaviour chosen by the model's answer in the prompt:

    ``ok:S`` replies ``{score: S}``; ``fail:N:S`` answers HTTP 500 N times then ``ok:S``; ``slow:S``
    holds its first request until the test ends (past any client timeout); ``meet:S`` waits at the
    server's barrier for the other requests in flight, and the server counts how many overlap;
    ``malformed`` replies a body that is not JSON; ``noscore`` replies text without a number;
    ``forbidden`` answers HTTP 403. No reply depends on how fast this machine is.
    """

    def log_message(self, *args):  # keep pytest output clean
        pass

    def do_POST(self):
        server = self.server
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        prompt = body["messages"][0]["content"]
        prediction = prompt.rsplit("Model\u2019s answer: ", 1)[1]
        with server.lock:
            server.calls[prediction] += 1
            server.bodies.append(body)
            server.auth.append(self.headers.get("Authorization"))
            n = server.calls[prediction]
        kind, *rest = prediction.split(":")
        if kind == "fail" and n <= int(rest[0]):
            return self._send(500, b"oops")
        if kind == "slow" and n == 1:
            server.released.wait(timeout=60)
        if kind == "meet":
            with server.lock:
                server.in_flight += 1
                server.most_in_flight = max(server.most_in_flight, server.in_flight)
            with contextlib.suppress(threading.BrokenBarrierError):
                server.meet.wait()
            with server.lock:
                server.in_flight -= 1
        if kind == "forbidden":
            return self._send(403, b"no")
        if kind == "malformed":
            return self._send(200, b"{not json")
        content = "I can't tell" if kind == "noscore" else f'{{"score": {rest[-1]}}}'
        reply = {"choices": [{"message": {"role": "assistant", "content": content}}]}
        return self._send(200, json.dumps(reply).encode())

    def _send(self, code, data):
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        # The client may have timed out and left.
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            self.wfile.write(data)


@pytest.fixture
def server():
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    httpd.daemon_threads = True
    httpd.calls = Counter()
    httpd.bodies = []
    httpd.auth = []
    httpd.lock = threading.Lock()
    httpd.released = threading.Event()
    httpd.in_flight = httpd.most_in_flight = 0
    httpd.meet = threading.Barrier(1)
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    httpd.base_url = f"http://127.0.0.1:{httpd.server_address[1]}/v1"
    yield httpd
    httpd.released.set()
    httpd.meet.abort()
    httpd.shutdown()
    httpd.server_close()
    thread.join(timeout=5)


def judge_for(server, **kw):
    kw.setdefault("backoff", 0.01)
    kw.setdefault("timeout", 2.0)
    return OpenAIJudge(model="test-judge", base_url=server.base_url, **kw)


def test_scores_prompt_and_headers(server, monkeypatch):
    monkeypatch.setenv("GRIT_TEST_KEY", "sk-local")
    judge = judge_for(server, api_key_env="GRIT_TEST_KEY", concurrency=3)
    preds = ["ok:1", "ok:0.5", "ok:0", "ok:0.25"]
    assert judge(["q"] * 4, ["tv"] * 4, preds) == [1.0, 0.5, 0.0, 0.25]
    body = server.bodies[0]
    assert body["model"] == "test-judge"
    # As released: the API's default temperature and no length limit, unless asked for.
    assert "temperature" not in body and "max_tokens" not in body
    q_prompt = body["messages"][0]["content"]
    assert q_prompt.startswith("You are responsible for proofreading the answers")
    assert '"{score: <score>}"' in q_prompt
    assert "\nQuestion: q \nStandard answer: tv \nModel\u2019s answer: ok:" in q_prompt
    assert server.auth == ["Bearer sk-local"] * 4
    judge_for(server, temperature=0, max_tokens=16)(["q"], ["tv"], ["ok:1"])
    assert (server.bodies[-1]["temperature"], server.bodies[-1]["max_tokens"]) == (0.0, 16)


def test_prompt_matches_released_text():
    text = JUDGE_PROMPT.format(question="Q?", answer="2", prediction="two")
    assert text.endswith("Question: Q? \nStandard answer: 2 \nModel\u2019s answer: two")
    assert "the model\u2019s answer by referring" in text


def test_retries_failures_and_slow_replies(server):
    judge = judge_for(server, retries=3, timeout=1.0)
    assert judge(["q", "q"], ["a", "a"], ["fail:2:0.75", "slow:1"]) == [0.75, 1.0]
    assert server.calls["fail:2:0.75"] == 3
    assert server.calls["slow:1"] == 2


def test_requests_run_concurrently(server):
    """Four requests meet at the server only if the client sends them at once; one at a time, the
    server never sees two in flight (each passes a barrier of one)."""
    preds = ["meet:1", "meet:0.5", "meet:0.25", "meet:0"]
    for concurrency in (4, 1):
        server.calls.clear()
        server.meet = threading.Barrier(concurrency, timeout=30)
        server.most_in_flight = 0
        judge = judge_for(server, concurrency=concurrency, timeout=60.0, retries=0)
        assert judge(["q"] * 4, ["a"] * 4, preds) == [1.0, 0.5, 0.25, 0.0]
        assert server.most_in_flight == concurrency
        assert judge.requests_sent == 4


def test_exhausted_attempts_score_zero_and_are_not_cached(server, tmp_path, caplog):
    cache = tmp_path / "judge.jsonl"
    judge = judge_for(server, retries=1, cache_path=cache)
    with caplog.at_level("WARNING"):
        assert judge(["q"] * 3, ["a"] * 3, ["malformed", "noscore", "fail:5:1"]) == [0.0] * 3
    assert "no score" in caplog.text
    assert server.calls == Counter({"malformed": 2, "noscore": 2, "fail:5:1": 2})
    assert not cache.exists()


def test_on_failure_raise_and_no_retry_on_403(server):
    judge = judge_for(server, retries=4, on_failure="raise")
    with pytest.raises(JudgeError, match="HTTP 403"):
        judge(["q"], ["a"], ["forbidden"])
    assert server.calls["forbidden"] == 1
    with pytest.raises(JudgeError, match="after 2 attempts"):
        judge_for(server, retries=1, on_failure="raise")(["q"], ["a"], ["malformed"])


def test_disk_cache_makes_reruns_free(server, tmp_path):
    cache = tmp_path / "cache" / "judge.jsonl"
    first = judge_for(server, cache_path=cache)
    preds = ["ok:0.5", "ok:1", "ok:0.5"]
    assert first(["q", "q", "q"], ["a", "a", "a"], preds) == [0.5, 1.0, 0.5]
    assert first.requests_sent == 2  # the duplicate sample is asked once
    with cache.open("a") as f:
        f.write('{"key": "cut sho')  # an interrupted write must not break the next run
    again = judge_for(server, cache_path=cache)
    assert again(["q", "q"], ["a", "a"], ["ok:1", "ok:0.5"]) == [1.0, 0.5]
    assert again.requests_sent == 0
    # The key includes the question: a different question is asked again.
    assert again(["other"], ["a"], ["ok:1"]) == [1.0]
    assert again.requests_sent == 1


def test_connection_refused_is_bounded():
    judge = OpenAIJudge(base_url="http://127.0.0.1:9/v1", retries=2, backoff=0.0, timeout=1.0)
    start = time.monotonic()
    assert judge(["q"], ["a"], ["p"]) == [0.0]
    assert judge.requests_sent == 3
    assert time.monotonic() - start < 10


@pytest.mark.parametrize(
    ("reply", "score"),
    [
        ("{score: 0.8}", 0.8),
        ('{"score": 1}', 1.0),
        ("Score: 0", 0.0),
        ("score: 7", 1.0),
        ("score=0.35", 0.35),
        # Released quirk: only five characters after "score" are read (" is 0").
        ("The score is 0.35 because", 0.0),
        ("{score: 0.5}, earlier score 1", 1.0),
    ],
)
def test_parse_judge_score(reply, score):
    assert parse_judge_score(reply) == score


@pytest.mark.parametrize("reply", ["", "no number", "score: ..", "{score: 1.2.3}"])
def test_parse_judge_score_rejects(reply):
    with pytest.raises(ValueError):
        parse_judge_score(reply)


def test_bad_arguments(server):
    with pytest.raises(ValueError, match="on_failure"):
        OpenAIJudge(on_failure="ignore")
    with pytest.raises(ValueError, match="concurrency >= 1"):
        OpenAIJudge(concurrency=0)
    with pytest.raises(ValueError, match="expected equal lengths"):
        judge_for(server)(["q"], [], [])


def test_score_cli_with_the_openai_judge(server, tmp_path, capsys):
    from grit_fast.cli import main

    rows = [
        {"completion": "<answer>ok:0.5", "answer": "a", "question": "q", "dataset": "vsr"},
        {"completion": "<answer>ok:1", "answer": "a", "question": "q", "dataset": "vsr"},
        {"completion": "no answer", "answer": "a", "question": "q", "dataset": "vsr"},
    ]
    path = tmp_path / "preds.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    args = ["score", "--predictions", str(path), "--out", str(tmp_path / "out")]
    args += ["--judge", "openai", "--judge-base-url", server.base_url, "--judge-model", "m"]
    assert main(args) == 0
    metrics = json.loads((tmp_path / "out" / "metrics.json").read_text())["overall"]
    assert metrics["acc"] == pytest.approx(100 * (0.5 + 1.0 + 0.0) / 3)
    assert metrics["acc_binary"] == pytest.approx(200 / 3)
    assert server.bodies[0]["model"] == "m"
    assert sum(server.calls.values()) == 2  # the sample without <answer> is not judged
    # The default cache sits in the output folder: a re-run asks nothing.
    assert (tmp_path / "out" / "judge_cache.jsonl").is_file()
    assert main(args) == 0
    assert sum(server.calls.values()) == 2
    assert "overall" in capsys.readouterr().out
