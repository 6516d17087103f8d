# Medians of every row of a two_states_cpu_issue28 file, over the rounds of each state (probe > 1.3 ms: slow).
#   python data/results/two_states_cpu_issue28/summary.py FILE.jsonl
import json
import statistics as st
import sys

rows = [json.loads(l) for l in open(sys.argv[1])]
slow = [r for r in rows if r["regions200"] > 1.3]
fast = [r for r in rows if r["regions200"] <= 1.3]
print(sys.argv[1], len(rows), "rounds; slow", len(slow))
for k in [k for k in rows[0] if k not in ("t", "load")]:
    print(
        " ",
        k,
        "fast",
        round(st.median(r[k] for r in fast), 3) if fast else "-",
        "slow",
        round(st.median(r[k] for r in slow), 3) if slow else "-",
    )
