"""Bradley–Terry strengths from blind pairwise human ratings, with ties (Davidson 1970).

Raters see two outputs for the same prompt (models hidden) and pick "a", "b" or "tie".
Counting a tie as half a win each would throw information away and leave the tie rate
unexplained; Davidson's extension of Bradley–Terry models it explicitly. With log-strengths
theta and a tie parameter nu > 0, for a comparison of i and j:

    P(i wins) = pi_i / D,  P(j wins) = pi_j / D,  P(tie) = nu·sqrt(pi_i·pi_j) / D,
    D = pi_i + pi_j + nu·sqrt(pi_i·pi_j),  pi = exp(theta).

With nu -> 0 this is plain Bradley–Terry. The log-likelihood of a pair depends only on
d = theta_i - theta_j and log nu and is concave (a log-sum-exp), so the fit has one optimum.

Choices, and why:

* Normalization: sum(theta) = 0, i.e. the geometric mean strength is 1; the "average model"
  is theta = 0.
* Regularization: a ridge penalty ridge/2·(|theta|² + (log nu)²), ridge = 0.01 by default — a
  N(0, 10²) prior on the log scale. It is negligible against hundreds of ratings, keeps a model
  with zero wins (MLE at -inf) and a data set with no ties (nu -> 0) finite, and makes the
  objective strictly convex. It also picks the sum-zero representative by itself.
* Intervals: Wald/Laplace intervals theta ± z·se from the observed information (the Hessian of
  the penalized negative log-likelihood at the optimum) restricted to the sum-zero subspace —
  cheap, deterministic, adequate at the hundreds-of-ratings-per-pair scale. Disconnected
  comparison graphs are flagged (``connected``); their between-component gaps are set by the
  prior only and show up as very wide intervals.
* 0–100 score: 100 × the expected score (P(win) + ½·P(tie)) against the average model,
  (e^{theta/2} + nu/2) / (e^{theta/2} + e^{-theta/2} + nu); monotone in theta, so the interval
  maps through it. 50 = average.

``PairwiseCounts`` is the mergeable state: per ordered pair (model shown as "a", model shown
as "b") the a-wins, b-wins and ties; order is kept so position bias can be checked. Serialized
as ``{"v": 1, "pairs": [[a, b, a_wins, b_wins, ties], ...]}`` sorted by (a, b).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal, Mapping

import numpy as np
from scipy import optimize, stats

FORMAT_VERSION = 1
DEFAULT_RIDGE = 0.01
Winner = Literal["a", "b", "tie"]
_SLOT = {"a": 0, "b": 1, "tie": 2}


@dataclass
class PairwiseCounts:
    """Wins and ties per ordered model pair (as presented: a first, b second)."""

    pairs: dict[tuple[str, str], list[int]] = field(default_factory=dict)  # (a, b) -> [a_wins, b_wins, ties]

    def update(self, model_a: str, model_b: str, winner: Winner, count: int = 1) -> None:
        if model_a == model_b:
            raise ValueError(f"a model cannot be compared with itself ({model_a!r})")
        if winner not in _SLOT:
            raise ValueError(f"winner must be 'a', 'b' or 'tie', got {winner!r}")
        if count < 0:
            raise ValueError("count must be non-negative")
        self.pairs.setdefault((model_a, model_b), [0, 0, 0])[_SLOT[winner]] += count

    def merge(self, other: "PairwiseCounts") -> "PairwiseCounts":
        out = {k: list(v) for k, v in self.pairs.items()}
        for k, v in other.pairs.items():
            row = out.setdefault(k, [0, 0, 0])
            for s in range(3):
                row[s] += v[s]
        return PairwiseCounts(out)

    @property
    def models(self) -> tuple[str, ...]:
        return tuple(sorted({m for pair in self.pairs for m in pair}))

    @property
    def total(self) -> int:
        return sum(sum(v) for v in self.pairs.values())

    def unordered(self) -> dict[tuple[str, str], tuple[int, int, int]]:
        """(i, j) with i < j -> (i wins, j wins, ties), presentation order folded away."""
        out: dict[tuple[str, str], list[int]] = {}
        for (a, b), (wa, wb, t) in self.pairs.items():
            if a < b:
                row = out.setdefault((a, b), [0, 0, 0])
                row[0] += wa
                row[1] += wb
            else:
                row = out.setdefault((b, a), [0, 0, 0])
                row[0] += wb
                row[1] += wa
            row[2] += t
        return {k: (v[0], v[1], v[2]) for k, v in sorted(out.items())}

    def compute(self) -> "BTResult":
        return fit_bradley_terry(self)

    def to_dict(self) -> dict[str, Any]:
        return {"v": FORMAT_VERSION, "pairs": [[a, b, *v] for (a, b), v in sorted(self.pairs.items())]}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None) -> "PairwiseCounts":
        if not data:
            return cls()
        if data.get("v") != FORMAT_VERSION:
            raise ValueError(f"unknown PairwiseCounts format {data.get('v')!r}")
        return cls({(str(a), str(b)): [int(wa), int(wb), int(t)] for a, b, wa, wb, t in data["pairs"]})


@dataclass(frozen=True)
class BTResult:
    """Fitted Davidson–Bradley–Terry model; per-model values keyed by model id."""

    models: tuple[str, ...]
    strength: dict[str, float]  # log-strength theta, sum 0
    stderr: dict[str, float]
    ci_low: dict[str, float]
    ci_high: dict[str, float]
    score: dict[str, float]  # 0-100, expected score vs the average model
    score_low: dict[str, float]
    score_high: dict[str, float]
    tie_param: float  # Davidson nu
    pair_n: dict[tuple[str, str], int]  # (i, j), i < j -> ratings
    n_per_model: dict[str, int]
    level: float
    ridge: float
    connected: bool
    converged: bool
    cov: tuple[tuple[float, ...], ...] = ()  # covariance of theta (sum-zero subspace), models' order

    def ranking(self) -> list[str]:
        """Model ids, strongest first."""
        return sorted(self.models, key=lambda m: -self.strength[m])

    def to_dict(self) -> dict[str, Any]:
        per_model = {m: {"strength": self.strength[m], "stderr": self.stderr[m], "ci_low": self.ci_low[m],
                         "ci_high": self.ci_high[m], "score": self.score[m], "score_low": self.score_low[m],
                         "score_high": self.score_high[m], "n": self.n_per_model[m]} for m in self.models}
        return {"v": FORMAT_VERSION, "tie_model": "davidson", "tie_param": self.tie_param, "level": self.level,
                "ridge": self.ridge, "connected": self.connected, "converged": self.converged,
                "models": per_model, "pairs": [[a, b, n] for (a, b), n in self.pair_n.items()],
                "cov": [list(r) for r in self.cov]}


def expected_score(theta: np.ndarray | float, nu: float) -> np.ndarray:
    """P(win) + ½·P(tie) against a model with theta = 0, under Davidson's model."""
    h = np.exp(np.asarray(theta, np.float64) / 2.0)
    return (h + nu / 2.0) / (h + 1.0 / h + nu)


def _objective(params: np.ndarray, i: np.ndarray, j: np.ndarray, wins_i: np.ndarray, wins_j: np.ndarray,
               ties: np.ndarray, ridge: float) -> tuple[float, np.ndarray, np.ndarray]:
    """Penalized negative log-likelihood, gradient and Hessian in (theta_1..K, log nu)."""
    k = len(params) - 1
    theta, eta = params[:k], params[k]
    nu = np.exp(eta)
    d = theta[i] - theta[j]
    n = wins_i + wins_j + ties
    ch, sh = np.cosh(d / 2.0), np.sinh(d / 2.0)
    c = 2.0 * ch + nu
    nll = np.sum(-(wins_i - wins_j) * d / 2.0 - ties * eta + n * np.log(c))
    g_d = -(wins_i - wins_j) / 2.0 + n * sh / c
    g_eta = np.sum(-ties + n * nu / c)
    h_dd = n * (ch * c / 2.0 - sh * sh) / (c * c)
    h_de = -n * sh * nu / (c * c)
    h_ee = np.sum(n * nu * 2.0 * ch / (c * c))

    grad = np.zeros(k + 1)
    np.add.at(grad, i, g_d)
    np.add.at(grad, j, -g_d)
    grad[k] = g_eta
    hess = np.zeros((k + 1, k + 1))
    np.add.at(hess, (i, i), h_dd)
    np.add.at(hess, (j, j), h_dd)
    np.add.at(hess, (i, j), -h_dd)
    np.add.at(hess, (j, i), -h_dd)
    np.add.at(hess, (i, k), h_de)
    np.add.at(hess, (j, k), -h_de)
    np.add.at(hess, (k, i), h_de)
    np.add.at(hess, (k, j), -h_de)
    hess[k, k] += h_ee

    nll += ridge / 2.0 * float(params @ params)
    grad += ridge * params
    hess[np.diag_indices(k + 1)] += ridge
    return float(nll), grad, hess


def _connected(k: int, i: np.ndarray, j: np.ndarray) -> bool:
    parent = list(range(k))

    def find(x: int) -> int:
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for a, b in zip(i.tolist(), j.tolist()):
        parent[find(a)] = find(b)
    return len({find(x) for x in range(k)}) == 1


def _sum_zero_basis(k: int) -> np.ndarray:
    """Orthonormal K×(K-1) basis of {theta : sum(theta) = 0}."""
    q, _ = np.linalg.qr(np.eye(k) - 1.0 / k)
    return q[:, : k - 1]


def fit_bradley_terry(counts: PairwiseCounts, *, ridge: float = DEFAULT_RIDGE, level: float = 0.95) -> BTResult:
    """Penalized maximum-likelihood Davidson–Bradley–Terry fit with Wald intervals.

    scipy's trust-exact with the analytic gradient and Hessian, then up to three Newton steps
    (the objective is strictly convex); ``converged`` means max|gradient| <= 1e-8·(1 + ratings).
    """
    if ridge <= 0:
        raise ValueError("ridge must be > 0 (it keeps zero-win models and tie-free data finite)")
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1), got {level}")
    models = counts.models
    k = len(models)
    if k < 2:
        raise ValueError(f"need comparisons between at least 2 models, have {k}")
    index = {m: x for x, m in enumerate(models)}
    table = {p: v for p, v in counts.unordered().items() if sum(v) > 0}
    i = np.array([index[a] for a, _ in table], dtype=np.intp)
    j = np.array([index[b] for _, b in table], dtype=np.intp)
    arr = np.array(list(table.values()), dtype=np.float64).reshape(-1, 3)
    data = (i, j, arr[:, 0], arr[:, 1], arr[:, 2], ridge)

    res = optimize.minimize(lambda p: _objective(p, *data)[:2], np.zeros(k + 1), jac=True,
                            hess=lambda p: _objective(p, *data)[2], method="trust-exact",
                            options={"gtol": 1e-9, "maxiter": 500})
    params = res.x
    _, grad, hess = _objective(params, *data)
    for _ in range(3):  # trust-exact can stop at float resolution of the NLL; Newton polishes the gradient
        step = params - np.linalg.solve(hess, grad)
        _, g2, h2 = _objective(step, *data)
        if not np.max(np.abs(g2)) < np.max(np.abs(grad)):
            break
        params, grad, hess = step, g2, h2
    theta, nu = params[:k] - params[:k].mean(), float(np.exp(params[k]))

    basis = np.zeros((k + 1, k))
    basis[:k, : k - 1] = _sum_zero_basis(k)
    basis[k, k - 1] = 1.0
    cov = basis @ np.linalg.inv(basis.T @ hess @ basis) @ basis.T
    se = np.sqrt(np.clip(np.diag(cov)[:k], 0.0, None))
    z = float(stats.norm.ppf(0.5 + level / 2.0))
    lo, hi = theta - z * se, theta + z * se
    score, s_lo, s_hi = (100.0 * expected_score(t, nu) for t in (theta, lo, hi))

    pair_n = {p: int(sum(v)) for p, v in counts.unordered().items()}
    n_model = {m: 0 for m in models}
    for (a, b), n in pair_n.items():
        n_model[a] += n
        n_model[b] += n

    def per(v: np.ndarray) -> dict[str, float]:
        return {m: float(v[index[m]]) for m in models}

    return BTResult(models=models, strength=per(theta), stderr=per(se), ci_low=per(lo), ci_high=per(hi),
                    score=per(score), score_low=per(s_lo), score_high=per(s_hi), tie_param=nu, pair_n=pair_n,
                    n_per_model=n_model, level=level, ridge=ridge, connected=_connected(k, i, j),
                    converged=bool(np.max(np.abs(grad)) <= 1e-8 * (1.0 + arr.sum())),
                    cov=tuple(tuple(float(x) for x in r) for r in cov[:k, :k]))


DEFAULT_MIN_RATINGS = 30


def fit_niches(counts: Mapping[str, PairwiseCounts], *, min_ratings: int = DEFAULT_MIN_RATINGS,
               ridge: float = DEFAULT_RIDGE, level: float = 0.95) -> dict[str, dict[str, Any]]:
    """One Davidson–Bradley–Terry fit per niche (ratings pair two outputs of the same niche).

    Per niche: ``fit`` (BTResult, None with fewer than two rated models), ``ratings`` and per
    model ``n`` (ratings it took part in) and ``enough``: a model x niche Human is reported only
    when the model has at least ``min_ratings`` ratings in the niche and the niche's comparison
    graph is connected — below that the interval is mostly the prior's, so the report says
    "too few ratings" instead of a number.
    """
    if min_ratings < 1:
        raise ValueError(f"min_ratings must be >= 1, got {min_ratings}")
    out: dict[str, dict[str, Any]] = {}
    for niche, c in sorted(counts.items()):
        fit = fit_bradley_terry(c, ridge=ridge, level=level) if len(c.models) >= 2 and c.total > 0 else None
        n = {m: 0 for m in c.models}
        for (a, b), v in c.unordered().items():
            n[a] += sum(v)
            n[b] += sum(v)
        ok = fit is not None and fit.connected
        out[niche] = {"fit": fit, "ratings": c.total, "n": n,
                      "enough": {m: ok and k >= min_ratings for m, k in n.items()}}
    return out


def too_few_note(n: int) -> str:
    return f"too few ratings: n={n}"


def score_draws(fit: Mapping[str, Any], rng: np.random.Generator, resamples: int) -> dict[str, np.ndarray]:
    """0-100 Human scores per bootstrap draw for every model of one fit (``BTResult.to_dict``):
    theta drawn jointly from N(theta, cov) — the normal approximation behind the Wald intervals,
    with the covariance, since the strengths of one fit are estimated together (sum zero) and a
    difference's spread is not the marginal spreads' sum — through the expected score."""
    models = list(fit["models"])
    theta = np.array([fit["models"][m]["strength"] for m in models], np.float64)
    cov = np.asarray(fit["cov"], np.float64)
    draws = rng.multivariate_normal(theta, cov, size=resamples, method="eigh")
    nu = float(fit["tie_param"])
    return {m: 100.0 * expected_score(draws[:, k], nu) for k, m in enumerate(models)}
