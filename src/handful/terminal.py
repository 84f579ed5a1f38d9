"""Text from users and models, made safe to show: control characters are shown, not obeyed.

A benchmark name, a path or a model's output can hold escape sequences (clear the screen,
set the window title) or rich markup (`[/]`, `[test]`). Everything that did not come from
handful itself reaches the terminal through `visible`; the CLI, which alone prints, also
turns it into rich Text that is never read as markup.
"""

from __future__ import annotations

import re

# C0 and C1 controls except newline and tab, and the bidirectional overrides that reorder text.
_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


def visible(text: object) -> str:
    return _CONTROL.sub(lambda m: m.group().encode("unicode_escape").decode("ascii"), str(text))
