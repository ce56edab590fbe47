"""Reference trajectories of torch.optim.AdamW and torch.optim.SGD for @kiln/nn's tests.

Run with Debian's PyTorch:  /usr/bin/python3 packages/nn/scripts/make_adamw_reference.py
Writes packages/nn/test/fixtures/optim_reference.json.

The problem is a small deterministic non-quadratic loss over two parameters,
    loss = sum(0.5 * a * (p - t)^2 + 0.1 * p^3)   (summed over both parameters)
whose gradients autograd computes each step, so the test replays exactly the same loss in Kiln.
Every number below is given explicitly, so the fixture can be regenerated bit for bit.
"""
import json
import math
import os

import torch

STEPS = 20


def problem(dtype):
    def values(n, f):
        return [f(i) for i in range(n)]

    shapes = {"w": [3, 4], "b": [5]}
    init = {
        "w": values(12, lambda i: 0.5 * math.sin(0.7 * i + 0.3)),
        "b": values(5, lambda i: 0.25 * math.cos(1.3 * i) - 0.1),
    }
    a = {"w": values(12, lambda i: 0.5 + 0.1 * i), "b": values(5, lambda i: 2.0 - 0.3 * i)}
    t = {"w": values(12, lambda i: 0.2 * math.cos(0.9 * i)), "b": values(5, lambda i: -0.4 + 0.2 * i)}
    return shapes, init, a, t


def run(make_opt, dtype):
    shapes, init, a, t = problem(dtype)
    params = {n: torch.tensor(init[n], dtype=dtype).reshape(shapes[n]).requires_grad_(True) for n in shapes}
    at = {n: torch.tensor(a[n], dtype=dtype).reshape(shapes[n]) for n in shapes}
    tt = {n: torch.tensor(t[n], dtype=dtype).reshape(shapes[n]) for n in shapes}
    opt = make_opt(params)
    traj = []
    for _ in range(STEPS):
        opt.zero_grad(set_to_none=True)
        loss = sum((0.5 * at[n] * (params[n] - tt[n]) ** 2 + 0.1 * params[n] ** 3).sum() for n in shapes)
        loss.backward()
        opt.step()
        traj.append({n: params[n].detach().reshape(-1).tolist() for n in shapes})
    return traj


ADAMW = [
    {"name": "adamw_wd", "groups": None, "lr": 1e-2, "betas": [0.9, 0.999], "eps": 1e-8, "weight_decay": 1e-2},
    {"name": "adamw_betas", "groups": None, "lr": 5e-3, "betas": [0.8, 0.99], "eps": 1e-6, "weight_decay": 0.1},
    {
        "name": "adamw_groups",
        "groups": [{"params": ["w"], "lr": 2e-2}, {"params": ["b"], "weight_decay": 0.0}],
        "lr": 1e-2,
        "betas": [0.9, 0.999],
        "eps": 1e-8,
        "weight_decay": 1e-2,
    },
]

SGD = [
    {"name": "sgd_momentum", "lr": 0.05, "momentum": 0.9, "dampening": 0.0, "weight_decay": 1e-3, "nesterov": False},
    {"name": "sgd_nesterov", "lr": 0.05, "momentum": 0.8, "dampening": 0.0, "weight_decay": 0.0, "nesterov": True},
    {"name": "sgd_dampening", "lr": 0.02, "momentum": 0.5, "dampening": 0.1, "weight_decay": 0.01, "nesterov": False},
]


def adamw_factory(c):
    def make(params):
        if c["groups"] is None:
            groups = list(params.values())
        else:
            groups = [dict(g, params=[params[n] for n in g["params"]]) for g in c["groups"]]
        return torch.optim.AdamW(
            groups, lr=c["lr"], betas=tuple(c["betas"]), eps=c["eps"], weight_decay=c["weight_decay"], amsgrad=False
        )

    return make


def sgd_factory(c):
    def make(params):
        return torch.optim.SGD(
            list(params.values()),
            lr=c["lr"],
            momentum=c["momentum"],
            dampening=c["dampening"],
            weight_decay=c["weight_decay"],
            nesterov=c["nesterov"],
        )

    return make


def main():
    shapes, init, a, t = problem(torch.float64)
    out = {
        "torch_version": torch.__version__,
        "steps": STEPS,
        "shapes": shapes,
        "init": init,
        "a": a,
        "t": t,
        "adamw": [],
        "sgd": [],
    }
    for c in ADAMW:
        out["adamw"].append(
            dict(c, float64=run(adamw_factory(c), torch.float64), float32=run(adamw_factory(c), torch.float32))
        )
    for c in SGD:
        out["sgd"].append(dict(c, float64=run(sgd_factory(c), torch.float64), float32=run(sgd_factory(c), torch.float32)))
    path = os.path.join(os.path.dirname(__file__), "..", "test", "fixtures", "optim_reference.json")
    with open(path, "w") as f:
        json.dump(out, f, indent=1)
        f.write("\n")
    print("wrote", os.path.normpath(path))


if __name__ == "__main__":
    main()
