"""A toy "model" for the example service.

Loading real ML models is slow, which is exactly the situation where a
dev server that reloads only the changed modules pays off: edit
``routes.py`` and this module (and its slow load) is kept as it is. Edit
this module itself (say, the word lists or ``predict``) and it runs again,
but ``hmr_serve.keep`` hands back the weights it loaded the first time.

The load below is SIMULATED: ``time.sleep`` stands in for reading weights
from disk. The "model" itself is a deterministic word-list sentiment scorer.
"""

from __future__ import annotations

import time

import hmr_serve

LOAD_SECONDS = 2.0


def _load_weights() -> float:
    """Simulated slow model load (stands in for reading weights from disk)."""
    started = time.perf_counter()
    time.sleep(LOAD_SECONDS)
    return time.perf_counter() - started


# Under hmr-serve, loaded once per server process, not once per save of this file; anywhere
# else (plain python, uvicorn, the tests) `keep` simply calls the function.
LOAD_TIME = hmr_serve.keep("weights", _load_weights)

POSITIVE_WORDS = frozenset(
    {"good", "great", "excellent", "love", "like", "happy", "nice", "fast", "awesome", "fun"}
)
NEGATIVE_WORDS = frozenset(
    {"bad", "terrible", "awful", "hate", "dislike", "sad", "slow", "broken", "boring", "ugly"}
)


def predict(text: str) -> dict[str, object]:
    """Return a sentiment label and score for ``text``.

    The score is (positive words - negative words) / number of words, so it
    lies in [-1, 1]; the label is "positive", "negative" or "neutral".
    """
    words = [w.strip(".,!?;:\"'()").lower() for w in text.split()]
    words = [w for w in words if w]
    pos = sum(1 for w in words if w in POSITIVE_WORDS)
    neg = sum(1 for w in words if w in NEGATIVE_WORDS)
    score = (pos - neg) / len(words) if words else 0.0
    if score > 0:
        label = "positive"
    elif score < 0:
        label = "negative"
    else:
        label = "neutral"
    return {"label": label, "score": round(score, 4), "positive": pos, "negative": neg}
