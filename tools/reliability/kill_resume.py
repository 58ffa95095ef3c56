"""A sweep that survives being killed: `tokc bench` killed with SIGKILL at random moments and resumed
each time must end with exactly the rows of an uninterrupted run — none lost, none twice — and two shards
merged by `tokc report` must give the same table as one run.

    python3 tools/reliability/kill_resume.py [--tokc .build/debug/tokc] [--kills 20] [--seed 1]

Runs from the repository root on the built-in model and a few samples of its test split. Rows are compared
on what does not depend on timing: key, prediction, correctness, visual tokens requested and kept, KV bytes,
and the first-token agreement with the uncompressed run. Exit status 1 on any difference, with the reasons.
"""
import argparse
import csv
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time

COMPARED = ["prediction", "correct", "requestedTokens", "achievedTokens", "kvCacheBytes", "top1Agrees", "answerAgrees", "error"]


def sweep_args(tokc, out, extra=()):
    return [tokc, "bench", "--methods", "fastv,visionzip", "--budgets", "0.5,0.25", "--limit", "6",
            "--max-new-tokens", "2", "--out", out, *extra]


def rows(folder):
    """key -> compared fields of the latest row, and how many times each key was written."""
    latest, written = {}, {}
    with open(os.path.join(folder, "rows.jsonl")) as f:
        for line in f:
            r = json.loads(line)
            latest[r["key"]] = {k: r.get(k) for k in COMPARED}
            written[r["key"]] = written.get(r["key"], 0) + 1
    return latest, written


def table(folder):
    with open(os.path.join(folder, "results.csv")) as f:
        return {(r["method"], r["budget"]): (r["samples"], r["errors"], r["achieved_tokens"], r["accuracy_pct"])
                for r in csv.DictReader(f)}


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--tokc", default=".build/debug/tokc")
    p.add_argument("--kills", type=int, default=20)
    p.add_argument("--seed", type=int, default=1)
    args = p.parse_args()
    rng = random.Random(args.seed)
    work = tempfile.mkdtemp(prefix="tokc-kill-")
    problems = []

    reference = os.path.join(work, "reference")
    subprocess.run(sweep_args(args.tokc, reference), check=True, capture_output=True)
    ref_rows, _ = rows(reference)
    # How long an uninterrupted sweep takes, so kills land anywhere in it (loading, rows, writing outputs).
    start = time.time()
    subprocess.run(sweep_args(args.tokc, os.path.join(work, "timing")), check=True, capture_output=True)
    duration = time.time() - start

    # Rounds: each starts a fresh folder and is killed at random moments until a run gets through;
    # rounds repeat until enough kills landed. Every round must end with the reference's rows.
    kills, runs, rounds, torn_notes, rows_checked = 0, 0, 0, 0, 0
    while kills < args.kills:
        rounds += 1
        killed = os.path.join(work, f"killed{rounds}")
        while True:
            runs += 1
            proc = subprocess.Popen(sweep_args(args.tokc, killed), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
            try:
                limit = rng.uniform(0.05, min(4.0, duration * 0.5)) if kills < args.kills else None
                err = proc.communicate(timeout=limit)[1].decode()
            except subprocess.TimeoutExpired:
                proc.send_signal(signal.SIGKILL)
                err = proc.communicate()[1].decode()
                torn_notes += err.count("unfinished line")
                kills += 1
                continue
            torn_notes += err.count("unfinished line")
            if proc.returncode != 0:
                problems.append(f"run {runs} exited {proc.returncode}: {err[-300:]}")
            break
        got, written = rows(killed)
        rows_checked += len(got)
        if set(got) != set(ref_rows):
            problems.append(f"round {rounds}: rows lost or extra: missing {sorted(set(ref_rows) - set(got))}, extra {sorted(set(got) - set(ref_rows))}")
        for key in sorted(set(got) & set(ref_rows)):
            if got[key] != ref_rows[key]:
                problems.append(f"round {rounds}: row {key} differs: {got[key]} vs {ref_rows[key]}")
        twice = [k for k, n in written.items() if n > 1 and got[k].get("error") is None]
        if twice:
            problems.append(f"round {rounds}: successful rows written twice: {twice}")
        if table(killed) != table(reference):
            problems.append(f"round {rounds}: results.csv differs from the uninterrupted sweep's")

    # Two shards in separate folders, merged, against one run.
    shards = [os.path.join(work, f"shard{i}") for i in range(2)]
    for i, folder in enumerate(shards):
        subprocess.run(sweep_args(args.tokc, folder, ["--shard", f"{i}/2"]), check=True, capture_output=True)
    merged = os.path.join(work, "merged")
    subprocess.run([args.tokc, "report", *shards, "--out", merged], check=True, capture_output=True)
    if table(merged) != table(reference):
        problems.append("the merged shards' table differs from one run's")

    print(f"{kills} kills at random moments over {runs} runs in {rounds} rounds (an uninterrupted sweep takes {duration:.1f} s); "
          f"each round ended with the reference's {len(ref_rows)} rows, each once; {torn_notes} torn last lines discarded with a note; shards merged: "
          f"{'same table' if table(merged) == table(reference) else 'DIFFERENT'}")
    for problem in problems:
        print("FAIL:", problem)
    sys.exit(1 if problems else 0)


if __name__ == "__main__":
    main()
