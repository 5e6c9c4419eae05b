"""`TaskSpec`: the frozen, hashable, JSON-serialisable description a task is built from."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Iterator, Mapping
from typing import Any

from tasks import datasets, families

REPARAMS = ("none", "global", "tensor")
MAX_EXPONENT = 3  # reparameterisation scales span 10**-3 .. 10**3
MAX_LABEL_AUGMENTATION = 0.5
MAX_BATCH = 4096


@dataclasses.dataclass(frozen=True)
class TaskSpec(Mapping):
    """Everything that defines a task; equal specs build the same (cached) `Task`.

    A spec is also a read-only mapping of its JSON form, so ``dict(spec)`` is JSON-serialisable and
    ``TaskSpec.from_dict(dict(spec)) == spec``.

    Attributes:
      family: a key of `tasks.families.FAMILIES` (``mlp``, ``cnn``, ``autoencoder``, ``rnn``,
        ``transformer``, ``vit``, ``quadratic``).
      dataset: a name from `tasks.datasets.names()` or ``npz:/path/to/file.npz``.
      arch: the family's hyperparameters, e.g. ``{"hidden": [64, 64], "activation": "relu"}``;
        stored as sorted ``(name, value)`` pairs with lists as tuples, so the spec is hashable.
      batch_size: examples (or sequences) per minibatch; for the quadratic, the gradient noise is
        that of a mean over ``batch_size`` samples.
      reparam: ``"none"``, ``"global"`` (every parameter is ``10**reparam_exponent`` times the
        optimizer's variable) or ``"tensor"`` (each tensor gets its own power of ten, drawn from
        ``seed`` in ``[-|reparam_exponent|, |reparam_exponent|]``).
      reparam_exponent: integer in [-3, 3]; 0 unless ``reparam`` is set.
      label_smoothing: in [0, 0.5], for label and token targets.
      label_noise: fraction of training labels replaced by uniform random classes, in [0, 0.5].
      seed: data seed: the train/test split, synthetic data and per-tensor scales. Model
        initialisation and batches are not drawn from it but from the keys given to the task.
    """

    family: str
    dataset: str
    arch: Any
    batch_size: int
    reparam: str = "none"
    reparam_exponent: int = 0
    label_smoothing: float = 0.0
    label_noise: float = 0.0
    seed: int = 0

    def __post_init__(self):
        object.__setattr__(self, "arch", _freeze_arch(self.arch))
        for name in ("label_smoothing", "label_noise"):
            value = getattr(self, name)
            if isinstance(value, int) and not isinstance(value, bool):
                object.__setattr__(self, name, float(value))
        _validate(self)

    # Mapping view: the JSON form.
    def __getitem__(self, key: str) -> Any:
        if key not in FIELDS:
            raise KeyError(key)
        if key == "arch":
            return {k: list(v) if isinstance(v, tuple) else v for k, v in self.arch}
        return getattr(self, key)

    def __iter__(self) -> Iterator[str]:
        return iter(FIELDS)

    def __len__(self) -> int:
        return len(FIELDS)

    @property
    def arch_dict(self) -> dict[str, Any]:
        """The architecture hyperparameters as a dict (list values as tuples)."""
        return dict(self.arch)

    def to_json(self) -> str:
        """One-line JSON; `from_json` reads it back to an equal spec."""
        return json.dumps(dict(self))

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TaskSpec:
        """The spec described by ``data``, which must hold exactly the fields of a spec."""
        if not isinstance(data, Mapping):
            raise ValueError(f"a task spec must be a JSON object, got {type(data).__name__}")
        missing = [f for f in FIELDS if f not in data]
        extra = sorted(set(data) - set(FIELDS))
        if missing or extra:
            problems = []
            if missing:
                problems.append(f"missing field(s) {', '.join(missing)}")
            if extra:
                problems.append(f"unknown field(s) {', '.join(map(str, extra))}")
            raise ValueError(f"task spec has {' and '.join(problems)}; a spec has exactly the "
                             f"fields: {', '.join(FIELDS)}")
        return cls(**{f: data[f] for f in FIELDS})

    @classmethod
    def from_json(cls, text: str) -> TaskSpec:
        """The spec in the JSON object ``text`` (as written by `to_json`)."""
        try:
            data = json.loads(text)
        except json.JSONDecodeError as e:
            raise ValueError(f"task spec is not valid JSON: {e}") from None
        return cls.from_dict(data)

    def short_name(self) -> str:
        """``family_dataset_<8 hex digits of the spec's hash>``, stable across processes."""
        digest = hashlib.sha1(self.to_json().encode()).hexdigest()[:8]
        return f"{self.family}_{self.dataset.split(':')[0]}_{digest}"


FIELDS = tuple(f.name for f in dataclasses.fields(TaskSpec))


def _freeze_arch(arch: Any) -> tuple[tuple[str, Any], ...]:
    if isinstance(arch, tuple) and all(isinstance(p, tuple) and len(p) == 2 for p in arch):
        arch = dict(arch)
    if not isinstance(arch, Mapping):
        raise ValueError(f"task spec arch must be an object of hyperparameters, got {arch!r}")
    return tuple(sorted(
        (str(k), tuple(v) if isinstance(v, list | tuple) else v) for k, v in arch.items()
    ))


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _check_range(name: str, value: Any, lo: float, hi: float, integral: bool) -> None:
    ok_type = _is_int(value) if integral else isinstance(value, float)
    if not ok_type or not lo <= value <= hi:
        what = "an integer" if integral else "a number"
        raise ValueError(f"task spec {name} = {value!r} is out of range: expected {what} in "
                         f"[{lo}, {hi}]")


def _validate(spec: TaskSpec) -> None:
    family = families.get(spec.family)
    info = datasets.info(spec.dataset)
    if info.kind not in family.kinds:
        readable = [d for d in datasets.builtin_names() if datasets.info(d).kind in family.kinds]
        raise ValueError(f"family {spec.family!r} cannot read dataset {spec.dataset!r} (a "
                         f"{info.kind} dataset); it reads: {', '.join(readable)}")
    arch = spec.arch_dict
    missing = [k for k in family.arch if k not in arch]
    extra = sorted(set(arch) - set(family.arch))
    if missing or extra:
        raise ValueError(f"task spec arch for family {spec.family!r} must have exactly "
                         f"{', '.join(family.arch)}; missing: {', '.join(missing) or 'none'}, "
                         f"unknown: {', '.join(extra) or 'none'}")
    for key, field in family.arch.items():
        if not field.valid(arch[key]):
            shown = list(arch[key]) if isinstance(arch[key], tuple) else arch[key]
            raise ValueError(f"task spec arch.{key} = {shown!r} is out of range for family "
                             f"{spec.family!r}: expected {field.describe()}")
    problem = family.check(arch, info)
    if problem:
        raise ValueError(f"task spec arch for family {spec.family!r}: {problem}")
    _check_range("batch_size", spec.batch_size, 1, MAX_BATCH, integral=True)
    if spec.reparam not in REPARAMS:
        raise ValueError(f"task spec reparam = {spec.reparam!r}; choose one of: "
                         f"{', '.join(REPARAMS)}")
    _check_range("reparam_exponent", spec.reparam_exponent, -MAX_EXPONENT, MAX_EXPONENT, True)
    if spec.reparam == "none" and spec.reparam_exponent != 0:
        raise ValueError("task spec reparam_exponent must be 0 when reparam is 'none'")
    for name in ("label_smoothing", "label_noise"):
        _check_range(name, getattr(spec, name), 0.0, MAX_LABEL_AUGMENTATION, integral=False)
    takes_smoothing = info.target in ("labels", "tokens") and spec.family != "autoencoder"
    if spec.label_smoothing and not takes_smoothing:
        raise ValueError(f"task spec label_smoothing applies to classification and language "
                         f"models, not {spec.family!r} on {spec.dataset!r}; set it to 0")
    if spec.label_noise and not (takes_smoothing and info.target == "labels"):
        raise ValueError(f"task spec label_noise applies to classification only, not "
                         f"{spec.family!r} on {spec.dataset!r}; set it to 0")
    _check_range("seed", spec.seed, 0, 2**31 - 1, integral=True)
