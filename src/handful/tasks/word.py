"""GSM8K-style word problems from templates, with fresh names and numbers every draw
(GSM-Symbolic), and a variant with an irrelevant sentence added (GSM-NoOp): a score that
holds on GSM8K but drops here points at memorisation, not skill.

Difficulty is the number of reasoning steps (events in the story)."""

from __future__ import annotations

import random

from handful.tasks.core import Worked

PEOPLE = [
    ("Ana", "she"),
    ("Bruno", "he"),
    ("Chen", "he"),
    ("Dalia", "she"),
    ("Emeka", "he"),
    ("Farah", "she"),
    ("Goran", "he"),
    ("Hana", "she"),
    ("Ines", "she"),
    ("Jamal", "he"),
    ("Kofi", "he"),
    ("Lena", "she"),
    ("Mateo", "he"),
    ("Nadia", "she"),
    ("Olu", "he"),
    ("Priya", "she"),
    ("Quinn", "she"),
    ("Rafael", "he"),
    ("Sana", "she"),
    ("Tomas", "he"),
    ("Uma", "she"),
    ("Viktor", "he"),
    ("Wen", "she"),
    ("Yusuf", "he"),
    ("Zara", "she"),
    ("Aiko", "she"),
    ("Bilal", "he"),
    ("Carmen", "she"),
]
GOODS = [
    ("notebook", "notebooks"),
    ("pencil", "pencils"),
    ("apple", "apples"),
    ("mug", "mugs"),
    ("ticket", "tickets"),
    ("candle", "candles"),
    ("sandwich", "sandwiches"),
    ("plant", "plants"),
    ("scarf", "scarves"),
    ("puzzle", "puzzles"),
    ("battery", "batteries"),
    ("bowl", "bowls"),
]
THINGS = ["stickers", "marbles", "stamps", "trading cards", "seashells", "postcards", "beads", "coins"]
EXPENSES = ["groceries", "a bus pass", "a gift", "books", "rent for a stall", "paint", "a phone bill", "shoes"]
DAYS = ["On Monday", "On Tuesday", "On Wednesday", "On Thursday", "On Friday", "On Saturday", "On Sunday"]


def _person(rng: random.Random, *taken: str) -> tuple[str, str]:
    return rng.choice([p for p in PEOPLE if p[0] not in taken])


def shopping(rng: random.Random, steps: int) -> tuple[str, str, list[str], int, str]:
    name, pronoun = _person(rng)
    goods = rng.sample(GOODS, steps)
    bought, lines, total = [], [], 0
    for _, plural in goods:
        quantity, price = rng.randint(2, 12), rng.randint(2, 25)
        bought.append(f"{quantity} {plural} at ${price} each")
        lines.append(f"The {plural} cost {quantity} × ${price} = ${quantity * price}.")
        if total:
            lines.append(f"Running total: ${total} + ${quantity * price} = ${total + quantity * price}.")
        total += quantity * price
    paid = (total // 50 + 1 + rng.randint(0, 1)) * 50
    listed = bought[0] if len(bought) == 1 else ", ".join(bought[:-1]) + " and " + bought[-1]
    story = f"{name} buys {listed}. {pronoun.capitalize()} pays with ${paid}."
    lines.append(f"The change is ${paid} - ${total} = ${paid - total}.")
    return story, f"How much change, in dollars, does {name} get?", lines, paid - total, name


def collection(rng: random.Random, steps: int) -> tuple[str, str, list[str], int, str]:
    name, pronoun = _person(rng)
    things = rng.choice(THINGS)
    have = rng.randint(10, 80)
    sentences, lines = [f"{name} has {have} {things}."], []
    for day in DAYS[:steps]:
        kind = rng.choice(["gain", "give", "packs"] if have > 2 else ["gain", "packs"])
        if kind == "gain":
            more = rng.randint(3, 40)
            sentences.append(f"{day}, {pronoun} finds {more} more.")
            lines.append(f"{day}: {have} + {more} = {have + more}.")
            have += more
        elif kind == "give":
            friend, _ = _person(rng, name)
            less = rng.randint(1, have - 1)
            sentences.append(f"{day}, {pronoun} gives {less} to {friend}.")
            lines.append(f"{day}: {have} - {less} = {have - less}.")
            have -= less
        else:
            packs, each = rng.randint(2, 6), rng.randint(3, 12)
            sentences.append(f"{day}, {pronoun} buys {packs} packs with {each} {things} in each pack.")
            lines.append(
                f"{day}: {packs} × {each} = {packs * each} new, and {have} + {packs * each} = {have + packs * each}."
            )
            have += packs * each
    return " ".join(sentences), f"How many {things} does {name} have at the end?", lines, have, name


def earnings(rng: random.Random, steps: int) -> tuple[str, str, list[str], int, str]:
    name, pronoun = _person(rng)
    rate, hours, days = rng.randint(8, 30), rng.randint(2, 8), rng.randint(2, 6)
    left = rate * hours * days
    sentences = [f"{name} earns ${rate} an hour and works {hours} hours a day for {days} days."]
    lines = [f"Per day: {hours} × ${rate} = ${rate * hours}.", f"In {days} days: {days} × ${rate * hours} = ${left}."]
    for expense in rng.sample(EXPENSES, steps - 1):
        if left % 4 == 0 and rng.random() < 0.4:
            sentences.append(f"{pronoun.capitalize()} then puts a quarter of what is left into savings.")
            lines.append(f"A quarter of ${left} is ${left // 4}, leaving ${left} - ${left // 4} = ${left - left // 4}.")
            left -= left // 4
        else:
            cost = rng.randint(1, max(1, left // 3))
            sentences.append(f"{pronoun.capitalize()} then spends ${cost} on {expense}.")
            lines.append(f"After {expense}: ${left} - ${cost} = ${left - cost}.")
            left -= cost
    return " ".join(sentences), f"How many dollars does {name} have left?", lines, left, name


FAMILIES = [shopping, collection, earnings]


def distractor(rng: random.Random, name: str) -> tuple[str, str]:
    """An irrelevant sentence with a number in it, and the line that sets it aside."""
    relative, _ = _person(rng, name)
    n = rng.randint(2, 40)
    sentence, subject = rng.choice(
        [
            (f"{name}'s cousin {relative} is {n} years older than {name}.", "the cousin's age"),
            (f"The shop is {n} minutes' walk from {name}'s home.", "the walk to the shop"),
            (f"{n} of the items are wrapped in blue paper.", "the blue paper"),
            (f"Last year, {name} did the same thing {n} times.", "last year"),
        ]
    )
    return sentence, f"The sentence about {subject} does not change the answer, so it is set aside."


def template(rng: random.Random, steps: int, noise: bool = False) -> Worked:
    family = rng.choice(FAMILIES)
    story, ask, lines, answer, name = family(rng, steps)
    if noise:
        sentence, aside = distractor(rng, name)
        story = f"{story} {sentence}"
        lines = [aside, *lines]
    # The trace's last line states the result; the answer is the simulated state itself.
    traced = lines[-1].rsplit("= ", 1)[1].rstrip(".").lstrip("$")
    return Worked(
        question=f"{story} {ask}", answer=str(answer), steps=lines, traced=traced, facts={"family": family.__name__}
    )


def template_noise(rng: random.Random, steps: int) -> Worked:
    return template(rng, steps, noise=True)
