"""``python -m lib.rl`` reruns the RLVR chapter's recorded sweep (:mod:`lib.rl.artifacts`)."""

import argparse

from lib.rl import artifacts

parser = argparse.ArgumentParser(prog="python -m lib.rl", description=artifacts.__doc__.split("\n\n")[0])
parser.add_argument(
    "--steps", type=int, default=artifacts.STEPS, help="steps per run (a short run to try it)"
)
artifacts.main(parser.parse_args().steps)
