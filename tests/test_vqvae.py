import pytest
import torch

from conftest import TINY_VQVAE, synthetic_dance
from e3d2_core.errors import E3D2Error
from e3d2_core.models.policy import DancePolicy
from e3d2_core.models.vqvae import ChoreographicMemory, decoder_reach


def _batch(b=2, t=64, seed=0):
    poses, trans = synthetic_dance(b, t, seed=seed)
    return {"poses": torch.from_numpy(poses), "trans": torch.from_numpy(trans)}


def test_forward_gives_losses_and_gradients_everywhere_but_the_codebook():
    torch.manual_seed(0)
    model = ChoreographicMemory(TINY_VQVAE).train()
    loss, logs = model(_batch())
    assert torch.isfinite(loss) and loss.ndim == 0
    for key in ("rec_up", "rec_down", "root", "fk", "commit", "perplexity_up", "restarts_down"):
        assert key in logs
    loss.backward()
    for name in ("enc_up", "enc_down", "dec_up", "dec_down", "dec_root"):
        grads = [p.grad for p in getattr(model, name).parameters()]
        assert all(g is not None and torch.isfinite(g).all() for g in grads) and any(g.abs().sum() > 0 for g in grads)
    assert all(not b.requires_grad for b in model.vq_up.buffers())
    assert bool(model.vq_up.initialised) and bool(model.vq_down.initialised)


def test_root_detach_keeps_the_root_loss_out_of_the_encoder():
    torch.manual_seed(0)
    joint = ChoreographicMemory({**TINY_VQVAE, "fk_weight": 0, "fk_vel_weight": 0}).train()
    detached = ChoreographicMemory({**TINY_VQVAE, "fk_weight": 0, "fk_vel_weight": 0, "root_detach": True}).train()
    detached.load_state_dict(joint.state_dict())
    batch = _batch()
    grads = []
    for model in (joint, detached):
        torch.manual_seed(1)
        model(batch)                      # initialise the codebooks identically
        model.zero_grad()
        torch.manual_seed(2)
        loss, logs = model(batch)
        # only the root loss: compare its gradient on the lower encoder
        root_only = loss - 0.5 * (torch.tensor(logs["rec_up"]) + torch.tensor(logs["rec_down"]))
        model.zero_grad()
        lo, up = model.features(batch["poses"], batch["trans"])
        zq, _, _, _ = model.vq_down(model.enc_down(lo[..., :54].transpose(1, 2)))
        root_hat = model.dec_root(zq.detach() if model.config["root_detach"] else zq)
        torch.nn.functional.l1_loss(root_hat.transpose(1, 2), lo[..., 54:]).backward()
        grads.append(sum(p.grad.abs().sum() for p in model.enc_down.parameters() if p.grad is not None))
        assert torch.isfinite(root_only)
    assert grads[0] > 0 and grads[1] == 0


def test_ema_codebook_initialises_from_encoder_outputs_and_restarts_dead_codes():
    torch.manual_seed(0)
    model = ChoreographicMemory(TINY_VQVAE).train()
    batch = _batch()
    model(batch)
    vq = model.vq_up
    # every code was drawn from (jittered) encoder outputs: each lies close to some encoder output
    lo, up = model.features(batch["poses"], batch["trans"])
    with torch.no_grad():
        z = model.enc_up(up.transpose(1, 2)).permute(0, 2, 1).reshape(-1, TINY_VQVAE["code_dim"])
    # kill code 3 and move it far away: the next update must restart it next to an encoder output
    with torch.no_grad():
        vq.ema_count[3] = 1e-3
        vq.codebook[3] = 1e3
        vq.ema_sum[3] = 1e3
    _, logs = model(batch)
    assert logs["restarts_up"] >= 1
    with torch.no_grad():
        z = model.enc_up(up.transpose(1, 2)).permute(0, 2, 1).reshape(-1, TINY_VQVAE["code_dim"])
    assert torch.cdist(vq.codebook[3:4], z).min() < 1e-2
    assert vq.ema_count[3] == 1.0


def test_training_steps_reduce_the_loss():
    torch.manual_seed(0)
    model = ChoreographicMemory(TINY_VQVAE).train()
    batch = _batch(2, 64)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    first = None
    for _ in range(30):
        loss, _ = model(batch)
        first = first if first is not None else loss.item()
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert loss.item() < 0.5 * first


def test_encode_shapes_and_padding():
    torch.manual_seed(0)
    model = ChoreographicMemory(TINY_VQVAE).train()
    batch = _batch(2, 64)
    model(batch)
    model.eval()
    up, down = model.encode(batch["poses"], batch["trans"])
    assert up.shape == down.shape == (2, 8) and up.dtype == torch.long
    up13, _ = model.encode(batch["poses"][:, :61], batch["trans"][:, :61])   # padded to 64 frames
    assert up13.shape == (2, 8)
    assert int(up.max()) < TINY_VQVAE["codebook_size"]


@pytest.mark.parametrize("smoothing", [0.0, 1.0, 3.0])
def test_chunked_decoding_equals_one_shot_decoding(smoothing):
    torch.manual_seed(0)
    model = ChoreographicMemory({**TINY_VQVAE, "decode_chunk": 5, "output_smoothing": smoothing}).eval()
    torch.nn.init.normal_(model.vq_up.codebook)
    torch.nn.init.normal_(model.vq_down.codebook)
    up, down = torch.randint(0, 16, (2, 37)), torch.randint(0, 16, (2, 37))
    from e3d2_core.models import representation as rep
    lower, upper = model.decode_features(up, down)
    ref_poses, ref_trans = rep.decode(lower, upper, model.fps, init_xz=torch.tensor([0.5, -1.0]), init_heading=0.7)
    poses, trans = model.decode(up, down, init_trans=torch.tensor([0.5, 0.0, -1.0]), init_heading=0.7)
    assert poses.shape == (2, 37 * 8, 24, 3) and trans.shape == (2, 37 * 8, 3)
    assert (poses - ref_poses).abs().max() < 1e-4
    assert (trans - ref_trans).abs().max() < 1e-4
    # the overlap is needed: without it the chunk borders differ
    assert decoder_reach(model.config) > 1
    pieces = [model.decode_features(up[:, s:s + 5], down[:, s:s + 5])[1] for s in range(0, 37, 5)]
    assert (torch.cat(pieces, 1) - upper).abs().max() > 1e-3


def test_output_smoothing_removes_frame_to_frame_tremor_and_keeps_the_movement():
    torch.manual_seed(0)
    plain = ChoreographicMemory(TINY_VQVAE).eval()
    torch.nn.init.normal_(plain.vq_up.codebook)
    torch.nn.init.normal_(plain.vq_down.codebook)
    smooth = ChoreographicMemory({**TINY_VQVAE, "output_smoothing": 1.0}).eval()
    smooth.load_state_dict(plain.state_dict())
    up, down = torch.randint(0, 16, (1, 30)), torch.randint(0, 16, (1, 30))
    rough, soft = plain.decode_features(up, down)[1], smooth.decode_features(up, down)[1]
    tremor = lambda x: x.diff(n=2, dim=1).abs().mean()                       # noqa: E731
    assert tremor(soft) < 0.6 * tremor(rough)
    slow = lambda x: torch.nn.functional.avg_pool1d(x.transpose(1, 2), 16).transpose(1, 2)  # noqa: E731
    assert (slow(soft) - slow(rough)).abs().mean() < 0.1 * rough.abs().mean()   # the 4-Hz content stays


def test_bad_model_configs_are_e3d2_errors_that_value_error_callers_still_catch():
    with pytest.raises(E3D2Error, match=r"unknown VQ-VAE config keys: \['codebok_size'\]"):
        ChoreographicMemory({"codebok_size": 8})
    with pytest.raises(E3D2Error, match="downsample must be a power of 2"):
        ChoreographicMemory({"downsample": 6})
    with pytest.raises(E3D2Error, match=r"unknown policy config keys: \['n_layers'\]"):
        DancePolicy({"n_layers": 2})
    with pytest.raises(ValueError, match="n_embd must be a multiple of n_head"):     # E3D2Error is a ValueError
        DancePolicy({"n_embd": 10, "n_head": 4})
