"""Structured configs of the Optuna samplers and pruners tuneflow's sweeper offers: one dataclass per
Optuna object, with ``_target_`` naming the real class, so that ``hydra/sweeper/sampler=random`` or
``hydra.sweeper.sampler.seed=3`` configure Optuna itself; nothing here re-implements a sampler or a pruner.
The Hydra plugin registers them in Hydra's ConfigStore; ``tuneflow.search.samplers.default_sampler``
builds the default from the same definition.
"""

# No `from __future__ import annotations`: OmegaConf reads these annotations at run time.
from dataclasses import dataclass
from typing import Any, NoReturn

# --- samplers (hydra/sweeper/sampler) -------------------------------------------------------
# Every argument of the Optuna constructor a config can carry; callables (gamma, weights,
# constraints_func, the NSGA strategies) and trial objects (source_trials) cannot, and are left out.
# A field whose value is another sampler (independent_sampler) takes a config with its own _target_.


@dataclass
class TPESamplerConfig:
    """Tree-structured Parzen Estimator, Optuna's default. gamma and weights are callables: left out."""

    _target_: str = "optuna.samplers.TPESampler"
    # Seed of the sampler's random state; null = a fresh seed per process.
    seed: int | None = None
    # Random trials before TPE starts modelling the space.
    n_startup_trials: int = 10
    # Candidates drawn from the good density per suggestion; the best by expected improvement wins.
    n_ei_candidates: int = 24
    # Model the parameters jointly rather than one by one.
    multivariate: bool = True
    # With multivariate: model each conditional sub-space separately.
    group: bool = False
    # Treat running trials as bad so parallel workers spread out (recommended with several workers).
    constant_liar: bool = True
    # Mix a flat prior into the densities; null = Optuna's default (true). Deprecated by Optuna: setting it warns.
    consider_prior: bool | None = None
    # Weight of that prior; null = Optuna's default (1.0). Deprecated by Optuna: setting it warns.
    prior_weight: float | None = None
    # Heuristic floor on the densities' bandwidths; null = Optuna's default (true). Deprecated: setting it warns.
    consider_magic_clip: bool | None = None
    # Let the bandwidths reach the ends of the space; null = Optuna's default (false). Deprecated: setting it warns.
    consider_endpoints: bool | None = None
    # Warn when a parameter falls back to independent sampling; null = Optuna's default (false). Deprecated: setting it warns.
    warn_independent_sampling: bool | None = None


@dataclass
class RandomSamplerConfig:
    """Uniform random search."""

    _target_: str = "optuna.samplers.RandomSampler"
    # Seed of the sampler's random state; null = a fresh seed per process.
    seed: int | None = None


@dataclass
class GridSamplerConfig:
    """Every combination once, in random order. The grid is built from the search space."""

    _target_: str = "tuneflow.search.samplers.GridSampler"
    # Filled in by the sweeper from the search space (choice and range parameters only).
    search_space: Any = None
    # Seed of the order in which the grid is visited.
    seed: int | None = None


@dataclass
class GPSamplerConfig:
    """Gaussian-process Bayesian optimisation; strong on small budgets of continuous parameters.
    constraints_func is a callable: left out (tuneflow's failure-aware view gives GP its constraint)."""

    _target_: str = "optuna.samplers.GPSampler"
    # Seed of the sampler's random state; null = a fresh seed per process.
    seed: int | None = None
    # Random trials before the Gaussian process is fitted.
    n_startup_trials: int = 10
    # The objective gives the same value for the same parameters (no noise term in the GP).
    deterministic_objective: bool = False
    # Sampler of the start-up trials and of parameters GP cannot model ({_target_: ...}); null = random.
    independent_sampler: Any = None
    # Warn when a parameter is sampled by the independent sampler.
    warn_independent_sampling: bool = True


@dataclass
class CmaEsSamplerConfig:
    """CMA-ES: an evolution strategy for continuous and integer parameters, for budgets of hundreds of
    trials. source_trials (FrozenTrial objects of another study) cannot be written in a config: left out."""

    _target_: str = "optuna.samplers.CmaEsSampler"
    # Seed of the sampler's random state; null = a fresh seed per process.
    seed: int | None = None
    # Initial mean, {name: value}; null = the centre of the space.
    x0: dict[str, Any] | None = None
    # Initial step size; null = a sixth of the smallest range.
    sigma0: float | None = None
    # Trials sampled by the independent sampler before CMA-ES starts.
    n_startup_trials: int = 1
    # Sampler of the start-up trials and of categorical parameters ({_target_: ...}); null = random.
    independent_sampler: Any = None
    # Warn when a parameter is sampled by the independent sampler.
    warn_independent_sampling: bool = True
    # Learn from pruned trials too (their last reported value).
    consider_pruned_trials: bool = False
    # Restart strategy: null (none), ipop or bipop.
    restart_strategy: str | None = None
    # Population size; null = CMA-ES's default for the dimension.
    popsize: int | None = None
    # Factor by which the population grows at each restart (-1 = Optuna's default).
    inc_popsize: int = -1
    # Separable CMA-ES (diagonal covariance): cheaper in many dimensions.
    use_separable_cma: bool = False
    # CMA-ES with margin, for integer parameters (keeps them from getting stuck).
    with_margin: bool = False
    # Learning-rate adaptation (LRA-CMA-ES), for multimodal or noisy objectives.
    lr_adapt: bool = False


@dataclass
class NSGAIISamplerConfig:
    """NSGA-II, a genetic algorithm (made for several objectives; runs on one). The callable arguments
    (constraints_func, elite_population_selection_strategy, child_generation_strategy,
    after_trial_strategy) are left out."""

    _target_: str = "optuna.samplers.NSGAIISampler"
    # Seed of the sampler's random state; null = a fresh seed per process.
    seed: int | None = None
    # Trials per generation.
    population_size: int = 50
    # Mutation operator ({_target_: optuna.samplers.nsgaii.PolynomialMutation}); null = uniform.
    mutation: Any = None
    # Probability of mutating each parameter; null = 1 / number of parameters.
    mutation_prob: float | None = None
    # Crossover operator ({_target_: optuna.samplers.nsgaii.BLXAlphaCrossover}, ...); null = uniform.
    crossover: Any = None
    # Probability that a child is bred by crossover rather than copied.
    crossover_prob: float = 0.9
    # Probability of taking each parameter from the other parent in a uniform crossover.
    swapping_prob: float = 0.5


@dataclass
class NSGAIIISamplerConfig(NSGAIISamplerConfig):
    """NSGA-III: NSGA-II with reference points, for many objectives (runs on one); NSGA-II's settings
    plus the reference points. The callable arguments are left out, as for nsgaii."""

    _target_: str = "optuna.samplers.NSGAIIISampler"
    # Reference points in objective space, a list of points; null = spread evenly.
    reference_points: Any = None
    # Divisions per objective axis when the reference points are spread evenly.
    dividing_parameter: int = 3


@dataclass
class QMCSamplerConfig:
    """Quasi-Monte Carlo: a low-discrepancy sequence that covers the space more evenly than random."""

    _target_: str = "optuna.samplers.QMCSampler"
    # Seed of the scrambling and of the independent sampler; null = a fresh seed per process.
    seed: int | None = None
    # Sequence: sobol or halton.
    qmc_type: str = "sobol"
    # Scramble the sequence (needed for a seed to change anything).
    scramble: bool = False
    # Sampler of parameters the sequence cannot cover, e.g. categorical ({_target_: ...}); null = random.
    independent_sampler: Any = None
    # Warn that independent workers without a seed draw different sequences.
    warn_asynchronous_seeding: bool = True
    # Warn when a parameter is sampled by the independent sampler.
    warn_independent_sampling: bool = True


@dataclass
class QmcTpeSamplerConfig:
    """Quasi-random start, then TPE: scrambled Sobol points for the first trials, TPE from them on
    (tuneflow.search.samplers.QmcThenTpeSampler). In the replay benchmark, with hydra/sweeper/pruner=asha, it
    reached the target in as few or fewer epochs than the default TPE on every recorded table (1x-1.4x, each
    interval holding 1; benchmarks/README.md, the sampler search). Not the default."""

    _target_: str = "tuneflow.search.samplers.QmcThenTpeSampler"
    # Seed of the scrambling and of TPE; null = a fresh seed per process (workers then draw other sequences).
    seed: int | None = None
    # Quasi-random trials before TPE starts modelling the space.
    n_startup_trials: int = 5
    # Sequence: sobol or halton.
    qmc_type: str = "sobol"
    # TPE's settings after the start-up, as hydra/sweeper/sampler=tpe's.
    n_ei_candidates: int = 24
    multivariate: bool = True
    group: bool = False
    constant_liar: bool = True


@dataclass
class BruteForceSamplerConfig:
    """Every combination of a discrete space, depth-first (choice, range, int interval; not a continuous
    interval). The study stops once all were tried."""

    _target_: str = "tuneflow.search.samplers.BruteForceSampler"
    # Seed of the order of the enumeration; null = a fresh seed per process.
    seed: int | None = None
    # Count running trials as not yet tried, so parallel workers never leave a point out.
    avoid_premature_stop: bool = False


# --- pruners (hydra/sweeper/pruner) ---------------------------------------------------------


@dataclass
class MedianPrunerConfig:
    """Stop a trial whose metric is worse than the median of earlier trials at the same epoch."""

    _target_: str = "optuna.pruners.MedianPruner"
    # Trials that always run to the end before pruning starts.
    n_startup_trials: int = 5
    # Epochs every trial runs before it can be pruned.
    n_warmup_steps: int = 2
    # Check every this many epochs.
    interval_steps: int = 1
    # Trials that must have reported at an epoch before a trial can be pruned there.
    n_min_trials: int = 1


@dataclass
class PercentilePrunerConfig(MedianPrunerConfig):
    """Stop a trial whose metric is outside the best `percentile` percent of earlier trials at the same
    epoch (the median pruner's settings, as Optuna's MedianPruner is a PercentilePruner at 50)."""

    _target_: str = "optuna.pruners.PercentilePruner"
    # Keep trials within the best this many percent (0-100; 50 = median pruner).
    percentile: float = 25.0


@dataclass
class HyperbandPrunerConfig:
    """Hyperband: several successive-halving brackets with different aggressiveness."""

    _target_: str = "optuna.pruners.HyperbandPruner"
    # Epochs every trial is granted.
    min_resource: int = 1
    # Most epochs a trial can run; "auto" = learnt from the first completed trial.
    max_resource: Any = "auto"
    # Keep 1/reduction_factor of the trials at each rung.
    reduction_factor: int = 3
    # Trials a rung must hold before it promotes any.
    bootstrap_count: int = 0


@dataclass
class SuccessiveHalvingPrunerConfig:
    """Asynchronous successive halving (ASHA)."""

    _target_: str = "optuna.pruners.SuccessiveHalvingPruner"
    # Epochs before the first rung; "auto" = estimated from the first trials.
    min_resource: Any = "auto"
    # Keep 1/reduction_factor of the trials at each rung.
    reduction_factor: int = 4
    # Skip this many of the lowest rungs.
    min_early_stopping_rate: int = 0
    # Trials a rung must hold before it promotes any.
    bootstrap_count: int = 0


@dataclass
class AshaPrunerConfig(SuccessiveHalvingPrunerConfig):
    """Successive halving with its first rung at the first report (``successive_halving`` waits for a completed
    trial to estimate it): the pruner benchmarks/replay.py measured ahead of the median pruner on most recorded
    tables (see benchmarks/README.md, "the pruner search")."""

    # Epochs (reports) before the first rung: the first one.
    min_resource: Any = 1
    # Keep 1/reduction_factor of the trials at each rung.
    reduction_factor: int = 4


@dataclass
class ThresholdPrunerConfig:
    """Stop a trial whose metric leaves [lower, upper] (or is NaN); set at least one bound."""

    _target_: str = "optuna.pruners.ThresholdPruner"
    # Prune below this value; null = no lower bound.
    lower: float | None = None
    # Prune above this value; null = no upper bound.
    upper: float | None = None
    # Epochs every trial runs before it can be pruned.
    n_warmup_steps: int = 0
    # Check every this many epochs.
    interval_steps: int = 1


@dataclass
class PatientPrunerConfig:
    """Wait `patience` epochs without improvement, then ask the wrapped pruner (or prune, without one)."""

    _target_: str = "optuna.pruners.PatientPruner"
    # The pruner asked once patience runs out, as a config ({_target_: optuna.pruners.MedianPruner}, or
    # +hydra/sweeper/pruner/wrapped_pruner=median); null = prune as soon as patience runs out.
    wrapped_pruner: Any = None
    # Epochs without improvement tolerated.
    patience: int = 3
    # Smallest change that counts as an improvement.
    min_delta: float = 0.0


@dataclass
class WilcoxonPrunerConfig:
    """Wilcoxon signed-rank test against the best trial, for objectives averaged over instances or folds
    (each report's step is an instance id, not an epoch)."""

    _target_: str = "optuna.pruners.WilcoxonPruner"
    # Prune when the test's p-value that the trial is worse falls below this.
    p_threshold: float = 0.1
    # Steps (instances) reported before the test is applied.
    n_startup_steps: int = 2


@dataclass
class NopPrunerConfig:
    """Never prune: every trial trains to its end."""

    _target_: str = "optuna.pruners.NopPruner"


def raise_motpe_removed(*args: Any, **kwargs: Any) -> NoReturn:
    """What ``hydra/sweeper/sampler=motpe`` builds: the message of Hydra's Optuna sweeper, whose users
    arrive with configs that name it."""
    raise ValueError(
        "The 'motpe' sampler was removed in Optuna 4.0. Use 'hydra/sweeper/sampler=tpe' instead. "
        "TPESampler now handles multi-objective optimization."
    )


@dataclass
class MOTPESamplerConfig:
    """hydra/sweeper/sampler=motpe, removed from Optuna 4.0 (TPE samples several objectives): building
    it says so, in the words of Hydra's Optuna sweeper, before anything is created."""

    _target_: str = "tuneflow.search.configs.raise_motpe_removed"


# --- the groups and their defaults ---------------------------------------------------------

#: hydra/sweeper/sampler options. tuneflow.search.samplers.default_sampler builds SAMPLERS[DEFAULT_SAMPLER] too,
#: so the Python API and the command line share one definition of the default.
SAMPLERS: dict[str, Any] = {
    "tpe": TPESamplerConfig,
    "random": RandomSamplerConfig,
    "grid": GridSamplerConfig,
    "gp": GPSamplerConfig,
    "cmaes": CmaEsSamplerConfig,
    "nsgaii": NSGAIISamplerConfig,
    "nsgaiii": NSGAIIISamplerConfig,
    "qmc": QMCSamplerConfig,
    "qmc_tpe": QmcTpeSamplerConfig,
    "bruteforce": BruteForceSamplerConfig,
}
#: hydra/sweeper/pruner options.
PRUNERS: dict[str, Any] = {
    "median": MedianPrunerConfig,
    "percentile": PercentilePrunerConfig,
    "hyperband": HyperbandPrunerConfig,
    "successive_halving": SuccessiveHalvingPrunerConfig,
    "asha": AshaPrunerConfig,
    "threshold": ThresholdPrunerConfig,
    "patient": PatientPrunerConfig,
    "wilcoxon": WilcoxonPrunerConfig,
    "none": NopPrunerConfig,
}
#: hydra/sweeper/pruner/wrapped_pruner options (what hydra/sweeper/pruner=patient asks once patience runs out).
WRAPPED_PRUNERS: dict[str, Any] = {name: node for name, node in PRUNERS.items() if name not in ("patient", "none")}
DEFAULT_SAMPLER = "tpe"
#: hydra.sweeper.failure_aware's default: failed trials teach the sampler their region.
DEFAULT_FAILURE_AWARE = True
DEFAULT_PRUNER = "median"
