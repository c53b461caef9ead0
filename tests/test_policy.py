import pytest
import torch

from e3d2_core.generation import generate_codes, policy_for_inference
from e3d2_core.models.policy import DancePolicy

SMALL = {"n_layer": 2, "n_head": 2, "n_embd": 16, "band": 28, "vocab": 13, "music_dim": 7, "dropout": 0.0}


def _inputs(b, length, seed=0, vocab=13, dim=7, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(b, length, dim, generator=g, dtype=dtype), torch.randint(0, vocab, (b, length), generator=g),
            torch.randint(0, vocab, (b, length), generator=g))


def _model(config=SMALL, seed=0):
    torch.manual_seed(seed)
    model = DancePolicy(config).eval()
    with torch.no_grad():       # a visible relative bias so that positions matter
        for block in model.blocks:
            block.attn.rel_bias.normal_(0, 1.0)
    return model


def test_cached_streaming_equals_uncached_logits_beyond_the_band():
    model = _model().double()
    music, up, down = _inputs(2, 90)
    ref_up, ref_down = model.logits(music, up, down)
    state = model.start(2)
    worst = 0.0
    for i in range(90):
        lu, ld = model.step(state, music[:, i], up[:, i], down[:, i])
        worst = max(worst, (lu - ref_up[:, i]).abs().max().item(), (ld - ref_down[:, i]).abs().max().item())
    assert worst < 1e-10
    assert state.steps == 90
    assert all(cache[0].shape[2] == 3 * 28 for cache in state.caches)      # the cache stays one band long


def _influence_of_step_10(model, length):
    music, up, down = _inputs(1, length)
    base_up, _ = model.logits(music, up, down)
    changed = up.clone()
    changed[0, 10] = (changed[0, 10] + 1) % 13
    new_up, _ = model.logits(music, changed, down)
    return (new_up - base_up).abs().amax(-1)[0]


def test_the_band_limits_what_a_step_sees():
    diff = _influence_of_step_10(_model({**SMALL, "n_layer": 1}).double(), 60)
    assert diff[:10].max() == 0                     # causal: earlier steps do not see step 10
    assert diff[10:38].min() > 0                    # steps 10..37 see it (band 28)
    assert diff[38:].max() == 0                     # later steps no longer do
    # through L layers the view reaches L * (band - 1) steps back (as in any sliding-window transformer)
    diff = _influence_of_step_10(_model().double(), 80)
    assert diff[38:65].max() > 0 and diff[65:].max() == 0


def test_batched_streams_equal_single_streams():
    model = _model().double()
    music, up, down = _inputs(3, 40)
    batch_state = model.start(3)
    singles = [model.start(1) for _ in range(3)]
    for i in range(40):
        lu, ld = model.step(batch_state, music[:, i], up[:, i], down[:, i])
        for k, state in enumerate(singles):
            su, sd = model.step(state, music[k:k + 1, i], up[k:k + 1, i], down[k:k + 1, i])
            assert (su - lu[k:k + 1]).abs().max() < 1e-12 and (sd - ld[k:k + 1]).abs().max() < 1e-12


def test_batched_greedy_generation_equals_single_takes():
    model = _model()
    music = torch.randn(50, 7)
    first_up, first_down = torch.tensor([1, 5, 9]), torch.tensor([2, 2, 7])
    up, down = generate_codes(model, music, first_up, first_down)
    assert up.shape == (3, 50) and torch.equal(up[:, 0], first_up)
    for k in range(3):
        u, d = generate_codes(model, music, first_up[k:k + 1], first_down[k:k + 1])
        assert torch.equal(u[0], up[k]) and torch.equal(d[0], down[k])


def test_teacher_forcing_alignment_and_loss():
    model = _model()
    music, up, down = _inputs(2, 35, dtype=torch.float32)
    loss, logs = model({"music": music, "up": up, "down": down})
    lu, ld = model.logits(music[:, 1:], up[:, :-1], down[:, :-1])
    expected = (torch.nn.functional.cross_entropy(lu.reshape(-1, 13), up[:, 1:].reshape(-1))
                + torch.nn.functional.cross_entropy(ld.reshape(-1, 13), down[:, 1:].reshape(-1)))
    assert torch.allclose(loss, expected)
    music2 = music.clone()
    music2[:, 0] += 5.0                                   # music frame 0 is never seen (code 0 is given)
    assert torch.allclose(model({"music": music2, "up": up, "down": down})[0], loss)
    assert set(logs) >= {"ce_up", "ce_down", "acc_up", "acc_down"}


def test_training_learns_a_pattern_longer_than_the_band():
    torch.manual_seed(0)
    model = DancePolicy({**SMALL, "band": 4}).train()
    up = torch.arange(40).remainder(13)[None].repeat(4, 1)
    down = (up * 3).remainder(13)
    music = torch.randn(4, 40, 7)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(60):
        loss, logs = model({"music": music, "up": up, "down": down})
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert logs["acc_up"] > 0.9 and logs["acc_down"] > 0.9


@pytest.mark.parametrize("precision, tolerance", [("bf16", 0.1), ("int8", 0.05)])
def test_lighter_precisions_stay_close_to_fp32(precision, tolerance):
    model = _model({**SMALL, "n_embd": 32, "vocab": 64})
    music, up, down = _inputs(1, 40, vocab=64, dtype=torch.float32)
    light = policy_for_inference(model, precision, torch.device("cpu"))
    ref_state, light_state = model.start(1), light.start(1)
    worst, agree = 0.0, 0
    for i in range(40):
        ref, _ = model.step(ref_state, music[:, i], up[:, i], down[:, i])
        out, _ = light.step(light_state, music[:, i], up[:, i], down[:, i])
        assert out.dtype == torch.float32
        worst = max(worst, (out - ref).abs().max().item())
        agree += int(out.argmax() == ref.argmax())
    spread = ref.max().item() - ref.min().item()
    assert worst < tolerance * max(spread, 1.0)
    assert agree >= 30
