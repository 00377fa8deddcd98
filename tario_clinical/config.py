"""Run configuration: one YAML file describes a whole study run.

The YAML is read with ``yaml.safe_load`` (no Python objects can be constructed) and validated by
pydantic models that forbid unknown keys, so a typo is an error naming the key and the keys that
are allowed. Relative paths are resolved against the YAML file's folder.

Example ``study.yaml``::

    seed: 0
    cohort:
      clinical: clinical.csv
      slides: slides.csv
    encode:
      model: demo
    decode:
      targets: [EGFR, KRAS, STK11, PTEN, responder]
    survival:
      endpoint: os
      score_target: responder
      cutoff: median
      arm: arm
    report:
      show_patient_ids: false

A ``validation:`` block locks a biomarker from this run's decoder (``lock:``) or takes a locked
artefact (``artefact:``) and validates it on another trial::

    validation:
      lock: {target: EGFR, cutoff: prevalence}   # or: artefact: egfr_locked.json
      cohort: {clinical: trial2/clinical.csv}
      representations: trial2/representations.h5ad
      endpoint: os
      arm: arm
      covariates: [age, ecog]

Targets other than binary ones, time to event and treatment benefit (see :class:`DecodeConfig`)::

    decode:
      targets: [EGFR, histology, tmb]
      target_types: {histology: categorical, tmb: continuous}
      survival: {endpoint: os}            # penalised Cox on os_time / os_event
      benefit: {arm: arm, endpoint: os}   # modified-covariate benefit score, cross-fitted
    survival: {score_target: os}          # stratify by the Cox decoder's risk score
"""

from __future__ import annotations

import difflib
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from .errors import ConfigError

__all__ = [
    "StudyConfig",
    "CohortConfig",
    "EncodeConfig",
    "DecodeConfig",
    "SurvivalDecoderConfig",
    "BenefitDecoderConfig",
    "SurvivalConfig",
    "DesignConfig",
    "ExpressionQCConfig",
    "ReportConfig",
    "ValidationLockConfig",
    "ValidationConfig",
    "AnalysesConfig",
    "load_config",
    "config_from_dict",
]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class CohortConfig(_Strict):
    clinical: Path
    slides: Path | None = None
    time_unit: Literal["days", "weeks", "months", "years"] = "months"
    genotype_columns: list[str] | None = None
    responder_map: dict[str, Literal[0, 1] | None] | None = None
    allow_outside: bool = False


class EncodeConfig(_Strict):
    """The ``encode`` section: which frozen model, where its weights are, and which engine.

    ``model`` is ``demo``, a preset (``uni``, ``uni2-h``, ``virchow2``, ``h-optimus-0``,
    ``h-optimus-1``, ``prov-gigapath``, ``phikon-v2``; needs ``weights``) or a model card .json;
    ``weights`` and a card path are relative to the YAML file's folder. ``engine: ray`` runs
    the encoder under Ray Data (``ray_address`` of a running cluster, else Ray is started on
    this machine; ``ray_actors`` model actors, ``ray_readers`` tile readers) with the same
    outputs and resume as ``engine: local``; ``workers`` (DataLoader processes) is for
    ``local`` only.

    Example::

        encode:
          model: uni2-h
          weights: models/UNI2-h      # the Hugging Face snapshot folder
          engine: ray
          ray_address: auto
    """

    model: str = "demo"
    weights: Path | None = None
    engine: Literal["local", "ray"] = "local"
    device: Literal["auto", "cpu", "cuda"] = "auto"
    batch_size: int | None = Field(default=None, ge=1, le=4096)
    workers: int | None = Field(default=None, ge=0, le=64)
    ray_address: str | None = None
    ray_actors: int | None = Field(default=None, ge=1, le=4096)
    ray_readers: int | None = Field(default=None, ge=1, le=4096)
    fusion: Literal["early", "late"] = "late"
    save_tiles: bool = False

    @model_validator(mode="after")
    def _engine_options(self) -> EncodeConfig:
        from .encode.presets import PRESETS

        name = self.model.strip().lower()
        if name == "demo" and self.weights is not None:
            raise ValueError("'weights' cannot be used with model 'demo' (it ships its own)")
        if name in PRESETS and self.weights is None:
            raise ValueError(
                f"model {self.model!r} is a preset: set 'weights' to its local weights (the "
                "Hugging Face snapshot folder or the weight file; nothing is downloaded)"
            )
        ray_keys = [
            k for k in ("ray_address", "ray_actors", "ray_readers") if getattr(self, k) is not None
        ]
        if self.engine != "ray" and ray_keys:
            raise ValueError(f"{', '.join(ray_keys)} need(s) 'engine: ray'")
        if self.engine == "ray" and self.workers is not None:
            raise ValueError(
                "'workers' sets DataLoader workers of engine 'local'; with 'engine: ray' use "
                "'ray_readers'"
            )
        return self

    def resolved(self, base: Path) -> EncodeConfig:
        """This section with ``weights`` and a model card path made absolute against ``base``
        (presets and ``demo`` are names, not paths)."""
        from .encode.presets import PRESETS

        updates: dict[str, Any] = {}
        if self.weights is not None and not self.weights.is_absolute():
            updates["weights"] = (base / self.weights).resolve()
        name = self.model.strip().lower()
        card = Path(self.model)
        if name != "demo" and name not in PRESETS and not card.is_absolute():
            updates["model"] = str((base / card).resolve())
        return self.model_copy(update=updates)


class SurvivalDecoderConfig(_Strict):
    """A time-to-event decoder (penalised Cox, ``tario_clinical.decode_survival``).

    ``endpoint: os`` is short for ``time: os_time, event: os_event``; ``name`` is the decoder's
    name in the results (default the endpoint, or ``time`` without ``_time``). ``horizon`` is
    the calibration time (default the median event time), ``times`` the horizons of the
    time-dependent AUC (default the event-time quartiles).
    """

    endpoint: str | None = None
    time: str | None = None
    event: str | None = None
    name: str | None = None
    penalty: Literal["l2", "elasticnet"] = "l2"
    l1_ratio: float = Field(default=0.5, gt=0, le=1)
    horizon: float | None = Field(default=None, gt=0)
    times: list[float] | None = Field(default=None, min_length=1)

    @model_validator(mode="after")
    def _columns(self) -> SurvivalDecoderConfig:
        if self.endpoint is None and (self.time is None or self.event is None):
            raise ValueError("give 'endpoint' (e.g. os) or both 'time' and 'event' (column names)")
        if self.endpoint is not None and (self.time is not None or self.event is not None):
            raise ValueError("give either 'endpoint' or 'time' and 'event', not both")
        return self

    @property
    def time_column(self) -> str:
        return self.time if self.time is not None else f"{self.endpoint}_time"

    @property
    def event_column(self) -> str:
        return self.event if self.event is not None else f"{self.endpoint}_event"

    @property
    def result_name(self) -> str:
        if self.name:
            return self.name
        if self.endpoint:
            return self.endpoint
        t = self.time_column
        return t[: -len("_time")] if t.endswith("_time") else t


class BenefitDecoderConfig(_Strict):
    """A treatment-benefit decoder of a two-arm trial (``tario_clinical.decode_benefit``,
    modified-covariate method, cross-fitted).

    The outcome is a binary ``response`` column (1 = response) or time to event (``endpoint:
    os``, or ``time`` and ``event``). ``experimental`` is the experimental arm's value (default:
    the arm not called control / placebo / standard). ``cutoff``: ``median`` (cross-fitted) or a
    number on the standardised score scale. ``name`` defaults to ``benefit:<outcome column>``.
    ``strata``: randomisation strata columns (the permutation test re-randomises the arm within
    them). ``ci_method``: the benefit statistics' interval, ``randomisation`` (default: the
    spread of the arm re-randomisations) or one of the study's methods (``jackknife`` ...);
    unset, a ``decode.ci_method`` given explicitly applies here too.
    """

    arm: str = "arm"
    experimental: str | None = None
    response: str | None = None
    endpoint: str | None = None
    time: str | None = None
    event: str | None = None
    name: str | None = None
    cutoff: Literal["median"] | float = "median"
    strata: list[str] | None = None
    ci_method: Literal["randomisation", "jackknife", "jackknife2", "bootstrap", "delong"] | None = (
        None
    )

    @model_validator(mode="after")
    def _one_outcome(self) -> BenefitDecoderConfig:
        survival = self.endpoint is not None or self.time is not None or self.event is not None
        if (self.response is None) == (not survival):
            raise ValueError(
                "give one outcome: 'response' (a binary column) or time to event ('endpoint', "
                "or 'time' and 'event')"
            )
        if self.endpoint is not None and (self.time is not None or self.event is not None):
            raise ValueError("give either 'endpoint' or 'time' and 'event', not both")
        if self.endpoint is None and survival and (self.time is None or self.event is None):
            raise ValueError("time to event needs both 'time' and 'event'")
        return self

    @property
    def time_column(self) -> str | None:
        if self.time is not None:
            return self.time
        return None if self.endpoint is None else f"{self.endpoint}_time"

    @property
    def event_column(self) -> str | None:
        if self.event is not None:
            return self.event
        return None if self.endpoint is None else f"{self.endpoint}_event"

    @property
    def result_name(self) -> str:
        return self.name or f"benefit:{self.response or self.time_column}"


class DecodeConfig(_Strict):
    """The ``decode`` section: which targets, of which kinds, and the cross-validation settings.

    Every target is binary unless ``target_types`` names its kind (``binary``, ``categorical``,
    ``continuous``) or ``infer_target_types: true`` infers the kinds of the others from the
    cohort (two levels -> binary, text with more -> categorical, numbers -> continuous). The
    choice and its reason are logged and reported. ``survival`` (one mapping or a list) adds
    penalised Cox decoders of time to event, ``benefit`` (one or a list) treatment-benefit
    decoders; ``targets`` may then be empty.

    Example::

        decode:
          targets: [EGFR, KRAS, histology, tmb]
          target_types: {histology: categorical, tmb: continuous}
          survival: {endpoint: os}
          benefit: {arm: arm, endpoint: os}
          p_method: jackknife
    """

    targets: list[str] = Field(
        default_factory=lambda: ["EGFR", "KRAS", "STK11", "PTEN", "responder"]
    )
    target_types: dict[str, Literal["binary", "categorical", "continuous"]] = Field(
        default_factory=dict
    )
    infer_target_types: bool = False
    multi_class: Literal["ovr", "multinomial"] = "ovr"
    merge_rare: bool = False
    min_class_size: int = Field(default=10, ge=1)
    survival: SurvivalDecoderConfig | list[SurvivalDecoderConfig] | None = None
    benefit: BenefitDecoderConfig | list[BenefitDecoderConfig] | None = None
    n_splits: int = Field(default=5, ge=2, le=20)
    n_repeats: int = Field(default=5, ge=1, le=50)
    n_inner_splits: int = Field(default=3, ge=2, le=10)
    n_c: int = Field(default=10, ge=10, le=50)
    penalty: Literal["l2", "elasticnet"] = "l2"
    pca: int | None = Field(default=None, ge=1)
    class_weight: Literal["balanced"] | None = None
    group_by: Literal["site", "cancer_type"] | None = None
    ci_method: Literal["jackknife", "jackknife_logit", "jackknife2", "bootstrap", "delong"] = (
        "jackknife"
    )
    p_method: Literal["permutation", "jackknife", "delong"] = "permutation"
    alternative: Literal["greater", "two-sided"] = "greater"
    n_permutations: int = Field(default=99, ge=19, le=100_000)
    n_jackknife: int = Field(default=10, ge=5, le=200)
    n_bootstrap: int = Field(default=200, ge=20, le=100_000)
    n_jobs: int | None = Field(default=None, ge=-1)

    @model_validator(mode="after")
    def _targets_and_kinds(self) -> DecodeConfig:
        if not self.targets and not self.survival_decoders and not self.benefit_decoders:
            raise ValueError("give at least one target (or a 'survival' or 'benefit' decoder)")
        dup = sorted({t for t in self.targets if self.targets.count(t) > 1})
        if dup:
            raise ValueError(f"targets listed twice: {', '.join(dup)}")
        unknown = [t for t in self.target_types if t not in self.targets]
        if unknown:
            raise ValueError(
                f"target_types names {', '.join(map(repr, unknown))}, not among targets "
                f"({', '.join(self.targets) or 'none'})"
            )
        names = [d.result_name for d in (*self.survival_decoders, *self.benefit_decoders)]
        clash = sorted({n for n in names if names.count(n) > 1 or n in self.targets})
        if clash:
            raise ValueError(
                f"decoder name(s) {', '.join(map(repr, clash))} used twice (targets and the "
                "survival/benefit decoders need distinct names; set 'name')"
            )
        return self

    @property
    def survival_decoders(self) -> list[SurvivalDecoderConfig]:
        """The ``survival`` decoders as a list (empty without any)."""
        s = self.survival
        return [] if s is None else list(s) if isinstance(s, list) else [s]

    @property
    def benefit_decoders(self) -> list[BenefitDecoderConfig]:
        """The ``benefit`` decoders as a list (empty without any)."""
        b = self.benefit
        return [] if b is None else list(b) if isinstance(b, list) else [b]


class SurvivalConfig(_Strict):
    endpoint: str = "os"
    score_target: str = "responder"
    cutoff: Literal[
        "median", "tertiles", "quantile", "prevalence", "probability", "optimal", "fixed"
    ] = "median"
    cutoff_value: float | None = None
    arm: str | None = "arm"
    covariates: list[str] = Field(default_factory=list)
    tau: float | None = Field(default=None, gt=0)

    @model_validator(mode="after")
    def _value_needed(self) -> SurvivalConfig:
        if (
            self.cutoff in ("quantile", "prevalence", "probability", "fixed")
            and self.cutoff_value is None
        ):
            raise ValueError(f"cutoff '{self.cutoff}' needs cutoff_value")
        return self


class DesignConfig(_Strict):
    alpha: float = Field(default=0.05, gt=0, lt=0.5)
    power: float = Field(default=0.8, gt=0.5, lt=1)
    prevalence: float | None = Field(default=None, gt=0, lt=1)
    hr_positive: float | None = Field(default=None, gt=0)
    hr_negative: float | None = Field(default=None, gt=0)
    allocation: float = Field(default=0.5, gt=0, lt=1)
    accrual_months: float = Field(default=24.0, gt=0)
    followup_months: float = Field(default=12.0, ge=0)
    control_median_months: float | None = Field(default=None, gt=0)
    #: recompute the designs at the bounds of the 95 % CI of the high-score group's treatment
    #: HR when ``hr_positive`` is estimated from the cohort
    sensitivity: bool = True


class ExpressionQCConfig(_Strict):
    """Predicted vs measured spatial transcriptomics.

    ``samples`` is a table (CSV/TSV/Parquet/Excel) with one row per sample: ``sample_id``,
    ``predicted`` (tile-level predictions, .h5ad with tile centres), ``measured`` (a transcript
    table .csv/.tsv/.parquet with x, y in µm and gene, or a cell/spot .h5ad), optional
    ``cancer_type`` and ``affine`` (six or nine numbers, measured µm -> slide µm, row-major,
    separated by spaces or commas). Paths are relative to the samples table.
    """

    samples: Path
    tile_um: float | None = Field(default=None, gt=0)
    mpp: float | None = Field(default=None, gt=0)
    adjacency: Literal["rook", "queen"] = "rook"


class ReportConfig(_Strict):
    show_patient_ids: bool = False
    title: str = "tario_clinical report"


class ValidationLockConfig(_Strict):
    """Lock ``target``'s final decoder of this run (see ``tario_clinical.lock_biomarker``)."""

    target: str
    cutoff: Literal["median", "tertiles", "prevalence"] | float | list[float] = "median"
    cutoff_scale: Literal["quantile", "score", "probability"] = "quantile"
    arrays: Literal["json", "npz"] = "json"


class ValidationConfig(_Strict):
    """Validate a locked biomarker on another trial (``tario_clinical.validate_biomarker``).

    Exactly one of ``artefact`` (a locked biomarker JSON file) and ``lock`` (lock it from this
    run's decoder, written to ``<out>/locked_biomarker.json``).
    """

    artefact: Path | None = None
    lock: ValidationLockConfig | None = None
    cohort: CohortConfig
    representations: Path
    endpoint: str | None = "os"
    arm: str | None = "arm"
    covariates: list[str] = Field(default_factory=list)
    tau: float | None = Field(default=None, gt=0)
    recalibrate: bool = True
    allow_encoder_mismatch: bool = False
    shift_diagnostics: bool = True

    @model_validator(mode="after")
    def _one_biomarker(self) -> ValidationConfig:
        if (self.artefact is None) == (self.lock is None):
            raise ValueError(
                "give exactly one of 'artefact' (a locked biomarker file) or 'lock' (lock a "
                "target from this run's decoder)"
            )
        return self


class LearningCurveConfig(_Strict):
    """AUROC against the fraction of training patients (``decode.analyses.learning_curve``)."""

    targets: list[str] = Field(min_length=1)
    fractions: list[float] = Field(default_factory=lambda: [0.1, 0.25, 0.5, 1.0], min_length=2)

    @field_validator("fractions")
    @classmethod
    def _in_unit_interval(cls, v: list[float]) -> list[float]:
        if any(not 0 < f <= 1 for f in v):
            raise ValueError("every fraction must be in (0, 1]")
        return v


class GeneralistSpecialistConfig(_Strict):
    """Pan-cancer vs one-cancer-type decoder on the same held-out patients."""

    cancer_type: str
    targets: list[str] = Field(min_length=1)
    group_column: str = "cancer_type"


class LeaveOneGroupOutConfig(_Strict):
    """Transfer to each group (cancer type, site) left out of training."""

    group_column: str = "cancer_type"
    targets: list[str] = Field(min_length=1)


class RepresentationComparisonConfig(_Strict):
    """The same decoders on the study's representations (``names[0]``) and ``other``
    (``names[1]``, an .h5ad of the same patients)."""

    other: Path
    names: tuple[str, str] = ("expression", "embedding")
    targets: list[str] = Field(min_length=1)


class EffectCurveConfig(_Strict):
    """Treatment HR along the continuous score (``survival.treatment_effect_curve``), computed
    when ``survival`` has an arm: spline knots at these quantile levels, STEPP windows of
    ``r2`` patients sharing ``r1`` (defaults from the number of patients), ``n_permutations``
    of the STEPP interaction test."""

    knots: list[float] = Field(default_factory=lambda: [0.1, 0.5, 0.9], min_length=3)
    r1: int | None = Field(default=None, ge=0)
    r2: int | None = Field(default=None, ge=2)
    n_permutations: int = Field(default=1000, ge=19, le=100_000)


class AnalysesConfig(_Strict):
    """Further decoder analyses and the treatment-effect curve; the decoders' settings
    (folds, C grid, PCA, class weight, ``n_jackknife``) and the seed come from ``decode`` and
    the top level. ``effect_curve: null`` turns the effect curve off.

    Example::

        analyses:
          learning_curve: {targets: [EGFR], fractions: [0.1, 0.25, 0.5, 1.0]}
          generalist_vs_specialist: {cancer_type: LUAD, targets: [EGFR]}
          leave_one_group_out: {group_column: cancer_type, targets: [EGFR]}
          representation_comparison: {other: embedding.h5ad, names: [expression, embedding],
                                      targets: [EGFR]}
          effect_curve: {knots: [0.1, 0.5, 0.9], n_permutations: 1000}
    """

    learning_curve: LearningCurveConfig | None = None
    generalist_vs_specialist: GeneralistSpecialistConfig | None = None
    leave_one_group_out: LeaveOneGroupOutConfig | None = None
    representation_comparison: RepresentationComparisonConfig | None = None
    effect_curve: EffectCurveConfig | None = Field(default_factory=EffectCurveConfig)


class StudyConfig(_Strict):
    seed: int = 0
    cohort: CohortConfig
    representations: Path | None = None
    encode: EncodeConfig | None = None
    decode: DecodeConfig = Field(default_factory=DecodeConfig)
    survival: SurvivalConfig | None = Field(default_factory=SurvivalConfig)
    design: DesignConfig | None = Field(default_factory=DesignConfig)
    expression_qc: ExpressionQCConfig | None = None
    report: ReportConfig = Field(default_factory=ReportConfig)
    validation: ValidationConfig | None = None
    analyses: AnalysesConfig = Field(default_factory=AnalysesConfig)

    @field_validator("seed")
    @classmethod
    def _seed_range(cls, v: int) -> int:
        if not 0 <= v < 2**32:
            raise ValueError("seed must be between 0 and 2**32 - 1")
        return v

    @model_validator(mode="after")
    def _one_source(self) -> StudyConfig:
        if self.representations is None and self.encode is None:
            raise ValueError(
                "give either 'representations' (an .h5ad file) or an 'encode' section (with cohort.slides)"
            )
        if self.encode is not None and self.cohort.slides is None:
            raise ValueError("'encode' needs 'cohort.slides' (the slide manifest)")
        return self


def _allowed_keys(model: type[BaseModel], loc: tuple[Any, ...]) -> list[str]:
    current: Any = model
    for part in loc[:-1]:
        if isinstance(part, int):
            continue
        field = getattr(current, "model_fields", {}).get(part)
        if field is None:
            return []
        ann = field.annotation
        for cand in getattr(ann, "__args__", (ann,)):
            if isinstance(cand, type) and issubclass(cand, BaseModel):
                current = cand
                break
        else:
            return []
    return list(getattr(current, "model_fields", {}))


def _format_errors(err: ValidationError, source: str) -> str:
    lines = []
    for e in err.errors():
        loc = tuple(p for p in e["loc"])
        key = ".".join(str(p) for p in loc) or "(top level)"
        if e["type"] == "extra_forbidden":
            allowed = _allowed_keys(StudyConfig, loc)
            close = difflib.get_close_matches(str(loc[-1]), allowed, n=1)
            hint = f" (did you mean '{close[0]}'?)" if close else ""
            lines.append(f"  - key '{key}': unknown key{hint}; allowed: {', '.join(allowed)}")
        elif e["type"] == "missing":
            lines.append(f"  - key '{key}': required key is missing")
        else:
            value = e.get("input")
            shown = "" if isinstance(value, dict) else f" (got {value!r})"
            lines.append(f"  - key '{key}': {e['msg']}{shown}")
    return f"{source}: invalid configuration:\n" + "\n".join(lines)


def _resolve_paths(cfg: StudyConfig, base: Path) -> StudyConfig:
    def fix(p: Path | None) -> Path | None:
        if p is None:
            return None
        return p if p.is_absolute() else (base / p).resolve()

    updates: dict[str, Any] = {
        "cohort": cfg.cohort.model_copy(
            update={"clinical": fix(cfg.cohort.clinical), "slides": fix(cfg.cohort.slides)}
        ),
        "representations": fix(cfg.representations),
    }
    if cfg.encode is not None:
        updates["encode"] = cfg.encode.resolved(base)
    if cfg.expression_qc is not None:
        updates["expression_qc"] = cfg.expression_qc.model_copy(
            update={"samples": fix(cfg.expression_qc.samples)}
        )
    if cfg.validation is not None:
        v = cfg.validation
        updates["validation"] = v.model_copy(
            update={
                "artefact": fix(v.artefact),
                "representations": fix(v.representations),
                "cohort": v.cohort.model_copy(
                    update={"clinical": fix(v.cohort.clinical), "slides": fix(v.cohort.slides)}
                ),
            }
        )
    rc = cfg.analyses.representation_comparison
    if rc is not None:
        updates["analyses"] = cfg.analyses.model_copy(
            update={"representation_comparison": rc.model_copy(update={"other": fix(rc.other)})}
        )
    return cfg.model_copy(update=updates)


def config_from_dict(
    data: Any, *, source: str = "<config>", base: Path | None = None
) -> StudyConfig:
    """Validate a parsed configuration mapping; relative paths resolve against ``base``.

    Parameters
    ----------
    data : dict
        Parsed configuration (e.g. from YAML).
    source : str, default "<config>"
        Name of the configuration (e.g. its file) used in error messages.
    base : Path, optional
        Folder that relative paths resolve against; default the current working directory.

    Returns
    -------
    StudyConfig

    Raises
    ------
    ConfigError
        If ``data`` is not a mapping or fails validation (every error is listed).
    """
    if not isinstance(data, dict):
        raise ConfigError(
            f"{source}: the configuration must be a mapping of keys (got {type(data).__name__})"
        )
    try:
        cfg = StudyConfig.model_validate(data)
    except ValidationError as err:
        raise ConfigError(_format_errors(err, source)) from None
    return _resolve_paths(cfg, base or Path.cwd())


def load_config(path: str | Path) -> StudyConfig:
    """Read and validate a study YAML file (safe-loaded).

    Raises
    ------
    ConfigError
        Naming the file and every bad key with the allowed keys or values.
    """
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"{p}: configuration file not found")
    try:
        text = p.read_text(encoding="utf-8")
    except UnicodeDecodeError as err:
        raise ConfigError(f"{p}: not UTF-8 text") from err
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(err, "problem", None) or str(err).splitlines()[0]
        raise ConfigError(f"{p}: not valid YAML{where}: {problem}") from None
    return config_from_dict(data, source=str(p), base=p.resolve().parent)
