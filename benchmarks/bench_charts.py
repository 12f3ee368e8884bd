"""Live-chart cost: QtCharts (PySide6-Addons) against pyqtgraph, for the model comparison view.

Run from the repository root (a candidate that is not installed is skipped and named; install the
other one for the comparison, e.g. ``.venv/bin/pip install PySide6-Addons==6.11.3`` — the exact version
of PySide6-Essentials, or pip moves Essentials too; and uninstalling Addons again deletes files the two
wheels share, such as ``PySide6/__init__.py``: repair with ``.venv/bin/pip install --force-reinstall
--no-deps PySide6-Essentials==6.11.3``)::

    QT_QPA_PLATFORM=offscreen .venv/bin/python benchmarks/bench_charts.py
    QT_QPA_PLATFORM=offscreen .venv/bin/python benchmarks/bench_charts.py --rounds 100 --out /tmp/charts.json

What is measured is what the comparison view does on each of its timer ticks (at most 10 a second):
three probability lines of ``--points`` points (300) each, plus the disagreement shading (a filled
step curve under the flagged stretches), on a chart of 900×380 pixels with 3-pixel lines.  Each
library is measured antialiased (the plain key), without antialiasing (``_noaa``), and with a sliding
x axis (``_sliding``; the others keep the axis still and move the data: "seconds before now").
``console_live_chart`` is the console's own chart (``gui.comparison.live_chart.LiveChart``: the
above plus the distance plot, its threshold and the text labels).  Per round and per chart:

- ``update_ms``: handing the new arrays to the chart (``QXYSeries.replaceNp`` /
  ``PlotDataItem.setData``) and, when sliding, moving the x axis;
- ``events_ms``: two ``processEvents()`` calls — the scene's deferred bookkeeping and the paint the
  update scheduled, into the offscreen backing store (and any paint that paint scheduled: pyqtgraph
  paints twice when its axis moves, see ``paints_per_update``);
- ``total_ms``: the two together, what a tick costs the GUI thread; ``grab_ms``: ``QWidget.grab()``
  of the chart, for reference.

Figures are medians (and the 90th percentile) over ``--rounds`` rounds after ``--warmup`` rounds;
the rounds are interleaved (each round updates every chart once), so load from other processes
spreads evenly.  The 1-minute load average before and after is recorded.  ``import_ms`` is the
median of three imports in a fresh interpreter that already has QtWidgets (PySide6 imports its
modules lazily, so QtCharts' figure is small).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
WIDTH, HEIGHT = 900, 380
COLOURS = ((66, 133, 244), (255, 152, 0), (0, 172, 193))  # gui.theme.MODEL_COLOURS, without importing gui


def machine() -> dict[str, Any]:
    """Python, CPU, memory and the Qt versions (no TensorFlow import: this is a GUI benchmark)."""
    import PySide6

    info: dict[str, Any] = {"python": platform.python_version(), "machine": platform.machine(),
                            "cpus": os.cpu_count(), "pyside6": PySide6.__version__, "numpy": np.__version__,
                            "qpa": os.environ.get("QT_QPA_PLATFORM", "")}
    try:
        import pyqtgraph

        info["pyqtgraph"] = pyqtgraph.__version__
    except ImportError:
        pass
    try:
        with open("/proc/cpuinfo") as fh:
            cpus = (line.split(":", 1)[1].strip() for line in fh if line.startswith("model name"))
            info["cpu"] = next(cpus, "")
        with open("/proc/meminfo") as fh:
            info["mem_gb"] = round(int(fh.readline().split()[1]) / 1e6, 1)
    except OSError:
        pass
    return info


def load() -> float:
    try:
        return round(os.getloadavg()[0], 2)
    except OSError:
        return float("nan")


class Data:
    """A sliding window of three probability series and a flagged mask, one new point per tick."""

    POINTS = 300

    def __init__(self, points: int, seed: int = 0) -> None:
        self.points = points
        self.rng = np.random.default_rng(seed)
        self.t = np.arange(points, dtype=np.float64) * 0.1
        self.y = np.clip(0.8 + 0.05 * self.rng.standard_normal((3, points)).cumsum(axis=1) / 10, 0, 1)
        self.flag = (np.arange(points) // 40) % 3 == 2

    def tick(self) -> None:
        self.t = np.append(self.t[1:], self.t[-1] + 0.1)
        new = np.clip(self.y[:, -1] + 0.03 * self.rng.standard_normal(3), 0.0, 1.0)
        self.y = np.concatenate([self.y[:, 1:], new[:, None]], axis=1)
        self.flag = np.append(self.flag[1:], bool(self.rng.random() < 0.3) if self.flag[-1] else
                              bool(self.rng.random() < 0.03))

    def x(self, sliding: bool) -> np.ndarray:
        """Time: absolute (the axis slides), or seconds before the newest point (the axis stays)."""
        return self.t if sliding else self.t - self.t[-1]

    def step(self, sliding: bool) -> tuple[np.ndarray, np.ndarray]:
        """The flagged mask as a step curve (x doubled) at height 1, 0 elsewhere."""
        t = self.x(sliding)
        x = np.append(np.repeat(t, 2)[1:], t[-1] + 0.1)
        return x, np.repeat(self.flag.astype(np.float64), 2)


def paint_counter() -> Any:
    from PySide6.QtCore import QEvent, QObject

    class Counter(QObject):
        """Counts the paint events each chart's viewport receives."""

        def __init__(self) -> None:
            super().__init__()
            self.counts: dict[str, int] = {}
            self.names: dict[int, str] = {}

        def watch(self, widget: Any, key: str) -> None:
            self.names[id(widget)] = key
            widget.installEventFilter(self)

        def eventFilter(self, obj: Any, event: Any) -> bool:
            if event.type() == QEvent.Type.Paint:
                key = self.names.get(id(obj))
                if key is not None:
                    self.counts[key] = self.counts.get(key, 0) + 1
            return False

    return Counter()


class Chart:
    """One candidate: ``view`` (the widget painted), ``key`` (library and variant), ``update(data)``."""

    name = ""
    view: Any

    def __init__(self, antialias: bool, sliding: bool) -> None:
        self.key = f"{self.name}{'' if antialias else '_noaa'}{'_sliding' if sliding else ''}"
        self.sliding = sliding

    def show(self) -> None:
        self.view.resize(WIDTH, HEIGHT)
        self.view.show()

    def update(self, data: Data) -> None:
        raise NotImplementedError

    def close(self) -> None:
        self.view.close()
        self.view.deleteLater()


class QtChartsChart(Chart):
    name = "qtcharts"

    def __init__(self, antialias: bool, sliding: bool) -> None:
        super().__init__(antialias, sliding)
        from PySide6.QtCharts import QAreaSeries, QChart, QChartView, QLineSeries, QValueAxis
        from PySide6.QtCore import Qt
        from PySide6.QtGui import QColor, QPainter, QPen

        self.chart = QChart()
        self.chart.legend().hide()
        self.chart.setAnimationOptions(QChart.AnimationOption.NoAnimation)
        self.chart.setBackgroundBrush(QColor(30, 33, 40))
        self.ax, self.ay = QValueAxis(), QValueAxis()
        self.ay.setRange(0.0, 1.0)
        self.ax.setRange(-0.1 * Data.POINTS, 0.0)
        self.chart.addAxis(self.ax, Qt.AlignmentFlag.AlignBottom)
        self.chart.addAxis(self.ay, Qt.AlignmentFlag.AlignLeft)
        self.upper = QLineSeries()
        self.area = QAreaSeries(self.upper)
        self.area.setBrush(QColor(200, 60, 200, 70))
        self.area.setPen(QPen(Qt.PenStyle.NoPen))
        self.chart.addSeries(self.area)
        self.area.attachAxis(self.ax)
        self.area.attachAxis(self.ay)
        self.lines = []
        for rgb in COLOURS:
            s = QLineSeries()
            s.setPen(QPen(QColor(*rgb), 3))
            s.setUseOpenGL(False)
            self.chart.addSeries(s)
            s.attachAxis(self.ax)
            s.attachAxis(self.ay)
            self.lines.append(s)
        self.view = QChartView(self.chart)
        self.view.setRenderHint(QPainter.RenderHint.Antialiasing, antialias)
        self.show()

    def update(self, data: Data) -> None:
        t, (sx, sy) = data.x(self.sliding), data.step(self.sliding)
        for s, y in zip(self.lines, data.y):
            s.replaceNp(t, y)
        self.upper.replaceNp(sx, sy)
        if self.sliding:
            self.ax.setRange(float(t[0]), float(t[-1]))


class PyqtgraphChart(Chart):
    name = "pyqtgraph"

    def __init__(self, antialias: bool, sliding: bool) -> None:
        super().__init__(antialias, sliding)
        import pyqtgraph as pg

        pg.setConfigOptions(antialias=antialias)
        self.view = pg.PlotWidget(background=(30, 33, 40))
        self.plot = self.view.getPlotItem()
        self.plot.setYRange(0.0, 1.0, padding=0)
        self.plot.setMouseEnabled(False, False)
        self.plot.hideButtons()
        self.plot.enableAutoRange(x=False, y=False)
        self.plot.setXRange(-0.1 * Data.POINTS, 0.0, padding=0)
        self.shade = pg.PlotDataItem(stepMode=None, fillLevel=0.0, brush=(200, 60, 200, 70), pen=None)
        self.plot.addItem(self.shade)
        self.lines = [self.plot.plot(pen=pg.mkPen(rgb, width=3)) for rgb in COLOURS]
        self.show()

    def update(self, data: Data) -> None:
        t, (sx, sy) = data.x(self.sliding), data.step(self.sliding)
        for item, y in zip(self.lines, data.y):
            item.setData(t, y)
        self.shade.setData(sx, sy)
        if self.sliding:
            self.plot.setXRange(float(t[0]), float(t[-1]), padding=0)


class ConsoleChart(Chart):
    """The console's own live chart (``gui.comparison.live_chart.LiveChart``, pyqtgraph): the three
    lines and the shading above, plus the distance plot, its threshold and the text labels."""

    name = "console_live_chart"

    def __init__(self, antialias: bool, sliding: bool) -> None:
        super().__init__(antialias, sliding)
        sys.path.insert(0, str(ROOT))
        from gui.comparison.live_chart import LiveChart

        self.chart = LiveChart(window=0.1 * Data.POINTS)
        self.view = self.chart.graphics
        self.chart.resize(WIDTH, HEIGHT + 120)  # the labels above and below the plots
        self.chart.show()

    def update(self, data: Data) -> None:
        from core.live.tracking import TrackState, TrackView
        from gui.comparison.history import Series

        t = data.x(sliding=False)
        distance = (0.8 + 0.3 * data.flag).astype(np.float32)
        threshold = np.full_like(distance, 0.97)
        series = Series(t, data.y.astype(np.float32), data.flag.copy(), distance, threshold)
        votes = {"svc": ("madonna", float(data.y[0, -1])), "stacker": ("madonna", float(data.y[1, -1])),
                 "super_learner": ("madonna", float(data.y[2, -1]))}
        track = TrackView(1, "bench", (0, 0, 10, 10), (), TrackState.NAMED, "madonna", "", votes, 0.8, 0.97,
                          1, 0.0, 0.0, None, 0, False, 0.3)
        self.chart.show_series(series, track, ())

    def close(self) -> None:
        self.chart.close()
        self.chart.deleteLater()


def import_ms(module: str) -> float:
    """Milliseconds to import ``module`` in a fresh interpreter that already has QtWidgets loaded."""
    code = ("import time, PySide6.QtWidgets; t = time.perf_counter(); import " + module +
            "; print(1000 * (time.perf_counter() - t))")
    runs = [float(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                                 env={**os.environ, "QT_QPA_PLATFORM": "offscreen"}).stdout.split()[-1])
            for _ in range(3)]
    return round(statistics.median(runs), 1)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=300)
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument("--points", type=int, default=300)
    parser.add_argument("--out", help="also write the results as JSON to this file")
    args = parser.parse_args()

    from PySide6.QtWidgets import QApplication

    app = QApplication.instance() or QApplication(sys.argv)
    results: dict[str, Any] = {"machine": machine(), "rounds": args.rounds, "points": args.points,
                               "size": [WIDTH, HEIGHT], "load_before": load(),
                               "import_ms": {},
                               "charts": {}}
    counter = paint_counter()
    charts = []
    variants = {QtChartsChart: ((True, False), (False, False), (True, True)),
                PyqtgraphChart: ((True, False), (False, False), (True, True)), ConsoleChart: ((True, False),)}
    needs = {QtChartsChart: ("PySide6.QtCharts", "PySide6-Addons==<the PySide6-Essentials version>"),
             PyqtgraphChart: ("pyqtgraph", "pyqtgraph==0.14.0"),
             ConsoleChart: ("pyqtgraph", "pyqtgraph==0.14.0")}
    results["skipped"] = {}
    for cls, (module, package) in needs.items():
        if importlib.util.find_spec(module.split(".")[0]) is None or importlib.util.find_spec(module) is None:
            results["skipped"][cls.name] = f"{module} is not installed (.venv/bin/pip install '{package}')"
            print(f"skipping {cls.name}: {results['skipped'][cls.name]}", file=sys.stderr)
            del variants[cls]
    for cls, configurations in variants.items():
        module = needs[cls][0]
        if module not in results["import_ms"]:
            results["import_ms"][module] = import_ms(module)
        for antialias, sliding in configurations:
            t0 = time.perf_counter()
            chart = cls(antialias, sliding)
            app.processEvents()
            counter.watch(chart.view.viewport(), chart.key)
            results["charts"][chart.key] = {"construct_ms": round(1000 * (time.perf_counter() - t0), 1)}
            charts.append(chart)

    keys = ("update", "events", "grab")
    samples: dict[str, dict[str, list[float]]] = {c.key: {k: [] for k in keys} for c in charts}
    data = {c.key: Data(args.points) for c in charts}
    for i in range(args.warmup + args.rounds):
        if i == args.warmup:
            counter.counts.clear()
        for chart in charts:
            d = data[chart.key]
            d.tick()
            t0 = time.perf_counter()
            chart.update(d)
            t1 = time.perf_counter()
            app.processEvents()  # the scene's deferred work and the paint the update scheduled …
            app.processEvents()  # … and whatever that paint scheduled in turn (pyqtgraph's axes)
            t2 = time.perf_counter()
            chart.view.grab()
            t3 = time.perf_counter()
            if i >= args.warmup:
                for key, ms in zip(keys, (t1 - t0, t2 - t1, t3 - t2)):
                    samples[chart.key][key].append(1000 * ms)
    for chart in charts:
        s = samples[chart.key]
        s["total"] = [u + e for u, e in zip(s["update"], s["events"])]
        row = results["charts"][chart.key]
        # grab() paints once more (into a pixmap): take those paints off the count.
        row["paints_per_update"] = round((counter.counts.get(chart.key, 0) - args.rounds) / args.rounds, 2)
        for key in ("update", "events", "total", "grab"):
            row[f"{key}_ms"] = round(statistics.median(s[key]), 3)
            row[f"{key}_p90_ms"] = round(float(np.percentile(s[key], 90)), 3)
        chart.close()
    app.processEvents()
    results["load_after"] = load()

    text = json.dumps(results, indent=2)
    print(text)
    print("\nmedian ms per tick: update + events (incl. the paints) = total; grab() for reference",
          file=sys.stderr)
    for key, row in results["charts"].items():
        print(f"  {key:<24} update {row['update_ms']:5.2f}  events {row['events_ms']:6.2f}  total "
              f"{row['total_ms']:6.2f} (p90 {row['total_p90_ms']:6.2f})  "
              f"paints/update {row['paints_per_update']:4.2f}"
              f"  grab {row['grab_ms']:5.2f}", file=sys.stderr)
    if args.out:
        with open(args.out, "w") as fh:
            fh.write(text + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
