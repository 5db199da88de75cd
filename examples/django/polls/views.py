"""A one-question poll kept in memory, so the example needs no migrations."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET, require_POST

QUESTION = "Which Python web framework do you use?"
CHOICES = ["Django", "Flask", "FastAPI", "Starlette"]
VOTES: dict[str, int] = dict.fromkeys(CHOICES, 0)


@require_GET
def index(request: HttpRequest) -> HttpResponse:
    return render(request, "polls/index.html", {"question": QUESTION, "choices": CHOICES})


@require_POST
def vote(request: HttpRequest) -> HttpResponse:
    choice = request.POST.get("choice", "")
    if choice not in VOTES:
        context = {
            "question": QUESTION,
            "choices": CHOICES,
            "error_message": "You didn't select a valid choice.",
        }
        return render(request, "polls/index.html", context, status=400)
    VOTES[choice] += 1
    return render(
        request,
        "polls/results.html",
        {"question": QUESTION, "choice": choice, "votes": VOTES},
    )
