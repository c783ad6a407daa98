"""Learning-rate schedules against their formulas and hand-worked cases; config files."""

import math
from pathlib import Path

import numpy as np
import pytest
from omegaconf import OmegaConf

from rnnlab.engine.optim import make_optimizer
from rnnlab.engine.schedules import SCHEDULES, lr_curve, make_schedule

CONF = Path(__file__).resolve().parents[2] / "conf" / "sched"


def test_constant_step_exponential_formulas():
    const = make_schedule({"name": "constant"}, 0.3, 10, 7)
    step = make_schedule({"name": "step", "step_size": 3, "gamma": 0.5}, 0.2, 30, 4)
    expo = make_schedule({"name": "exponential", "gamma": 0.9}, 0.2, 30, 4)
    for s in range(120):
        e = s // 4
        assert const.lr_at(s, e, []) == 0.3
        assert step.lr_at(s, e, []) == pytest.approx(0.2 * 0.5 ** (e // 3), rel=1e-15)
        assert expo.lr_at(s, e, []) == pytest.approx(0.2 * 0.9**e, rel=1e-14)


def test_cosine_per_epoch_per_step_and_clamp():
    base, eta, epochs, spe = 0.1, 0.001, 20, 5
    per_epoch = make_schedule({"name": "cosine", "eta_min": eta}, base, epochs, spe)
    per_step = make_schedule({"name": "cosine", "eta_min": eta, "per_step": True}, base,
                             epochs, spe)
    for s in range(epochs * spe):
        e = s // spe
        want_e = eta + (base - eta) * (1 + math.cos(math.pi * e / epochs)) / 2
        want_s = eta + (base - eta) * (1 + math.cos(math.pi * (s / spe) / epochs)) / 2
        assert per_epoch.lr_at(s, e, []) == pytest.approx(want_e, rel=1e-14)
        assert per_step.lr_at(s, e, []) == pytest.approx(want_s, rel=1e-14)
    # t_max in epochs; past it the rate stays at eta_min rather than rising again.
    short = make_schedule({"name": "cosine", "t_max": 4, "eta_min": eta}, base, epochs, spe)
    assert short.lr_at(10, 2, []) == pytest.approx((base + eta) / 2)
    assert short.lr_at(60, 12, []) == pytest.approx(eta)


def test_plateau_hand_worked_history():
    # min mode, factor 0.5, patience 2, cooldown 1, min_lr 0.2, 10 % relative threshold.
    cfg = {"name": "plateau", "factor": 0.5, "patience": 2, "cooldown": 1, "min_lr": 0.2,
           "threshold": 0.1}
    sched = make_schedule(cfg, 1.0, 30, 3)
    hist = [10.0, 9.5, 9.2, 9.1, 8.0, 8.0, 8.0, 8.0, 8.0, 8.0, 8.0, 8.0] + [8.0] * 8
    # e0 best=10. e1..e3 are within 10 % of 10, so bad = 1, 2, 3 > 2: halve after e3
    # (lr 0.5 from epoch 4), cooldown 1. e4 improves (8 < 9): best 8; the cooldown
    # epoch resets bad. e5, e6, e7: bad 1, 2, 3 -> 0.25 from epoch 8. e8 is a cooldown
    # epoch (bad reset), e9..e11: bad 1, 2, 3 -> max(0.125, min_lr) = 0.2 from epoch 12.
    # Later reductions would not go below min_lr, so 0.2 stays.
    want = [1.0] * 4 + [0.5] * 4 + [0.25] * 4 + [0.2] * 9
    got = [sched.lr_at(3 * e, e, hist[:e]) for e in range(21)]
    assert got == pytest.approx(want, rel=1e-15)
    # Only the completed epochs count: a longer history does not leak into epoch 4.
    assert sched.lr_at(12, 4, hist) == 0.5
    # Without the threshold, 9.5, 9.2, 9.1 are improvements and nothing is reduced early.
    loose = make_schedule({**cfg, "threshold": 0.0}, 1.0, 30, 3)
    assert loose.lr_at(12, 4, hist[:4]) == 1.0


def test_plateau_max_mode_abs_threshold():
    sched = make_schedule({"name": "plateau", "mode": "max", "threshold_mode": "abs",
                           "threshold": 0.05, "patience": 1, "factor": 0.1}, 1.0, 10, 1)
    hist = [0.5, 0.54, 0.56, 0.57, 0.58]
    # 0.54 is not > 0.5 + 0.05: bad 1; 0.56 > 0.55: best; 0.57, 0.58: bad 1, 2 > 1 -> cut.
    got = [sched.lr_at(e, e, hist[:e]) for e in range(6)]
    assert got == pytest.approx([1.0, 1.0, 1.0, 1.0, 1.0, 0.1])


@pytest.mark.parametrize(("mode", "up", "down", "want"), [
    # base 1, max 3, up 2, down 2: the triangle 1, 2, 3, 2 repeats.
    ("triangular", 2, 2, [1, 2, 3, 2, 1, 2, 3, 2, 1]),
    # The amplitude halves each cycle.
    ("triangular2", 2, 2, [1, 2, 3, 2, 1, 1.5, 2, 1.5, 1, 1.25, 1.5, 1.25]),
    # Amplitude * 0.5 ** step: step 1: 1 + 2 * 0.5 * 0.5, step 2: 1 + 2 * 1 * 0.25, ...
    ("exp_range", 2, 2, [1, 1.5, 1.5, 1.125, 1, 1.03125, 1.03125]),
    # Asymmetric: up in 1 step, down in 3: 1, 3, 1 + 2 * 2/3, 1 + 2 * 1/3, 1.
    ("triangular", 1, 3, [1, 3, 1 + 4 / 3, 1 + 2 / 3, 1, 3]),
])
def test_cyclic_hand_computed(mode, up, down, want):
    cfg = {"name": "cyclic", "base_lr": 1.0, "max_lr": 3.0, "step_size_up": up,
           "step_size_down": down, "mode": mode, "gamma": 0.5}
    sched = make_schedule(cfg, 0.1, 5, 2)
    assert [sched.lr_at(s, s // 2, []) for s in range(len(want))] == pytest.approx(want)


def test_cyclic_base_lr_defaults_to_optimizer_lr():
    sched = make_schedule({"name": "cyclic", "max_lr": 0.5, "step_size_up": 4}, 0.1, 5, 2)
    assert sched.lr_at(0, 0, []) == 0.1 and sched.lr_at(4, 2, []) == pytest.approx(0.5)
    assert sched.lr_at(6, 3, []) == pytest.approx(0.3)  # step_size_down = step_size_up


def test_warmup_then_cosine_is_continuous():
    base, spe, epochs, w = 0.1, 10, 13, 3
    sched = make_schedule({"name": "warmup", "warmup_epochs": w, "start_factor": 0.1,
                           "after": {"name": "cosine"}}, base, epochs, spe)
    curve = lr_curve(sched, epochs, spe)
    assert curve.shape == (epochs * spe,)
    steps = np.arange(w * spe)
    np.testing.assert_allclose(curve[: w * spe], base * (0.1 + 0.9 * steps / (w * spe)))
    # The cosine runs over the remaining 10 epochs, starting exactly at base_lr.
    for e in range(epochs - w):
        want = base * (1 + math.cos(math.pi * e / (epochs - w))) / 2
        np.testing.assert_allclose(curve[(w + e) * spe: (w + e + 1) * spe], want, rtol=1e-14)
    assert curve[w * spe] == base
    # No jump larger than one warmup step or one cosine epoch step.
    assert np.abs(np.diff(curve)).max() <= base * math.pi / (epochs - w) / 2 + 1e-12


def test_warmup_steps_and_nested_plateau_history_offset():
    spe = 4
    sched = make_schedule({"name": "warmup", "warmup_steps": 6, "start_factor": 0.5,
                           "after": {"name": "constant"}}, 0.2, 10, spe)
    assert sched.lr_at(0, 0, []) == pytest.approx(0.1)
    assert sched.lr_at(3, 0, []) == pytest.approx(0.2 * (0.5 + 0.5 * 3 / 6))
    assert sched.lr_at(6, 1, [1.0]) == 0.2
    # Epoch warmup, then plateau: the metrics of the warmup epochs are not replayed.
    plat = make_schedule({"name": "warmup", "warmup_epochs": 2,
                          "after": {"name": "plateau", "patience": 0, "factor": 0.5}},
                         1.0, 10, 1)
    hist = [1.0, 2.0, 3.0, 3.0]  # worsening during warmup would otherwise count
    assert plat.lr_at(2, 2, hist[:2]) == 1.0
    assert plat.lr_at(3, 3, hist[:3]) == 1.0  # first after-warmup metric sets best
    assert plat.lr_at(4, 4, hist[:4]) == 0.5  # one bad epoch > patience 0


def test_schedules_are_pure_and_lr_curve_uses_history():
    sched = make_schedule({"name": "plateau", "patience": 0, "factor": 0.5}, 1.0, 4, 2)
    hist = [1.0, 1.0, 1.0]
    curve = lr_curve(sched, 4, 2, hist)
    np.testing.assert_array_equal(curve, [1.0, 1.0, 1.0, 1.0, 0.5, 0.5, 0.25, 0.25])
    # Same answers in any call order (no hidden state).
    assert sched.lr_at(6, 3, hist) == 0.25 and sched.lr_at(0, 0, []) == 1.0
    assert sched.lr_at(6, 3, hist) == 0.25
    np.testing.assert_array_equal(lr_curve(sched, 4, 2), 1.0)  # no history: no plateau


@pytest.mark.parametrize(("cfg", "message"), [
    ({"name": "step", "gamma": 0.0}, r"sched.gamma must be > 0 \(got 0.0\)"),
    ({"name": "step", "step_size": 0}, r"sched.step_size must be an integer >= 1"),
    ({"name": "exponential", "gamma": -1}, r"sched.gamma must be > 0"),
    ({"name": "plateau", "factor": 1.0}, r"sched.factor must be in \[0, 1\) \(got 1.0\)"),
    ({"name": "plateau", "mode": "avg"}, r"sched.mode must be one of min, max"),
    ({"name": "plateau", "threshold_mode": "pct"}, r"sched.threshold_mode must be one of"),
    ({"name": "plateau", "patience": -1}, r"sched.patience must be an integer >= 0"),
    ({"name": "cyclic", "max_lr": 0.01, "base_lr": 0.1}, r"sched.max_lr must be >= base_lr"),
    ({"name": "cyclic", "max_lr": 1.0, "mode": "sine"}, r"sched.mode must be one of triangular"),
    ({"name": "cyclic", "max_lr": 1.0, "gamma": 0}, r"sched.gamma must be in \(0, 1\]"),
    ({"name": "cosine", "t_max": 0}, r"sched.t_max must be > 0"),
    ({"name": "cosine", "eta_min": 1.0}, r"sched.eta_min must be <= the base lr"),
    ({"name": "warmup", "start_factor": 0}, r"sched.start_factor must be in \(0, 1\]"),
    ({"name": "warmup", "after": {"name": "step", "gamma": -1}}, r"sched.gamma must be > 0"),
    ({"name": "cosine", "gamma": 0.5}, r"sched.cosine does not take \['gamma'\]"),
    ({"name": "onecycle"}, r"unknown schedule 'onecycle'; valid: constant, step, exponential"),
])
def test_invalid_values(cfg, message):
    with pytest.raises(ValueError, match=message):
        make_schedule(cfg, 0.1, 20, 5)


def test_conf_files_load_and_build():
    files = sorted(CONF.glob("*.yaml"))
    assert files
    seen = set()
    for f in files:
        cfg = OmegaConf.load(f)
        seen.add(cfg.name)
        sched = make_schedule(cfg, 0.001, 30, 50)  # adam's default lr
        curve = lr_curve(sched, 30, 50, [1.0] * 30)
        assert np.all(np.isfinite(curve)) and np.all(curve >= 0), f.name
        # And through a plain dict, as the config validator passes it.
        make_schedule(OmegaConf.to_container(cfg), 0.001, 30, 1)
    assert seen == set(SCHEDULES)


def test_conf_optim_and_sched_work_together():
    opt_cfg = OmegaConf.load(CONF.parent / "optim" / "sgd.yaml")
    opt = make_optimizer(**opt_cfg)
    sched = make_schedule(OmegaConf.load(CONF / "step.yaml"), opt.lr, 30, 2)
    assert sched.lr_at(40, 20, []) == pytest.approx(0.01 * 0.1**2)


@pytest.mark.slow  # importing torch alone takes several seconds on a small machine
def test_matches_torch_schedulers():
    torch = pytest.importorskip("torch")
    sch = torch.optim.lr_scheduler

    def torch_lrs(make, n, metrics=None):
        opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.1)
        s, out = make(opt), []
        for i in range(n):
            out.append(opt.param_groups[0]["lr"])
            opt.step()
            s.step(metrics[i]) if metrics is not None else s.step()
        return out

    hist = [float(v) for v in np.random.default_rng(0).standard_normal(60).cumsum() + 50]
    for mode in ("min", "max"):
        for tm in ("rel", "abs"):
            kw = {"mode": mode, "factor": 0.5, "patience": 2, "threshold": 0.01,
                  "threshold_mode": tm, "cooldown": 1, "min_lr": 0.01}
            ours = make_schedule({"name": "plateau", **kw}, 0.1, 60, 1)
            want = torch_lrs(lambda o, kw=kw: sch.ReduceLROnPlateau(o, **kw), 60, hist)
            got = [ours.lr_at(e, e, hist[:e]) for e in range(60)]
            assert got == pytest.approx(want, rel=1e-12, abs=1e-15)
    for mode in ("triangular", "triangular2", "exp_range"):
        kw = {"base_lr": 0.01, "max_lr": 0.1, "step_size_up": 7, "step_size_down": 3,
              "mode": mode, "gamma": 0.97}
        ours = make_schedule({"name": "cyclic", **kw}, 0.1, 10, 10)
        want = torch_lrs(lambda o, kw=kw: sch.CyclicLR(o, cycle_momentum=False, **kw), 100)
        assert [ours.lr_at(s, s // 10, []) for s in range(100)] == pytest.approx(want, rel=1e-12)
