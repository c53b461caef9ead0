import pickle

import numpy as np
import pytest
import torch

from conftest import make_tiny_bundle
from e3d2_core.checkpoint import build_generator_models, file_sha256, load_bundle, save_bundle
from e3d2_core.errors import E3D2Error


def test_round_trip_rebuilds_identical_models(tmp_path):
    bundle = make_tiny_bundle(tmp_path / "b.pt")
    loaded = load_bundle(tmp_path / "b.pt")
    assert loaded["format"] == "e3d2-bundle" and loaded["version"] == 1 and "code_version" in loaded
    vq, pol = build_generator_models(loaded)
    for key, value in bundle["policy"]["state_dict"].items():
        assert torch.equal(pol.state_dict()[key], value)
    assert torch.equal(vq.vq_up.codebook, bundle["vqvae"]["state_dict"]["vq_up.codebook"])
    assert len(file_sha256(tmp_path / "b.pt")) == 64


def test_save_is_atomic_and_refuses_objects(tmp_path):
    path = tmp_path / "b.pt"
    make_tiny_bundle(path)
    before = path.read_bytes()
    with pytest.raises(E3D2Error, match="numpy|ndarray|plain"):
        save_bundle(path, {"vqvae": {"config": {}, "state_dict": {"w": np.zeros(3)}}})
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["b.pt"]


def _expect(path, pattern):
    with pytest.raises(E3D2Error, match=pattern) as info:
        load_bundle(path)
    assert str(path) in str(info.value) and "\n" not in str(info.value)


def test_missing_file(tmp_path):
    _expect(tmp_path / "nope.pt", "no such checkpoint")


def test_truncated_and_garbage_files(tmp_path):
    good = tmp_path / "good.pt"
    make_tiny_bundle(good)
    cut = tmp_path / "cut.pt"
    cut.write_bytes(good.read_bytes()[:5000])
    _expect(cut, "corrupt")
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"this is not a checkpoint at all" * 10)
    _expect(junk, "corrupt")


class Exploit:
    def __reduce__(self):
        return (print, ("pwned",))


def test_a_file_that_would_run_code_is_refused(tmp_path, capsys):
    path = tmp_path / "evil.pt"
    torch.save({"format": "e3d2-bundle", "version": 1, "payload": Exploit()}, path)
    _expect(path, "refusing")
    assert "pwned" not in capsys.readouterr().out
    raw = tmp_path / "raw.pkl"
    raw.write_bytes(pickle.dumps({"a": Exploit()}))
    with pytest.raises(E3D2Error):
        load_bundle(raw)
    assert "pwned" not in capsys.readouterr().out


def test_not_a_bundle_wrong_version_missing_parts(tmp_path):
    other = tmp_path / "other.pt"
    torch.save({"state_dict": {"w": torch.zeros(2)}}, other)
    _expect(other, "not an e3d2 checkpoint bundle")
    old = tmp_path / "old.pt"
    torch.save({"format": "e3d2-bundle", "version": 99}, old)
    _expect(old, "version 99 is not supported")
    part = tmp_path / "part.pt"
    bundle = make_tiny_bundle(part)
    del bundle["policy"]
    save_bundle(part, {k: v for k, v in bundle.items() if k not in ("format", "version")})
    _expect(part, "incompatible checkpoint: missing policy")
    assert load_bundle(part, require=("vqvae",))["vqvae"]


def test_config_and_weights_that_do_not_match(tmp_path):
    path = tmp_path / "mismatch.pt"
    bundle = make_tiny_bundle(path)
    bundle["policy"]["config"] = {**bundle["policy"]["config"], "n_embd": 32}
    save_bundle(path, {k: v for k, v in bundle.items() if k not in ("format", "version")})
    loaded = load_bundle(path)
    with pytest.raises(E3D2Error, match="incompatible checkpoint: policy weights do not match its config"):
        build_generator_models(loaded, path)
    bundle = make_tiny_bundle(path, policy={"vocab": 32})
    with pytest.raises(E3D2Error, match="the policy has 32 codes but the VQ-VAE 16"):
        build_generator_models(load_bundle(path), path)
    bundle = make_tiny_bundle(path)
    bundle["vqvae"]["config"]["bogus"] = 1
    save_bundle(path, {k: v for k, v in bundle.items() if k not in ("format", "version")})
    with pytest.raises(E3D2Error, match="unknown VQ-VAE config keys"):
        build_generator_models(load_bundle(path), path)
