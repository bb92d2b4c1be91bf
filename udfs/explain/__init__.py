"""Per-prediction explanations: the contribution of each input column to a model's raw output.

>>> explainer = explainer_for(model_version)     # a catalog row of indb.model_versions
>>> e = explainer.explain(frame)                 # frame: the request table's input columns
>>> e.base + e.contributions.sum(axis=1)         # == the raw output, row by row

**Raw output.** Regressors: the value. Classifiers: the score before the model's last
squashing step: log-odds of the positive class (logistic regression, gradient boosting,
XGBoost, LightGBM), the softmax input (multinomial models), the decision function (linear
SVMs, ridge classifiers), the averaged vote (random forests, whose raw output is already a
probability). Black-box classifiers (SVM, MLP, naive Bayes) are explained on their
probability output turned into log-odds (two classes) or log-probability (more).
:attr:`Explanation.output` says which, in words.

**Features** are the request table's input columns. A pipeline's derived features (one-hot
columns, scaled, imputed or binned columns) are each computed from one input column, found
by walking the ONNX graph with the SQL compiler (:mod:`indb.udfs.compiler`): a derived
feature's contribution is added to its column's. A derived feature computed from several
columns (polynomial interactions, row normalization) breaks that sum; such models are
explained by sampling over the input columns instead.

**Methods.** Linear models: exact Shapley values under feature independence,
``w_j (x_j - E[x_j])`` (:mod:`.linear`). Tree ensembles: exact path-dependent TreeSHAP on the
ONNX tree arrays (:mod:`.trees`). Everything else: sampling Shapley values over the input
columns against the background, seeded, with a per-row standard error, ``exact=False``
(:mod:`.sampling`).

**Background.** Expectations (``E[x_j]``, tree covers, the sampling baseline) come from a
background sample of the model's inputs: the registration sample stored with the version
(``indb.model_versions.sample``, up to 200 rows of the frame the model was registered with,
usually its training data), or an explicit ``background=`` frame. The stored recipe holds
no training statistics, and ONNX tree ensembles carry no node covers, so the sample is the
one source indb keeps; a caller holding the training frame gets TreeSHAP covers equal to
scikit-learn's own (node sample counts) by passing it.

**Multi-class.** Internally every explainer computes all raw outputs (a class axis).
:meth:`Explainer.explain` returns one :class:`Explanation` per request: with ``target=None``,
a model with one raw output explains it; a two-class model with a score per class explains
the positive class (``classes[1]``); a model with three or more classes explains, in each
row, the class it predicts for that row (``Explanation.target`` holds it per row), so
stored explanations answer "why this prediction". ``target=<class>`` explains that class in
every row; :meth:`Explainer.explain_all` gives one Explanation per class.
"""

from __future__ import annotations

from indb.udfs.explain.base import Explainer, Explanation
from indb.udfs.explain.model import ExplainError, explainer_for

__all__ = ["ExplainError", "Explainer", "Explanation", "explainer_for"]
