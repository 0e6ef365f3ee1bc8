"Interrupting ATM'22 training and resuming gives the same weights and the same final metrics."
import numpy as np
import torch
import pytest
from medfound.train import fit
from medfound.airways.atm22 import airway_phantom, CropDataset, make_unet, make_loss, predict_volume, atm_metrics, parse_tree


def _train(ckpt_dir=None, interrupt_at=None):
    ph = airway_phantom(24, 6, seed=3)
    ds = CropDataset([ph["ct"]], [ph["label"]], crop=16)
    torch.manual_seed(0)
    model = make_unet((4, 8))
    loss = make_loss("cldice", 2)
    def stop(step, m):
        if step == interrupt_at: raise KeyboardInterrupt
    out = fit(model, lambda m, b: loss(m(b[0]), b[1]), ds, steps=6, batch_size=2, lr=3e-3, seed=5,
              ckpt_dir=ckpt_dir, ckpt_every=2, on_step=stop if interrupt_at else None, progress=False)
    prob = predict_volume(out["model"], ph["ct"], roi=16)
    return out, atm_metrics(prob > 0.5, parsed=parse_tree(ph["label"])), prob


def test_resume_after_interrupt_matches(tmp_path):
    ref, ref_metrics, ref_prob = _train()
    with pytest.raises(KeyboardInterrupt):
        _train(tmp_path, interrupt_at=3)          # between two periodic checkpoints: saved on interrupt
    res, res_metrics, res_prob = _train(tmp_path)
    assert res["resumed_from"] == 3
    assert res["history"] == ref["history"]
    for a, b in zip(ref["model"].state_dict().values(), res["model"].state_dict().values()):
        assert torch.equal(a, b)
    assert np.array_equal(ref_prob, res_prob) and res_metrics == ref_metrics


def test_finished_run_is_not_retrained(tmp_path):
    first, m1, _ = _train(tmp_path)
    again, m2, _ = _train(tmp_path)
    assert again["resumed_from"] == 6 and again["history"] == first["history"] and m1 == m2


# ---- checkpoints that load no code, saves only between steps, progress output ------------------------------
import io, os, pickle, signal
from medfound.train import CheckpointError, latest_checkpoint, load_checkpoint


def _toy():
    torch.manual_seed(0)
    X = torch.randn(40, 5); y = X @ torch.randn(5, 1) + 0.1 * torch.randn(40, 1)
    return torch.utils.data.TensorDataset(X, y)


def _net():
    torch.manual_seed(1)
    return torch.nn.Sequential(torch.nn.Linear(5, 16), torch.nn.Dropout(0.2), torch.nn.Linear(16, 1))


def _mse(m, b): return torch.nn.functional.mse_loss(m(b[0]), b[1])


KW = dict(steps=12, batch_size=8, seed=3, progress=False)


def _same(a, b): return all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))


@pytest.fixture
def sigint_default():
    "SIGINT raises KeyboardInterrupt in this test, as in a terminal (a test runner may ignore it)."
    old = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, old)


def test_sigint_inside_the_optimizer_step_saves_whole_steps_only(tmp_path, sigint_default):
    "SIGINT just before the 8th parameter update: step 8 completes, is saved, then KeyboardInterrupt; no half step."
    at8 = {}
    def keep(step, m):
        if step == 8: at8.update({k: v.detach().clone() for k, v in m.state_dict().items()})
    ref = fit(_net(), _mse, _toy(), on_step=keep, **KW)
    net = _net()
    opt = torch.optim.AdamW(net.parameters(), lr=1e-3, weight_decay=0.0)          # what fit builds by default
    n = [0]
    def pre_step(optimizer, args, kwargs):
        n[0] += 1
        if n[0] == 8: os.kill(os.getpid(), signal.SIGINT)
    opt.register_step_pre_hook(pre_step)
    with pytest.raises(KeyboardInterrupt):
        fit(net, _mse, _toy(), optimizer=opt, ckpt_dir=tmp_path, ckpt_every=5, **KW)
    assert latest_checkpoint(tmp_path).name == "step-000000008"
    saved = load_checkpoint(latest_checkpoint(tmp_path))[0]["model"]
    assert all(torch.equal(saved[k], at8[k]) for k in at8)
    res = fit(_net(), _mse, _toy(), ckpt_dir=tmp_path, ckpt_every=5, **KW)
    assert res["resumed_from"] == 8 and res["history"] == ref["history"] and _same(res["model"], ref["model"])


def test_exception_in_the_middle_of_a_step_saves_nothing(tmp_path, capsys):
    "A KeyboardInterrupt raised during backward (not a signal) cannot be deferred: the last whole-step checkpoint stays."
    ref = fit(_net(), _mse, _toy(), **KW)
    net, calls = _net(), [0]
    def hook(p):
        calls[0] += 1
        if calls[0] == 8 * 4 - 2: raise KeyboardInterrupt      # step 8, half of the four parameters have gradients
    for p in net.parameters(): p.register_post_accumulate_grad_hook(hook)
    with pytest.raises(KeyboardInterrupt):
        fit(net, _mse, _toy(), ckpt_dir=tmp_path, ckpt_every=5, **KW)
    assert "interrupted inside step 8: nothing saved mid-step, the checkpoint of step 5 is kept" in capsys.readouterr().err
    assert latest_checkpoint(tmp_path).name == "step-000000005"
    res = fit(_net(), _mse, _toy(), ckpt_dir=tmp_path, ckpt_every=5, **KW)
    assert res["resumed_from"] == 5 and res["history"] == ref["history"] and _same(res["model"], ref["model"])


class _Evil:
    def __reduce__(self): return (exec, ("import pathlib; pathlib.Path('PWNED_BY_CHECKPOINT').touch()",))


def test_planted_pickle_is_refused_and_never_run(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    fit(_net(), _mse, _toy(), ckpt_dir=tmp_path / "ck", ckpt_every=5, **dict(KW, steps=5))
    last = latest_checkpoint(tmp_path / "ck")
    assert sorted(p.name for p in last.iterdir()) == ["model.pt", "optimizer.pt", "rng.pt", "state.json"]
    with open(last / "custom_checkpoint_0.pkl", "wb") as f: pickle.dump(_Evil(), f, protocol=2)   # what accelerate would load
    fit(_net(), _mse, _toy(), ckpt_dir=tmp_path / "ck", ckpt_every=5, **dict(KW, steps=5))           # ignored
    with open(last / "optimizer.pt", "wb") as f: pickle.dump(_Evil(), f, protocol=2)
    with pytest.raises(CheckpointError, match=r"optimizer.pt: refused, not a tensors-only file"):
        fit(_net(), _mse, _toy(), ckpt_dir=tmp_path / "ck", ckpt_every=5, **dict(KW, steps=5))
    assert not (tmp_path / "PWNED_BY_CHECKPOINT").exists()


def test_old_pickled_state_is_not_loaded(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "ck/state").mkdir(parents=True)
    with open(tmp_path / "ck/state/custom_checkpoint_0.pkl", "wb") as f: pickle.dump(_Evil(), f, protocol=2)
    res = fit(_net(), _mse, _toy(), ckpt_dir=tmp_path / "ck", ckpt_every=5, **KW)
    assert res["resumed_from"] is None and "old pickled checkpoint format, not loaded" in capsys.readouterr().err
    assert not (tmp_path / "PWNED_BY_CHECKPOINT").exists() and not (tmp_path / "ck/state").exists()
    assert [p.name for p in (tmp_path / "ck").iterdir()] == ["step-000000012"]


def test_checkpoint_of_another_run_is_refused(tmp_path):
    fit(_net(), _mse, _toy(), ckpt_dir=tmp_path, ckpt_every=5, **KW)
    with pytest.raises(CheckpointError, match=r"different run \(steps=12 there, 20 here\)"):
        fit(_net(), _mse, _toy(), ckpt_dir=tmp_path, ckpt_every=5, **dict(KW, steps=20))


def test_leftovers_of_killed_saves_do_not_block_resume(tmp_path):
    ref = fit(_net(), _mse, _toy(), **KW)
    with pytest.raises(KeyboardInterrupt):
        fit(_net(), _mse, _toy(), ckpt_dir=tmp_path, ckpt_every=5, on_step=_stop_at(7), **KW)
    (tmp_path / ".tmp-killed").mkdir(); (tmp_path / ".tmp-killed/model.pt").write_bytes(b"half")   # a save killed midway
    res = fit(_net(), _mse, _toy(), ckpt_dir=tmp_path, ckpt_every=5, **KW)
    assert res["resumed_from"] == 7 and res["history"] == ref["history"] and _same(res["model"], ref["model"])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["step-000000012"]


def _stop_at(n):
    def stop(step, m):
        if step == n: raise KeyboardInterrupt
    return stop


# ---- progress ------------------------------------------------------------------------------------------------

class _Terminal(io.StringIO):
    def isatty(self): return True


@pytest.fixture
def no_progress_env(monkeypatch):
    monkeypatch.delenv("MEDFOUND_PROGRESS", raising=False); monkeypatch.delenv("MEDFOUND_STATIC", raising=False)


def test_log_lines_per_epoch_when_stderr_is_not_a_terminal(capsys, no_progress_env):
    fit(_net(), _mse, _toy(), steps=12, batch_size=8, seed=3, desc="toy")      # 40 samples / 8 = 5 steps an epoch
    err = capsys.readouterr().err
    assert [l.split(" (")[0] for l in err.splitlines()] == ["toy: step 5/12", "toy: step 10/12", "toy: step 12/12"]
    assert "\r" not in err and "(epoch 1.0)" in err and "(epoch 2.4)" in err


def test_bar_on_a_terminal_unless_told_otherwise(monkeypatch, no_progress_env):
    term = _Terminal(); monkeypatch.setattr("sys.stderr", term)
    fit(_net(), _mse, _toy(), steps=12, batch_size=8, seed=3, desc="toy")
    assert "\r" in term.getvalue() and "12/12" in term.getvalue()
    term = _Terminal(); monkeypatch.setattr("sys.stderr", term); monkeypatch.setenv("MEDFOUND_PROGRESS", "lines")
    fit(_net(), _mse, _toy(), steps=12, batch_size=8, seed=3, desc="toy", log_every=4)
    assert [l.split(" (")[0] for l in term.getvalue().splitlines()] == ["toy: step 4/12", "toy: step 8/12", "toy: step 12/12"]
