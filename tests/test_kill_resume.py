"""Training processes killed at random moments (SIGKILL, and SIGINT), then resumed: the final weights and loss
history are bit-identical to an uninterrupted run's. Run as a script, this file is the training process."""
import json, os, random, signal, subprocess, sys, time
from pathlib import Path

STEPS, CKPT_EVERY = 90, 3


def child(ckpt: str, out: str):
    "Train a small dropout MLP (checkpoints in `ckpt`), write its weights and history to `out`.pt/.json."
    signal.signal(signal.SIGINT, signal.default_int_handler)   # as in a terminal, even if the parent ignores SIGINT
    if os.environ.get("DIE_AT_FSYNC"):                         # die like SIGKILL at the n-th fsync: inside a save
        real_fsync, calls, n = os.fsync, [0], int(os.environ["DIE_AT_FSYNC"])
        def fsync(fd):
            calls[0] += 1
            if calls[0] == n: os._exit(137)
            real_fsync(fd)
        os.fsync = fsync
    import torch
    import torch.nn.functional as F
    torch.set_num_threads(1)
    from medfound.train import fit
    torch.manual_seed(0)
    X = torch.randn(256, 32); y = (X[:, :4].sum(1, keepdim=True) > 0).float()
    torch.manual_seed(1)
    net = torch.nn.Sequential(torch.nn.Linear(32, 256), torch.nn.ReLU(), torch.nn.Dropout(0.3),
                              torch.nn.Linear(256, 256), torch.nn.ReLU(), torch.nn.Linear(256, 1))
    t0 = []
    def ready(step, model):                                     # the parent picks its moment from these lines
        if not t0: t0.append(time.perf_counter()); print("ready", flush=True)
        print(f"step {step}", flush=True)
    res = fit(net, lambda m, b: F.binary_cross_entropy_with_logits(m(b[0]), b[1]), torch.utils.data.TensorDataset(X, y),
              steps=STEPS, batch_size=32, lr=3e-3, seed=7, warmup=5, ckpt_dir=ckpt, ckpt_every=CKPT_EVERY, progress=False,
              on_step=ready)
    if not t0: print("ready", flush=True); t0.append(time.perf_counter())   # resumed at the end: nothing to train
    torch.save(res["model"].state_dict(), out + ".pt")
    Path(out + ".json").write_text(json.dumps(dict(history=res["history"], resumed_from=res["resumed_from"],
                                                   seconds=time.perf_counter() - t0[0])))


def _start(ckpt: Path, out: Path, **env) -> subprocess.Popen:
    p = subprocess.Popen([sys.executable, __file__, str(ckpt), str(out)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         text=True, env=dict(os.environ, OMP_NUM_THREADS="1", **env))
    assert p.stdout.readline().strip() == "ready", p.communicate()[1][-2000:]
    return p


def _result(out: Path):
    import torch
    return torch.load(str(out) + ".pt", weights_only=True), json.loads(Path(str(out) + ".json").read_text())


def test_killed_training_resumes_bit_identical(tmp_path):
    import torch
    from medfound.train import latest_checkpoint
    t0 = time.perf_counter()
    ref = _start(tmp_path / "ref_ckpt", tmp_path / "ref")
    _, err = ref.communicate(timeout=120)
    assert ref.returncode == 0, err[-2000:]
    ref_w, ref_meta = _result(tmp_path / "ref")
    assert ref_meta["resumed_from"] is None and len(ref_meta["history"]) == STEPS
    span = ref_meta["seconds"]                                   # from the end of step 1 to the end of training
    rng = random.Random(2024)
    stats = dict(trials=0, sigkill=0, sigint=0, died_in_save=0, mid_save=0, finished_first=0, resumed_steps=[])
    K, I = signal.SIGKILL, signal.SIGINT
    # a save fsyncs 6 times: model.pt, optimizer.pt, rng.pt, state.json, the temporary folder, then (after the
    # rename) the checkpoint folder. Trial 3 dies before the rename of save 7, then after the rename of save 9.
    for trial, signals in enumerate([[K], [K, I], [K, K], [("die", 6 * 6 + 4), ("die", 6 * 8 + 6)]]):
        ckpt, out = tmp_path / f"ckpt{trial}", tmp_path / f"out{trial}"
        tmps = lambda: {q.name for q in ckpt.glob(".tmp-*")}
        for sig in signals:
            before = tmps(); Path(f"{out}.json").unlink(missing_ok=True)
            if isinstance(sig, tuple):
                _, err = _start(ckpt, out, DIE_AT_FSYNC=str(sig[1])).communicate(timeout=60)
                stats["died_in_save"] += 1; continue
            p, target = _start(ckpt, out), rng.randrange(1, STEPS)
            for line in p.stdout:                               # a random step, then a random moment within ~3 steps
                if int(line.split()[1]) >= target: time.sleep(rng.uniform(0.0, 3 * span / STEPS)); break
            if p.poll() is None: p.send_signal(sig)
            _, err = p.communicate(timeout=60)
            if Path(f"{out}.json").exists(): stats["finished_first"] += 1   # done before the signal (or while exiting)
            elif sig == signal.SIGKILL:
                stats["sigkill"] += 1
                stats["mid_save"] += bool(tmps() - before)              # killed while writing a checkpoint
            else:
                stats["sigint"] += 1
                assert p.returncode != 0 and "KeyboardInterrupt" in err, err[-2000:]
                if "interrupted after step" in err:             # inside fit: saved at that step boundary
                    n = int(err.split("interrupted after step ")[1].split(":")[0])
                    assert latest_checkpoint(ckpt).name == f"step-{n:09d}"
        last = latest_checkpoint(ckpt) if ckpt.exists() else None
        if trial == 3: assert last.name == "step-000000045" and (ckpt / "step-000000042").exists()   # both complete
        p = _start(ckpt, out)
        _, err = p.communicate(timeout=120)
        assert p.returncode == 0, err[-2000:]
        w, meta = _result(out)
        assert meta["resumed_from"] == (int(last.name[5:]) if last else None)
        stats["resumed_steps"].append(meta["resumed_from"])
        assert meta["history"] == ref_meta["history"], f"trial {trial}: loss history differs"
        assert w.keys() == ref_w.keys() and all(torch.equal(w[k], ref_w[k]) for k in w), f"trial {trial}: weights differ"
        stats["trials"] += 1
    print(f"\n{stats}; training {span:.2f} s after step 1; test {time.perf_counter() - t0:.1f} s")


if __name__ == "__main__":
    child(sys.argv[1], sys.argv[2])
