"""Charts drawn on the server as SVG: the geometry here, the markup in
templates/desk/admin/_chart.html. No script and no style attribute, so the strict CSP holds;
colours come from classes in desk.css."""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal

WIDTH, HEIGHT = 720, 240
LEFT, RIGHT, TOP, BOTTOM = 64, 8, 12, 28


@dataclass
class Bar:
    x: float
    y: float
    width: float
    height: float
    label: str
    value: Decimal
    negative: bool


@dataclass
class Tick:
    y: float
    value: Decimal


@dataclass
class Chart:
    title: str
    bars: list[Bar] = field(default_factory=list)
    line: str = ""  # polyline points of the second series
    ticks: list[Tick] = field(default_factory=list)
    labels: list[tuple[float, str]] = field(default_factory=list)
    zero_y: float = 0
    width: int = WIDTH
    height: int = HEIGHT
    left: int = LEFT
    right_edge: int = WIDTH - RIGHT


def bars_and_line(title: str, labels: list[str], bars: list[Decimal],
                  line: list[Decimal]) -> Chart:
    """Bars of one series (revenue, say) with a line of another (profit) over the same
    labels, on one scale that includes zero, so a loss shows below the axis."""
    chart = Chart(title)
    values = [*bars, *line, Decimal(0)]
    top, bottom = max(values), min(values)
    if top == bottom:
        top = bottom + 1
    span = float(top - bottom)
    plot_height = HEIGHT - TOP - BOTTOM
    plot_width = WIDTH - LEFT - RIGHT

    def y_of(value: Decimal) -> float:
        return round(TOP + float(top - value) / span * plot_height, 1)

    chart.zero_y = y_of(Decimal(0))
    step = plot_width / max(len(labels), 1)
    gap = min(step * 0.2, 6)
    points = []
    for i, (label, value) in enumerate(zip(labels, bars, strict=True)):
        x = LEFT + i * step
        y = y_of(value)
        chart.bars.append(Bar(round(x + gap / 2, 1), min(y, chart.zero_y),
                              round(step - gap, 1), round(abs(chart.zero_y - y), 1),
                              label, value, value < 0))
    for i, value in enumerate(line):
        points.append(f"{round(LEFT + (i + 0.5) * step, 1)},{y_of(value)}")
    chart.line = " ".join(points)
    chart.ticks = [Tick(y_of(v), v) for v in _ticks(bottom, top)]
    every = max(1, len(labels) // 8)  # at most about eight labels under the axis
    chart.labels = [(round(LEFT + (i + 0.5) * step, 1), label[5:] if len(label) == 10 else label)
                    for i, label in enumerate(labels) if i % every == 0]
    return chart


def _ticks(bottom: Decimal, top: Decimal, count: int = 4) -> list[Decimal]:
    step = (top - bottom) / count
    return [(bottom + step * i).quantize(Decimal("0.01")) for i in range(count + 1)]
