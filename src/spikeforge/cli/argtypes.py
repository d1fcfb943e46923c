"""argparse value types shared by the sub-commands: each rejects bad input with a message that
names the problem (argparse adds the flag's name). Defined with the experiment scaffold's flags."""

import argparse

from ..experiments.scaffold.cli import nonneg_int, number, positive_int, whole


def _seed_items(text: str) -> list[int]:
    out: list[int] = []
    for part in text.split(","):
        part = part.strip()
        if not part:
            continue
        try:
            if "-" in part:
                a, b = (int(x) for x in part.split("-", 1))
                if b < a:
                    raise ValueError
                out.extend(range(a, b + 1))
            else:
                out.append(int(part))
        except ValueError:
            raise argparse.ArgumentTypeError(f"seeds must look like 0,1,2 or 0-4 (got {text!r})") from None
    if not out or min(out) < 0:
        raise argparse.ArgumentTypeError(f"seeds must be non-negative integers, e.g. 0,1,2 or 0-4 (got {text!r})")
    return out


def seed_set(text: str) -> list[int]:
    """``0,1,2`` or ``0-4`` or a mix (``0-2,7``): the distinct seeds, sorted."""
    return sorted(set(_seed_items(text)))


def seed_list(text: str) -> list[int]:
    """Like :func:`seed_set`, in the order given, and a seed named twice is an error."""
    seeds = _seed_items(text)
    twice = sorted({s for s in seeds if seeds.count(s) > 1})
    if twice:
        raise argparse.ArgumentTypeError(
            f"seed(s) {', '.join(map(str, twice))} given twice in {text!r}: name each seed once"
        )
    return seeds


__all__ = ["nonneg_int", "number", "positive_int", "seed_list", "seed_set", "whole"]
