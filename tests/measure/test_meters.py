"""Tests of powerfit.measure.meters: time-only meter, counter logic, NVML errors."""

from __future__ import annotations

import math
import subprocess
import sys
import time

import pytest

from powerfit.exceptions import PowerfitError
from powerfit.measure.meters import (
    Measurement,
    Meter,
    MeterError,
    NoneMeter,
    _PowerSampler,
    counter_resolution,
    integrate_power,
    make_meter,
)


class SimulatedCounter(Meter):
    """A meter whose counter reads a constant power, updated every ``interval`` [s].

    NVML cannot run here; this test double exercises the counter logic of the base
    class (regions, idle power, resolution) with a counter of known behaviour.
    """

    name = "simulated-counter"
    measures_energy = True

    def __init__(self, power_w: float = 100.0, interval: float = 0.01) -> None:
        super().__init__()
        self.power_w, self.interval = power_w, interval
        self._origin = time.perf_counter()

    def read_energy_j(self) -> float:
        elapsed = time.perf_counter() - self._origin
        return self.power_w * self.interval * math.floor(elapsed / self.interval)


def test_none_meter_reports_time_and_missing_energy():
    meter = make_meter("none")
    with meter.measure() as m:
        time.sleep(0.01)
    assert isinstance(meter, NoneMeter)
    assert m.duration_s >= 0.01
    assert math.isnan(m.energy_j)  # missing, never zero
    assert math.isnan(m.power_w) and math.isnan(m.active_energy_j)
    assert meter.min_region_s == 0.0
    assert math.isnan(meter.measure_idle(0.01))


def test_auto_meter_on_cpu_is_time_only():
    assert isinstance(make_meter("auto", "cpu"), NoneMeter)


def test_repeat_runs_short_code_until_the_region_is_long_enough():
    meter = make_meter("none")
    calls = []
    result = meter.repeat(lambda: calls.append(1), min_duration_s=0.02)
    assert result.calls > 1
    assert len(calls) > result.calls  # trial runs first
    assert result.duration_s >= 0.02 * 0.5
    assert result.duration_per_call_s == pytest.approx(result.duration_s / result.calls)
    assert math.isnan(result.energy_per_call_j)


def test_counter_meter_measures_energy_idle_power_and_resolution():
    meter = SimulatedCounter(power_w=100.0, interval=0.01)
    res = counter_resolution(meter, duration_s=0.2)
    assert res.moved and res.updates >= 10
    assert res.update_interval_s == pytest.approx(0.01, rel=0.3)
    assert res.min_step_j == pytest.approx(1.0)
    assert res.mean_power_w == pytest.approx(100.0, rel=0.15)
    assert meter.update_interval_s == res.update_interval_s
    assert meter.min_region_s == pytest.approx(5 * res.update_interval_s)

    idle = meter.measure_idle(0.1)
    assert idle == pytest.approx(100.0, rel=0.2)
    with meter.measure() as m:
        time.sleep(0.1)
    assert m.energy_j == pytest.approx(100.0 * m.duration_s, abs=2.0)
    assert m.idle_power_w == idle
    assert m.active_energy_j == pytest.approx(0.0, abs=3.0)

    rep = meter.repeat(lambda: time.sleep(0.001))
    assert rep.duration_s >= meter.min_region_s * 0.5
    assert rep.energy_per_call_j == pytest.approx(rep.energy_j / rep.calls)


def test_counter_resolution_of_a_time_only_meter_is_missing():
    res = counter_resolution(NoneMeter(), duration_s=0.01)
    assert not res.moved and res.updates == 0
    assert math.isnan(res.update_interval_s) and math.isnan(res.energy_j)


def test_power_sampler_integrates_sampled_power():
    sampler = _PowerSampler(lambda: 50.0, 0.002)
    t0 = time.perf_counter()
    sampler.start()
    time.sleep(0.05)
    t1 = time.perf_counter()
    energy = sampler.stop(t0, t1)
    assert energy == pytest.approx(50.0 * (t1 - t0), rel=1e-6)


def test_integrate_power_trapezoid_and_edges():
    samples = [(0.0, 100.0), (1.0, 200.0), (2.0, 200.0)]
    assert integrate_power(samples, 0.0, 2.0) == pytest.approx(350.0)
    assert integrate_power(samples, 0.5, 1.0) == pytest.approx(87.5)
    assert integrate_power(samples, -1.0, 0.0) == pytest.approx(100.0)  # held constant
    assert math.isnan(integrate_power([], 0.0, 1.0))


def test_measurement_defaults_are_missing_not_zero():
    m = Measurement()
    assert math.isnan(m.energy_j) and math.isnan(m.idle_power_w)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"kind": "rapl"}, "meter must be one of"),
    ],
)
def test_make_meter_rejects_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        make_meter(**kwargs)


def test_repeat_and_idle_reject_bad_arguments():
    meter = NoneMeter()
    with pytest.raises(ValueError, match="min_duration_s"):
        meter.repeat(lambda: None, min_duration_s=-1)
    with pytest.raises(ValueError, match="max_calls"):
        meter.repeat(lambda: None, max_calls=0)
    with pytest.raises(ValueError, match="duration_s"):
        meter.measure_idle(0)
    with pytest.raises(ValueError, match="duration_s"):
        counter_resolution(meter, 0)


def test_nvml_meter_without_a_gpu_fails_clearly():
    # No NVIDIA driver here: either nvidia-ml-py is missing or NVML cannot start.
    with pytest.raises(MeterError, match="--meter none") as info:
        make_meter("nvml", "cpu")
    assert isinstance(info.value, PowerfitError)


def test_nvml_meter_error_through_the_cli(tmp_path, capsys):
    from powerfit.cli import main

    code = main(["measure", "meter", "--device", "cpu", "--meter", "nvml"])
    assert code == 1
    assert "--meter none" in capsys.readouterr().err


def test_measure_package_imports_only_light_modules():
    code = (
        "import sys\n"
        "import powerfit.measure, powerfit.measure.ops, powerfit.measure.steps\n"
        "import powerfit.measure.models, powerfit.measure.device, powerfit.cli.measure\n"
        "bad = [m for m in ('sqlalchemy', 'mlflow', 'sklearn', 'scipy', 'alembic', 'skops',\n"
        "       'matplotlib', 'powerfit.store', 'powerfit.paper.laws') if m in sys.modules]\n"
        "print(','.join(bad))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert out.stdout.strip() == ""
