"""``velo tasks``: list and inspect tasks."""

from __future__ import annotations


def add_parser(sub) -> None:
    p = sub.add_parser("tasks", help="list and inspect tasks")
    tsub = p.add_subparsers(dest="tasks_command", required=True, metavar="ACTION")
    lst = tsub.add_parser("list", help="list registered tasks")
    lst.set_defaults(func=list_tasks)


def list_tasks(args) -> int:
    import tasks

    for name in tasks.names():
        print(name)
    return 0
