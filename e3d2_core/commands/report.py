"""`e3d2 report RUN [--json]`: the paper's tables for a finished run."""
from __future__ import annotations

HELP = "print the paper's Tables 1, 3, 4 and the reward accuracy of a training run"
DESCRIPTION = """Print the E3D2 report of a run folder (computed by the `report` stage; computed now if missing,
with the run's saved config). --json prints one object with table1, table3, table4, reward_accuracy.
Figure 3 (R_θ accuracy per ε pair during training) is RUN/reward/accuracy.png."""


def add_arguments(parser):
    parser.add_argument("run", help="run folder (e3d2 train ... --run RUN)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")


def _fmt(row):
    if not row:
        return "n/a"
    ci = row.get("ci", {})
    parts = []
    for m in ("fid_k", "fid_g", "div_k", "div_g", "bas"):
        if row.get(m) is None:
            parts.append(f"{m} n/a")
        else:
            lo, hi = ci.get(m) or (row[m], row[m])
            parts.append(f"{m} {row[m]:.3f} [{lo:.3f}, {hi:.3f}]")
    return "  ".join(parts)


def run(args) -> int:
    import json
    from pathlib import Path

    import yaml

    from e3d2_core.errors import E3D2Error

    run_dir = Path(args.run)
    path = run_dir / "report.json"
    if not path.is_file():
        config_path = run_dir / "bc" / "config.yaml"
        if not config_path.is_file():
            raise E3D2Error("not a finished training run (no report.json and no bc/config.yaml)", path=run_dir)
        from e3d2_core.training import stages

        stages.run_stage("report", yaml.safe_load(config_path.read_text()), run_dir, stages.StageOptions())
    try:
        report = json.loads(path.read_text())
    except (OSError, ValueError) as err:
        raise E3D2Error(f"unreadable report ({err})", path=path) from None
    if args.json:
        print(json.dumps(report))
        return 0
    print("Table 1 (held-out music; 5-s windows; 95 % bootstrap intervals)")
    for name in ("gt", "bc", "rl"):
        print(f"  {name:3s} {_fmt(report['table1'].get(name))}")
    print("Table 3 (RL interaction steps; learned vs hand-designed reward)")
    for row in report["table3"]:
        print(f"  {row['reward']:7s} {row['steps']:>8d}  {_fmt(row)}")
    print("Table 4 (demonstrations on training music; ū = R_θ return per minute)")
    for eps, row in report["table4"].items():
        print(f"  ε {eps:5s} ū {row.get('u_bar')!s:>10.10s}  {_fmt(row)}")
    print("R_θ held-out pairwise accuracy: " + ", ".join(f"{k} {v:.3f}" for k, v in
                                                          report["reward_accuracy"].items()))
    print(f"Figure 3: {report.get('figure3')}")
    return 0
