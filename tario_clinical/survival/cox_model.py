"""Cox proportional-hazards regression with Efron ties and strata.

:func:`cox` gives the coefficient table, :func:`cox_fit` the fitted :class:`CoxModel` with the
likelihood-ratio test and :meth:`CoxModel.ph_test`, the proportional-hazards test of R
``survival`` >= 3 ``cox.zph`` (score test of ``x * g(t)``, one row per term) or the older
Grambsch–Therneau approximation. The Newton solver is :func:`~tario_clinical.survival.kernels.efron_fit`
(its module docstring says why it is not lifelines' or statsmodels').

For models whose design matrix is built by the caller (interaction terms),
:func:`fit_cox_design` fits given columns; :func:`design_matrix` and :func:`design_terms` build
the columns of :func:`cox_fit` from table columns.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import pandas as pd
from scipy import stats

from .._checks import deprecated_attribute, positional_deprecated, renamed_parameters
from ..errors import AnalysisError, SchemaError
from . import kernels
from .formatting import html_table
from .validation import (
    as_pandas,
    check_choice,
    check_level,
    level_order,
    norm_ppf,
    require_columns,
    row_labels,
    survival_arrays,
)

__all__ = [
    "Transform",
    "CoxModel",
    "cox",
    "cox_fit",
    "fit_cox_design",
    "design_matrix",
    "design_terms",
]

Transform = Literal["km", "rank", "identity", "log"]
_TRANSFORMS = ("km", "rank", "identity", "log")


def design_matrix(
    df: pd.DataFrame, covariates: Sequence[str], reference: Mapping[str, Any] | None
) -> tuple[np.ndarray, list[str]]:
    """Numeric design matrix: numeric columns as is, others as treatment dummies."""
    reference = dict(reference or {})
    cols, names = [], []
    for c in covariates:
        s = df[c]
        miss = s.isna().to_numpy()
        if miss.any():
            raise SchemaError(
                f"covariate {c!r}: {int(miss.sum())} missing value(s) at rows {row_labels(df, miss)}; "
                "impute or exclude them first"
            )
        if pd.api.types.is_bool_dtype(s):
            cols.append(s.to_numpy(dtype=float))
            names.append(c)
        elif pd.api.types.is_numeric_dtype(s):
            cols.append(pd.to_numeric(s).to_numpy(dtype=float))
            names.append(c)
        else:
            levels = level_order(s)
            ref = reference.get(c, levels[0])
            if ref not in levels:
                raise ValueError(f"reference level {ref!r} for {c!r} not among its levels {levels}")
            for lv in levels:
                if lv == ref:
                    continue
                cols.append((s == lv).to_numpy(dtype=float))
                names.append(f"{c}[{lv}]")
    x = np.column_stack(cols) if cols else np.zeros((len(df), 0))
    return x, names


def design_terms(covariates: Sequence[str], names: Sequence[str]) -> tuple[str, ...]:
    """The model term (covariate) of each design column (dummies ``c[level]`` belong to ``c``)."""
    out = []
    for n in names:
        term = next((c for c in covariates if n == c or n.startswith(f"{c}[")), n)
        out.append(term)
    return tuple(out)


@dataclass(frozen=True, eq=False)
class CoxModel:
    """A fitted Cox proportional-hazards model (Efron ties).

    Attributes
    ----------
    table : DataFrame
        Indexed by ``term``: ``coef, se, hr, hr_low, hr_high, z, p_value``.
    n, events : int
    loglik, loglik_null : float
        Log partial likelihood at the estimate and at zero.
    lr_statistic, lr_df, lr_p_value : float, int, float
        Likelihood-ratio test of all terms.
    score_statistic : float
        Score (log-rank) test of all terms at beta = 0.
    covariance : DataFrame
        Inverse information matrix.
    """

    table: pd.DataFrame
    n: int
    events: int
    loglik: float
    loglik_null: float
    lr_statistic: float
    lr_df: int
    lr_p_value: float
    score_statistic: float
    covariance: pd.DataFrame
    level: float
    _x: np.ndarray = field(repr=False)
    _time: np.ndarray = field(repr=False)
    _event: np.ndarray = field(repr=False)
    _strata: np.ndarray = field(repr=False)
    _terms: tuple[str, ...] = field(repr=False, default=())
    conf_level = deprecated_attribute("conf_level", "level")

    def ph_test(
        self,
        *,
        transform: Transform = "km",
        method: Literal["exact", "approximate"] = "exact",
        terms: bool = True,
    ) -> pd.DataFrame:
        """Test of proportional hazards: does a term's effect change with ``g(time)``?

        Parameters
        ----------
        transform : {"km", "rank", "identity", "log"}
            The function of time ``g``: ``"km"`` is ``1 - S(t-)``, the left-continuous
            Kaplan–Meier of all analysed patients pooled over strata (R's default); ``"rank"``
            the rank of the time among all patients; ``"identity"``, ``"log"``.
        method : {"exact", "approximate"}
            ``"exact"`` (default): R ``survival`` >= 3.0 ``cox.zph`` — the score test of adding
            ``x * g(t)`` to the model, at the fitted coefficients, with the full information
            matrix of the extended model. ``"approximate"``: Grambsch & Therneau (1994), as in
            ``survival`` 2.x and lifelines' ``proportional_hazard_test`` (it approximates the
            information by assuming a constant risk-set covariance over time).
        terms : bool, default True
            ``"exact"`` only: one row per model term (a categorical covariate with ``k`` levels
            is one row with ``k - 1`` df, as R's ``terms=TRUE``); ``False`` gives one row per
            coefficient. The approximate method always gives one row per coefficient.

        Returns
        -------
        DataFrame
            Indexed by ``term`` plus ``"GLOBAL"`` (all terms together, df = number of
            coefficients): ``statistic, df, p_value``.

        Examples
        --------
        >>> m = cox_fit(df, time="os_time", event="os_event", covariates=["arm", "age"])  # doctest: +SKIP
        >>> m.ph_test()  # doctest: +SKIP
        """
        check_choice("transform", transform, _TRANSFORMS)
        check_choice("method", method, ("exact", "approximate"))
        if method == "exact":
            return self._ph_test_exact(transform, terms)
        beta = self.table["coef"].to_numpy()
        _, _, _, resid = kernels.efron_terms(
            beta,
            self._x,
            self._time,
            self._event,
            self._strata,
            want_hessian=False,
            want_schoenfeld=True,
        )
        ev = self._event.astype(bool)
        r = resid[ev]
        te = self._time[ev]
        if transform == "identity":
            g = te
        elif transform == "log":
            g = np.log(te)
        elif transform == "rank":
            g = stats.rankdata(te)
        else:
            c = kernels.kaplan_meier(self._time, ev)
            g = 1.0 - c.at(te)
        gc = g - g.mean()
        sg = float(gc @ gc)
        d = r.shape[0]
        v = self.covariance.to_numpy()
        u = r.T @ gc
        vu = v @ u
        per = d * vu**2 / (np.diag(v) * sg)
        glob = float(d * u @ v @ u / sg)
        names = list(self.table.index)
        out = pd.DataFrame(
            {"statistic": per, "df": 1, "p_value": stats.chi2.sf(per, 1)}, index=names
        )
        out.loc["GLOBAL"] = [glob, len(names), stats.chi2.sf(glob, len(names))]
        out["df"] = out["df"].astype(int)
        out.index.name = "term"
        return out

    def _ph_test_exact(self, transform: str, by_term: bool) -> pd.DataFrame:
        t, ev = self._time, self._event.astype(bool)
        if transform == "identity":
            g = t.copy()
        elif transform == "log":
            g = np.log(t)
        elif transform == "rank":
            g = stats.rankdata(t)
        else:  # 1 - S(t-): the curve just before each patient's own time, strata pooled
            c = kernels.kaplan_meier(t, ev)
            k = np.searchsorted(c.time, t, side="left") - 1
            g = 1.0 - np.where(k >= 0, c.survival[np.clip(k, 0, None)], 1.0)
        g = g - g[ev].mean()  # centring changes nothing but the rounding
        beta = self.table["coef"].to_numpy()
        u, info = kernels.zph_score(beta, self._x, t, self._event, self._strata, g)
        p = beta.size
        names = list(self.table.index)
        term_of = self._terms if (by_term and len(self._terms) == p) else tuple(names)
        groups: dict[str, list[int]] = {}
        for j, term in enumerate(term_of):
            groups.setdefault(term, []).append(j)

        def score(cols: list[int]) -> float:
            keep = list(range(p)) + [p + j for j in cols]
            vec = np.concatenate([np.zeros(p), u[cols]])
            try:
                return float(vec @ np.linalg.solve(info[np.ix_(keep, keep)], vec))
            except np.linalg.LinAlgError as err:
                terms_ = sorted({term_of[j] for j in cols})
                raise AnalysisError(
                    f"proportional-hazards test of term(s) {terms_}: the information matrix of "
                    f"the model with x*g(t) is singular ({err}); e.g. a covariate that only "
                    "varies at one event time"
                ) from err

        rows = {term: (score(cols), len(cols)) for term, cols in groups.items()}
        rows["GLOBAL"] = (score(list(range(p))), p)
        out = pd.DataFrame(
            [(st, df, float(stats.chi2.sf(st, df))) for st, df in rows.values()],
            index=pd.Index(list(rows), name="term"),
            columns=["statistic", "df", "p_value"],
        )
        out["df"] = out["df"].astype(int)
        return out

    def _repr_html_(self) -> str:
        return html_table(self.table, f"Cox model (n={self.n}, events={self.events})")


@renamed_parameters(conf_level="level")
@positional_deprecated("time", "event", "covariates")
def cox_fit(
    df: pd.DataFrame,
    *,
    time: str,
    event: str,
    covariates: Sequence[str],
    strata: str | Sequence[str] | None = None,
    reference: Mapping[str, Any] | None = None,
    level: float = 0.95,
    tol: float = 1e-10,
) -> CoxModel:
    """Fit a Cox model with Efron ties (and strata); the full model object.

    Parameters are those of :func:`cox`; ``tol`` is the largest Newton step accepted as
    converged (R ``coxph`` stops on the relative change of the log-likelihood, 1e-9, which
    leaves coefficients less exact than this criterion).

    Returns
    -------
    CoxModel
    """
    check_level(level)
    df = as_pandas(df)
    covariates = [covariates] if isinstance(covariates, str) else list(covariates)
    require_columns(df, covariates)
    t, e = survival_arrays(df, time, event)
    x, names = design_matrix(df, covariates, reference)
    terms = design_terms(covariates, names)
    return _fit(df, t, e, event, x, names, terms, strata, level, tol)


@renamed_parameters(conf_level="level")
def fit_cox_design(
    df: pd.DataFrame,
    time: str,
    event: str,
    x: np.ndarray,
    names: Sequence[str],
    *,
    terms: Sequence[str] | None = None,
    strata: str | Sequence[str] | None = None,
    level: float = 0.95,
    tol: float = 1e-10,
) -> CoxModel:
    """Fit a Cox model on design columns built by the caller (e.g. arm x biomarker terms).

    Parameters
    ----------
    df : DataFrame
        The analysed patients; ``time``, ``event`` and ``strata`` are read from it.
    time, event : str
        Column names of follow-up time and event indicator.
    x : ndarray
        ``(len(df), p)`` design matrix, rows in the order of ``df``.
    names : sequence of str
        Name of each column of ``x`` (the index of the coefficient table).
    terms : sequence of str, optional
        Model term of each column, for the per-term rows of :meth:`CoxModel.ph_test`
        (default: one term per column).
    strata, level, tol
        As in :func:`cox_fit`.

    Returns
    -------
    CoxModel

    Raises
    ------
    ValueError
        ``x`` does not have one row per patient and one column per name.
    SchemaError, AnalysisError
        As :func:`cox`.
    """
    check_level(level)
    df = as_pandas(df)
    t, e = survival_arrays(df, time, event)
    x = np.asarray(x, dtype=float)
    names = list(names)
    if x.shape != (t.size, len(names)):
        raise ValueError(
            f"x must have shape ({t.size}, {len(names)}) for {t.size} patients and "
            f"{len(names)} names; got {x.shape}"
        )
    terms = tuple(names) if terms is None else tuple(terms)
    return _fit(df, t, e, event, x, names, terms, strata, level, tol)


def _fit(
    df: pd.DataFrame,
    t: np.ndarray,
    e: np.ndarray,
    event: str,
    x: np.ndarray,
    names: list[str],
    terms: tuple[str, ...],
    strata: str | Sequence[str] | None,
    level: float,
    tol: float,
) -> CoxModel:
    """The Efron fit of validated arrays: strata codes, degenerate-design checks, the table."""
    if strata is None:
        sc = np.zeros(t.size, dtype=int)
    else:
        scols = [strata] if isinstance(strata, str) else list(strata)
        require_columns(df, scols)
        miss = df[scols].isna().any(axis=1).to_numpy()
        if miss.any():
            raise SchemaError(
                f"strata column(s) {scols}: missing value(s) at rows {row_labels(df, miss)}"
            )
        sc = pd.factorize(df[scols].astype(str).agg("\x1f".join, axis=1))[0]
    if e.sum() == 0:
        raise AnalysisError(
            f"Cox model: no events in column {event!r} among {t.size} patients (all censored)"
        )
    const = [names[j] for j in range(x.shape[1]) if np.ptp(x[:, j]) == 0]
    if const:
        raise AnalysisError(f"Cox model: term(s) {const} are constant in the analysed rows")
    if x.shape[1] and np.linalg.matrix_rank(x - x.mean(axis=0)) < x.shape[1]:
        raise AnalysisError(f"Cox model: terms {names} are collinear in the analysed rows")
    order = np.lexsort((t, sc))
    xs, ts, es, ss = x[order], t[order], e[order].astype(float), sc[order]
    fit = kernels.efron_fit(xs, ts, es, ss, names=names, tol=tol)
    se = np.sqrt(np.diag(fit.cov))
    z = fit.beta / se
    q = norm_ppf(level)
    table = pd.DataFrame(
        {
            "coef": fit.beta,
            "se": se,
            "hr": np.exp(fit.beta),
            "hr_low": np.exp(fit.beta - q * se),
            "hr_high": np.exp(fit.beta + q * se),
            "z": z,
            "p_value": 2.0 * stats.norm.sf(np.abs(z)),
        },
        index=pd.Index(names, name="term"),
    )
    lr = 2.0 * (fit.loglik - fit.loglik_null)
    return CoxModel(
        table=table,
        n=int(t.size),
        events=int(e.sum()),
        loglik=fit.loglik,
        loglik_null=fit.loglik_null,
        lr_statistic=float(lr),
        lr_df=len(names),
        lr_p_value=float(stats.chi2.sf(lr, len(names))),
        score_statistic=fit.score_statistic,
        covariance=pd.DataFrame(fit.cov, index=names, columns=names),
        level=float(level),
        _x=xs,
        _time=ts,
        _event=es,
        _strata=ss,
        _terms=terms,
    )


@renamed_parameters(conf_level="level")
@positional_deprecated("time", "event", "covariates")
def cox(
    df: pd.DataFrame,
    *,
    time: str,
    event: str,
    covariates: Sequence[str],
    strata: str | Sequence[str] | None = None,
    reference: Mapping[str, Any] | None = None,
    level: float = 0.95,
) -> pd.DataFrame:
    """Cox proportional-hazards regression with Efron ties.

    Parameters
    ----------
    df : DataFrame
    time, event : str
        Column names of follow-up time and event indicator.
    covariates : sequence of str
        Columns entering the model; numeric columns as they are, text/categorical columns as
        treatment dummies named ``column[level]`` against the first level (or ``reference``).
    strata : str or sequence of str, optional
        Column(s) defining strata with separate baseline hazards.
    reference : mapping, optional
        Reference level per categorical covariate.
    level : float

    Returns
    -------
    DataFrame
        Indexed by ``term``: ``coef, se, hr, hr_low, hr_high, z, p_value`` (Wald).
        Use :func:`cox_fit` for the model object (likelihood-ratio test, PH test).

    Raises
    ------
    SchemaError
        Missing/invalid time, event or covariate values (rows named).
    AnalysisError
        No events, constant or collinear terms, monotone likelihood (e.g. a level without
        events: the HR is infinite and not reported).
    """
    return cox_fit(
        df,
        time=time,
        event=event,
        covariates=covariates,
        strata=strata,
        reference=reference,
        level=level,
    ).table
