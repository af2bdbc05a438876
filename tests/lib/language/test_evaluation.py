"""lib.language.evaluation: the metrics of a model on the held-out rows."""

from random_models import random_model

from lib import language as g

N_CTX = 128


def test_evaluate_reports_the_metrics_of_an_untrained_model():
    model = random_model(
        perturb=0.0, n_layers=1, d_model=16, n_heads=2, d_head=8, d_mlp=32, n_ctx=N_CTX, d_vocab=len(g.VOCAB)
    )
    metrics = g.evaluate(model)
    assert metrics["heldout_loss"] > 5
    assert 1.5 < metrics["true_loss"] < 3 and metrics["name_repeat_true_loss"] < 2.5
    assert 0 < metrics["name_copy_mass"] < 0.2 and 0.2 < metrics["agreement_acc"] < 0.8
