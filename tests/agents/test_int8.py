"""Int8 CPU inference (`agents.int8`, `twinarm eval --int8`): close to float, really quantized, safe to misuse."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
import torch

from tests.agents.conftest import DOF, synthetic_stats
from twinarm.agents.features import Feature
from twinarm.agents.int8 import enable_int8, needs_calibration, training_dataset
from twinarm.agents.registry import make_policy

pytestmark = pytest.mark.skipif(
    not {"x86", "fbgemm", "onednn"} & set(torch.backends.quantized.supported_engines), reason="no x86 int8 engine"
)
PICK = "twinarm/SO101-PickCube-v0"
IMAGE = (3, 48, 64)
#: Feed-forward weights of 256x512 entries: large enough (MIN_WEIGHT) to be quantized.
ACT_WIDE = dict(chunk_size=8, n_action_steps=8, dim_model=256, n_heads=2, dim_feedforward=512, n_encoder_layers=1,
                n_vae_encoder_layers=1, latent_dim=4)  # fmt: skip


def _act(with_image: bool, **overrides: object):
    inputs = {"observation.state": Feature("STATE", (DOF,))}
    if with_image:
        inputs["observation.images.front"] = Feature("VISUAL", IMAGE)
    torch.manual_seed(0)
    policy = make_policy("act", input_features=inputs, output_features={"action": Feature("ACTION", (DOF,))},
                         **{**ACT_WIDE, **overrides})  # fmt: skip
    stats = {k: v for k, v in synthetic_stats(with_image).items() if k in (*inputs, "action")}
    policy.load_stats(stats)
    return policy.eval()


def _obs(n: int, seed: int, with_image: bool) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    obs = {"observation.state": torch.randn(n, DOF, generator=g) * 30}
    if with_image:
        obs["observation.images.front"] = torch.rand(n, *IMAGE, generator=g)
    return obs


def _rel_err(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).norm() / b.norm())


def test_int8_act_with_backbone_is_close_to_float_but_quantized() -> None:
    policy = _act(with_image=True)
    reference = copy.deepcopy(policy)
    assert needs_calibration(policy)
    done = enable_int8(policy, [_obs(4, s, True) for s in range(3)])
    # The feed-forward layers (256x512, in the encoder, the decoder and the VAE encoder, which inference skips);
    # the 256x256 attention projections, state projection, latent and action head stay float.
    assert done == {"backbones": 1, "linear_layers": 6}
    test = _obs(5, 99, True)
    with torch.inference_mode():
        want = reference.predict_action_chunk(test)
        got = policy.predict_action_chunk(test)
        # The backbone alone, int8 against float: the quantized trunk really runs.
        img = test["observation.images.front"]
        feat_ref, feat_int8 = reference.model.backbone(img), policy.model.backbone(img)
    assert not torch.equal(got, want) and not torch.equal(feat_int8, feat_ref)
    assert _rel_err(got, want) < 0.1 and _rel_err(feat_int8, feat_ref) < 0.1
    action = policy.select_action(_obs(1, 5, True))
    assert action.shape == (1, DOF) and torch.isfinite(action).all()


def test_narrow_layers_stay_float() -> None:
    """A small state-only policy has no matmul large enough to gain from int8: its actions are unchanged."""
    policy = _act(with_image=False, dim_model=128, dim_feedforward=512)
    reference = copy.deepcopy(policy)
    assert not needs_calibration(policy)
    assert enable_int8(policy) == {"backbones": 0, "linear_layers": 0}
    test = _obs(3, 1, False)
    # float32 to rounding (the float policy's matmuls run on packed float32 weights; int8 would move them ~1e-2)
    torch.testing.assert_close(policy.predict_action_chunk(test), reference.predict_action_chunk(test), rtol=1e-4, atol=1e-4)


def test_int8_follows_weight_changes() -> None:
    """Packed int8 weights are rebuilt when the float weights change (a reload or more training)."""
    policy = _act(with_image=False)
    reference = copy.deepcopy(policy)
    enable_int8(policy)
    test = _obs(4, 2, False)
    before = policy.predict_action_chunk(test)
    with torch.no_grad():
        for net in (policy, reference):
            net.model.encoder[0].linear2.weight.mul_(-1.5)
    want = reference.predict_action_chunk(test)
    got = policy.predict_action_chunk(test)
    assert _rel_err(got, want) < 0.1 < _rel_err(before, want)


def test_backbone_without_calibration_frames_is_refused() -> None:
    with pytest.raises(ValueError, match="calibration frames"):
        enable_int8(_act(with_image=True), [])


def test_diffusion_runs_int8() -> None:
    """Diffusion's U-Net convolutions run as matmuls (conv1d_gemm), which the int8 path takes too."""
    from tests.agents.conftest import synthetic_batch, tiny_config
    from twinarm.agents.registry import get_policy_class

    config = tiny_config("diffusion", down_dims=(128, 256), num_inference_steps=3, noise_scheduler_type="DDIM")
    torch.manual_seed(0)
    policy = get_policy_class("diffusion")(config, synthetic_stats()).eval()
    reference = copy.deepcopy(policy)
    done = enable_int8(policy)
    assert done["backbones"] == 0 and done["linear_layers"] > 0
    batch = synthetic_batch(config, n=2)
    obs = {k: v[:, -1] for k, v in batch.items() if k.startswith("observation.")}
    actions = []
    for net in (policy, reference):  # the same initial noise for both
        net.reset()
        torch.manual_seed(1)
        actions.append(net.select_action(obs))
    assert actions[0].shape == (2, DOF) and torch.isfinite(actions[0]).all()
    assert not torch.equal(actions[0], actions[1]) and _rel_err(actions[0], actions[1]) < 0.1
    assert not policy.model._plan.pack  # int8 matmuls see the convolutions, not packed float32 weights


def test_training_dataset_is_read_from_the_run(tmp_path: Path) -> None:
    ckpt = tmp_path / "run" / "checkpoints" / "00000010" / "pretrained_model"
    ckpt.mkdir(parents=True)
    assert training_dataset(ckpt) is None
    (tmp_path / "run" / "train_config.json").write_text(json.dumps({"dataset": ["sim_data", "real_data"]}))
    assert training_dataset(ckpt) == "sim_data"
    # A LeRobot checkpoint keeps its train_config.json beside the weights, the dataset as {repo_id, root}.
    (ckpt / "train_config.json").write_text(json.dumps({"dataset": {"repo_id": "user/pick", "root": None}}))
    assert training_dataset(ckpt) == "user/pick"


def test_eval_int8_through_the_cli(tiny_act_checkpoint, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Record camera frames with one eval, then evaluate in int8 calibrated on them; without frames, a clear error."""
    from twinarm.agents.int8 import calibration_batches
    from twinarm.agents.policy import Policy
    from twinarm.cli.main import main

    ckpt = tiny_act_checkpoint(cameras=("front",))
    common = ["eval", "--policy", str(ckpt), "--env", PICK, "--episodes", "1", "--n-envs", "1", "--videos", "0",
              "--max-steps", "12", "--threads", "1"]  # fmt: skip
    with pytest.raises(SystemExit):
        main([*common, "--int8", "--out", str(tmp_path / "e0")])
    assert "--int8-calibration DATASET" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main([*common, "--int8", "--int8-calibration", str(tmp_path / "nowhere"), "--out", str(tmp_path / "e0")])
    assert f"--int8-calibration: {tmp_path / 'nowhere'}: no such dataset directory" in capsys.readouterr().err
    frames = tmp_path / "frames"
    assert main([*common, "--out", str(tmp_path / "e1"), "--record", str(frames)]) == 0
    capsys.readouterr()
    assert main([*common, "--int8", "--int8-calibration", str(frames), "--out", str(tmp_path / "e2")]) == 0
    out = capsys.readouterr().out
    assert f"1 backbone(s) quantized, backbone calibrated on frames of {frames}" in out
    info = json.loads((tmp_path / "e2" / "eval_info.json").read_text())
    assert info["aggregated"]["n_episodes"] == 1
    assert json.loads((tmp_path / "e2" / "config.json").read_text())["int8"] is True
    # A state policy has no backbone to calibrate: the flag is said to be unused (it was ignored silently).
    state = tiny_act_checkpoint()
    assert main([*common[:2], str(state), *common[3:], "--int8", "--int8-calibration", str(tmp_path / "nowhere"),
                 "--out", str(tmp_path / "e3")]) == 0  # fmt: skip
    assert f"--int8-calibration {tmp_path / 'nowhere'} is not used: {state} has no image backbone" in capsys.readouterr().out
    # Frames are resized to the policy's input and spread over the dataset.
    small = Policy.from_pretrained(ckpt)
    small.config.input_features["observation.images.front"] = Feature("VISUAL", (3, 24, 32))
    batches = calibration_batches(small, frames, frames=5, batch_size=2)
    assert [b["observation.images.front"].shape for b in batches] == [(2, 3, 24, 32), (2, 3, 24, 32), (1, 3, 24, 32)]
    pixels = torch.cat([b["observation.images.front"] for b in batches])
    assert 0.0 <= float(pixels.min()) < float(pixels.max()) <= 1.0


def test_int8_backbone_refuses_changed_weights() -> None:
    """A quantized backbone is tied to the weights it was calibrated for: after they change it says so."""
    policy = _act(with_image=True)
    enable_int8(policy, [_obs(2, 0, True)])
    with torch.no_grad():
        policy.model.backbone.conv1.weight.mul_(0.5)
    with pytest.raises(RuntimeError, match="quantize again"):
        policy.predict_action_chunk(_obs(1, 1, True))


def _tdmpc(mlp_dim: int):
    """A TD-MPC policy with non-trivial weights everywhere (its reward and Q output layers start at zero)."""
    from tests.agents.conftest import tiny_config
    from twinarm.agents.registry import get_policy_class

    torch.manual_seed(0)
    policy = get_policy_class("tdmpc")(tiny_config("tdmpc", mlp_dim=mlp_dim, q_ensemble_size=5), synthetic_stats())
    with torch.no_grad():
        for p in policy.model.parameters():
            p.add_(0.05 * torch.randn_like(p))
    return policy.eval()


def test_tdmpc_plans_with_int8_heads_close_to_float() -> None:
    """TD-MPC's planner packs the m x m layer of each of its seven heads (dynamics, reward, 5 Qs), their first
    layers (one stacked matmul) and the policy prior's middle layer in int8: latents, rewards, Q values and
    trajectory values stay close to float."""
    policy = _tdmpc(mlp_dim=512)  # 512x512 layers: MIN_WEIGHT entries, quantized
    reference = copy.deepcopy(policy)
    assert enable_int8(policy) == {"backbones": 0, "linear_layers": 9}
    heads, exact = policy._heads(), reference._heads()
    assert heads.q2 is not None and exact.q2 is None
    cfg = policy.config
    g = torch.Generator().manual_seed(0)
    z = torch.rand(300, cfg.latent_dim, generator=g)
    actions = torch.rand(cfg.horizon, 300, cfg.action_dim, generator=g) * 2 - 1
    with torch.inference_mode():
        z_q, r_q, q_q = heads.step(z, actions[0], with_q=True)
        z_f, r_f, q_f = exact.step(z, actions[0], with_q=True)
        assert not torch.equal(q_q, q_f)  # really another path
        assert _rel_err(z_q, z_f) < 0.02 and _rel_err(r_q, r_f) < 0.05 and _rel_err(q_q, q_f) < 0.05
        assert _rel_err(heads.pi(z), exact.pi(z)) < 0.05
        v_q, v_f = policy.estimate_value(z, actions), reference.estimate_value(z, actions)
    assert _rel_err(v_q, v_f) < 0.05
    # the best-valued trajectories are mostly the same ones
    assert len(set(v_q.topk(30).indices.tolist()) & set(v_f.topk(30).indices.tolist())) >= 24
    from tests.agents.conftest import synthetic_batch

    batch = synthetic_batch(cfg, n=2, seed=1)
    action = policy.select_action({k: batch[k][:, 0] for k in cfg.input_features})
    assert action.shape == (2, DOF) and torch.isfinite(action).all()


def test_tdmpc_int8_skips_narrow_heads_unless_asked_and_follows_weight_changes() -> None:
    policy = _tdmpc(mlp_dim=64)
    assert enable_int8(policy) == {"backbones": 0, "linear_layers": 0}  # 64x64: no gain, stays float
    assert policy._heads().q2 is None
    assert enable_int8(policy, min_weight=0) == {"backbones": 0, "linear_layers": 9}  # an accuracy check's way
    z, a = torch.rand(20, policy.config.latent_dim), torch.rand(20, policy.config.action_dim) * 2 - 1
    before = policy._heads().q_all(z, a)
    with torch.no_grad():
        for q in policy.model.qs:
            q[3].weight.mul_(-1.0)
    after = policy._heads().q_all(z, a)  # repacked from the new weights
    assert policy._heads().q2 is not None and _rel_err(after, before) > 0.1
    policy.fused_planning = False
    with torch.inference_mode():
        assert _rel_err(after, policy.model.q_all(z, a)) < 0.05


def test_eval_int8_says_when_a_policy_stays_float(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`eval --int8` on a TD-MPC whose heads are too narrow to gain says nothing was quantized, and why."""
    import argparse

    from twinarm.cli.eval_cmd import _to_int8

    policy = _tdmpc(mlp_dim=64)
    args = argparse.Namespace(policy=str(tmp_path), int8_calibration=None, _parser=argparse.ArgumentParser())
    _to_int8(args, policy)
    out = capsys.readouterr().out
    assert "int8: 0 matmul layers" in out and "too small to run faster in int8: it stays float32" in out


def test_tdmpc_int8_plan_evaluates_its_samples_per_thread() -> None:
    """An int8 plan on CPU with 2 threads evaluates its Gaussian samples on a `SamplePool` (one chunk per worker,
    each on one intra-op thread): the same trajectory values as one call to int8 rounding (each chunk quantizes
    its own activations), seeded plans repeat exactly (a random Q pair is drawn once, outside the workers), the
    caller's thread count is back afterwards, and the policy still deep-copies."""
    import threading

    from tests.agents.conftest import synthetic_batch
    from twinarm.agents.tdmpc.sample_pool import MIN_ROWS_PER_THREAD

    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        policy = _tdmpc(mlp_dim=64)
        policy.config.n_gaussian_samples = 2 * MIN_ROWS_PER_THREAD
        policy.config.uncertainty_regularizer_coeff = 0.0  # the random-Q-pair path
        enable_int8(policy, min_weight=0)
        cfg = policy.config
        g = torch.Generator().manual_seed(0)
        z = torch.rand(cfg.n_gaussian_samples, cfg.latent_dim, generator=g)
        actions = torch.rand(cfg.horizon, cfg.n_gaussian_samples, cfg.action_dim, generator=g) * 2 - 1
        pool = policy._sample_pool(z.shape[0], z.device)
        assert pool is not None and policy._sample_pool(z.shape[0] - 1, z.device) is None  # too few rows
        seen: list[str] = []
        value = policy.estimate_value

        def spy(zc, ac, q_pair=None):  # noqa: ANN001, ANN202
            seen.append(threading.current_thread().name)
            assert torch.get_num_threads() == 1 and q_pair is not None
            return value(zc, ac, q_pair)

        policy.estimate_value = spy
        with torch.inference_mode():
            torch.manual_seed(3)
            split = policy._sample_values(z, actions, pool)
            torch.manual_seed(3)
            whole = value(z, actions)  # the same Q pair (drawn first from the same seed)
        del policy.estimate_value
        # one chunk per worker (which worker takes which chunk is the scheduler's business)
        assert len(seen) == 2 and all(name.startswith("tdmpc-samples") for name in seen)
        assert sum(t.name.startswith("tdmpc-samples") for t in threading.enumerate()) >= 2
        assert split.shape == whole.shape and _rel_err(split, whole) < 0.05  # int8 vs float: also 0.05

        batch = synthetic_batch(cfg, n=1, seed=1)
        obs = {k: batch[k][:, 0] for k in cfg.input_features}
        plans = []
        for _ in range(2):
            policy.reset()
            torch.manual_seed(7)
            plans.append(policy.select_action(obs))
            assert torch.get_num_threads() == 2
        assert torch.equal(plans[0], plans[1]) and bool(torch.isfinite(plans[0]).all())
        twin = copy.deepcopy(policy)
        assert twin._samples is None and policy._samples is pool
    finally:
        torch.set_num_threads(threads)


def test_tdmpc_int8_plan_in_a_forked_child_gets_its_own_workers() -> None:
    """A process forked after an int8 plan inherits the policy's `SamplePool` but not its threads: planning there
    must start new workers, not wait forever on threads that do not exist."""
    import gc
    import os
    import time

    from tests.agents.conftest import synthetic_batch
    from twinarm.agents.tdmpc.sample_pool import MIN_ROWS_PER_THREAD

    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        policy = _tdmpc(mlp_dim=64)
        policy.config.n_gaussian_samples = 2 * MIN_ROWS_PER_THREAD
        enable_int8(policy, min_weight=0)
        batch = synthetic_batch(policy.config, n=1, seed=1)
        obs = {k: batch[k][:, 0] for k in policy.config.input_features}
        policy.select_action(obs)
        assert policy._samples is not None
        gc.freeze()  # the child must not finalize objects it inherits (see test_sdk_pty's forked test)
        pid = os.fork()
        if pid == 0:  # the child: plan again, report by exit code
            code = 1
            try:
                policy.reset()
                code = 0 if torch.isfinite(policy.select_action(obs)).all() else 2
            finally:
                os._exit(code)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                assert os.waitstatus_to_exitcode(status) == 0
                break
            time.sleep(0.05)
        else:
            os.kill(pid, 9)
            os.waitpid(pid, 0)
            pytest.fail("the forked child's plan hung")
    finally:
        gc.unfreeze()
        torch.set_num_threads(threads)
