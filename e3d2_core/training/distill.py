"""π_beat: π_RL taught to dance on the beat by imitating its own beat-guided takes (self-distillation).

The beat guide (:mod:`e3d2_core.beat_guide`) makes π_RL's draws land on the beat, but only while it is on: the
policy itself still ignores the beat phase its music features carry. Here π_RL dances to every training song
with the guide on (``takes`` sampled takes per song, the song's own beats), and is then fine-tuned on those code
sequences with the behaviour-cloning loss (CE of the next up and down codes given the music) for ``steps`` steps.
What the guide chose, the policy learns to choose from the music: a raw π_beat follows the beat without a guide
(docs/music-following.md has the numbers). It is a step after E3D2's RL, like expert iteration with the guide as
the expert; the paper's tables keep measuring π_RL itself.
"""
from __future__ import annotations

import copy

import numpy as np
import torch

from e3d2_core import generation as gen
from e3d2_core.beat_guide import BeatGuide
from e3d2_core.errors import E3D2Error
from e3d2_core.generation import normalise_music
from e3d2_core.repeat_limit import RepeatLimit
from e3d2_core.training.data import CodeWindows

DEFAULTS = {"teacher": "rl", "strength": 4.0, "takes": 8, "max_codes": 240, "steps": 600, "lr": 1.0e-4,
            "batch": 16, "length": 57, "temperature": 0.7, "seed": 0}
TEACHERS = ("rl", "bc")      # the policy that dances the guided takes and is fine-tuned on them


def songs_with_beats(shards) -> list:
    """One sequence per song (the longest) that carries its music beats, over ``shards``."""
    best = {}
    for shard in shards:
        for seq in shard.sequences:
            if seq.beat_frames is None or len(seq.beat_frames) < 2:
                continue
            if seq.music_id not in best or len(seq.music) > len(best[seq.music_id].music):
                best[seq.music_id] = seq
    return [best[key] for key in sorted(best)]


@torch.no_grad()
def guided_takes(vqvae, policy, sequences, guide_entry, mean, std, *, strength: float, takes: int,
                 max_codes: int, temperature: float, seed: int, repeat=None) -> tuple[list, list, list]:
    """``takes`` beat-guided takes of ``policy`` on each sequence's music: (up codes, down codes, normalised
    music), one (N,) / (N,) / (N, D) array per take. ``repeat``: the :class:`e3d2_core.repeat_limit.RepeatLimit`
    the takes are drawn with (None: repeats are free), so that π_beat does not learn the teacher's loops."""
    runner = gen.policy_for_inference(policy, "fp32", vqvae.vq_up.codebook.device)
    ups, downs, musics = [], [], []
    for index, seq in enumerate(sequences):
        music = normalise_music(seq.music[:max_codes], mean, std)
        generator = torch.Generator().manual_seed(seed + index)
        up0, down0, _, _ = gen.seed_codes(vqvae, None, takes, seed + index + 1)
        guide = BeatGuide(guide_entry, np.asarray(seq.beat_frames, np.float64), music.shape[0] * vqvae.downsample,
                          strength=strength, fps=vqvae.fps,
                          choose=lambda logits: gen.choose(logits, temperature, None, generator))
        up, down = gen.generate_codes(runner, music, up0, down0, generator=generator, pick=guide, repeat=repeat)
        for k in range(takes):
            ups.append(up[k].numpy())
            downs.append(down[k].numpy())
            musics.append(music.numpy())
    return ups, downs, musics


def distill(policy, ups, downs, musics, *, steps: int, lr: float, batch: int, length: int, seed: int,
            on_step=None):
    """A copy of ``policy`` fine-tuned for ``steps`` Adam steps on windows of ``length`` code steps of the takes;
    returns (the policy in eval mode, the last loss)."""
    windows = CodeWindows(ups, downs, musics, length, max(1, length // 8))
    if len(windows) == 0:
        raise E3D2Error(f"the guided takes are shorter than the {length}-step training window")
    student = copy.deepcopy(policy).train()
    device = next(student.parameters()).device
    optimiser = torch.optim.Adam(student.parameters(), lr=lr, betas=(0.5, 0.999))
    rng = np.random.default_rng(seed)
    loss_value = float("nan")
    for step in range(steps):
        items = [windows[int(i)] for i in rng.integers(0, len(windows), batch)]
        data = {key: torch.stack([torch.as_tensor(item[key]) for item in items]).to(device) for key in items[0]}
        loss, logs = student(data)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        loss_value = logs["loss"]
        if on_step is not None:
            on_step(step, logs)
    return student.eval(), loss_value


def beat_policy(vqvae, policy, shards, guide_entry, mean, std, config: dict | None = None, on_step=None,
                repeat=None) -> dict:
    """The ``"policy_beat"`` bundle entry: ``policy`` distilled on its guided takes to the shards' songs
    (drawn with ``repeat``, see :func:`guided_takes`).

    ``config``: any of ``DEFAULTS`` (guide strength, takes per song, code steps per take, fine-tuning steps,
    learning rate, batch, window length, sampling temperature, seed; ``teacher`` is read by the stage)."""
    cfg = {**DEFAULTS, **(config or {})}
    unknown = set(cfg) - set(DEFAULTS)
    if unknown:
        raise E3D2Error(f"unknown distill settings: {', '.join(sorted(unknown))}; known: {', '.join(DEFAULTS)}")
    sequences = songs_with_beats(shards)
    if not sequences:
        raise E3D2Error("no training sequence carries its music beats (rebuild the data with the recipe)")
    ups, downs, musics = guided_takes(vqvae, policy, sequences, guide_entry, mean, std,
                                      strength=float(cfg["strength"]), takes=int(cfg["takes"]),
                                      max_codes=int(cfg["max_codes"]), temperature=float(cfg["temperature"]),
                                      seed=int(cfg["seed"]), repeat=repeat)
    student, loss = distill(policy, ups, downs, musics, steps=int(cfg["steps"]), lr=float(cfg["lr"]),
                            batch=int(cfg["batch"]), length=int(cfg["length"]), seed=int(cfg["seed"]),
                            on_step=on_step)
    state = {key: value.detach().cpu().clone() for key, value in student.state_dict().items()}
    return {"config": dict(policy.config), "state_dict": state,
            "distilled": {"songs": len(sequences), "takes": len(ups), "steps": int(cfg["steps"]),
                          "guide_strength": float(cfg["strength"]), "final_loss": float(loss),
                          "repeat": None if repeat is None else repeat.entry()}}


def run_distill(config: dict, run_dir, options):
    """The ``distill`` stage: π_beat from the ``teacher`` policy (``rl``: π_RL, the default, π_BC when the run has
    no π_RL; ``bc``: π_BC) with the run's beat guide."""
    from pathlib import Path

    from e3d2_core.training import stage_common as stages
    from e3d2_core.training.guide import policies_of

    run_dir = Path(run_dir)
    stages.apply_threads(config)
    torch.manual_seed(int(config.get("seed", 0)))
    device = stages.stage_device(config, options)
    vqvae, _ = stages.load_vqvae(run_dir, device)
    bc = stages.load_stage_output(run_dir, "bc")
    teacher_name = str(config.get("distill", {}).get("teacher", DEFAULTS["teacher"]))
    if teacher_name not in TEACHERS:
        raise E3D2Error(f"distill.teacher must be one of {', '.join(TEACHERS)}, got {teacher_name!r}")
    parts = dict(bc)
    if teacher_name == "rl" and (run_dir / stages.OUTPUTS["rl"]).is_file():
        parts.update(stages.load_stage_output(run_dir, "rl"))
    teacher = policies_of(parts)[-1].to(device)
    guide_output = stages.load_stage_output(run_dir, "guide")
    entry, repeat = guide_output["beat_guide"], RepeatLimit.from_entry(guide_output.get("repeat"))

    def report(step, logs):
        if options.progress and step % 50 == 0:
            print(f"distill: step {step} loss {logs['loss']:.3f}")

    policy_entry = beat_policy(vqvae, teacher, [stages.load_split(config, "train")], entry, bc["music"]["mean"],
                               bc["music"]["std"], config.get("distill", {}), on_step=report,
                               repeat=None if repeat is None or repeat.cost == 0 else repeat)
    policy_entry["distilled"]["teacher"] = "rl" if "policy_rl" in parts else "bc"
    output = run_dir / stages.OUTPUTS["distill"]
    stages.save_stage_output(output, {"policy_beat": policy_entry})
    return output
