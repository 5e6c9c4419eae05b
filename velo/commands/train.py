"""``velo train``: train one task with one optimizer and write ``run.json`` and ``curve.png``."""

from __future__ import annotations

import argparse

from velo.commands.args import choice_of, positive_float, positive_int


def add_parser(sub) -> None:
    import tasks
    from velo import optimizers

    p = sub.add_parser("train", help="train one task with one optimizer")
    p.add_argument("--task", required=True, type=choice_of(tasks.names(), "task"))
    p.add_argument(
        "--optimizer", required=True, type=choice_of(optimizers.names(), "optimizer")
    )
    p.add_argument("--lr", type=positive_float, default=None, help="learning rate (baselines)")
    p.add_argument("--checkpoint", default=None, help="learned-optimizer checkpoint path or name")
    p.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE",
                   help="optimizer hyperparameters, e.g. --set b1=0.95")
    p.add_argument("--steps", type=positive_int, default=None,
                   help="optimizer steps (default: the task's own step budget)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", required=True, help="directory for run.json and curve.png")
    p.add_argument("--tensorboard", nargs="?", const="", default=None, metavar="DIR",
                   help="also write the curves as TensorBoard event files, to DIR (default: "
                   "OUT/tensorboard); needs pip install 'velo[tensorboard]'")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import tasks
    from velo import optimizers, overrides, run_record
    from velo.train import train

    out = run_record.check_writable(args.out)
    board = None
    if args.tensorboard is not None:  # opened first: a missing extra fails before training
        from velo.tensorboard import open_writer

        board = open_writer(args.tensorboard or f"{out}/tensorboard")
    hparams = overrides.parse(args.set)
    task = tasks.get(args.task)
    args.steps = args.steps or task.default_steps
    opt = optimizers.make(
        args.optimizer, args.steps, learning_rate=args.lr, checkpoint=args.checkpoint,
        hparams=hparams,
    )
    result = train(task, opt, args.steps, args.seed, progress=True,
                   eval_params=optimizers.eval_params_fn(args.optimizer))
    config = {
        "task": args.task, "task_spec": dict(task.spec), "optimizer": args.optimizer,
        "lr": args.lr, "checkpoint": args.checkpoint, "hparams": hparams,
        "steps": args.steps, "seed": args.seed,
    }
    run_record.write_run(out, config, result.losses, result.test)
    if board is not None:
        for step, loss in enumerate(result.losses):
            board.add_scalar("train/loss", float(loss), step)
        for name, value in result.test.items():
            board.add_scalar(f"test/{name}", value, args.steps)
        board.close()
    tail = result.losses[-max(1, args.steps // 20):].mean()
    print(f"{args.task} / {args.optimizer}: final train loss {tail:.4f} "
          f"(mean of last {max(1, args.steps // 20)} steps)")
    for name, value in result.test.items():
        print(f"  test {name}: {value:.4f}")
    print(f"wrote {out}/run.json and {out}/curve.png")
    return 0
