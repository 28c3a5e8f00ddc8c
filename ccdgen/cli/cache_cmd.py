"""``ccdgen cache ls|clear [--kind KIND]``: inspect or empty the content-addressed cache."""

from __future__ import annotations


def add_arguments(p) -> None:
    p.add_argument("action", choices=("ls", "clear", "path"), help="list entries, delete them, or print the folder")
    p.add_argument("--kind", default=None, help="only this kind of entry (invariants, kernels)")


def run(args) -> int:
    from ..cache import cache_root, clear, list_entries

    if args.action == "path":
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
