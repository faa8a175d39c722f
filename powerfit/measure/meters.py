"""Energy meters: elapsed time [s] and energy [J] of a region of code.

Backends
--------
``nvml``
    The GPU's cumulative energy counter (``nvmlDeviceGetTotalEnergyConsumption``,
    millijoules since the driver was loaded; Volta and later). Where a GPU has no
    such counter, its power (``nvmlDeviceGetPowerUsage``, milliwatts) is sampled by a
    background thread during the region and integrated with the trapezoidal rule.
``none``
    Time only. Energy is reported as missing (NaN), never as zero; this is what a
    machine without a GPU runs.

Conventions
-----------
* Time is wall-clock time from :func:`time.perf_counter` between two device
  synchronisations, so that the GPU work launched inside the region is counted.
* A counter only moves every few tens of milliseconds. The error of one reading is
  up to one update interval of energy at each end of the region, so a region must
  last several update intervals: :func:`counter_resolution` observes the interval,
  :meth:`Meter.repeat` repeats a short call until the region is long enough.
* Energy is the **total** energy of the device during the region (idle + active).
  :meth:`Meter.measure_idle` measures the idle power beforehand; every
  :class:`Measurement` carries it so that the active part,
  ``energy_j - idle_power_w * duration_s``, can be told apart.
* NVML counts devices in PCI order while CUDA may renumber them
  (``CUDA_VISIBLE_DEVICES``); the meter finds the NVML device of a CUDA device by
  its UUID, or takes the index the user gives.
"""

from __future__ import annotations

import contextlib
import math
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from powerfit.exceptions import PowerfitError

__all__ = [
    "METERS",
    "CounterResolution",
    "Measurement",
    "Meter",
    "MeterError",
    "NoneMeter",
    "NvmlMeter",
    "counter_resolution",
    "make_meter",
]

#: Names of the meter backends, as the command line accepts them.
METERS: tuple[str, ...] = ("auto", "nvml", "none")

#: Update interval assumed for a counter that was not observed yet [s].
DEFAULT_UPDATE_INTERVAL_S = 0.1


class MeterError(PowerfitError, RuntimeError):
    """An energy meter cannot be used here (no NVML, no GPU, unsupported query)."""


@dataclass
class Measurement:
    """Result of one measured region.

    Attributes
    ----------
    duration_s : float
        Elapsed time of the whole region [s].
    energy_j : float
        Energy of the device during the whole region [J]; NaN when not measured.
    idle_power_w : float
        Idle power of the device measured before the region [W]; NaN when unknown.
    calls : int
        Calls of the measured code in the region (see :meth:`Meter.repeat`) [-].
    meter : str
        Backend that measured it, e.g. ``'nvml-counter'``.
    """

    duration_s: float = math.nan
    energy_j: float = math.nan
    idle_power_w: float = math.nan
    calls: int = 1
    meter: str = "none"

    @property
    def duration_per_call_s(self) -> float:
        """Mean time of one call [s]."""
        return self.duration_s / self.calls

    @property
    def energy_per_call_j(self) -> float:
        """Mean energy of one call [J]; NaN when not measured."""
        return self.energy_j / self.calls

    @property
    def power_w(self) -> float:
        """Mean power during the region [W]; NaN when energy was not measured."""
        return self.energy_j / self.duration_s if self.duration_s > 0 else math.nan

    @property
    def active_energy_j(self) -> float:
        """Energy above idle, ``energy_j - idle_power_w · duration_s`` [J]; NaN if unknown."""
        return self.energy_j - self.idle_power_w * self.duration_s


@dataclass(frozen=True)
class CounterResolution:
    """What :func:`counter_resolution` observed of a meter's counter.

    Attributes
    ----------
    update_interval_s : float
        Median time between two changes of the reading [s]; NaN if it never changed.
    min_step_j : float
        Smallest non-zero change of the reading [J] (of power [W] for a sampling
        meter); NaN if it never changed.
    updates : int
        Changes of the reading seen [-].
    duration_s : float
        Observation time [s].
    energy_j : float
        Energy counted during the observation [J]; NaN without a counter.
    moved : bool
        Whether the reading changed at all.
    """

    update_interval_s: float
    min_step_j: float
    updates: int
    duration_s: float
    energy_j: float
    moved: bool

    @property
    def mean_power_w(self) -> float:
        """Mean power during the observation [W]; NaN without a counter."""
        return self.energy_j / self.duration_s if self.duration_s > 0 else math.nan


class Meter:
    """Base class of the meters: times a region between device synchronisations.

    Parameters
    ----------
    synchronize : callable, optional
        Called without arguments at both ends of a region to wait for the device
        (e.g. ``torch.cuda.synchronize``); nothing by default.

    Attributes
    ----------
    name : str
        Backend name, written into the ``tool`` column of measurements.
    measures_energy : bool
        Whether :meth:`measure` reports energy.
    idle_power_w : float
        Last idle power measured by :meth:`measure_idle` [W]; NaN before.
    update_interval_s : float
        Counter update interval [s], set by :func:`counter_resolution`; NaN before.
    """

    name = "none"
    measures_energy = False

    def __init__(self, synchronize: Callable[[], Any] | None = None) -> None:
        self._synchronize = synchronize
        self.idle_power_w = math.nan
        self.update_interval_s = math.nan

    # -- readings ----------------------------------------------------------------------
    def synchronize(self) -> None:
        """Wait until the device has finished the work launched so far."""
        if self._synchronize is not None:
            self._synchronize()

    def read_energy_j(self) -> float:
        """Cumulative energy counter [J]; NaN when the meter has none."""
        return math.nan

    def read_power_w(self) -> float:
        """Instantaneous power [W]; NaN when the meter cannot read it."""
        return math.nan

    @property
    def min_region_s(self) -> float:
        """Shortest region whose energy this meter resolves, 5 update intervals [s].

        0 for a meter that measures time only. Before :func:`counter_resolution` has
        run, :data:`DEFAULT_UPDATE_INTERVAL_S` is assumed.
        """
        if not self.measures_energy:
            return 0.0
        interval = self.update_interval_s
        if not math.isfinite(interval):
            interval = DEFAULT_UPDATE_INTERVAL_S
        return 5.0 * interval

    # -- regions -----------------------------------------------------------------------
    @contextlib.contextmanager
    def measure(self) -> Iterator[Measurement]:
        """Measure the code inside a ``with`` block.

        Yields
        ------
        Measurement
            Filled in when the block exits: ``duration_s`` [s] and ``energy_j`` [J]
            (NaN for a time-only meter), with the last measured idle power.

        Examples
        --------
        >>> meter = make_meter("none")
        >>> with meter.measure() as m:
        ...     _ = sum(range(1000))
        >>> m.duration_s > 0, math.isnan(m.energy_j)
        (True, True)
        """
        result = Measurement(idle_power_w=self.idle_power_w, meter=self.name)
        self.synchronize()
        state = self._start()
        t0 = time.perf_counter()
        try:
            yield result
        finally:
            self.synchronize()
            t1 = time.perf_counter()
            result.duration_s = t1 - t0
            result.energy_j = self._stop(state, t0, t1)

    def _start(self) -> Any:
        return self.read_energy_j() if self.measures_energy else None

    def _stop(self, state: Any, t0: float, t1: float) -> float:
        return self.read_energy_j() - state if self.measures_energy else math.nan

    def repeat(
        self,
        fn: Callable[[], Any],
        *,
        min_duration_s: float | None = None,
        max_calls: int = 1_000_000,
    ) -> Measurement:
        """Call ``fn`` repeatedly inside one region that lasts at least ``min_duration_s``.

        Trial runs of 1, 10, 100… calls size the region first.

        Parameters
        ----------
        fn : callable
            The code to measure, called without arguments.
        min_duration_s : float, optional
            Shortest region [s]; :attr:`min_region_s` by default.
        max_calls : int, default 1_000_000
            Most calls in the region [-].

        Returns
        -------
        Measurement
            Of the whole region; ``calls`` says how many calls it holds, and
            ``duration_per_call_s``/``energy_per_call_j`` give the means.
        """
        if min_duration_s is None:
            min_duration_s = self.min_region_s
        if not min_duration_s >= 0:
            raise ValueError(f"min_duration_s must be >= 0, got {min_duration_s!r}")
        if max_calls < 1:
            raise ValueError(f"max_calls must be >= 1, got {max_calls!r}")
        calls, elapsed = 1, 0.0
        while calls < max_calls:  # size the region on growing trial runs, as timeit does
            self.synchronize()
            t0 = time.perf_counter()
            for _ in range(calls):
                fn()
            self.synchronize()
            elapsed = time.perf_counter() - t0
            if elapsed >= 0.2 * min_duration_s:
                break
            calls = min(max_calls, 10 * calls)
        if elapsed > 0:
            calls = int(min(max_calls, max(1, math.ceil(min_duration_s * calls / elapsed))))
        with self.measure() as result:
            for _ in range(calls):
                fn()
        result.calls = calls
        return result

    def measure_idle(self, duration_s: float = 1.0) -> float:
        """Measure the device's idle power over ``duration_s`` and remember it.

        Parameters
        ----------
        duration_s : float, default 1.0
            Observation time [s]; several counter update intervals.

        Returns
        -------
        float
            Idle power [W]; NaN for a meter that does not measure energy.
        """
        if not duration_s > 0:
            raise ValueError(f"duration_s must be > 0, got {duration_s!r}")
        if not self.measures_energy:
            return math.nan
        with self.measure() as m:
            time.sleep(duration_s)
        self.idle_power_w = m.power_w
        return self.idle_power_w

    def close(self) -> None:
        """Release the backend (NVML); the meter cannot be used afterwards."""

    def __enter__(self) -> Meter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r})"


class NoneMeter(Meter):
    """Time only: energy is NaN. What a machine without a GPU runs."""


class NvmlMeter(Meter):
    """Energy of one NVIDIA GPU from NVML.

    Parameters
    ----------
    index : int, default 0
        NVML device index (``nvidia-smi`` order).
    synchronize : callable, optional
        Device synchronisation (see :class:`Meter`).
    mode : {'auto', 'counter', 'sampling'}, default 'auto'
        ``counter`` reads the cumulative energy counter, ``sampling`` integrates
        sampled power, ``auto`` takes the counter where the GPU has one.
    sample_interval_s : float, default 0.005
        Time between two power samples of the sampling mode [s].
    uuid : str, optional
        Find the device by this UUID (``'GPU-…'``) instead of by ``index``.

    Raises
    ------
    MeterError
        When nvidia-ml-py is not installed, NVML cannot start (no driver), the device
        does not exist, or it has no counter and ``mode='counter'``.
    """

    def __init__(
        self,
        index: int = 0,
        synchronize: Callable[[], Any] | None = None,
        *,
        mode: str = "auto",
        sample_interval_s: float = 0.005,
        uuid: str | None = None,
    ) -> None:
        super().__init__(synchronize)
        if mode not in ("auto", "counter", "sampling"):
            raise ValueError(f"mode must be 'auto', 'counter' or 'sampling', got {mode!r}")
        if not sample_interval_s > 0:
            raise ValueError(f"sample_interval_s must be > 0, got {sample_interval_s!r}")
        self.sample_interval_s = float(sample_interval_s)
        self._nvml = _load_nvml()
        try:
            self._nvml.nvmlInit()
        except self._nvml.NVMLError as exc:
            raise MeterError(
                f"NVML cannot start ({exc}): no NVIDIA driver on this machine? "
                "Use --meter none (meter='none') to measure time only."
            ) from None
        self._open = True
        try:
            self.handle = self._handle(index, uuid)
            try:
                self.index = int(self._nvml.nvmlDeviceGetIndex(self.handle))
            except self._nvml.NVMLError:
                self.index = index
            self.device_name = _text(self._nvml.nvmlDeviceGetName(self.handle))
            has_counter = self._has_counter()
        except BaseException:
            self.close()
            raise
        if mode == "counter" and not has_counter:
            self.close()
            raise MeterError(f"{self.device_name} has no NVML energy counter; use mode='sampling'")
        self.mode = (
            "counter" if (mode == "counter" or (mode == "auto" and has_counter)) else ("sampling")
        )
        self.name = f"nvml-{self.mode}"
        self.measures_energy = True

    def _handle(self, index: int, uuid: str | None) -> Any:
        nvml = self._nvml
        if uuid is not None:
            try:
                return nvml.nvmlDeviceGetHandleByUUID(uuid)
            except nvml.NVMLError:
                pass  # fall back on the index
        count = nvml.nvmlDeviceGetCount()
        if not 0 <= index < count:
            raise MeterError(f"NVML device index {index} does not exist ({count} GPUs found)")
        return nvml.nvmlDeviceGetHandleByIndex(index)

    def _has_counter(self) -> bool:
        try:
            self._nvml.nvmlDeviceGetTotalEnergyConsumption(self.handle)
        except self._nvml.NVMLError:
            return False
        return True

    def read_energy_j(self) -> float:
        """Cumulative energy counter [J] (NaN in sampling mode)."""
        if self.mode != "counter":
            return math.nan
        return self._nvml.nvmlDeviceGetTotalEnergyConsumption(self.handle) / 1e3

    def read_power_w(self) -> float:
        """Power as NVML reports it (``nvmlDeviceGetPowerUsage``) [W]."""
        return self._nvml.nvmlDeviceGetPowerUsage(self.handle) / 1e3

    def _start(self) -> Any:
        if self.mode == "counter":
            return super()._start()
        sampler = _PowerSampler(self.read_power_w, self.sample_interval_s)
        sampler.start()
        return sampler

    def _stop(self, state: Any, t0: float, t1: float) -> float:
        if self.mode == "counter":
            return super()._stop(state, t0, t1)
        return state.stop(t0, t1)

    def info(self) -> dict[str, Any]:
        """Driver, NVML and board facts of the device, for an environment record."""
        nvml = self._nvml
        out: dict[str, Any] = {"nvml_index": self.index, "gpu": self.device_name}
        queries: dict[str, Callable[[], Any]] = {
            "driver_version": lambda: _text(nvml.nvmlSystemGetDriverVersion()),
            "nvml_version": lambda: _text(nvml.nvmlSystemGetNVMLVersion()),
            "uuid": lambda: _text(nvml.nvmlDeviceGetUUID(self.handle)),
            "power_limit_w": lambda: nvml.nvmlDeviceGetPowerManagementLimit(self.handle) / 1e3,
            "temperature_c": lambda: nvml.nvmlDeviceGetTemperature(self.handle, 0),
            "sm_clock_mhz": lambda: nvml.nvmlDeviceGetClockInfo(self.handle, 1),
            "max_sm_clock_mhz": lambda: nvml.nvmlDeviceGetMaxClockInfo(self.handle, 1),
            "power_w": self.read_power_w,
        }
        for key, query in queries.items():
            try:
                out[key] = query()
            except Exception:  # an unsupported query must not stop a campaign
                out[key] = None
        return out

    def close(self) -> None:
        if getattr(self, "_open", False):
            self._open = False
            with contextlib.suppress(Exception):
                self._nvml.nvmlShutdown()

    def __repr__(self) -> str:
        return f"NvmlMeter(index={self.index}, mode={self.mode!r}, device={self.device_name!r})"


class _PowerSampler:
    """Samples a power reading in a daemon thread and integrates it over [t0, t1]."""

    def __init__(self, read: Callable[[], float], interval_s: float) -> None:
        self._read = read
        self._interval = interval_s
        self._stop_event = threading.Event()
        self._samples: list[tuple[float, float]] = []
        self._thread = threading.Thread(target=self._run, name="powerfit-power", daemon=True)

    def _sample(self) -> None:
        self._samples.append((time.perf_counter(), self._read()))

    def _run(self) -> None:
        while not self._stop_event.wait(self._interval):
            self._sample()

    def start(self) -> None:
        self._sample()
        self._thread.start()

    def stop(self, t0: float, t1: float) -> float:
        self._stop_event.set()
        self._thread.join()
        self._sample()
        return integrate_power(self._samples, t0, t1)


def integrate_power(samples: list[tuple[float, float]], t0: float, t1: float) -> float:
    """Energy of sampled power over [t0, t1], trapezoidal rule [J].

    Parameters
    ----------
    samples : list of (float, float)
        (time [s], power [W]) pairs in time order.
    t0, t1 : float
        Bounds of the region [s]; power is held constant beyond the first and last
        sample.

    Returns
    -------
    float
        Energy [J]; NaN without samples.

    Examples
    --------
    >>> integrate_power([(0.0, 100.0), (1.0, 200.0)], 0.0, 1.0)
    150.0
    """
    if not samples or not t1 > t0:
        return math.nan
    t = np.array([s[0] for s in samples], dtype=float)
    p = np.array([s[1] for s in samples], dtype=float)
    grid = np.concatenate(([t0], t[(t > t0) & (t < t1)], [t1]))
    power = np.interp(grid, t, p)
    return float(np.sum((power[1:] + power[:-1]) * np.diff(grid)) / 2.0)


def counter_resolution(
    meter: Meter, duration_s: float = 1.0, poll_interval_s: float = 0.0005
) -> CounterResolution:
    """Observe how often and by how much a meter's reading changes.

    Polls the energy counter (or, in sampling mode, the power reading) every
    ``poll_interval_s`` for ``duration_s`` while the device runs whatever it runs
    (idle, usually) and records each change.

    Parameters
    ----------
    meter : Meter
        The meter; its ``update_interval_s`` is set to the observed interval.
    duration_s : float, default 1.0
        Observation time [s].
    poll_interval_s : float, default 0.0005
        Time between two readings [s].

    Returns
    -------
    CounterResolution
        All NaN (and ``moved=False``) for a meter that does not measure energy.
    """
    if not duration_s > 0:
        raise ValueError(f"duration_s must be > 0, got {duration_s!r}")
    if not poll_interval_s >= 0:
        raise ValueError(f"poll_interval_s must be >= 0, got {poll_interval_s!r}")
    if not meter.measures_energy:
        return CounterResolution(math.nan, math.nan, 0, 0.0, math.nan, False)
    counter = math.isfinite(meter.read_energy_j())
    read = meter.read_energy_j if counter else meter.read_power_w
    times, values = [time.perf_counter()], [read()]
    end = times[0] + duration_s
    while True:
        time.sleep(poll_interval_s)
        now, value = time.perf_counter(), read()
        if value != values[-1]:
            times.append(now)
            values.append(value)
        if now >= end:
            break
    elapsed = now - times[0]
    changes = np.diff(np.asarray(values, dtype=float))
    steps = np.abs(changes[changes != 0])
    intervals = np.diff(np.asarray(times[1:], dtype=float))  # between observed changes
    interval = float(np.median(intervals)) if intervals.size else math.nan
    if steps.size == 1:
        interval = math.nan  # one change: the interval is longer than we can tell
    result = CounterResolution(
        update_interval_s=interval,
        min_step_j=float(steps.min()) if steps.size else math.nan,
        updates=int(steps.size),
        duration_s=elapsed,
        energy_j=(read() - values[0]) if counter else math.nan,
        moved=bool(steps.size),
    )
    if math.isfinite(interval):
        meter.update_interval_s = interval
    return result


def make_meter(
    kind: str = "auto",
    device: Any = "cpu",
    *,
    index: int | None = None,
    mode: str = "auto",
) -> Meter:
    """Make the meter of a torch device.

    Parameters
    ----------
    kind : {'auto', 'nvml', 'none'}, default 'auto'
        ``nvml`` for NVIDIA energy readings, ``none`` for time only, ``auto`` for
        ``nvml`` on a CUDA device where NVML works and ``none`` otherwise.
    device : str or torch.device, default 'cpu'
        Device the measured code runs on; a CUDA device is synchronised around
        every region.
    index : int, optional
        NVML device index; by default the NVML device with the CUDA device's UUID
        (or the CUDA index).
    mode : {'auto', 'counter', 'sampling'}, default 'auto'
        NVML mode (see :class:`NvmlMeter`).

    Returns
    -------
    Meter

    Raises
    ------
    ValueError
        For an unknown ``kind``.
    MeterError
        For ``kind='nvml'`` where NVML cannot be used; the message suggests ``none``.
    """
    if kind not in METERS:
        raise ValueError(f"meter must be one of {', '.join(METERS)}, got {kind!r}")
    sync, cuda_index, uuid = _device_facts(device)
    if kind == "none" or (kind == "auto" and cuda_index is None):
        return NoneMeter(sync)
    nvml_index = index if index is not None else (cuda_index or 0)
    try:
        return NvmlMeter(nvml_index, sync, mode=mode, uuid=None if index is not None else uuid)
    except MeterError:
        if kind == "auto":
            return NoneMeter(sync)
        raise


def _device_facts(device: Any) -> tuple[Callable[[], Any] | None, int | None, str | None]:
    """Synchronisation function, CUDA index and NVML UUID of a torch device."""
    text = str(device)
    if not text.startswith("cuda"):
        return None, None, None
    import torch

    dev = torch.device(text)
    index = dev.index if dev.index is not None else torch.cuda.current_device()
    uuid = None
    with contextlib.suppress(Exception):
        raw = str(torch.cuda.get_device_properties(index).uuid)
        uuid = raw if raw.startswith("GPU-") else f"GPU-{raw}"
    return (lambda: torch.cuda.synchronize(index)), index, uuid


def _load_nvml() -> Any:
    try:
        import pynvml
    except ImportError:
        raise MeterError(
            "the nvml meter needs nvidia-ml-py (pip install 'powerfit[measure]'); "
            "use --meter none (meter='none') to measure time only"
        ) from None
    return pynvml


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
