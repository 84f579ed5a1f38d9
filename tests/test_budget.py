"""Budget forcing: the state machine on scripted token streams, then inside transformers'
generate on a tiny model whose wish to stop is scripted step by step."""

import pytest
import torch
from pydantic import ValidationError
from transformers import LogitsProcessor, LogitsProcessorList

from handful.budget import ANSWERING, THINKING, Budget, Forcer

# A toy vocabulary: one token per character; "<" starts the closing delimiter, "$" ends.
CLOSE, EOS = "</t>", "$"


def encode(text):
    return [ord(c) for c in text]


def run(budget, wishes, limit=200):
    """Drive a Forcer with what the 'model' wants whenever it is free to choose: '.' and
    letters are text, '<' would start the closing delimiter, '$' would end the sequence."""
    f = Forcer(budget, encode, CLOSE)
    out = []
    wishes = iter(wishes)
    while len(out) < limit:
        forced = f.next_forced()
        if forced is None:
            wish = next(wishes, "$")
            if f.state == THINKING and wish in "<$":
                f.attempt_stop(ending=wish == "$")
                forced = f.next_forced()
            elif wish == "$":
                break
        token = forced if forced is not None else ord(wish)
        out.append(token)
        f.observe(token)
    return "".join(map(chr, out)), f


def thinking_part(text):
    return text.split(CLOSE)[0] if CLOSE in text else text


def test_no_budget_lets_the_model_close():
    text, f = run(Budget(), "...<ab$")
    assert text == "..." + CLOSE + "ab" and f.thinking_tokens == 3 and not f.forced_cut and f.waits == 0


def test_min_only_refuses_early_stops_with_wait():
    text, f = run(Budget(min_thinking_tokens=10, continuation="W"), "..<...<..<ab$")
    assert text == "..\nW...\nW.." + CLOSE + "ab"  # the third stop, at 11 thinking tokens, is let through
    assert f.thinking_tokens == 11 and f.waits == 2 and not f.forced_cut


def test_max_only_cuts_exactly_at_the_budget():
    text, f = run(Budget(max_thinking_tokens=7, answer_prefix=" A:"), "." * 50)
    assert text.startswith("......." + CLOSE + " A:")
    assert f.thinking_tokens == 7 and f.forced_cut


def test_min_and_max_together():
    # The first stop (2 tokens) is refused with "\nW" (2 more); the second, at 6 >= 5, closes.
    text, f = run(Budget(min_thinking_tokens=5, max_thinking_tokens=9, continuation="W"), "..<..<..<...")
    assert text == "..\nW.." + CLOSE + "..<..."
    assert f.thinking_tokens == 6 and f.waits == 1 and not f.forced_cut


def test_max_waits_refuses_that_many_stops_even_past_the_minimum():
    text, f = run(Budget(max_waits=2, continuation="W"), "..<..<..<ab$")
    assert thinking_part(text) == "..\nW..\nW.." and f.waits == 2 and not f.forced_cut


def test_a_wait_that_does_not_fit_becomes_the_cut():
    text, f = run(Budget(min_thinking_tokens=6, max_thinking_tokens=6, continuation="Wait"), "....<....")
    assert thinking_part(text) == "...." and f.forced_cut and f.waits == 0  # "\nWait" (5) would overflow 6


def test_budget_smaller_than_the_delimiter():
    text, f = run(Budget(max_thinking_tokens=0, answer_prefix=""), "....")
    assert text.startswith(CLOSE) and f.thinking_tokens == 0 and f.forced_cut


def test_ending_without_closing_thinking_gets_an_answer_part():
    text, f = run(Budget(answer_prefix=" A:"), "...$...")
    assert text.startswith("..." + CLOSE + " A:") and f.forced_cut


def run_text(budget, pieces):
    """Drive a Forcer piece by piece, as the server engine does: each piece is one request's
    answer, ('...', 'stop') when it stopped by itself or ('...', 'length') at its token limit.
    One character is one token, as in `run`."""
    f = Forcer.over_text(budget, len, CLOSE)
    text, pieces = "", iter(pieces)
    while f.owed() is None:
        piece, finish = next(pieces, (".", "stop"))
        text += piece
        f.add_thinking(len(piece))
        if finish == "length":
            f.cut()
        else:
            f.attempt_stop(ending=False)
        text += f.take_continuation()
    return text + f.take(), f


@pytest.mark.parametrize(
    "budget, wishes, pieces",
    [
        (Budget(), "...<ab$", [("...", "stop")]),
        (
            Budget(min_thinking_tokens=10, continuation="W"),
            "..<...<..<ab$",
            [("..", "stop"), ("...", "stop"), ("..", "stop")],
        ),
        (Budget(max_thinking_tokens=7, answer_prefix=" A:"), "." * 50, [("." * 7, "length")]),
        (
            Budget(min_thinking_tokens=5, max_thinking_tokens=9, continuation="W"),
            "..<..<..<...",
            [("..", "stop"), ("..", "stop")],
        ),
        (Budget(max_waits=2, continuation="W"), "..<..<..<ab$", [("..", "stop")] * 3),
        (Budget(min_thinking_tokens=6, max_thinking_tokens=6, continuation="Wait"), "....<....", [("....", "stop")]),
        (Budget(max_thinking_tokens=0, answer_prefix=""), "....", []),
    ],
)
def test_text_and_tokens_force_the_same(budget, wishes, pieces):
    """One state machine: driven piece by piece it writes the same thinking, and counts the
    same, as driven token by token."""
    by_tokens, f = run(budget, wishes)
    by_text, g = run_text(budget, pieces)
    end = len(CLOSE) + (len(budget.answer_prefix) if f.forced_cut else 0)
    assert by_text == by_tokens[: by_tokens.index(CLOSE) + end]
    assert (g.thinking_tokens, g.waits, g.forced_cut) == (f.thinking_tokens, f.waits, f.forced_cut)


def test_a_refused_stop_owes_the_continuation_as_text_counted_as_thinking():
    f = Forcer.over_text(Budget(min_thinking_tokens=10, continuation="Wait"), len, CLOSE)
    f.add_thinking(3)
    assert f.owed() is None  # free to think on
    f.attempt_stop(ending=False)
    assert f.owed() == "\nWait" and f.thinking_tokens == 3 and f.waits == 1
    assert f.take_continuation() == "\nWait" and f.thinking_tokens == 8
    assert f.owed() is None and f.take_continuation() == "" and f.take() == ""


def test_the_end_of_thinking_is_left_for_take():
    f = Forcer.over_text(Budget(), len, CLOSE)
    f.add_thinking(4)
    f.attempt_stop(ending=False)  # no minimum: a natural close
    assert f.state == ANSWERING and f.owed() == CLOSE
    assert f.take_continuation() == "" and f.owed() == CLOSE  # not a continuation: left in place
    assert f.take() == CLOSE and f.owed() is None and f.thinking_tokens == 4 and not f.forced_cut


def test_owed_cuts_thinking_that_has_no_room_left():
    f = Forcer.over_text(Budget(max_thinking_tokens=5, answer_prefix=" A:"), len, CLOSE)
    f.add_thinking(4)
    assert f.owed() is None and not f.forced_cut  # one more token fits
    f.add_thinking(1)
    assert f.owed() == CLOSE + " A:" and f.forced_cut and f.state == ANSWERING
    assert f.take() == CLOSE + " A:" and f.thinking_tokens == 5


def test_a_continuation_is_counted_by_count_not_by_characters():
    f = Forcer.over_text(Budget(min_thinking_tokens=3, max_thinking_tokens=4, continuation="Wait"), lambda t: 1, CLOSE)
    f.add_thinking(2)
    f.attempt_stop(ending=False)  # "\nWait" is one token here, so it fits in what is left
    assert f.take_continuation() == "\nWait" and f.thinking_tokens == 3 and f.waits == 1


def test_a_forcer_is_driven_one_way_only():
    with pytest.raises(TypeError, match="piece by piece"):
        Forcer.over_text(Budget(), len, CLOSE).next_forced()
    with pytest.raises(TypeError, match="token by token"):
        Forcer(Budget(), encode, CLOSE).add_thinking(1)
    with pytest.raises(TypeError):
        Forcer(Budget(), encode, CLOSE, count=len)
    with pytest.raises(AttributeError):
        Forcer(Budget(), encode, CLOSE).thinking_tokens = 3  # counted by the Forcer only


def test_min_above_max_is_refused():
    with pytest.raises(ValidationError, match="exceeds max_thinking_tokens"):
        Budget(min_thinking_tokens=10, max_thinking_tokens=5)


class Scripted(LogitsProcessor):
    """Makes one token the model's clear favourite at chosen steps of generation."""

    def __init__(self, width, plan):
        self.width, self.plan = width, plan

    def __call__(self, input_ids, scores):
        token = self.plan.get(input_ids.shape[1] - self.width)
        if token is not None:
            scores[:, token] = scores.max() + 100
        return scores


@pytest.fixture(scope="module")
def tiny(tiny_model):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    return AutoModelForCausalLM.from_pretrained(tiny_model), AutoTokenizer.from_pretrained(tiny_model)


def _generate(tiny, budget, plan, max_new=80, stop=(), close="</think>"):
    from handful.engines.hf_budget import BudgetProcessor

    model, tok = tiny
    enc = tok(
        ["<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n<think>"] * 2,
        return_tensors="pt",
        add_special_tokens=False,
    )
    width = enc["input_ids"].shape[1]
    forcing = BudgetProcessor(budget, tok, close, 2, width, {tok.eos_token_id}, list(stop))
    with torch.inference_mode():
        out = model.generate(
            **enc,
            max_new_tokens=max_new,
            do_sample=False,
            pad_token_id=tok.pad_token_id,
            eos_token_id=tok.eos_token_id,
            logits_processor=LogitsProcessorList([Scripted(width, plan), forcing]),
        )
    ids = out[0, width:].tolist()
    if tok.eos_token_id in ids:
        ids = ids[: ids.index(tok.eos_token_id)]
    return tok.decode(ids), ids, forcing.forcers[0]


def _thinking_tokens(tok, ids, text, close="</think>"):
    """Counted from the ids, as the engine records it (random text need not re-tokenize the same)."""
    from handful.engines.base import thinking_token_count
    from handful.models import ModelSpec

    spec = ModelSpec(open_thinking=True, think_close=close)
    return thinking_token_count(lambda k: tok.decode(ids[:k]), len(ids), text, spec)


def test_in_generate_min_and_max(tiny):
    _, tok = tiny
    close_first = tok("</think>", add_special_tokens=False)["input_ids"][0]
    budget = Budget(min_thinking_tokens=12, max_thinking_tokens=30)
    text, ids, f = _generate(tiny, budget, {3: close_first, 8: tok.eos_token_id})  # tries to stop twice, early
    assert f.waits == 2 and f.forced_cut and f.thinking_tokens == 30
    assert text.count("\nWait") == 2 and "</think>\n\nFinal Answer:" in text
    assert _thinking_tokens(tok, ids, text) == 30


def test_in_generate_a_natural_close_after_the_minimum(tiny):
    _, tok = tiny
    close_first = tok("</think>", add_special_tokens=False)["input_ids"][0]
    text, ids, f = _generate(tiny, Budget(min_thinking_tokens=4, max_thinking_tokens=50), {6: close_first})
    assert f.waits == 0 and not f.forced_cut and f.thinking_tokens == 6
    assert "</think>" in text and "Final Answer" not in text and _thinking_tokens(tok, ids, text) == 6


def test_a_token_that_holds_a_one_character_delimiter_is_a_stop_too(tiny):
    """With a line break as the end of thinking, ".\n" or "\n\n" would close it as surely as "\n"
    itself: before the minimum such a token is refused like the delimiter."""
    _, tok = tiny
    holder = next(i for i in range(len(tok)) if "\n" in tok.decode([i]) and tok.decode([i]) != "\n")
    text, ids, f = _generate(tiny, Budget(min_thinking_tokens=12, max_thinking_tokens=30), {3: holder}, close="\n")
    assert f.waits >= 1
    assert _thinking_tokens(tok, ids, text, close="\n") >= 12, text


def test_in_generate_stop_strings_do_not_end_thinking(tiny):
    free, _, _ = _generate(tiny, Budget(max_thinking_tokens=20), {})
    word = free.split("</think>")[0][-8:]  # text the model writes inside its thinking
    text, _, f = _generate(tiny, Budget(max_thinking_tokens=20), {}, stop=[word])
    assert f.forced_cut and "</think>" in text
