"""``python -m lib.zoo list`` lists the organisms; ``python -m lib.zoo train NAME`` retrains one."""

from __future__ import annotations

import argparse

from lib.zoo import ORGANISMS, manifest, recipe, train_and_save


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m lib.zoo", description="The book's model zoo.")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("list", help="list the organisms")
    t = sub.add_parser("train", help="train an organism and write lib/organisms/NAME/")
    t.add_argument("name", choices=list(ORGANISMS))
    args = parser.parse_args(argv)
    if args.command == "list":
        for name in ORGANISMS:
            print(f"{name}: {recipe(name).description}")
    else:
        dest = train_and_save(args.name)
        final = manifest(args.name)["final_metrics"]
        print(f"wrote {dest}: " + ", ".join(f"{k}={v:.4g}" for k, v in final.items()))


if __name__ == "__main__":
    main()
