"""The HTML report shows the training records and the accuracy before/after."""

from service.report import render_report
from tests.unit.test_report import METRICS

JOB = {"id": "j_1", "state": "succeeded", "spec": {}, "artifacts": []}


def test_training_and_accuracy_sections():
    metrics = {
        **METRICS,
        "training": [{"step": "finetune", "objective": "cross-entropy", "samples": 1437, "epochs": 3, "epochs_completed": 2,
                      "epoch_loss": [0.5, 0.25, 0.125], "seconds": 1.5, "stopped_early": "max_seconds (1 s) <reached>"}],
        "quality": {"dataset": "eval", "count": 360, "top1_accuracy_before": 0.98, "top1_accuracy_after": 0.97, "accuracy_drop": 0.01},
    }
    html = render_report(JOB, metrics)
    assert "<h2>Training</h2>" in html and "2 / 3" in html and "0.5000, 0.2500, 0.1250" in html
    assert "max_seconds (1 s) &lt;reached&gt;" in html  # escaped
    assert "top-1 accuracy (360 labelled eval items)" in html and "98.00%" in html and "97.00%" in html  # the summary row
    assert "<h2>Training</h2>" not in render_report(JOB, METRICS)
