"""``cryomat simulate KIND --out DIR --seed N``: ground-truth data plus truth.json."""

from __future__ import annotations

import ast

NAME = "simulate"
HELP = "write simulated data with known ground truth (truth.json); --list shows the kinds"


def add_arguments(p):
    p.add_argument("kind", nargs="?", help="simulator kind (see --list)")
    p.add_argument("--out", metavar="DIR", help="output folder")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument("--set", action="append", default=[], metavar="NAME=VALUE",
                   help="set a parameter of the kind, e.g. --set dose_per_frame=0.5 (repeatable)")
    p.add_argument("--list", action="store_true", help="list kinds and their parameters")


def _parse_value(text: str):
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


def run(args) -> int:
    from cryomat.progress import status
    from cryomat.simulate.registry import all_kinds, simulate

    from cryomat.simulate.registry import broken_modules

    kinds = all_kinds()
    if args.list or not args.kind:
        for name, k in kinds.items():
            print(f"{name}: {k.help}")
            for pname, default in k.parameters.items():
                print(f"    {pname} = {default!r}")
        for mod, why in broken_modules().items():
            print(f"(module {mod} could not be loaded: {why})")
        return 0
    if args.kind not in kinds:
        raise ValueError(f"unknown simulator kind {args.kind!r}; known kinds: {', '.join(kinds)} "
                         "(cryomat simulate --list shows their parameters)")
    if not args.out:
        raise ValueError("--out DIR is required")
    params = {}
    for item in args.set:
        if "=" not in item:
            raise ValueError(f"--set expects NAME=VALUE, got {item!r}")
        key, val = item.split("=", 1)
        params[key.strip().replace("-", "_")] = _parse_value(val.strip())
    truth = simulate(args.kind, args.out, seed=args.seed, **params)
    status(f"simulate {args.kind}: wrote {args.out} (truth.json has {len(truth)} keys)")
    return 0
