"""Numbers and model card of a finished training run (the bundled default model: runs/default).

    python training/model_card.py runs/default [--data data/bundled] [-o assets/MODEL_CARD.md] [--json card.json]
    python training/model_card.py --music-follow follow.json [-o assets/MODEL_CARD.md]   (that section only)

The run must be complete: ``model.pt`` with vqvae, policy (π_BC), policy_rl (π_RL) and reward (R_θ), and
``report.json`` from the ``report`` stage. On the held-out song (the test split) and with the report's own protocol
(:mod:`e3d2_core.training.report`: 5-s windows, FID against the held-out real windows normalised by all real
windows, BAS with the shards' music beats, percentile-bootstrap 95 % intervals over windows) it scores

* ground truth: the held-out real dance itself;
* π_beat (the default policy, when the bundle has it), π_RL, π_BC: sampled as the report does
  (``report.temperature``, ``report.samples`` per held-out dance), seeded with the first code of each held-out
  dance;
* a random-code policy: uniform random (up, down) codes decoded by the VQ-VAE, as long as each held-out dance;
* the training motion itself: every window of the train split, on *its own* (training) music for BAS, against
  the held-out real motion for FID;

plus PFC (EDGE's physical foot contact score) for each, and writes a Markdown card with the data, the recipe,
sizes, these numbers and the report's Tables 1, 3 and 4 and the reward's accuracy per ε pair.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from e3d2_core.errors import E3D2Error  # noqa: E402

COLUMNS = ("bas", "pfc", "fid_k", "fid_g", "div_k", "div_g")
HEADERS = {"bas": "BAS ↑", "pfc": "PFC ↓", "fid_k": "FID_k ↓", "fid_g": "FID_g ↓", "div_k": "Div_k", "div_g": "Div_g"}
ROWS = (("gt", "ground truth (held-out real dance)"),
        ("beat", "π_beat (the default policy; raw: no guide, no lock)"), ("rl", "π_RL"), ("bc", "π_BC"),
        ("random", "random-code policy"), ("train_motion", "training motion itself"))
PARTS = ("vqvae", "policy", "policy_rl", "reward")


# ---------------------------------------------------------------------------------------------- numbers
def load_run(run_dir: Path, data: Path | None) -> tuple[dict, dict, dict]:
    """(config, model.pt bundle, report.json) of a finished run; ``data`` overrides the config's data.dir."""
    import yaml

    from e3d2_core.checkpoint import load_bundle

    config_path = run_dir / "bc" / "config.yaml"
    if not config_path.is_file():
        raise E3D2Error("not a training run (no bc/config.yaml)", path=run_dir)
    config = yaml.safe_load(config_path.read_text())
    if data is not None:
        config = {**config, "data": {**config.get("data", {}), "dir": str(data)}}
    bundle = load_bundle(run_dir / "model.pt", require=PARTS)
    report_path = run_dir / "report.json"
    if not report_path.is_file():
        raise E3D2Error("no report.json: run `e3d2 train report` (or `train all`) first", path=run_dir)
    try:
        report = json.loads(report_path.read_text())
    except ValueError as err:
        raise E3D2Error(f"unreadable report ({err})", path=report_path) from None
    return config, bundle, report


def card_numbers(config: dict, run_dir: Path, bundle: dict) -> dict:
    """{row: metrics with ci} for the rows of :data:`ROWS`, plus the protocol, all on the held-out split."""
    from e3d2_core.training.report import _joints, evaluation, random_code_joints, sequence_beats

    ev = evaluation(config, run_dir)
    beats = ev.generated_beats
    rows = {"gt": ev.evaluate([j for j, _ in ev.real_test], ev.test_beats, pfc=True),
            "rl": ev.evaluate(ev.generate(bundle["policy_rl"]["state_dict"]), beats, pfc=True),
            "bc": ev.evaluate(ev.generate(bundle["policy"]["state_dict"]), beats, pfc=True),
            "random": ev.evaluate(random_code_joints(ev.vqvae, [len(s.poses) for s in ev.test.sequences]),
                                  ev.test_beats, pfc=True)}
    if "policy_beat" in bundle:
        rows["beat"] = ev.evaluate(ev.generate(bundle["policy_beat"]["state_dict"]), beats, pfc=True)
    train = ev.train.sequences
    rows["train_motion"] = ev.evaluate([_joints(s.poses, s.trans) for s in train],
                                       [sequence_beats(s, ev.beat_column, ev.per_step) for s in train], pfc=True)
    beat_text = (f"exact music beats at {ev.fps:g} fps (the shards' beat_frames)" if ev.exact_beats else
                 "the code-rate beat column (beats at each step's first frame; shards without beat_frames)")
    return {"rows": rows, "distilled": (bundle.get("policy_beat") or {}).get("distilled"),
            "repeat": bundle.get("repeat"), "default_policy": bundle.get("default_policy"), "protocol": {
        "music": f"held-out song(s) {', '.join(sorted({s.music_id for s in ev.test.sequences}))} (test split); "
                 "the training-motion row uses its own training music for BAS",
        "reference": "windows of the held-out real motion (test split)",
        "window_seconds": ev.size / ev.fps, "windows_held_out": len(ev.window_pairs(
            [j for j, _ in ev.real_test], ev.test_beats)),
        "decoding": (f"{ev.samples} samples per held-out dance at temperature {ev.temperature:g}"
                     if ev.temperature > 0 else "greedy, one per held-out dance"),
        "normalisation": "all real windows (train + test)", "intervals": f"bootstrap 95 %, {ev.resamples} resamples",
        "music_beats": beat_text, "notes": ev.notes}}


def sizes(run_dir: Path, bundle: dict) -> dict:
    params = {part: int(sum(t.numel() for t in bundle[part]["state_dict"].values())) for part in PARTS}
    return {"parameters": params, "parameters_total": sum(params.values()),
            "file_bytes": (run_dir / "model.pt").stat().st_size}


def data_summary(config: dict) -> dict:
    from e3d2_core.training import stages

    out = {"splits": {}, "prepare_report": None}
    for split in ("train", "val", "test"):
        shard = stages.load_split(config, split, required=False)
        if shard is not None:
            out["splits"][split] = {"sequences": len(shard.sequences), "minutes": round(shard.minutes(), 2),
                                    "songs": sorted({s.music_id for s in shard.sequences}), "note": shard.note,
                                    "music_beats": shard.has_beats}
    report_path = stages.data_dir(config) / "report.json"
    if report_path.is_file():
        out["prepare_report"] = json.loads(report_path.read_text())
    return out


# ---------------------------------------------------------------------------------------------- markdown
def _num(value, digits: int = 3) -> str:
    if value is None or not np.isfinite(value):
        return "—"
    return f"{value:.{digits}g}" if abs(value) >= 1000 else f"{value:.{digits}f}"


def _cell(row: dict | None, metric: str) -> str:
    if not row or row.get(metric) is None:
        return "—"
    ci = (row.get("ci") or {}).get(metric)
    return f"{_num(row[metric])} [{_num(ci[0])}, {_num(ci[1])}]" if ci else _num(row[metric])


def metric_table(rows: list[tuple[str, dict | None]], columns=COLUMNS, extra=()) -> list[str]:
    head = ["", *(HEADERS.get(c, c) for c in columns), *(name for name, _ in extra), "windows"]
    lines = ["| " + " | ".join(head) + " |", "|" + " --- |" * len(head)]
    for label, row in rows:
        cells = [_cell(row, c) for c in columns] + [fmt(row) for _, fmt in extra]
        lines.append(f"| {label} | " + " | ".join(cells) + f" | {(row or {}).get('n_windows', '—')} |")
    return lines


POLICY_LABELS = {"beat": "π_beat", "rl": "π_RL", "bc": "π_BC"}


def beat_policy_text(distilled: dict | None, default: str | None = None) -> str:
    """How π_beat came about (from its distillation record), if the bundle has it, and which policy ``e3d2
    generate`` dances (``default``: the bundle's ``default_policy``; None: π_beat if present, else π_RL)."""
    default = default or ("beat" if distilled else "rl")
    others = "|".join(name for name in ("beat", "rl", "bc") if name != default and (distilled or name != "beat"))
    if not distilled:
        text = "."
    else:
        teacher = POLICY_LABELS.get(distilled.get("teacher", "rl"), "π_RL")
        text = (f", and π_beat ({teacher} fine-tuned with the behaviour-cloning loss on its own takes danced with "
                f"the beat guide at {distilled.get('guide_strength', 0):g}: {distilled.get('songs')} training "
                f"songs, {distilled.get('takes')} takes, {distilled.get('steps')} steps).")
    return (f"{text} `e3d2 generate` dances {POLICY_LABELS[default]} with the beat guide and the beat lock "
            f"(`--policy {others}` gives the others, `--beat-guide 0 --beat-lock 0` the raw policy) and scores "
            "takes with R_θ.")


def repeat_text(repeat: dict | None) -> str:
    """The bundle's repeat limit in words (empty without one)."""
    if not repeat or not repeat.get("cost"):
        return ""
    return (f" Sampling keeps the dance from looping: a code drawn more than {repeat['free_repeats']} times in the "
            f"last {repeat['window']} steps (what the real training dances stay within at 90 % of their steps) "
            f"costs {repeat['cost']:g} logit per extra time (`--repeat-cost`).")


def render(run_dir: Path, config: dict, numbers: dict, report: dict, size: dict, data: dict) -> str:
    p = numbers["protocol"]
    prep = data.get("prepare_report") or {}
    held_out = prep.get("held_out_song") or ", ".join(data["splits"].get("test", {}).get("songs", []))
    L = [f"# Model card: e3d2 `{config.get('name', run_dir.name)}` model", "",
         "Generated by `training/model_card.py` from the finished run; every number below is computed from the "
         "run's files, none is typed in.", "",
         "## What it is", "",
         "Music-driven 3D dance on the SMPL 24-joint skeleton at "
         f"{config.get('fps', 60)} fps, trained by the E3D2 pipeline on top of Bailando: a VQ-VAE choreographic "
         "memory (separate upper/lower-body codebooks, one code per 8 frames), π_BC (a GPT policy over the codes, "
         "conditioned on music features), a learned reward R_θ trained with T-REX on automatically ranked "
         "demonstrations (π_BC with ε-greedy code noise), and π_RL (π_BC fine-tuned by PPO against R_θ with a KL "
         "guard to π_BC)" + beat_policy_text(numbers.get("distilled"), numbers.get("default_policy"))
         + repeat_text(numbers.get("repeat"))
         + " Music features: "
         f"`{config.get('music', {}).get('kind')}` at {config.get('music', {}).get('fps')} Hz.", "",
         "## Sizes", "", "| part | parameters |", "| --- | --- |"]
    names = {"vqvae": "VQ-VAE", "policy": "π_BC", "policy_rl": "π_RL", "reward": "R_θ"}
    L += [f"| {names[k]} | {v:,} |" for k, v in size["parameters"].items()]
    L += [f"| total | {size['parameters_total']:,} |", "",
          f"`model.pt`: {size['file_bytes'] / 2**20:.1f} MiB ({size['file_bytes']:,} bytes).", "",
          "## Data", "", "| split | sequences | paired minutes | unique motion minutes | songs |",
          "| --- | --- | --- | --- | --- |"]
    for split, info in data["splits"].items():
        unique = (prep.get("splits", {}).get(split) or {}).get("unique_motion_minutes", "—")
        L.append(f"| {split} | {info['sequences']} | {info['minutes']} | {unique} | {len(info['songs'])} |")
    L += ["", f"Held-out song: **{held_out}** (test split only)."
          + (" Test = CMU salsa trials 14 and 15, modern dance 16-17 and breakdance 85_04 time-warped onto it; "
             "val = unseen dance on seen music." if prep.get("held_out_song") else ""), ""]
    if prep.get("eval_songs"):
        L += [f"Evaluation-only music (never trained on): {', '.join(prep['eval_songs'])}.", ""]
    if prep.get("motion_sources"):
        L += ["Motion sources at their true frame rates: " + "; ".join(
            f"{name} {info['fps']:g} fps ({info['why']})" for name, info in prep["motion_sources"].items()) + ".", ""]
    L += ["Sources and licences (the shards' provenance notes):", ""]
    L += [f"* {split}: {info['note']}" for split, info in data["splits"].items()]
    L += ["", "Music licences: the songs and soundtracks are CC BY 3.0 / public domain, the Freedoom renders BSD, "
          "the loops CC0 (see docs/training.md, `training/data_manifest.json` and `assets/ATTRIBUTION.md`).", "",
          "## Recipe", "", "```",
          "python training/fetch_data.py -o data/real",
          "python training/prepare_bundled.py -o data/bundled",
          f"python -m e3d2_core.cli train all --config training/configs/{config.get('name', 'default')}.yaml "
          f"--run runs/{run_dir.name}",
          f"python training/model_card.py runs/{run_dir.name} -o assets/MODEL_CARD.md", "```", "",
          "## The default model on the held-out song", "",
          f"Music: {p['music']}. Reference: {p['reference']}; {p['window_seconds']:g}-s windows "
          f"({p['windows_held_out']} held-out windows); features normalised by {p['normalisation']}; "
          f"BAS with {p['music_beats']}; [95 % interval] by {p['intervals']} over windows. π_RL and π_BC: "
          f"{p.get('decoding', 'greedy')}. The random-code policy "
          "decodes uniform random codes with the VQ-VAE; the training-motion row is every window of the train "
          "split (mirrors included).", ""]
    L += metric_table([(label, numbers["rows"].get(key)) for key, label in ROWS])
    L += [""] + [f"Note: {n}" for n in p["notes"]] + [""]
    L += music_follow_section(run_dir, beat_from_run=(run_dir / "distill.pt").is_file())
    L += ["## The E3D2 report (`e3d2 report`)", ""]
    proto = report.get("protocol", {})
    L += [f"Music: Tables 1 and 3 {proto.get('table1_table3_music', 'held-out')}; Table 4 "
          f"{proto.get('table4_music', 'training music')} (the paper's Table 4 looks like seen music). BAS "
          f"beats: {proto.get('music_beats', 'code-rate beat column (report written before exact beats)')}.", "",
          "### Table 1 (π_BC vs π_RL, held-out music)", ""]
    report_cols = ("fid_k", "fid_g", "div_k", "div_g", "bas")
    L += metric_table([(k, report["table1"].get(k)) for k in ("gt", "bc", "rl")], report_cols)
    returns = report.get("reward_per_minute_held_out")
    if returns:
        L += ["", "R_θ return per minute on the held-out music (mean [95 % interval] over dances): " + "; ".join(
            f"{k} {_num(v['mean'])} [{_num(v['ci'][0])}, {_num(v['ci'][1])}]" for k, v in returns.items()) + "."]
    L += ["", "### Table 3 (learned vs hand-designed reward by interaction steps, held-out music)", ""]
    L += metric_table([(f"{r['reward']} @ {r['steps']:,} steps", r) for r in report["table3"]], report_cols)
    L += ["", "### Table 4 (ε levels, training music; ū = R_θ return per minute)", ""]
    L += metric_table([(f"ε = {eps}", row) for eps, row in report["table4"].items()], report_cols,
                      extra=(("ū", lambda row: _num((row or {}).get("u_bar"))),))
    intervals = report.get("reward_accuracy_interval") or {}
    takes = report.get("reward_held_out_takes") or {}
    L += ["", "### R_θ held-out pairwise accuracy per ε pair (5-s snippets)", ""]
    if takes.get("split"):
        L += [f"Measured on {takes['test']} held-out takes that early stopping never saw (it chose R_θ on "
              f"{takes['select']} others); 95 % intervals resample takes.", ""]
    L += ["| ε pair | accuracy | 95 % interval |", "| --- | --- | --- |"]
    L += [f"| {pair.replace('|', ' vs ')} | {_num(acc)} | "
          + (f"[{_num(intervals[pair][0])}, {_num(intervals[pair][1])}]" if pair in intervals else "–") + " |"
          for pair, acc in report["reward_accuracy"].items()]
    if report.get("robustness_held_out_real") is not None:
        L += ["", f"R_θ robustness on held-out real motion (clean ranked above jittered, time-shuffled, slowed, "
              f"looped, shifted off the beat): "
              f"`{json.dumps(report['robustness_held_out_real'])}`."]
    L += ["", "## Limitations", "",
          "* Small data: about 20 minutes of unique motion (CMU salsa, two dancers; one modern dancer; one "
          "breaker; five short AIST++ slices), time-warped onto songs it was not recorded to.",
          "* One held-out song and a few held-out clips: a handful of 5-s windows, so FID and BAS carry wide "
          "intervals (shown); with few windows in 72/32 dimensions FID is dominated by sampling noise, so compare "
          "rows by their intervals, not their point values.",
          "* The training-motion row scores the training data itself against the held-out motion (what a perfect "
          "copy of the training set would get), not a human reference danced to this song.",
          "* Trained on 2 CPU cores at the default (small) sizes, not the paper's; numbers are not comparable with "
          "AIST++ results in the literature."]
    L += rl_limitation(report)
    L += [""]
    return "\n".join(L)


FOLLOW_ROWS = (("rl_raw", "π_RL, raw"), ("bc_raw", "π_BC, raw"), ("beat_raw", "π_beat, raw"),
               ("rl_guided", "π_RL + beat guide"), ("rl_locked", "π_RL + beat lock"),
               ("bc_product", "π_BC + beat guide + beat lock"),
               ("product", "product default ({policy} + beat guide + beat lock)"),
               ("real_dance", "real dance (held-out and val clips on their music)"))
FOLLOW_TITLE = "## Following the music (`bench/bench_music_follow.py`)"


def music_follow_section(run_dir: Path, path: Path | None = None, *, beat_from_run: bool = False) -> list[str]:
    """The music-following table from ``path`` (default ``run_dir/music_follow.json``, written by
    bench/bench_music_follow.py). ``beat_from_run``: π_beat came from the run's own distill stage (else the card
    says it was added to the bundle after the run)."""
    path = Path(path) if path is not None else Path(run_dir) / "music_follow.json"
    if not path.is_file():
        return []
    result = json.loads(path.read_text())

    def cell(row, key, digits=3):
        value = row.get(key) or {}
        if value.get("mean") is None:
            return "–"
        return f"{value['mean']:.{digits}f} [{value['ci95'][0]:.{digits}f}, {value['ci95'][1]:.{digits}f}]"

    L = [FOLLOW_TITLE, "",
         f"Songs nobody trained on: {', '.join(result['songs'])} ({result['takes_per_song']} takes each, "
         f"{result['seconds']:g} s; steady_* are synthetic drum tracks). Every figure is against the songs' true beats; "
         "[95 % interval] by take bootstrap. Tempo match: the dance's own period (autocorrelation of mean joint "
         "speed, 0.3-2.2 s) is the beat period, ×½ or ×2, within 6 %. Phase gain: BAS on the beats minus BAS on the "
         "off-beats. Tempo correlation: the dance's tempo, octave-folded, against the music's.", "",
         "| dance | tempo match | BAS | phase gain | tempo correlation | joint speed (m/s) | pose spread (m) "
         "| stillest 4 s (m) | jitter share | spinning > 360°/s | pelvis accel. (m/s²) | lowest foot (m) "
         "| foot slide (m/s) |",
         "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    default = POLICY_LABELS[result.get("default_policy", "beat")]     # older results: π_beat was the default
    for key, label in FOLLOW_ROWS:
        label = label.format(policy=default)
        row = result["rows"].get(key)
        if not row:
            continue
        corr = row.get("tempo_correlation_folded") or {}
        corr_text = "–" if corr.get("r") is None else f"{corr['r']:.2f} [{corr['ci95'][0]:.2f}, {corr['ci95'][1]:.2f}]"
        L.append(f"| {label} | {cell(row, 'tempo_match', 2)} | {cell(row, 'bas')} | {cell(row, 'phase_gain')} | "
                 f"{corr_text} | {cell(row, 'speed', 2)} | {cell(row, 'pose_spread')} "
                 f"| {cell(row, 'pose_spread_low')} | {cell(row, 'jitter_share', 2)} | {cell(row, 'spin_fraction')} "
                 f"| {cell(row, 'pelvis_accel', 1)} "
                 f"| {row.get('lowest_foot_min', float('nan')):.3f} | {cell(row, 'foot_slide', 2)} |")
    L += ["", "Pose spread: how far the joints range from their mean place relative to the pelvis (a dance held "
          "in one pose is near 0 however fast it trembles), over the take and in its stillest 4 s (a dancer who "
          "stops for a while); jitter share: the share of joint speed above ~3 Hz "
          "(docs/music-following.md)."]
    if "beat_raw" in result["rows"] and not beat_from_run:
        L += ["", "π_beat and the beat guide's tables were added to the bundle after the training run "
              "(training/add_beat_guide.py); the E3D2 report below measures π_BC and π_RL as the run left them, "
              "and only the table above measures π_beat and the product default."]
    return L + [""]


def rl_limitation(report: dict) -> list[str]:
    """A limitation bullet, from the report's numbers, on what RL against R_θ did to π_BC."""
    returns, table1 = report.get("reward_per_minute_held_out") or {}, report.get("table1") or {}
    bc, rl = table1.get("bc"), table1.get("rl")
    if not (returns.get("bc") and returns.get("rl") and bc and rl):
        return []
    change = (rl["fid_k"] - bc["fid_k"]) / bc["fid_k"] * 100
    learned = [r["fid_k"] for r in report.get("table3", []) if r["reward"] == "learned" and r["steps"] > 0]
    spread = f" (its snapshots ranged {min(learned):.0f}–{max(learned):.0f})" if len(learned) > 1 else ""
    return [f"* RL against R_θ is a small step here: R_θ's return per minute on the held-out song went from "
            f"{returns['bc']['mean']:.0f} to {returns['rl']['mean']:.0f} (real dance: "
            f"{returns.get('gt', {}).get('mean', float('nan')):.0f}), while FID_k went from {bc['fid_k']:.0f} to "
            f"{rl['fid_k']:.0f} ({change:+.0f} %){spread}; their 95 % intervals "
            f"{'overlap' if overlap(bc['ci']['fid_k'], rl['ci']['fid_k']) else 'do not overlap'}. With "
            f"{bc.get('n_windows', '?')} generated windows against {table1.get('gt', {}).get('n_windows', '?')} held-out "
            "real ones in 72 dimensions FID_k is a noisy judge here; `--policy bc` is one flag away."]


def overlap(a, b) -> bool:
    return bool(a and b and a[0] <= b[1] and b[0] <= a[1])


def build_card(run_dir, *, data=None, output=None, json_out=None) -> dict:
    """Compute everything and write the card (and JSON); returns the JSON object."""
    from e3d2_core.fileio import atomic_open

    run_dir = Path(run_dir)
    config, bundle, report = load_run(run_dir, None if data is None else Path(data))
    numbers = card_numbers(config, run_dir, bundle)
    size = sizes(run_dir, bundle)
    data_info = data_summary(config)
    text = render(run_dir, config, numbers, report, size, data_info)
    result = {"numbers": numbers, "sizes": size, "data": {k: v for k, v in data_info.items()},
              "report": report}
    if output is not None:
        with atomic_open(output, "w") as handle:
            handle.write(text)
    if json_out is not None:
        with atomic_open(json_out, "w") as handle:
            json.dump(result, handle, indent=2)
    result["markdown"] = text
    return result


def replace_follow_section(card: Path, follow_json: Path) -> None:
    """Rewrite only the music-following section of an existing card (atomically), from a bench JSON: for a
    bundle re-measured after its run folder is gone."""
    from e3d2_core.fileio import atomic_open

    text = Path(card).read_text()
    if FOLLOW_TITLE not in text:
        raise E3D2Error(f"no '{FOLLOW_TITLE}' section to replace", path=card)
    head, rest = text.split(FOLLOW_TITLE, 1)
    tail = rest[rest.index("\n## "):] if "\n## " in rest else "\n"
    section = music_follow_section(Path(follow_json).parent, follow_json)
    if not section:
        raise E3D2Error("no such music-following JSON", path=follow_json)
    with atomic_open(card, "w") as handle:
        handle.write(head + "\n".join(section).rstrip("\n") + "\n" + tail)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run", type=Path, nargs="?", help="a finished run folder (model.pt, report.json)")
    parser.add_argument("--music-follow", type=Path, metavar="JSON",
                        help="only rewrite the card's music-following section from this bench JSON")
    parser.add_argument("--data", type=Path, help="shard folder (default: the run config's data.dir)")
    parser.add_argument("-o", "--output", type=Path, default=Path("assets/MODEL_CARD.md"), help="Markdown card")
    parser.add_argument("--json", type=Path, help="also write every number as JSON here")
    args = parser.parse_args(argv)
    if args.music_follow is not None:
        try:
            replace_follow_section(args.output, args.music_follow)
        except E3D2Error as err:
            print(f"model_card: error: {err}", file=sys.stderr)
            return 2
        print(json.dumps({"card": str(args.output), "music_follow": str(args.music_follow)}))
        return 0
    if args.run is None:
        parser.error("give a run folder, or --music-follow JSON")
    try:
        result = build_card(args.run, data=args.data, output=args.output, json_out=args.json)
    except E3D2Error as err:
        print(f"model_card: error: {err}", file=sys.stderr)
        return 2
    rows = result["numbers"]["rows"]
    print(json.dumps({k: {m: (v or {}).get(m) for m in COLUMNS} for k, v in rows.items()}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
