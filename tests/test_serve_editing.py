"""The backend's editing requests (regenerate, extend) and the scores of a generation's takes, in process."""
from __future__ import annotations

import numpy as np
import pytest

from addon_support import procedural_generate
from editing_support import cmu_dance
from e3d2_core import serve
from e3d2_core.motion import Motion


def run(request, cancelled=lambda: False, **kwargs):
    events = []
    serve.handle(request, events.append, cancelled, **kwargs)
    return events[-1], events


def test_regenerate_and_extend_requests(song_clip, tmp_path):
    dance = cmu_dance().resample(30.0).trim(0, 150)                     # what the add-on sends: the scene's fps
    path = dance.save(tmp_path / "dance.npz")
    request = {"id": "r", "op": "regenerate", "motion": str(path), "audio": str(song_clip), "offset": 1.0,
               "start": 1.0, "end": 2.5, "blend": 0.5, "seed": 2, "takes": 2, "keep": ["root"]}
    final, events = run(request)
    assert final["event"] == "result" and len(final["motions"]) == 2 and len(final["edits"]) == 2
    progress = [e["fraction"] for e in events if e["event"] == "progress"]
    assert progress == sorted(progress) and progress[-1] == 1.0
    for motion_path, info in zip(final["motions"], final["edits"]):
        take = Motion.load(motion_path)
        i0, i1 = info["frames"]
        assert (i0, i1) == (30, 90) and take.fps == 30.0 and info["audio_offset"] == 1.0
        assert np.array_equal(take.poses[:i0], dance.poses[:i0]) and np.array_equal(take.poses[i1:], dance.poses[i1:])
        assert np.array_equal(take.trans, dance.trans) and info["keep_error_cm"] == 0.0
        assert np.isfinite(info["reward_range_per_minute"]) and np.isfinite(info["reward_total"])
    final, _ = run({**request, "op": "extend", "seconds": 2.0, "start": None, "end": None, "takes": 1})
    longer = Motion.load(final["motions"][0])
    assert longer.num_frames == 210 and np.array_equal(longer.poses[:150], dance.poses)


def test_edit_requests_fail_in_one_line_and_cancel(song_clip, tmp_path):
    path = cmu_dance().save(tmp_path / "dance.npz")
    request = {"id": "r", "op": "regenerate", "motion": str(path), "audio": str(song_clip), "start": 6.0,
               "end": 9.0}
    final, _ = run(request)
    assert final["event"] == "error" and "past the end of the dance" in final["message"]
    assert "\n" not in final["message"]
    final, _ = run({**request, "end": 7.0}, cancelled=lambda: True)
    assert final == {"id": "r", "event": "cancelled"}
    final, _ = run({"id": "r", "op": "regenerate", "audio": str(song_clip), "start": 1, "end": 2})
    assert final["event"] == "error" and "missing 'motion'" in final["message"]


def test_generate_can_score_its_takes(tiny_bundle_path):
    from addon_support import SONG

    class Score:
        def __init__(self, motion):
            self.total = float(np.abs(motion.poses).sum())
            self.per_minute, self.times, self.values = self.total / motion.duration * 60, [0.5], [self.total]

    request = {"id": "g", "op": "generate", "audio": str(SONG), "seconds": 1.0, "offset": 0.5, "fps": 30,
               "seed": 1, "takes": 3, "score": True}
    final, _ = run(request, generate_fn=procedural_generate, score_fn=lambda m, a, checkpoint=None: Score(m))
    assert len(final["scores"]) == 3 and len({s["per_minute"] for s in final["scores"]}) == 3
    final, _ = run({**request, "checkpoint": str(tiny_bundle_path)}, generate_fn=procedural_generate)
    assert final["event"] == "result" and final["scores"] == [None, None, None]  # no reward model: no scores
