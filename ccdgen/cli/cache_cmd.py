"""``ccdgen cache ls|clear|path [--kind KIND]``: inspect or empty the content-addressed cache."""

from __future__ import annotations

#: Every kind of cache entry ccdgen writes (the ``CACHE_KIND`` of the module that writes
#: it: :mod:`ccdgen.invariants.cached`, :mod:`ccdgen.codegen.compiled`,
#: :mod:`ccdgen.data.features`, :mod:`ccdgen.data.io`).  A module that adds a kind adds it
#: here; ``tests/test_error_sweep.py`` checks that none is missing.
CACHE_KINDS = ("invariants", "kernels", "features", "datasets")


def add_arguments(p) -> None:
    p.add_argument("action", choices=("ls", "clear", "path"), help="list entries, delete them, or print the folder")
    p.add_argument("--kind", default=None, choices=CACHE_KINDS,
                   help=f"only this kind of entry ({', '.join(CACHE_KINDS)})")


def run(args) -> int:
    from ..cache import cache_root, clear, list_entries
    from ..errors import SpecError

    if args.action == "path":
        if args.kind is not None:
            raise SpecError("--kind does not apply to 'cache path'",
                            fix=f"the folder of one kind is {cache_root()}/<kind>")
        print(cache_root())
        return 0
    if args.action == "clear":
        n = clear(args.kind)
        print(f"removed {n} cache entr{'y' if n == 1 else 'ies'} from {cache_root()}")
        return 0
    entries = list_entries(args.kind)
    print(f"cache: {cache_root()}  ({len(entries)} entries)")
    for e in entries:
        status = "ok" if e["ok"] else "CORRUPT"
        print(f"  {e['kind']:<11} {e['key'][:16]}  {e['bytes'] / 1024:8.1f} KiB  {status:<7} {e['describe']}")
    return 0
