import numpy as np
import pytest
import torch

from conftest import synthetic_dance
from e3d2_core import api, cli
from e3d2_core.errors import Cancelled, E3D2Error
from e3d2_core.generation import (generate_motions, neutral_pose, normalise_music, policy_for_inference,
                                  resolve_device, resolve_precision, seed_codes)
from e3d2_core.motion import Motion


def _music(n, seed=0):
    return torch.randn(n, 438, generator=torch.Generator().manual_seed(seed))


def test_greedy_generation_is_deterministic_and_has_the_right_length(tiny_models):
    vq, pol = tiny_models
    music = _music(20)
    a = generate_motions(vq, pol, music, meta={"model": "tiny"})
    b = generate_motions(vq, pol, music, seed=123)            # the seed does not matter when greedy
    assert len(a) == 1 and a[0].num_frames == 160 and a[0].fps == 60.0
    assert np.array_equal(a[0].poses, b[0].poses) and np.array_equal(a[0].trans, b[0].trans)
    meta = a[0].meta
    assert meta["model"] == "tiny" and meta["temperature"] == 0.0 and len(meta["codes_up"]) == 20
    # the neutral pose's codes start the dance
    up0, down0, _, _ = seed_codes(vq, None, 1)
    assert meta["codes_up"][0] == int(up0[0]) and meta["codes_down"][0] == int(down0[0])


def test_sampling_is_seeded_and_takes_differ(tiny_models):
    vq, pol = tiny_models
    music = _music(30)
    a = generate_motions(vq, pol, music, takes=3, seed=1, temperature=1.0, top_k=8)
    b = generate_motions(vq, pol, music, takes=3, seed=1, temperature=1.0, top_k=8)
    c = generate_motions(vq, pol, music, takes=3, seed=2, temperature=1.0, top_k=8)
    assert [m.meta["codes_up"] for m in a] == [m.meta["codes_up"] for m in b]
    assert [m.meta["codes_up"] for m in a] != [m.meta["codes_up"] for m in c]
    assert a[0].meta["codes_up"] != a[1].meta["codes_up"]
    assert [m.meta["take"] for m in a] == [1, 2, 3]


def test_top_k_one_is_greedy(tiny_models):
    vq, pol = tiny_models
    music = _music(15)
    greedy = generate_motions(vq, pol, music)[0]
    top1 = generate_motions(vq, pol, music, temperature=0.7, top_k=1)[0]
    assert greedy.meta["codes_up"] == top1.meta["codes_up"]


def test_seed_motion_sets_the_first_codes_and_start(tiny_models):
    vq, pol = tiny_models
    poses, trans = synthetic_dance(1, 64, seed=3)
    seed = Motion(poses[0], trans[0], 60.0)
    out = generate_motions(vq, pol, _music(10), seed_motion=seed)[0]
    up, down = vq.encode(torch.from_numpy(poses), torch.from_numpy(trans))
    assert out.meta["codes_up"][0] == int(up[0, 0]) and out.meta["codes_down"][0] == int(down[0, 0])
    assert np.allclose(out.trans[0, [0, 2]], trans[0, 0, [0, 2]], atol=1e-5)
    # a seed at another frame rate is resampled first
    slow = generate_motions(vq, pol, _music(10), seed_motion=seed.resample(30.0))[0]
    assert slow.fps == 60.0


def test_in_place_holds_the_floor_position(tiny_models):
    vq, pol = tiny_models
    moving = generate_motions(vq, pol, _music(12))[0]
    still = generate_motions(vq, pol, _music(12), in_place=True)[0]
    assert np.ptp(still.trans[:, 0]) == 0 and np.ptp(still.trans[:, 2]) == 0
    assert np.array_equal(still.trans[:, 1], moving.trans[:, 1])
    assert np.array_equal(still.poses, moving.poses)


def test_progress_and_cancel(tiny_models):
    vq, pol = tiny_models
    seen = []
    generate_motions(vq, pol, _music(25), progress=lambda f, m: seen.append(f))
    assert seen == sorted(seen) and seen[-1] == pytest.approx(1.0) and len(seen) > 5
    calls = []

    def cancel():
        calls.append(1)
        return len(calls) > 3
    with pytest.raises(Cancelled):
        generate_motions(vq, pol, _music(25), cancel=cancel)
    assert len(calls) == 4 and issubclass(Cancelled, E3D2Error)


def test_bad_requests(tiny_models):
    vq, pol = tiny_models
    with pytest.raises(E3D2Error, match="too short"):
        generate_motions(vq, pol, _music(1))
    with pytest.raises(E3D2Error, match="several takes need a temperature"):
        generate_motions(vq, pol, _music(5), takes=2)
    with pytest.raises(E3D2Error, match="unknown device 'tpu'"):
        resolve_device("tpu")
    if not torch.cuda.is_available():
        with pytest.raises(E3D2Error, match="CUDA is not available"):
            resolve_device("cuda")
    with pytest.raises(E3D2Error, match="unknown precision"):
        resolve_precision("fp8", torch.device("cpu"))
    with pytest.raises(E3D2Error, match=r"\(N, 438\)"):
        normalise_music(np.zeros((10, 20)), torch.zeros(438), torch.ones(438))


def test_lighter_precision_generation_runs(tiny_models):
    vq, pol = tiny_models
    ref = generate_motions(vq, pol, _music(15))[0]
    for precision in ("bf16", "int8"):
        light = policy_for_inference(pol, precision, torch.device("cpu"))
        out = generate_motions(vq, light, _music(15))[0]
        assert out.num_frames == ref.num_frames
        # outputs stay close: most greedy codes agree with fp32
        agree = np.mean(np.array(out.meta["codes_up"]) == np.array(ref.meta["codes_up"]))
        assert agree >= 0.6


def test_neutral_pose_stands_on_the_floor():
    pose = neutral_pose()
    joints = pose.joints()
    assert 0.0 < joints[..., 1].min() < 0.05 and pose.num_frames == 8


def test_api_errors_before_any_work(tmp_path, tiny_bundle_path):
    with pytest.raises(E3D2Error, match="no such checkpoint"):
        api.generate("song.ogg", checkpoint=tmp_path / "missing.pt")
    with pytest.raises(E3D2Error, match="unknown device"):
        api.generate("song.ogg", checkpoint=tiny_bundle_path, device="gpu7")
    with pytest.raises(E3D2Error, match="several takes"):
        api.generate("song.ogg", checkpoint=tiny_bundle_path, takes=3)
    with pytest.raises(E3D2Error, match="seconds"):
        api.generate("song.ogg", checkpoint=tiny_bundle_path, seconds=0)


def _run_cli(monkeypatch, argv):
    monkeypatch.setattr(cli, "COMMANDS", {"generate": "e3d2_core.commands.generate"})
    return cli.main(argv)


def test_cli_errors_exit_2_and_write_nothing(tmp_path, monkeypatch, capsys, tiny_bundle_path):
    out = tmp_path / "dance.npz"
    code = _run_cli(monkeypatch, ["generate", "song.ogg", "-o", str(out), "--checkpoint", str(tmp_path / "x.pt"),
                                  "--quiet"])
    err = capsys.readouterr().err
    assert code == 2 and "no such checkpoint" in err and len(err.strip().splitlines()) == 1
    code = _run_cli(monkeypatch, ["generate", "song.ogg", "-o", str(tmp_path / "dance.txt"), "--quiet"])
    assert code == 2 and ".npz" in capsys.readouterr().err
    code = _run_cli(monkeypatch, ["generate", "song.ogg", "-o", str(out), "--checkpoint", str(tiny_bundle_path),
                                  "--device", "quantum", "--quiet"])
    assert code == 2 and "unknown device" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


def test_output_paths_for_takes():
    from e3d2_core.commands.generate import output_paths
    assert [p.name for p in output_paths("out/d.npz", 1)] == ["d.npz"]
    assert [p.name for p in output_paths("out/d.npz", 3)] == ["d.take1.npz", "d.take2.npz", "d.take3.npz"]
