"""How the distill step's defaults were chosen: candidates scored on a validation split (the last 20% of the
digits train split, students trained on the first 80%), never on the test digits that bench/distill.py reports.

    python bench/distill_validation.py     # prints one line per candidate: accuracy per seed (0, 1, 2), mean
"""
import sys, statistics, torch
from pathlib import Path
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.distill import modelpress_distill, alone, tutorial_loop
from modelpress.datasets import digits_28x28
from modelpress.examples import accuracy, train_digits_mlp
torch.set_num_threads(1)
teacher, _ = train_digits_mlp()
x, y, _, _ = (torch.as_tensor(a) for a in digits_28x28(0))
cut = int(0.8 * len(x)); xt, yt, xv, yv = x[:cut], y[:cut], x[cut:], y[cut:]
cands = {
 "alone": lambda s: alone(xt, yt, s),
 "tutorial": lambda s: tutorial_loop(teacher, xt, yt, s),
 "const T4 a.7 lr1e-3": lambda s: modelpress_distill(teacher, xt, yt, s, schedule="constant")[0],
 "const T2 a.25 lr1e-3": lambda s: modelpress_distill(teacher, xt, yt, s, schedule="constant", temperature=2.0, alpha=0.25)[0],
 "cos T4 a.7 lr5e-3": lambda s: modelpress_distill(teacher, xt, yt, s, lr=5e-3)[0],
 "cos T4 a.7 lr1e-2": lambda s: modelpress_distill(teacher, xt, yt, s, lr=1e-2)[0],
 "cos T2 a.5 lr5e-3": lambda s: modelpress_distill(teacher, xt, yt, s, lr=5e-3, temperature=2.0, alpha=0.5)[0],
 "const T4 a.7 lr3e-3": lambda s: modelpress_distill(teacher, xt, yt, s, schedule="constant", lr=3e-3)[0],
 "cos T4 a.9 lr5e-3": lambda s: modelpress_distill(teacher, xt, yt, s, lr=5e-3, alpha=0.9)[0],
}
for n, f in cands.items():
    a = [accuracy(f(s), xv.numpy(), yv.numpy()) for s in (0, 1, 2)]
    print(n, [round(v, 4) for v in a], round(statistics.mean(a), 4), flush=True)
