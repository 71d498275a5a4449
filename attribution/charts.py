"""Server-rendered SVG charts: no script, no inline style (CSP), a table beside each for screen
readers. Only numbers and escaped labels go into the markup."""

from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe

WIDTH, HEIGHT, PAD = 640, 200, 28


def bar_chart(values: list[float], *, title: str, labels: list[str], css_class: str = "bars") -> SafeString:
    """Bars for `values`, scaled to the largest, with the first and last label under the axis."""
    top = max(values, default=0) or 1
    n = max(len(values), 1)
    step = (WIDTH - 2 * PAD) / n
    bars = []
    for index, value in enumerate(values):
        height = (HEIGHT - 2 * PAD) * float(value) / float(top)
        x = PAD + index * step
        y = HEIGHT - PAD - height
        bars.append(
            f'<rect x="{x:.1f}" y="{y:.1f}" width="{max(step - 1, 1):.1f}" height="{height:.1f}">'
            f"<title>{escape(labels[index])}: {escape(_fmt(value))}</title></rect>"
        )
    axis = (
        f'<line x1="{PAD}" y1="{HEIGHT - PAD}" x2="{WIDTH - PAD}" y2="{HEIGHT - PAD}" class="axis"/>'
        f'<text x="{PAD}" y="{HEIGHT - 8}" class="tick">{escape(labels[0]) if labels else ""}</text>'
        f'<text x="{WIDTH - PAD}" y="{HEIGHT - 8}" class="tick end">{escape(labels[-1]) if labels else ""}</text>'
        f'<text x="{PAD}" y="{PAD - 10}" class="tick">max {escape(_fmt(top))}</text>'
    )
    return mark_safe(  # noqa: S308 (built from numbers and escaped labels only)
        f'<svg class="chart {css_class}" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" aria-label="{escape(title)}" '
        f'preserveAspectRatio="xMidYMid meet"><title>{escape(title)}</title>{axis}{"".join(bars)}</svg>'
    )


def _fmt(value) -> str:
    number = float(value)
    return f"{number:,.0f}" if number == int(number) else f"{number:,.2f}"
