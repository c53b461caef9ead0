"""Editing a dance with the bundled model: regenerate a range, continue it, constraints, bad input, the CLI.

The real policy (assets/e3d2_default.pt) edits real dances (the bundled CMU salsa clip at 60 fps, an AIST++ slice
at 30 fps) and generated ones on 10 s of the bundled song. Nothing here depends on that model's particular
outputs: every check is a property the edit must have with any trained model of this format.
"""
from __future__ import annotations

import numpy as np
import pytest

from editing_support import aist_dance, assert_seamless, assert_smooth_transition, cmu_dance, real_percentiles
from e3d2_core import api
from e3d2_core.constraints import PoseTarget
from e3d2_core.errors import E3D2Error
from e3d2_core.metrics import smoothness
from e3d2_core.motion import Motion
from e3d2_core.skeleton import default_skeleton

STEP = 8 / 60.0


@pytest.fixture(scope="module")
def generated(song_clip):
    """A generated 10 s dance on the clip."""
    return api.generate(song_clip, seed=1, beat_lock=0)   # the policy's own timing: its codes match its frames


def unchanged_outside(result: Motion, source: Motion) -> tuple[int, int]:
    i0, i1 = result.meta["edit"]["frames"]
    assert result.num_frames == source.num_frames and result.fps == source.fps
    for name in ("poses", "trans"):
        new, old = getattr(result, name), getattr(source, name)
        assert np.array_equal(new[:i0], old[:i0]) and np.array_equal(new[i1:], old[i1:]), name
    return i0, i1


def test_regenerate_keeps_everything_outside_the_range_bit_for_bit(song_clip, generated):
    before = generated.copy()
    takes = api.regenerate(generated, song_clip, start=3.0, end=6.0, seed=2, takes=2)
    assert np.array_equal(generated.poses, before.poses) and np.array_equal(generated.trans, before.trans)
    for k, take in enumerate(takes):
        i0, i1 = unchanged_outside(take, generated)
        assert (i0, i1) == (180, 390)                      # [3 s, 6 s + 0.5 s blend) at 60 fps
        inside = np.abs(take.joints()[i0:i1] - generated.joints()[i0:i1]).max(-1).max(-1)
        assert np.median(inside) > 0.05                    # the range is really new (metres)
        assert take.meta["edit"]["take"] == k + 1 and take.meta["edits"][-1]["op"] == "regenerate"
        assert len(take.meta["codes_up"]) == 75             # the merged codes (see the test below)
    assert not np.array_equal(takes[0].poses, takes[1].poses)


def seam_values(joints: np.ndarray, fps: float, frame: int):
    """Every joint's speed across the seam before ``frame`` and its accelerations that straddle it."""
    speeds = np.linalg.norm(joints[frame] - joints[frame - 1], axis=-1) * fps
    accelerations = [np.linalg.norm(joints[t + 1] - 2 * joints[t] + joints[t - 1], axis=-1) * fps * fps
                     for t in (frame - 1, frame) if 1 <= t < len(joints) - 1]
    return speeds, np.concatenate(accelerations)


def test_no_seam_on_real_dance(song_clip):
    """Over many edits of the bundled real dance (CMU salsa at 60 fps, five AIST++ slices at 30 fps), joint speeds
    and accelerations across the seams (at the range's start and at the blend's end) are as in real dance: their
    99th percentile is within real dance's (the salsa), or within the dance's own at those frames when the dance
    itself moves faster there (AIST++ slices), and the root never jumps. A hard cut (no blend) is far outside."""
    from e3d2_core import editing

    reference = real_percentiles()
    generator = editing.load_generator()
    rng = np.random.default_rng(0)
    for dances in ([cmu_dance()] * 3, [aist_dance(k) for k in range(5)]):
        seams, unedited, root_steps, cut = {"v": [], "a": []}, {"v": [], "a": []}, [], []
        for dance in dances:
            joints_before = dance.joints()
            for case in range(3 if len(dances) == 3 else 2):
                start = float(rng.uniform(0.5, dance.duration - 2.5))
                end = start + float(rng.uniform(1.0, 1.8))
                for take in editing.regenerate(dance, song_clip, start=start, end=end, seed=3, takes=2,
                                               generator=generator):
                    i0, i1 = unchanged_outside(take, dance)
                    joints = take.joints()
                    for frame in (i0, i1):
                        for into, motion_joints in ((seams, joints), (unedited, joints_before)):
                            v, a = seam_values(motion_joints, take.fps, frame)
                            into["v"].append(v), into["a"].append(a)
                        root_steps.append(np.linalg.norm(joints[frame, 0] - joints[frame - 1, 0]) * take.fps)
                if case == 0:
                    hard = editing.regenerate(dance, song_clip, start=start, end=end, seed=3, blend=0.0,
                                              generator=generator)
                    cut.append(seam_values(hard.joints(), hard.fps, hard.meta["edit"]["frames"][1])[1])
            assert np.array_equal(dance.joints(), joints_before)
        for key, name in (("v", "speed"), ("a", "acceleration")):
            edited, own = np.percentile(np.concatenate(seams[key]), 99), np.percentile(np.concatenate(unedited[key]), 99)
            if dances[0] is cmu_dance():
                assert edited <= reference[name], (name, edited, reference)
            assert edited <= 1.05 * max(reference[name], own), (name, edited, own, reference)
        assert max(root_steps) <= reference["speed"]       # the pelvis moves no faster than real joints do
        assert np.percentile(np.concatenate(cut), 99) > 1.5 * reference["acceleration"]


def test_no_seam_on_the_salsa_take_by_take(song_clip):
    """Every seam of every take in the salsa: no joint faster or more accelerated than real dance's 99th
    percentile, or than the salsa itself within 0.2 s of the seam."""
    reference = real_percentiles()
    dance = cmu_dance()
    for seed, (start, end) in enumerate(((1.0, 3.0), (2.5, 5.5), (4.0, 7.0))):
        for take in api.regenerate(dance, song_clip, start=start, end=end, seed=seed, takes=3):
            i0, i1 = unchanged_outside(take, dance)
            assert_seamless(take, i0, reference, sides=True)
            assert_seamless(take, i1, reference, sides=True)


SEEDS = range(8)


@pytest.mark.parametrize("which", ["cmu", "aist"])
def test_no_seam_for_any_seed(song_clip, which):
    """Seed by seed (eight seeds, each its own range), both seams of a regenerated range in real dance: within
    real dance's 99th percentile, or no rougher than the dance on either side of the seam, or than the unedited
    dance across the same frames (5 % slack; the salsa at 60 fps, the AIST++ slices at 30 fps); the root never
    jumps; outside the range the dance is untouched."""
    from e3d2_core import editing

    reference = real_percentiles()
    generator = editing.load_generator()
    for seed in SEEDS:
        dance = cmu_dance() if which == "cmu" else aist_dance(seed % 5)
        rng = np.random.default_rng(seed)
        start = float(rng.uniform(0.5, dance.duration - 2.5))
        end = start + float(rng.uniform(1.0, 1.8))
        take = editing.regenerate(dance, song_clip, start=start, end=end, seed=seed, generator=generator)
        i0, i1 = unchanged_outside(take, dance)
        for frame in (i0, i1):
            assert_seamless(take, frame, reference, sides=True, source=dance)
        # inside the start's ease and the end's blend (0.5 s each): no blending artefact either
        e, new, old = int(round(0.5 * dance.fps)), take.joints(), dance.joints()
        assert_smooth_transition(take, (i0, i0 + e), reference, near=[new[i0 + e:i0 + 2 * e], old[i0 - 3:i0 + e]])
        assert_smooth_transition(take, (i1 - e, i1), reference, near=[new[i1 - 2 * e:i1 - e], old[i1 - e:i1 + 3]])


def test_extend_has_no_seam_for_any_seed(song_clip):
    """Eight seeds continuing the salsa (5 s, 60 fps): every seam within real dance's 99th percentile, no
    allowance. Eight more on the AIST++ slices (30 fps, which move faster than that at their ends): no rougher
    than the slice's own last 0.2 s, or its last step (5 % slack). And no blending artefact inside the ease."""
    from e3d2_core import editing

    reference = real_percentiles()
    generator = editing.load_generator()
    dance = cmu_dance().trim(0, 300)
    for seed in range(7, 7 + len(SEEDS)):
        longer = editing.extend(dance, song_clip, seconds=3.0, seed=seed, generator=generator)
        assert np.array_equal(longer.poses[:300], dance.poses) and np.array_equal(longer.trans[:300], dance.trans)
        assert_seamless(longer, 300, reference)
        assert_smooth_transition(longer, (300, 330), reference, near=[longer.joints()[330:360], dance.joints()[-12:]])
    for seed in SEEDS:
        dance = aist_dance(seed % 5)
        longer = editing.extend(dance, song_clip, seconds=2.0, seed=seed, generator=generator)
        n = dance.num_frames
        assert longer.num_frames == n + 60 and np.array_equal(longer.poses[:n], dance.poses)
        assert_seamless(longer, n, reference, sides=True, source=dance, source_frame=n - 1)
        assert_smooth_transition(longer, (n, n + 15), reference, near=[longer.joints()[n + 15:n + 30],
                                                                       dance.joints()[-6:]])


def test_seams_of_a_generated_dance_are_no_rougher_than_the_dance_around_them(song_clip, generated):
    """The bundled model's own dances move faster than real dance's 99th percentile at places: their seams stay
    within it, or within what the dance does on either side of the seam."""
    from e3d2_core.metrics import smoothness
    reference = dict(real_percentiles())
    joints = generated.joints()    # ... or within the generated dance's own 99th percentile (frame-wise worst joint)
    reference["acceleration"] = max(reference["acceleration"],
                                    float(np.percentile(smoothness.joint_accelerations(joints, generated.fps).max(1), 99)))
    for take in api.regenerate(generated, song_clip, start=4.0, end=7.0, seed=5, takes=3):
        i0, i1 = unchanged_outside(take, generated)
        assert_seamless(take, i0, reference, sides=True)
        assert_seamless(take, i1, reference, sides=True)


def test_regenerated_range_scores_like_a_fresh_generation(song_clip):
    """R_θ per minute of regenerated ranges: within 10 % of the fresh dances they were cut into (12 fresh
    dances on the same music, 3 regenerated takes of [1.5 s, 8.5 s) each)."""
    from e3d2_core import editing, scoring

    model, entry = scoring.load_reward(None)
    music, _ = scoring.music_at_step_rate(song_clip, model, entry["music_kind"])
    start, end = 1.5, 8.5
    steps = slice(int(np.floor(start * 7.5)), int(np.ceil(end * 7.5)))

    def range_per_minute(motion):
        values = np.asarray(scoring.score_arrays(model, scoring.motion_joints(motion, 60.0), music).values)[steps]
        return values.sum() / (len(values) / 7.5 / 60.0)

    generator = editing.load_generator()
    fresh = api.generate(song_clip, seed=11, takes=12, beat_lock=0, beat_guide=0)   # edits continue the raw policy
    regenerated = []
    for dance in fresh:
        for take in editing.regenerate(dance, song_clip, start=start, end=end, seed=12, takes=3, generator=generator):
            regenerated.append(range_per_minute(take))
            assert regenerated[-1] == pytest.approx(take.meta["edit"]["reward_range_per_minute"], rel=1e-6)
    fresh_score = np.mean([range_per_minute(m) for m in fresh])
    assert abs(np.mean(regenerated) / fresh_score - 1.0) <= 0.10, (np.mean(regenerated), fresh_score)


def test_a_generated_dance_keeps_its_codes_through_edits(song_clip, generated):
    """Re-encoding a generated dance gives other codes than it was made from; its own codes are reused, and an
    edit stores the merged ones for the next edit."""
    from e3d2_core import editing

    generator = editing.load_generator()
    codes = generated.meta["codes_up"]
    assert editing.stored_codes(generated, generator, 0, len(codes)) is not None
    once = api.regenerate(generated, song_clip, start=4.0, end=6.0, seed=2)
    merged = once.meta["codes_up"]
    assert len(merged) == len(codes) and merged[:30] == codes[:30] and merged[45:] == codes[45:]
    assert merged[30:45] != codes[30:45]
    assert editing.stored_codes(once, generator, 0, 30) is not None                 # still true before the edit
    tampered = generated.copy()
    tampered.poses[:, 1:] += 0.2
    assert editing.stored_codes(tampered, generator, 0, 10) is None                 # the codes no longer fit
    assert editing.stored_codes(cmu_dance(), generator, 0, 10) is None


def test_kept_joints_stay_within_a_centimetre(song_clip, generated):
    reference = real_percentiles()
    names = default_skeleton().names
    for dance, keep, joints in ((cmu_dance(), ["feet"], ["left_ankle", "right_ankle", "left_foot", "right_foot"]),
                                (generated, ["left_wrist", "head"], ["left_wrist", "head"]),
                                (generated, ["root"], ["pelvis"])):
        idx = [names.index(n) for n in joints]
        result = api.regenerate(dance, song_clip, start=2.0, end=4.5, seed=4, takes=2 if dance is cmu_dance() else 1,
                                keep=keep)
        for take in result if isinstance(result, list) else [result]:
            i0, i1 = unchanged_outside(take, dance)
            error = np.linalg.norm(take.joints()[i0:i1, idx] - dance.joints()[i0:i1, idx], axis=-1).max()
            assert error < 0.01, (keep, error)
            assert take.meta["edit"]["keep_error_cm"] == pytest.approx(100 * error, abs=1e-3)
            others = np.abs(take.joints()[i0:i1] - dance.joints()[i0:i1]).max()
            assert others > 0.05                            # the rest of the body did dance anew
            if dance is cmu_dance():
                assert_seamless(take, i0, reference)
                assert_seamless(take, i1, reference)
        if keep == ["root"]:
            assert np.array_equal(take.trans, dance.trans)


def test_key_poses_are_met_within_3_cm(song_clip, generated):
    from e3d2_core.skeleton import forward_kinematics

    reference = real_percentiles()
    dance = cmu_dance()
    for with_position in (True, False):
        target = PoseTarget.from_motion(4.0, generated, at=2.0, with_position=with_position)
        for take in api.regenerate(dance, song_clip, start=2.5, end=6.0, seed=6, takes=2, poses=[target]):
            i0, i1 = unchanged_outside(take, dance)
            frame = 240
            got = take.joints()[frame]
            if with_position:
                want = forward_kinematics(target.poses[None], target.trans[None])[0]
            else:           # relative to the pelvis: the pose's joints around the take's own pelvis
                got = got - got[0]
                want = forward_kinematics(target.poses[None], np.zeros((1, 3)))[0]
                # the pose is met at the take's heading: compare with the heading turned out
                from e3d2_core.blending import heading, quat_exp, rotate_about_y
                turn = heading(quat_exp(take.poses[frame, 0].astype(np.float64))) - heading(quat_exp(target.poses[0]))
                want[:, [0, 2]] = rotate_about_y(want[:, [0, 2]], np.full(24, turn))
            error = np.linalg.norm(got - want, axis=-1).mean()
            assert error < 0.03, (with_position, error)
            assert take.meta["edit"]["pose_error_cm"][0] == pytest.approx(100 * error, abs=0.05)
            assert_seamless(take, i0, reference)
            assert_seamless(take, i1, reference)


def test_extend_continues_past_the_end(song_clip):
    reference = real_percentiles()
    dance = cmu_dance().trim(0, 300)                       # 5 s
    before = dance.copy()
    longer = api.extend(dance, song_clip, seconds=3.0, seed=7)
    assert longer.num_frames == 300 + 180 and longer.meta["edit"]["frames"] == [300, 480]
    assert np.array_equal(longer.poses[:300], before.poses) and np.array_equal(longer.trans[:300], before.trans)
    assert_seamless(longer, 300, reference)
    to_end = api.extend(aist_dance(1), song_clip, seed=8)          # 5 s at 30 fps, to the song's 10 s end
    assert to_end.fps == 30.0 and to_end.num_frames == 300
    assert np.array_equal(to_end.poses[:150], aist_dance(1).poses)
    assert_seamless(to_end, 150, reference, sides=True)


def test_regenerate_from_the_first_frame_and_to_the_last(song_clip, generated):
    start = api.regenerate(generated, song_clip, start=0.0, end=2.0, seed=9)
    assert start.meta["edit"]["frames"] == [0, 150]
    assert np.array_equal(start.poses[150:], generated.poses[150:])
    assert np.abs(start.trans[0] - generated.trans[0])[[0, 2]].max() < 1e-5   # starts where the dance started
    end = api.regenerate(generated, song_clip, start=8.0, end=10.0, seed=9)
    assert end.meta["edit"]["frames"] == [480, 600]
    assert np.array_equal(end.poses[:480], generated.poses[:480])


@pytest.mark.parametrize("start, end, message", [
    (-1.0, 2.0, "outside the dance"), (10.0, 10.5, "outside the dance"), (2.0, 11.0, "past the end of the dance"),
    (3.0, 3.0, "is empty"), (4.0, 3.0, "is empty"), (3.0, 3.05, "shorter than one code step"),
])
def test_bad_ranges_are_refused_with_one_line(song_clip, generated, start, end, message):
    before = generated.copy()
    with pytest.raises(E3D2Error, match=message) as err:
        api.regenerate(generated, song_clip, start=start, end=end)
    assert "\n" not in str(err.value)
    assert np.array_equal(generated.poses, before.poses)


def test_other_bad_input_is_refused(song_clip, generated, tmp_path):
    from e3d2_core.skeleton import Skeleton
    from editing_support import DATA

    # a range past the song's end: the dance is longer than the 1.75 s loop it is edited against
    with pytest.raises(E3D2Error, match="the song ends at 1.753"):
        api.regenerate(generated, DATA / "loop_amen.flac", start=1.0, end=3.0)
    with pytest.raises(E3D2Error, match="extended by at most"):
        api.extend(generated, song_clip, seconds=5.0)
    big = default_skeleton()
    bigger = Skeleton(big.names, big.parents, big.offsets * 1.1, "a taller body")
    other = generated.copy(meta={"skeleton": bigger.to_dict()})
    with pytest.raises(E3D2Error, match="another skeleton"):
        api.regenerate(other, song_clip, start=2.0, end=4.0)
    renamed = generated.copy(meta={"skeleton": {**big.to_dict(), "names": [f"j{k}" for k in range(24)]}})
    with pytest.raises(E3D2Error, match="another skeleton"):
        api.regenerate(renamed, song_clip, start=2.0, end=4.0)
    with pytest.raises(E3D2Error, match="unknown joint to keep: 'tail'"):
        api.regenerate(generated, song_clip, start=2.0, end=4.0, keep=["tail"])
    with pytest.raises(E3D2Error, match="outside the regenerated range"):
        api.regenerate(generated, song_clip, start=2.0, end=4.0, poses=[PoseTarget(5.0, np.zeros((24, 3)))])
    with pytest.raises(E3D2Error, match="need a temperature above 0"):
        api.regenerate(generated, song_clip, start=2.0, end=4.0, takes=2, temperature=0)


def test_progress_and_cancel(song_clip, generated):
    from e3d2_core.errors import Cancelled

    seen = []
    api.regenerate(generated, song_clip, start=2.0, end=4.0, progress=lambda f, m: seen.append((f, m)))
    fractions = [f for f, _ in seen]
    assert fractions == sorted(fractions) and fractions[0] == 0.0 and fractions[-1] == 1.0
    assert any(m.startswith("dancing: step") for _, m in seen)
    calls = []
    with pytest.raises(Cancelled):
        api.regenerate(generated, song_clip, start=2.0, end=6.0, cancel=lambda: calls.append(1) or len(calls) > 5)


def test_cli_edit_writes_the_takes_best_first_and_nothing_on_error(song_clip, generated, tmp_path, capsys):
    from e3d2_core.cli import main

    dance = generated.save(tmp_path / "dance.npz")
    out = tmp_path / "edited.npz"
    assert main(["edit", str(dance), "--audio", str(song_clip), "--from", "3", "--to", "5", "--seed", "2",
                 "--takes", "3", "-o", str(out), "--quiet"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 3
    scores = [float(line.split("R_θ ")[1].split("/min")[0]) for line in lines]
    assert scores == sorted(scores, reverse=True)
    for k in (1, 2, 3):
        take = Motion.load(tmp_path / f"edited.take{k}.npz")
        unchanged_outside(take, generated)
    assert main(["edit", str(dance), "--audio", str(song_clip), "--from", "3", "--to", "5", "--keep", "feet",
                 "--pose-at", "4", f"{dance}@1.5", "-o", str(out), "--quiet"]) == 0
    assert "kept joints within" in capsys.readouterr().out
    for args, message in ((["--from", "3", "--to", "12"], "past the end of the dance"),
                          (["--from", "3"], "needs both --from and --to"),
                          (["--from", "3", "--to", "5", "--extend", "2"], "either --from and --to"),
                          (["--extend", "30"], "extended by at most")):
        target = tmp_path / "never.npz"
        assert main(["edit", str(dance), "--audio", str(song_clip), *args, "-o", str(target), "--quiet"]) == 2
        err = capsys.readouterr().err.strip()
        assert message in err and len(err.splitlines()) == 1 and not target.exists()
    assert main(["edit", str(dance), "--audio", str(song_clip), "--from", "3", "--to", "5", "-o", str(dance),
                 "--quiet"]) == 2
    assert "would replace the dance" in capsys.readouterr().err
    assert Motion.load(dance).poses.tobytes() == generated.poses.tobytes()
