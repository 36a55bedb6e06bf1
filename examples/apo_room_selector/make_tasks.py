"""Generate the room-selection tasks (train.jsonl, val.jsonl) from fixed seeds.

Each task lists a few meeting rooms and a request; the right answer is the smallest room that
seats everyone, has all the equipment asked for and, when asked, step-free access. The grader is
``exact``: the agent must reply with the room's name only. Run ``python make_tasks.py`` to rebuild.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

NAMES = ["Cedar", "Maple", "Birch", "Oak", "Willow", "Aspen", "Pine", "Elm", "Rowan", "Hazel", "Alder", "Juniper"]
EQUIPMENT = ["projector", "whiteboard", "video"]
SEATS = [2, 4, 6, 8, 10, 12, 16, 20]


def make_task(rng: random.Random) -> dict:
    while True:
        people = rng.randint(2, 14)
        needs = sorted(rng.sample(EQUIPMENT, rng.randint(0, 2)))
        step_free = rng.random() < 0.5
        rooms = [
            {"name": name, "seats": seats, "equipment": sorted(rng.sample(EQUIPMENT, rng.randint(0, 3))), "step_free": rng.random() < 0.5}
            for name, seats in zip(rng.sample(NAMES, 5), rng.sample(SEATS, 5))
        ]
        fitting = [
            r for r in rooms
            if r["seats"] >= people and set(needs) <= set(r["equipment"]) and (r["step_free"] or not step_free)
        ]
        if fitting:
            break
    answer = min(fitting, key=lambda r: r["seats"])["name"]
    lines = [
        f"Book a meeting room for {people} people. Equipment needed: {', '.join(needs) or 'none'}. "
        f"Step-free access required: {'yes' if step_free else 'no'}.",
        "Rooms:",
    ]
    lines += [
        f"- {r['name']}: {r['seats']} seats; equipment: {', '.join(r['equipment']) or 'none'}; step-free: {'yes' if r['step_free'] else 'no'}"
        for r in rooms
    ]
    lines.append("Reply with the room's name only.")
    return {"question": "\n".join(lines), "answer": answer, "grader": "exact"}


def main() -> None:
    here = Path(__file__).parent
    for split, seed, n in (("train", 11, 40), ("val", 22, 40)):
        rng = random.Random(seed)
        with open(here / f"{split}.jsonl", "w") as f:
            for i in range(n):
                f.write(json.dumps({"id": f"rooms-{split}-{i}", **make_task(rng)}) + "\n")


if __name__ == "__main__":
    main()
