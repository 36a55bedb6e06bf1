"""A scripted 'world' for the room-selection example, served by `ScriptedOpenAI`.

The agent's model applies a selection rule only when the system prompt mentions it (by keyword),
so a prompt that states more of the rules scores higher, deterministically. For each low-reward
trace it is shown, the critic names the rules the picked room breaks; the editor
adds the sentence for every rule the feedback names. This is the loop APO should climb: from the
seed prompt (no rules: the first room listed) to all four rules (every task right).
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from agl_core.types import Task

EXAMPLE_DIR = Path(__file__).resolve().parents[2] / "examples" / "apo_room_selector"
SEED_PROMPT = "You help people book meeting rooms. Reply with the name of one room."

RULES = ("capacity", "equipment", "step-free", "smallest")
SENTENCES = {
    "capacity": "Only consider rooms whose capacity covers everyone in the request.",
    "equipment": "The room must have all of the equipment the request needs.",
    "step-free": "When step-free access is required, only choose step-free rooms.",
    "smallest": "Of the rooms that qualify, book the smallest one.",
}
#: Sentences of the naive baseline's random rewrites: the rules and as many that do nothing.
DISTRACTORS = (
    "Be polite and concise.",
    "Think carefully before you answer.",
    "Prefer rooms with pleasant names.",
    "Double-check the room list.",
)

_ROOM = re.compile(r"^- (\w+): (\d+) seats; equipment: ([^;]*); step-free: (yes|no)$", re.M)


def load_tasks(split: str) -> list[Task]:
    rows = [json.loads(line) for line in (EXAMPLE_DIR / f"{split}.jsonl").read_text().splitlines() if line.strip()]
    return [Task(task_id=row["id"], input=row) for row in rows]


def rules_in(text: str) -> set[str]:
    lowered = text.lower()
    return {rule for rule in RULES if rule in lowered}


def parse(question: str) -> tuple[int, set[str], bool, list[tuple[str, int, set[str], bool]]]:
    """(people, equipment needed, step-free required, rooms as (name, seats, equipment, step-free))."""
    people = int(re.search(r"for (\d+) people", question).group(1))  # type: ignore[union-attr]
    needs_text = re.search(r"Equipment needed: ([^.]*)\.", question).group(1)  # type: ignore[union-attr]
    needs = set() if needs_text == "none" else {e.strip() for e in needs_text.split(",")}
    rooms = [
        (name, int(seats), set() if eq == "none" else {e.strip() for e in eq.split(",")}, sf == "yes")
        for name, seats, eq, sf in _ROOM.findall(question)
    ]
    return people, needs, "Step-free access required: yes" in question, rooms


def choose(question: str, rules: set[str]) -> str:
    people, needs, step_free, rooms = parse(question)
    if "capacity" in rules:
        rooms = [r for r in rooms if r[1] >= people]
    if "equipment" in rules:
        rooms = [r for r in rooms if needs <= r[2]]
    if "step-free" in rules and step_free:
        rooms = [r for r in rooms if r[3]]
    if not rooms:
        return "none"
    return min(rooms, key=lambda r: r[1])[0] if "smallest" in rules else rooms[0][0]


def broken_rules(question: str, chosen: str) -> list[str]:
    """The rules the chosen room breaks (``smallest`` when it qualifies but a smaller room does too)."""
    people, needs, step_free, rooms = parse(question)
    room = next((r for r in rooms if r[0] == chosen), None)
    if room is None:
        return []
    broken = [
        rule
        for rule, ok in (("capacity", room[1] >= people), ("equipment", needs <= room[2]), ("step-free", room[3] or not step_free))
        if not ok
    ]
    return broken or ["smallest"]


def compose(prompt: str, rules: set[str]) -> str:
    """`prompt` without any rule sentence, then the sentences of `rules` in a fixed order."""
    base = prompt
    for sentence in SENTENCES.values():
        base = base.replace(sentence, "")
    base = " ".join(base.split())
    return " ".join([base] + [SENTENCES[r] for r in RULES if r in rules])


def _between(text: str, tag: str) -> str:
    match = re.search(rf"<{tag}>\n?(.*?)\n?</{tag}>", text, re.S)
    return match.group(1) if match else ""


def critic(user: str) -> str:
    """Name every rule the rooms picked in the low-reward traces break, like a careful reviewer would."""
    named: list[str] = []
    for reward, task_json in re.findall(r"### Trace \d+ \(reward ([^)]+)\)\nTask input: (.*)", user):
        if reward == "1":
            continue
        question = json.loads(task_json)["question"]
        chosen = choose(question, rules_in(_between(user, "current_prompt")))
        named += [rule for rule in broken_rules(question, chosen) if rule not in named]
    if not named:
        return "The prompt works; no change is needed."
    return " ".join(f"A trace went wrong because the prompt says nothing about {rule}." for rule in named)


def editor(user: str) -> str:
    prompt = _between(user, "current_prompt")
    feedback = _between(user, "feedback")
    return f"<prompt>{compose(prompt, rules_in(prompt) | rules_in(feedback))}</prompt>"


def responder(body: dict[str, Any]) -> str:
    messages = body.get("messages") or []
    system = next((m["content"] for m in messages if m.get("role") == "system"), "")
    user = next((m["content"] for m in reversed(messages) if m.get("role") == "user"), "")
    if system.startswith("You critique"):
        return critic(user)
    if system.startswith("You edit"):
        return editor(user)
    if "planner" in system.lower():
        return "Plan: check every room against the request."
    return choose(user, rules_in(system))


def val_accuracy(prompt: str, tasks: list[Task]) -> float:
    """What a prompt scores on `tasks` in this world (for expectations in tests)."""
    rules = rules_in(prompt)
    return sum(choose(t.input["question"], rules) == t.input["answer"] for t in tasks) / len(tasks)


if __name__ == "__main__":  # the example README's offline stand-in: python -m tests.apo.scripted_rooms --port 8107
    import argparse
    import threading

    from tests.fixtures.scripted_openai import ScriptedOpenAI

    parser = argparse.ArgumentParser(description="The scripted room-selection world as an OpenAI-compatible endpoint.")
    parser.add_argument("--port", type=int, default=8107)
    with ScriptedOpenAI(responder, port=parser.parse_args().port) as server:
        print(f"scripted room-selection model, critic and editor at {server.base_url}", flush=True)
        threading.Event().wait()
