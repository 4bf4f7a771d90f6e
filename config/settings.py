"""One configuration object, loaded once (defaults < TOML file < environment), passed down.

Environment variables are ``SENTINEL_<FIELD>`` in upper case (``SENTINEL_BROKER_URL``,
``SENTINEL_CLICKHOUSE_DSN``, ``SENTINEL_DATA_DIR`` ...). A TOML file is named by
``SENTINEL_CONFIG`` or ``--config`` and holds the same field names at top level.
"""

from __future__ import annotations

import dataclasses
import math
import os
import tomllib
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping

from sentinel.clip_spec import TINY_ARCH, ClipSpec
from sentinel.cost import Pricing

if TYPE_CHECKING:  # numpy-backed: imported where used, so loading settings stays cheap
    from sentinel.bootstrap import BootstrapConfig
    from sentinel.composite import QualityConfig
    from sentinel.drift import DriftConfig
    from sentinel.fid_drift import FidDriftConfig

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_PRICING = PROJECT_ROOT / "pricing.toml"
SCORER_CODE_VERSION = "1"


TOWER_MODES = ("auto", "on", "off")


class ConfigError(ValueError):
    pass


@dataclass(frozen=True)
class Settings:
    data_dir: Path = Path(".sentinel")
    broker_url: str = "kafka://127.0.0.1:9092"
    # chdb:///path (embedded, default: <data_dir>/chdb) or http(s)://user:pass@host:8123
    clickhouse_dsn: str = ""
    app_id: str = "sentinel"
    partitions: int = 4
    # Static group membership (KIP-345): a restarted worker with the same id takes its
    # partitions back at once. Give every worker of a deployment its own id.
    worker_id: str = "worker-1"
    # off: dynamic membership, for brokers whose coordinator evicts a dead static member badly
    # (tansu; docs/scale-out.md); a dead dynamic member is evicted after the session timeout
    static_membership: bool = True
    # Faust's producer batch limit in bytes (0: Faust's default); 1 sends every record on its own
    # (tansu's latest-offset bug loses table records in recovery otherwise: PLATFORM notes)
    producer_max_batch_size: int = 0
    # how long a produce batch waits for more records before it is sent (0: at once; README
    # "Configuration" has what 5 ms did here)
    producer_linger_s: float = 0.0
    web_host: str = "127.0.0.1"
    web_port: int = 6066
    # the store role (`sentinel store`, docs/scale-out.md) and its HTTP port. use_store: this
    # worker is one of several sharing a store role: it never opens an embedded warehouse (it goes
    # through the store, found by the owner file), and neither migrates nor takes snapshots
    store_port: int = 6070
    use_store: bool = False
    # scoring
    clip_arch: str = TINY_ARCH
    clip_checkpoint: str = ""
    clip_seed: int = 0
    device: str = "cpu"
    # torch intra-op threads on CPU: > 0 exactly that many; 0 = OMP_NUM_THREADS if set (resolved
    # by load_settings), else cores - 1 (sentinel.clip.cpu_threads)
    torch_threads: int = 0
    # on CPU with 2+ cores, the text tower and reference images can run in a second score thread
    # next to the image tower (sentinel.scoring.BatchScorer): "on", "off", or "auto" = on for a
    # model whose image tower has >= 10M parameters when two teams of torch_threads fit the cores
    # (ViT-B-32: faster; the tiny CLIP: slower, its ops are too short to leave the GIL for long)
    parallel_towers: str = "auto"
    # images per encoder call (the scorer's chunk of a jobs batch)
    score_batch_size: int = 32
    # how long the jobs agent waits to fill a batch
    score_batch_wait_s: float = 0.5
    # a jobs batch goes to the scorer in slices of about this many seconds of its measured rate
    # (at least score_batch_size jobs; whole batches until a rate is measured): a slow model's
    # outputs start early. 0: whole batches
    score_slice_s: float = 1.0
    # off: a metadata-only worker (archive and tallies, no CLIP scores or FID moments)
    score_enabled: bool = True
    # sinks: at most this many records per agent batch (one insert, one changelog write per key)
    sink_batch_size: int = 500
    sink_batch_wait_s: float = 1.0
    # jobs batches that wait for the output step go out merged, up to this many records (one
    # insert per table and one changelog write per key for all of them)
    sink_merge_events: int = 2000
    # records each agent's feed holds (worker/delivery/feed.py): a partition stops being fetched
    # when its feed is 80% full and is fetched again at 40%; the fetch loop waits when it is full
    feed_max_records: int = 4096
    # live monitoring: event-time buckets of the live_stats table and how long they are kept
    live_bucket_s: int = 300
    live_retention_s: int = 2 * 86400
    # FID feature moments: event-time bucket of the stored states (windows round to it)
    moments_bucket_s: int = 3600
    # a key's whole moment state (1 MiB for ViT-B/32) is rewritten every this many images; the
    # images between are stored as embeddings (4 KiB each) that readers fold in (migration 0014)
    moments_compact_events: int = 256
    # composite quality score (README "Quality metrics"): component weights (sum 1), the CLIP
    # range mapped to 0-100, and stored embeddings per model x niche sampled for CMMD
    weight_fid: float = 0.4
    weight_clip: float = 0.3
    weight_human: float = 0.3
    clip_floor: float = 0.0
    clip_ceiling: float = 100.0
    cmmd_sample: int = 500
    # per-niche Human (Bradley-Terry per niche): a model x niche gets a number only with at least
    # this many of its ratings in that niche; below, the report prints "too few ratings: n=.."
    human_min_ratings: int = 30
    # FID significance (sentinel/significance_fid.py): bootstrap FID's influence function over the
    # CMMD embedding sample (off: FID orderings not tested, composite draws hold FID fixed)
    significance_fid: bool = True
    # report confidence intervals (reports/intervals.py): percentile-bootstrap resamples (0 = none),
    # the seed (same data + seed = same intervals) and the jobs per model / model x niche pulled
    bootstrap_resamples: int = 1000
    bootstrap_seed: int = 0
    bootstrap_max_jobs: int = 5_000
    # alerts: Slack-compatible webhook (a secret: from env/config only, never logged)
    alert_webhook_url: str = ""
    alert_webhook_timeout_s: float = 5.0
    alert_webhook_attempts: int = 3
    # drift detectors (see README "Quality-drift alerts"): baseline size, CUSUM allowance and
    # threshold in baseline sigmas, samples an excursion needs, smallest relative drop, and
    # quiet samples needed to resolve
    drift_baseline_n: int = 200
    drift_k: float = 0.5
    drift_h: float = 15.0
    drift_min_n: int = 20
    drift_min_drop_rel: float = 0.05
    drift_recovery_n: int = 300
    # FID drift from the stored moments (README "FID drift"): windows of at least this many
    # images (whole moment buckets), a bucket closes this long after its end (event time), the
    # baseline is the median FID of the first windows, the alarm margin is
    # max(abs, rel * baseline) for m windows in a row; resolved after m windows back within
    # baseline + resolve_fraction * margin. Needs the niche's reference set (sentinel reference build)
    fid_drift_enabled: bool = True
    fid_drift_min_images: int = 200
    fid_drift_grace_s: int = 60
    fid_drift_baseline_windows: int = 5
    fid_drift_margin_rel: float = 0.25
    fid_drift_margin_abs: float = 0.0
    fid_drift_m: int = 3
    fid_drift_resolve_fraction: float = 0.5
    # benchmark snapshots (README "Trends"): every snapshot_interval_s (0 = never) the worker
    # stores the report of the last snapshot_lookback closed periods of snapshot_period_s
    # (epoch-aligned windows; a window taken again replaces its rows)
    snapshot_interval_s: float = 300.0
    snapshot_period_s: int = 3600
    snapshot_lookback: int = 2
    # inference
    model_registry: str = ""
    max_image_bytes: int = 900_000
    pricing_file: Path = DEFAULT_PRICING
    # claim-check object store for images above max_image_bytes (objects/store.py): a directory
    # or an fsspec URL such as s3://bucket/prefix; "" = <data_dir>/objects
    object_store_url: str = ""
    # the worker's catalog (worker/stages/gate.py): events naming another model or niche are
    # dead-lettered. Built in: the model registry, the trace models and the demo/trace niches;
    # these add comma-separated ids ("*" accepts any)
    known_models: str = ""
    known_niches: str = ""
    # Avro schema directory of the worker ("" = the built-in contracts/): *.avsc + history/
    schema_dir: str = ""
    log_level: str = "info"
    extra: Mapping[str, Any] = field(default_factory=dict)

    # -- derived -----------------------------------------------------------------------
    @property
    def dsn(self) -> str:
        return self.clickhouse_dsn or f"chdb://{(self.data_dir / 'chdb').resolve()}"

    @property
    def chdb_path(self) -> Path | None:
        if not self.dsn.startswith("chdb://"):
            return None
        return Path(self.dsn[len("chdb://") :])

    @property
    def bootstrap_servers(self) -> str:
        return ",".join(u.split("://", 1)[-1] for u in self.broker_url.split(","))

    @property
    def object_store_root(self) -> str:
        """Where images by reference are kept: ``object_store_url`` or ``<data_dir>/objects``."""
        return self.object_store_url or str((self.data_dir / "objects").resolve())

    @property
    def models_dir(self) -> Path:
        return self.data_dir / "models"

    @property
    def faults_dir(self) -> Path:
        """Chaos switches (fault injection, README "Guarantees"): e.g. the file
        ``<data_dir>/faults/clickhouse_down`` makes every ClickHouse call of the worker fail."""
        return self.data_dir / "faults"

    @property
    def clip_spec(self) -> ClipSpec:
        return ClipSpec(
            arch=self.clip_arch,
            checkpoint=self.clip_checkpoint or None,
            seed=self.clip_seed,
            device=self.device,
            batch_size=self.score_batch_size,
            threads=self.torch_threads,
        )

    @property
    def scorer_version(self) -> str:
        return f"v{SCORER_CODE_VERSION}/{self.clip_spec.version}"

    def drift_config(self) -> "DriftConfig":
        from sentinel.drift import DriftConfig

        try:
            return DriftConfig(baseline_n=self.drift_baseline_n, k=self.drift_k, h=self.drift_h, min_n=self.drift_min_n,
                               min_drop_rel=self.drift_min_drop_rel, recovery_n=self.drift_recovery_n)
        except ValueError as exc:
            raise ConfigError(f"drift settings: {exc}") from exc

    def fid_drift_config(self) -> "FidDriftConfig":
        from sentinel.fid_drift import FidDriftConfig
        from sentinel.windowed import WindowedConfig

        try:
            detector = WindowedConfig(baseline_windows=self.fid_drift_baseline_windows,
                                      margin_abs=self.fid_drift_margin_abs, margin_rel=self.fid_drift_margin_rel,
                                      m=self.fid_drift_m, resolve_fraction=self.fid_drift_resolve_fraction)
            return FidDriftConfig(bucket_s=self.moments_bucket_s, min_images=self.fid_drift_min_images,
                                  grace_s=self.fid_drift_grace_s, detector=detector)
        except ValueError as exc:
            raise ConfigError(f"fid drift settings: {exc}") from exc

    def quality_config(self) -> "QualityConfig":
        from sentinel.composite import CompositeWeights
        from sentinel.composite import QualityConfig

        try:
            weights = CompositeWeights(fid=self.weight_fid, clip=self.weight_clip, human=self.weight_human)
        except ValueError as exc:
            raise ConfigError(f"composite weights: {exc}") from exc
        if not self.clip_ceiling > self.clip_floor:
            raise ConfigError(f"clip_ceiling ({self.clip_ceiling}) must exceed clip_floor ({self.clip_floor})")
        if self.human_min_ratings < 1:
            raise ConfigError(f"human_min_ratings must be >= 1, got {self.human_min_ratings}")
        return QualityConfig(weights=weights, clip_floor=self.clip_floor, clip_ceiling=self.clip_ceiling,
                             cmmd_sample=self.cmmd_sample, human_min_ratings=self.human_min_ratings,
                             fid_significance=self.significance_fid)

    def bootstrap_config(self) -> "BootstrapConfig":
        from sentinel.bootstrap import BootstrapConfig

        try:
            return BootstrapConfig(resamples=self.bootstrap_resamples, seed=self.bootstrap_seed,
                                   max_jobs=self.bootstrap_max_jobs)
        except ValueError as exc:
            raise ConfigError(str(exc)) from exc

    def pricing(self) -> Pricing:
        path = Path(self.pricing_file)
        if not path.exists():
            raise ConfigError(f"pricing file {path} does not exist")
        with path.open("rb") as fh:
            return Pricing.from_mapping(tomllib.load(fh))

    def with_(self, **changes: Any) -> "Settings":
        return dataclasses.replace(self, **changes)

    def to_env(self) -> dict[str, str]:
        """The environment that reproduces these settings in a child process."""
        env = {}
        for f in fields(self):
            if f.name == "extra":
                continue
            value = getattr(self, f.name)
            # children may run elsewhere: hand them absolute paths
            env[f"SENTINEL_{f.name.upper()}"] = str(value.resolve() if isinstance(value, Path) else value)
        return env


def _coerce(name: str, raw: Any, kind: Any) -> Any:
    try:
        if kind in (bool, "bool"):
            if isinstance(raw, bool):
                return raw
            if str(raw).strip().lower() not in ("1", "0", "true", "false", "yes", "no", "on", "off"):
                raise ValueError("expected true or false")
            return str(raw).strip().lower() in ("1", "true", "yes", "on")
        if kind in (int, "int"):
            return int(raw)
        if kind in (float, "float"):
            return float(raw)
        if kind in (Path, "Path"):
            return Path(raw)
        return str(raw)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"setting {name}={raw!r}: {exc}") from exc


def load_settings(config_file: str | Path | None = None, env: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
    env = os.environ if env is None else env
    values: dict[str, Any] = {}
    config_file = config_file or env.get("SENTINEL_CONFIG")
    types = {f.name: f.type for f in fields(Settings)}
    if config_file:
        path = Path(config_file)
        if not path.exists():
            raise ConfigError(f"config file {path} does not exist")
        with path.open("rb") as fh:
            data = tomllib.load(fh)
        unknown = set(data) - set(types)
        if unknown:
            raise ConfigError(f"unknown settings in {path}: {sorted(unknown)}")
        values.update(data)
    for name in types:
        key = f"SENTINEL_{name.upper()}"
        if key in env and name != "extra":
            values[name] = env[key]
    values.update({k: v for k, v in overrides.items() if v is not None})
    kwargs = {name: _coerce(name, v, types[name]) for name, v in values.items() if name != "extra"}
    if "parallel_towers" in kwargs:
        kwargs["parallel_towers"] = kwargs["parallel_towers"].strip().lower()
    if kwargs.get("parallel_towers", "auto") not in TOWER_MODES:
        raise ConfigError(f"setting parallel_towers={kwargs['parallel_towers']!r}: expected one of {', '.join(TOWER_MODES)}")
    slice_s = kwargs.get("score_slice_s", 0.0)
    if not (math.isfinite(slice_s) and slice_s >= 0):
        raise ConfigError(f"setting score_slice_s={slice_s!r}: expected a finite number of seconds >= 0")
    linger_s = kwargs.get("producer_linger_s", 0.0)
    if not (math.isfinite(linger_s) and 0 <= linger_s <= 1):
        raise ConfigError(f"setting producer_linger_s={linger_s!r}: expected seconds between 0 and 1")
    if kwargs.get("moments_compact_events", 1) < 1:
        raise ConfigError(f"setting moments_compact_events={kwargs['moments_compact_events']!r}: expected an image count >= 1")
    if kwargs.get("sink_merge_events", 1) < 1:
        raise ConfigError(f"setting sink_merge_events={kwargs['sink_merge_events']!r}: expected a record count >= 1")
    if kwargs.get("feed_max_records", 1) < 1:
        raise ConfigError(f"setting feed_max_records={kwargs['feed_max_records']!r}: expected a record count >= 1")
    if not kwargs.get("torch_threads"):
        kwargs["torch_threads"] = _omp_threads(env)
    return Settings(**kwargs)


def _omp_threads(env: Mapping[str, str]) -> int:
    """``OMP_NUM_THREADS`` as a thread count, 0 when unset or not a positive integer (as before
    the setting existed, a malformed value means automatic rather than an error)."""
    raw = env.get("OMP_NUM_THREADS", "").strip()
    return int(raw) if raw.isdigit() and int(raw) > 0 else 0
