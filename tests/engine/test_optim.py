"""Optimizers against the torch.optim doc formulas written out plainly, state round-trips,
config files; gradient clipping."""

import inspect
from pathlib import Path

import numpy as np
import pytest
from omegaconf import OmegaConf

from rnnlab.engine import clip
from rnnlab.engine.optim import OPTIMIZERS, make_optimizer

CONF = Path(__file__).resolve().parents[2] / "conf" / "optim"
SHAPES = {"w": (3, 4), "layer.0.b": (4,)}  # a dotted name, as the models use


def _start(seed=0, dtype=np.float64):
    rng = np.random.default_rng(seed)
    params = {k: rng.standard_normal(s).astype(dtype) for k, s in SHAPES.items()}
    grads = [{k: rng.standard_normal(s).astype(dtype) for k, s in SHAPES.items()}
             for _ in range(5)]
    return params, grads


# ---------------------------------------------------------------- reference formulas
# One parameter array at a time, t = 1..5, exactly as printed in the torch.optim docs.


def ref_sgd(theta, gs, lr=0.01, momentum=0.0, dampening=0.0, weight_decay=0.0,
            nesterov=False):
    b = None
    for g in gs:
        g = g + weight_decay * theta
        if momentum:
            b = g if b is None else momentum * b + (1 - dampening) * g
            g = g + momentum * b if nesterov else b
        theta = theta - lr * g
    return theta


def ref_rmsprop(theta, gs, lr=0.001, alpha=0.99, eps=1e-8, momentum=0.0, centered=False,
                weight_decay=0.0):
    v = g_ave = b = 0.0
    for g in gs:
        g = g + weight_decay * theta
        v = alpha * v + (1 - alpha) * g**2
        v_tilde = v
        if centered:
            g_ave = alpha * g_ave + (1 - alpha) * g
            v_tilde = v_tilde - g_ave**2
        if momentum > 0:
            b = momentum * b + g / (np.sqrt(v_tilde) + eps)
            theta = theta - lr * b
        else:
            theta = theta - lr * g / (np.sqrt(v_tilde) + eps)
    return theta


def ref_adam(theta, gs, lr=0.001, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0,
             amsgrad=False, decoupled=False):
    b1, b2 = betas
    m = v = v_max = 0.0
    for t, g in enumerate(gs, start=1):
        if decoupled:
            theta = theta - lr * weight_decay * theta
        else:
            g = g + weight_decay * theta
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g**2
        m_hat = m / (1 - b1**t)
        if amsgrad:
            v_max = np.maximum(v_max, v)
            v_hat = v_max / (1 - b2**t)
        else:
            v_hat = v / (1 - b2**t)
        theta = theta - lr * m_hat / (np.sqrt(v_hat) + eps)
    return theta


def ref_adagrad(theta, gs, lr=0.01, lr_decay=0.0, eps=1e-10, initial_accumulator_value=0.0,
                weight_decay=0.0):
    state_sum = initial_accumulator_value
    for t, g in enumerate(gs, start=1):
        lr_t = lr / (1 + (t - 1) * lr_decay)
        g = g + weight_decay * theta
        state_sum = state_sum + g**2
        theta = theta - lr_t * g / (np.sqrt(state_sum) + eps)
    return theta


def ref_nadam(theta, gs, lr=0.002, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0,
              momentum_decay=0.004):
    b1, b2 = betas
    m = v = 0.0
    mus = [None] + [b1 * (1 - 0.5 * 0.96 ** (i * momentum_decay)) for i in range(1, 8)]
    for t, g in enumerate(gs, start=1):
        g = g + weight_decay * theta
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g**2
        m_hat = (mus[t + 1] * m / (1 - np.prod(mus[1:t + 2]))
                 + (1 - mus[t]) * g / (1 - np.prod(mus[1:t + 1])))
        v_hat = v / (1 - b2**t)
        theta = theta - lr * m_hat / (np.sqrt(v_hat) + eps)
    return theta


CASES = [
    ("sgd", {}, ref_sgd, {}),
    ("sgd", {"lr": 0.1, "weight_decay": 0.05}, ref_sgd, {}),
    ("momentum", {}, ref_sgd, {"momentum": 0.9}),
    ("momentum", {"momentum": 0.5, "dampening": 0.3, "weight_decay": 0.1}, ref_sgd, {}),
    ("nesterov", {}, ref_sgd, {"momentum": 0.9, "nesterov": True}),
    ("nesterov", {"lr": 0.05, "momentum": 0.7, "weight_decay": 0.1}, ref_sgd,
     {"nesterov": True}),
    ("rmsprop", {}, ref_rmsprop, {}),
    ("rmsprop", {"centered": True, "weight_decay": 0.1}, ref_rmsprop, {}),
    ("rmsprop", {"momentum": 0.8, "alpha": 0.9}, ref_rmsprop, {}),
    ("rmsprop", {"momentum": 0.8, "centered": True, "eps": 1e-3}, ref_rmsprop, {}),
    ("adam", {}, ref_adam, {}),
    ("adam", {"betas": (0.8, 0.95), "weight_decay": 0.1, "amsgrad": True}, ref_adam, {}),
    ("adamw", {}, ref_adam, {"weight_decay": 0.01, "decoupled": True}),
    ("adamw", {"lr": 0.05, "weight_decay": 0.2, "amsgrad": True}, ref_adam,
     {"decoupled": True}),
    ("adagrad", {}, ref_adagrad, {}),
    ("adagrad", {"lr_decay": 0.1, "initial_accumulator_value": 0.5, "weight_decay": 0.1},
     ref_adagrad, {}),
    ("nadam", {}, ref_nadam, {}),
    ("nadam", {"lr": 0.01, "betas": (0.8, 0.99), "weight_decay": 0.1,
               "momentum_decay": 0.01}, ref_nadam, {}),
]


@pytest.mark.parametrize(("name", "kwargs", "ref", "ref_extra"), CASES,
                         ids=[f"{c[0]}-{i}" for i, c in enumerate(CASES)])
def test_five_steps_match_reference(name, kwargs, ref, ref_extra):
    params, grads = _start()
    expected = {k: ref(v.copy(), [g[k] for g in grads], **{**kwargs, **ref_extra})
                for k, v in params.items()}
    opt = make_optimizer(name, **kwargs)
    arrays = dict(params)  # keep the array objects: they must be updated in place
    grads_before = [{k: g.copy() for k, g in gs.items()} for gs in grads]
    for gs in grads:
        opt.step(params, gs)
    for k in params:
        assert params[k] is arrays[k]
        np.testing.assert_allclose(params[k], expected[k], rtol=1e-12, atol=1e-14)
    for gs, g0 in zip(grads, grads_before, strict=True):
        for k in gs:
            np.testing.assert_array_equal(gs[k], g0[k])  # gradients never written
    assert opt.t == 5


def test_lr_override_is_per_step():
    params, grads = _start()
    p2 = {k: v.copy() for k, v in params.items()}
    a, b = make_optimizer("adam", lr=0.5), make_optimizer("adam", lr=0.1)
    for gs in grads:
        a.step(params, gs, lr=0.1)
        b.step(p2, gs)
    for k in params:
        np.testing.assert_array_equal(params[k], p2[k])
    assert a.lr == 0.5


@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_state_dict_round_trip_via_npz(name, tmp_path):
    kwargs = {"rmsprop": {"centered": True, "momentum": 0.5},
              "adam": {"amsgrad": True}}.get(name, {})
    params, grads = _start(1, np.float32)
    opt = make_optimizer(name, **kwargs)
    for gs in grads[:3]:
        opt.step(params, gs)
    sd = opt.state_dict()
    assert sd["step"].shape == () and int(sd["step"]) == 3
    assert all(type(v) is np.ndarray for v in sd.values())
    slot_keys = [k for k in sd if k.count(".") >= 2]
    if name != "sgd":
        assert slot_keys and all(k.startswith(f"{name}.") for k in slot_keys)
        assert any(k.endswith(".layer.0.b") for k in slot_keys)
        assert all(sd[k].dtype == np.float32 for k in slot_keys)
    np.savez(tmp_path / "opt.npz", **sd)
    with np.load(tmp_path / "opt.npz", allow_pickle=False) as f:
        loaded = {k: f[k] for k in f.files}

    resumed = make_optimizer(name, **kwargs)
    resumed.load_state_dict(loaded)
    p2 = {k: v.copy() for k, v in params.items()}
    for gs in grads[3:]:
        opt.step(params, gs)
        resumed.step(p2, gs)
    for k in params:
        np.testing.assert_array_equal(params[k], p2[k])
        assert params[k].dtype == np.float32
    # The saved dict is a snapshot: later steps did not write into it.
    for k, v in sd.items():
        np.testing.assert_array_equal(v, loaded[k])


def test_load_state_dict_rejects_foreign_state():
    params, grads = _start()
    adam = make_optimizer("adam")
    adam.step(params, grads[0])
    with pytest.raises(ValueError, match="does not belong to optimizer 'rmsprop'"):
        make_optimizer("rmsprop").load_state_dict(adam.state_dict())
    ams = make_optimizer("adam", amsgrad=True)
    ams.step(params, grads[0])
    with pytest.raises(ValueError, match="v_max"):
        adam.load_state_dict(ams.state_dict())


@pytest.mark.parametrize(("name", "kwargs", "message"), [
    ("sgd", {"lr": -1.0}, r"optim.lr must be > 0 \(got -1.0\)"),
    ("adam", {"lr": 0}, r"optim.lr must be > 0 \(got 0.0\)"),
    ("adam", {"betas": (0.9, 1.0)}, r"optim.betas must be two values in \[0, 1\)"),
    ("nadam", {"betas": (0.9,)}, r"optim.betas must be two values in \[0, 1\)"),
    ("momentum", {"momentum": 1.0}, r"optim.momentum must be in \[0, 1\) \(got 1.0\)"),
    ("nesterov", {"momentum": 0.0}, r"optim.momentum must be in \(0, 1\)"),
    ("momentum", {"dampening": 2.0}, r"optim.dampening must be in \[0, 1\]"),
    ("rmsprop", {"alpha": -0.1}, r"optim.alpha must be in \[0, 1\)"),
    ("rmsprop", {"eps": 0.0}, r"optim.eps must be > 0"),
    ("rmsprop", {"centered": "yes"}, r"optim.centered must be true or false"),
    ("adamw", {"weight_decay": -0.1}, r"optim.weight_decay must be >= 0"),
    ("adagrad", {"lr_decay": -1}, r"optim.lr_decay must be >= 0"),
    ("adam", {"lr": "abc"}, r"optim.lr must be a number"),
    ("adam", {"momentum": 0.9}, r"optim.adam does not take \['momentum'\]"),
    ("lbfgs", {}, r"unknown optimizer 'lbfgs'; valid: sgd, momentum, nesterov, rmsprop"),
])
def test_invalid_values(name, kwargs, message):
    with pytest.raises(ValueError, match=message):
        make_optimizer(name, **kwargs)


def test_step_errors():
    params, grads = _start()
    opt = make_optimizer("sgd")
    with pytest.raises(ValueError, match=r"optim.lr must be >= 0"):
        opt.step(params, grads[0], lr=-0.1)
    with pytest.raises(KeyError, match="unknown parameters"):
        opt.step(params, {"nope": np.zeros(2)})
    with pytest.raises(ValueError, match="shape"):
        opt.step(params, {"w": np.zeros((4, 3))})
    opt.step(params, grads[0], lr=0.0)  # a schedule may reach 0


def test_conf_files_match_constructor_defaults():
    files = sorted(CONF.glob("*.yaml"))
    assert {f.stem for f in files} == set(OPTIMIZERS)
    for f in files:
        cfg = OmegaConf.load(f)
        assert cfg.name == f.stem
        opt = make_optimizer(**cfg)  # DictConfig / ListConfig values accepted as they are
        sig = inspect.signature(type(opt).__init__).parameters
        keys = set(cfg) - {"name"}
        assert keys == set(sig) - {"self"}, f.name
        for key in keys:
            default = sig[key].default
            value = OmegaConf.to_container(cfg)[key]
            assert (tuple(value) if key == "betas" else value) == default, (f.name, key)


@pytest.mark.slow  # importing torch alone takes several seconds on a small machine
def test_matches_torch_optim():
    torch = pytest.importorskip("torch")
    classes = {"sgd": (torch.optim.SGD, {}), "momentum": (torch.optim.SGD, {}),
               "nesterov": (torch.optim.SGD, {"nesterov": True}),
               "rmsprop": (torch.optim.RMSprop, {}), "adam": (torch.optim.Adam, {}),
               "adamw": (torch.optim.AdamW, {}), "adagrad": (torch.optim.Adagrad, {}),
               "nadam": (torch.optim.NAdam, {})}
    old = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)  # torch keeps step / mu_product in this dtype
    try:
        for name, kwargs, _, _ in CASES:
            params, grads = _start(2)
            cls, extra = classes[name]
            # Our hyperparameters are attributes named like torch's keyword arguments.
            ours = vars(make_optimizer(name, **kwargs))
            targs = {k: ours[k] for k in inspect.signature(cls.__init__).parameters
                     if k in ours and k != "lr"}
            tp = {k: torch.tensor(v.copy(), requires_grad=True) for k, v in params.items()}
            topt = cls(list(tp.values()), lr=make_optimizer(name, **kwargs).lr, **targs,
                       **extra)
            opt = make_optimizer(name, **kwargs)
            for gs in grads:
                opt.step(params, gs)
                for k, t in tp.items():
                    t.grad = torch.tensor(gs[k])
                topt.step()
            for k in params:
                np.testing.assert_allclose(params[k], tp[k].detach().numpy(), rtol=1e-10,
                                           atol=1e-12, err_msg=f"{name} {kwargs}")
    finally:
        torch.set_default_dtype(old)


# ---------------------------------------------------------------- clipping


def test_global_norm_and_clip_by_global_norm():
    grads = {"a": np.array([3.0, 0.0], np.float32), "b": np.array([[4.0]], np.float32)}
    assert clip.global_norm(grads) == 5.0
    same, norm = clip.clip_by_global_norm(grads, 5.0)
    assert norm == 5.0 and same is not grads and all(same[k] is grads[k] for k in grads)
    clipped, norm = clip.clip_by_global_norm(grads, 1.0)
    assert norm == 5.0
    np.testing.assert_allclose(clipped["a"], [0.6, 0.0], rtol=1e-7)
    np.testing.assert_allclose(clipped["b"], [[0.8]], rtol=1e-7)
    assert clipped["a"].dtype == np.float32
    assert clip.global_norm(clipped) == pytest.approx(1.0, rel=1e-7)
    np.testing.assert_array_equal(grads["a"], [3.0, 0.0])  # inputs untouched
    with pytest.raises(ValueError, match="max_norm must be > 0"):
        clip.clip_by_global_norm(grads, 0.0)


def test_global_norm_accumulates_in_float64():
    g = {"x": np.full(100_000, 0.1, np.float32)}
    assert clip.global_norm(g) == pytest.approx(np.sqrt(1e5) * float(np.float32(0.1)),
                                                rel=1e-12)


def test_nonfinite_norm_is_reported_not_scaled():
    grads = {"a": np.array([np.inf, 1.0])}
    out, norm = clip.clip_by_global_norm(grads, 1.0)
    assert norm == np.inf and out["a"] is grads["a"]


def test_clip_by_value():
    grads = {"a": np.array([-3.0, 0.5, 2.0])}
    out = clip.clip_by_value(grads, 1.0)
    np.testing.assert_array_equal(out["a"], [-1.0, 0.5, 1.0])
    np.testing.assert_array_equal(grads["a"], [-3.0, 0.5, 2.0])
    with pytest.raises(ValueError, match="clip_value must be > 0"):
        clip.clip_by_value(grads, -1.0)
