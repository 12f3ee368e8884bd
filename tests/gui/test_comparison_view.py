"""The model comparison view: the thesis tables of a real trained registry, and the live chart."""

from __future__ import annotations

import math
import shutil

import numpy as np
import pytest
from PySide6.QtCore import QPointF

from core.live.monitor import FrameResult
from core.live.sources.base import SourceState, SourceStatus
from core.live.tracking import TrackState, TrackView
from gui import theme
from gui.comparison import ComparisonView

FPS = 25
STATUS = SourceStatus("north", "demo", SourceState.LIVE, 25.0, 0, 0, 0, None, 0.0, 0.0, None)
AGREE = {"svc": ("madonna", 0.86), "stacker": ("madonna", 0.94), "super_learner": ("madonna", 1.0)}
DISAGREE = {"svc": ("madonna", 0.62), "stacker": ("ben_afflek", 0.55), "super_learner": ("madonna", 0.9)}


def track(models: dict[str, tuple[str, float]], track_id: int = 6, camera: str = "north",
          first_seen: float = 0.0, distance: float = 0.8, state: TrackState = TrackState.NAMED) -> TrackView:
    identity = "madonna" if state is TrackState.NAMED else ""
    return TrackView(track_id, camera, (100, 80, 160, 160), (), state, identity, "", models, distance, 0.974,
                     10, first_seen, first_seen, None, 0, False, 0.3)


def frame(t: float, *tracks: TrackView, camera: str = "north") -> FrameResult:
    image = np.zeros((4, 4, 3), np.uint8)
    return FrameResult(camera, int(t * FPS), image, t, tracks, STATUS, 25.0, 6.0, {}, "v1")


def cell(table, row: int, col: int) -> str:
    return table.item(row, col).text()


def rows(table) -> dict[str, list[str]]:
    return {cell(table, r, 0).strip(): [cell(table, r, c) for c in range(1, table.columnCount())]
            for r in range(table.rowCount())}


@pytest.fixture
def view(qtbot):
    v = ComparisonView()
    qtbot.addWidget(v)
    v.resize(1366, 700)
    v.show()
    qtbot.waitExposed(v)
    yield v
    v.stop()


# -- the tables ------------------------------------------------------------------------------------------


def test_tables_show_the_active_versions_figures(qtbot, view, demo_registry, tmp_path):
    from core.registry import Registry

    data = tmp_path / "data"
    shutil.copytree(demo_registry, data)  # the session's registry stays untouched
    with Registry.open(data / "facegate.db") as reg:
        mv = reg.active_model()
    m = mv.metrics

    with qtbot.waitSignal(view.reportLoaded, timeout=120_000) as loaded:
        view.load_report(data / "facegate.db", data / "models")
    report = loaded.args[0]
    panel = view.panel
    assert report.id == mv.id and m["version"] in panel.title.text() and "active" in panel.title.text()
    assert f"{m['people']} people, {m['embeddings']} photos" in panel.subtitle.text()

    # The three models: train and cross-validated accuracy, as recorded by the training run.
    acc = rows(panel.accuracy)
    assert list(acc) == ["SVC", "Stacker", "Super Learner"]
    for name, label in theme.MODEL_NAMES.items():
        assert acc[label][0] == f"{100 * m['train_accuracy'][name]:.1f}"
    for name in ("svc", "stacker"):
        scores = m["cv_accuracy"][name]
        assert acc[theme.MODEL_NAMES[name]][1] == f"{100 * np.mean(scores):.1f} ({100 * np.std(scores):.1f})"
    assert acc["Super Learner"][1] == "not measured"

    # The stacking ensemble's cross-validation, as the thesis prints it, and its boxplot.
    cv = rows(panel.cv_table)
    assert list(cv) == ["lr", "knn", "cart", "svm", "bayes", "stacking", "svc"]
    for key, metric in (("cart", "cart"), ("stacking", "stacker"), ("svc", "svc")):
        scores = m["cv_accuracy"][metric]
        assert cv[key][0] == f"{np.mean(scores):.3f} ({np.std(scores):.3f})"
    assert f"{m['cv_folds']}-fold" in panel.cv_heading.text()
    (box,) = panel.box_items
    assert len(box.stats) == 6
    assert box.stats[2].median == pytest.approx(float(np.median(m["cv_accuracy"]["cart"])))

    # The Super Learner's nine base learners: the recorded weights, and their in-sample accuracy.
    base = rows(panel.base_table)
    weights = m["super_learner"]["weights"][0]
    assert len(base) == 9 and set(base) == set(weights)
    for name, weight in weights.items():
        assert base[name][0] == f"{weight:.2f}"
        assert base[name][1] != "—"  # measured from the saved model
    assert next(iter(base)) == "LogisticRegression"  # the thesis's order

    # Open-set calibration figures.
    cal = m["calibration"]
    opens = rows(panel.open_table)
    assert opens["distance threshold"] == [f"{m['threshold']:.3f}"]
    assert opens["genuine accept rate"][0].startswith(f"{100 * cal['calibration_genuine_accept_rate']:.1f} %")
    reject = 1 - cal["calibration_impostor_accept_rate"]
    assert opens["impostor reject rate"][0].startswith(f"{100 * reject:.1f} %")
    assert "validation accuracy" in panel.missing.text()
    n = len(m["checks"])
    assert panel.checks_label.text().startswith(f"Activation checks: {n} of {n} passed")


def test_a_missing_registry_is_said_in_place_of_the_tables(qtbot, view, tmp_path):
    with qtbot.waitSignal(view.reportFailed, timeout=30_000) as failed:
        view.load_report(tmp_path / "nowhere" / "facegate.db")
    assert "no registry" in failed.args[0]
    assert view.panel.title.text() == failed.args[0]
    assert not view.panel.accuracy.isVisible()
    assert not (tmp_path / "nowhere").exists()  # nothing was created


# -- the live chart --------------------------------------------------------------------------------------


def feed(view: ComparisonView, start: float, seconds: float, models, **kw) -> float:
    """Frames at 25 fps for ``seconds``; returns the time after the last one."""
    n = round(seconds * FPS)
    for i in range(n):
        view.add_frame(frame(start + i / FPS, track(models, **kw)))
    return start + n / FPS


def shade_pixel(view: ComparisonView, x: float, y: float):
    """The colour the probability plot shows at data point (x, y)."""
    g = view.chart.graphics
    scene = view.chart.prob_plot.vb.mapViewToScene(QPointF(x, y))
    p = g.mapFromScene(scene)
    return g.viewport().grab().toImage().pixelColor(p.x(), p.y())


def test_the_chart_holds_the_points_and_shades_the_disagreement(qtbot, view):
    # 2 s of agreement, 1 s of disagreement, 1 s of agreement: 25 frames a second, one point per 0.1 s.
    t = feed(view, 100.0, 2.0, AGREE)
    t = feed(view, t, 1.0, DISAGREE)
    assert view.history().reasons  # flagged right now
    with qtbot.waitSignal(view.redrawn, timeout=5_000):
        pass
    assert "FLAGGED" in view.chart.flag_label.text() and "disagree" in view.chart.flag_label.text()
    assert "FLAGGED" in view.track_title.text()
    feed(view, t, 1.0, AGREE)
    with qtbot.waitSignal(view.redrawn, timeout=5_000):
        pass

    history = view.history()
    series = history.series()
    assert len(series) == 40  # 4 s at one point per 0.1 s
    assert list(np.flatnonzero(series.flagged)) == list(range(20, 30))
    assert history.flagged_points == 10
    for row, name in enumerate(theme.MODEL_ORDER):
        x, y = view.chart.lines[name].getData()
        assert len(x) == 40 and x[-1] == 0.0 and x[0] == pytest.approx(-3.92)
        assert y[0] == pytest.approx(AGREE[name][1]) and y[25] == pytest.approx(DISAGREE[name][1])
    sx, sy = view.chart.prob_shade.getData()
    # The shading runs from halfway before the first flagged point to halfway after the last.
    assert sx.min() == pytest.approx((series.t[19] + series.t[20]) / 2)
    assert sx.max() == pytest.approx((series.t[29] + series.t[30]) / 2)
    assert sy.max() == 1.0
    dx, dy = view.chart.distance_line.getData()
    assert len(dx) == 40 and dy[-1] == pytest.approx(0.8)
    assert "models agree" in view.chart.flag_label.text()
    assert "0.800" in view.chart.distance_label.text() and "within" in view.chart.distance_label.text()

    # Pixels: the flag colour where the models disagreed, the plain background before it.
    flagged = shade_pixel(view, float(series.t[25]), 0.3)
    calm = shade_pixel(view, float(series.t[5]), 0.3)
    assert flagged.red() > calm.red() + 40 and flagged.blue() > calm.blue() + 40
    assert abs(calm.red() - theme.PANEL.red()) < 12 and abs(calm.blue() - theme.PANEL.blue()) < 12
    # … and each model's line in its own colour.
    for name in theme.MODEL_ORDER:
        c = shade_pixel(view, float(series.t[5]), AGREE[name][1])
        want = theme.MODEL_COLOURS[name]
        diff = abs(c.red() - want.red()) + abs(c.green() - want.green()) + abs(c.blue() - want.blue())
        assert diff < 90, name

    # The redraw never happens per frame: only on the view's timer.
    redraws = []
    view.redrawn.connect(lambda: redraws.append(1))
    feed(view, 200.0, 2.0, AGREE)
    assert redraws == []


def test_follow_select_other_cameras_capacity_and_clear(qtbot, view):
    view.select_track("north", None)
    feed(view, 0.0, 1.0, AGREE, track_id=1, first_seen=0.0)
    assert view.shown_track == 1
    # A second face arrives: the view follows the newest.
    for i in range(10):
        t = 1.0 + i / FPS
        view.add_frame(frame(t, track(AGREE, 1, first_seen=0.0), track(DISAGREE, 2, first_seen=1.0)))
    assert view.shown_track == 2 and len(view.history(1)) == 14 and len(view.history(2)) == 4
    # Frames of another camera are not this view's.
    view.add_frame(frame(2.0, track(AGREE, 9, camera="south"), camera="south"))
    assert view.history(9) is None
    # The engineer picks face 1: it stays shown although face 2 is newer.
    view.select_track("north", 1)
    view.add_frame(frame(1.5, track(AGREE, 1), track(DISAGREE, 2, first_seen=1.0)))
    assert view.shown_track == 1
    with qtbot.waitSignal(view.redrawn, timeout=5_000):
        pass
    assert [view.track_combo.itemData(i) for i in range(view.track_combo.count())] == [None, 1, 2]
    assert view.track_combo.currentData() == 1

    # At most `capacity` points: 60 s at 10 points a second keeps the last 30 s.
    feed(view, 10.0, 60.0, AGREE, track_id=1)
    series = view.history(1).series()
    assert len(series) == 300 and series.t[0] == pytest.approx(-29.9, abs=0.05)

    # Another camera selected: everything of the previous one is forgotten.
    view.select_track("south", None)
    assert view.histories == {} and view.shown_track is None
    view.add_frame(frame(3.0, track(AGREE, 9, camera="south"), camera="south"))
    assert view.shown_track == 9
    view.clear()
    assert view.histories == {} and view.history() is None
    with qtbot.waitSignal(view.redrawn, timeout=5_000):
        pass
    assert "No face" in view.track_title.text()
    x, _ = view.chart.lines["svc"].getData()
    assert x is None or len(x) == 0


def test_a_checking_track_has_no_probabilities_yet(qtbot, view):
    feed(view, 0.0, 0.5, {}, state=TrackState.CHECKING, distance=math.nan)
    with qtbot.waitSignal(view.redrawn, timeout=5_000):
        pass
    series = view.history().series()
    assert np.isnan(series.p).all() and not series.flagged.any()
    assert "checking" in view.chart.flag_label.text()
    assert "CHECKING" in view.track_title.text()


def test_shading_is_one_rectangle_per_flagged_stretch():
    from gui.comparison.history import Series
    from gui.comparison.live_chart import shading

    t = np.array([-3.0, -2.9, -2.8, -2.7, -1.0, -0.9, -0.8])  # a gap: the face was not seen for 1.7 s
    flagged = np.array([False, True, True, True, True, False, True])
    n = t.size
    series = Series(t, np.full((3, n), 0.5, np.float32), flagged, np.full(n, 0.8, np.float32),
                    np.full(n, 0.97, np.float32))
    x, y = shading(series, 1.0, 0.15)
    rects = x.reshape(-1, 4)
    # -2.9…-2.7 is one stretch; the gap is not shaded (at most 0.15 s past a point); -1.0 and -0.8 alone.
    assert rects[:, 0] == pytest.approx([-2.95, -1.15, -0.85])
    assert rects[:, 2] == pytest.approx([-2.55, -0.95, -0.65])
    assert list(y[:4]) == [0.0, 1.0, 1.0, 0.0]
