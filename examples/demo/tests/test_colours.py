"""Colourful output: ANSI codes are kept and rendered in the browser."""

COLOURS = [31, 32, 33, 34, 35, 36]


def test_rainbow():
    for code in COLOURS:
        print(f"\033[{code}mcolour {code}\033[0m \033[1mbold\033[0m \033[4munderlined\033[0m")


def test_progress_bar():
    for pct in range(0, 101, 20):
        bar = "#" * (pct // 5)
        print(f"\033[36m[{bar:<20}] {pct:3d}%\033[0m", flush=True)
