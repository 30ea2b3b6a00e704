"""Charts for the diagnostics page, drawn server-side as small SVG documents (no scripts, no CDN).

Each function takes plain figures (from :func:`agent.diagnostics.build_report`) and returns one
``<svg>`` element as text. Every text that reaches the SVG goes through :func:`esc`, and numbers
are checked to be finite, so a strange value in the journal cannot break the page or inject markup.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from html import escape
from typing import Any

W, H = 640, 240  # every chart has the same box; CSS scales it to the column
PAD_L, PAD_R, PAD_T, PAD_B = 56, 16, 28, 40
PALETTE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f")
OK_COLOUR, BAD_COLOUR, LINE_COLOUR = "#2ca02c", "#d62728", "#444"


# Characters XML 1.0 forbids even when escaped (C0 controls but tab/newline/return, and U+FFFE/FFFF).
_XML_FORBIDDEN = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")


def esc(text: object) -> str:
    """Text safe inside SVG/HTML content and attributes (XML-forbidden characters become "?")."""
    return escape(_XML_FORBIDDEN.sub("?", str(text)), quote=True)


def _num(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    # Beyond 1e12 no count, size or duration here is real; treating it as missing keeps the axes sane.
    return float(value) if math.isfinite(value) and abs(value) <= 1e12 else None


def _nice_max(value: float) -> float:
    """A round axis maximum at or above ``value`` (1, 2, 5 x 10^n)."""
    if value <= 0:
        return 1.0
    exp = 10 ** math.floor(math.log10(value))
    for step in (1, 2, 5, 10):
        if value <= step * exp:
            return float(step * exp)
    return float(10 * exp)  # pragma: no cover - the loop always returns


def _frame(title: str, label: str, body: list[str], y_max: float, y_unit: str) -> str:
    plot_h = H - PAD_T - PAD_B
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {W} {H}" role="img" aria-label="{esc(label)}" '
        f'class="chart" font-family="sans-serif" font-size="11">',
        f"<title>{esc(title)}</title>",
        f'<text x="{PAD_L}" y="16" font-size="13" font-weight="bold">{esc(title)}</text>',
        f'<line x1="{PAD_L}" y1="{H - PAD_B}" x2="{W - PAD_R}" y2="{H - PAD_B}" stroke="{LINE_COLOUR}"/>',
        f'<line x1="{PAD_L}" y1="{PAD_T}" x2="{PAD_L}" y2="{H - PAD_B}" stroke="{LINE_COLOUR}"/>',
    ]
    for i in range(5):
        v = y_max * i / 4
        y = H - PAD_B - plot_h * i / 4
        shown = f"{v:,.0f}" if y_max >= 4 else f"{v:,.1f}"
        parts.append(f'<text x="{PAD_L - 4}" y="{y + 4:.1f}" text-anchor="end">{esc(shown)}{esc(y_unit)}</text>')
        if i:
            parts.append(f'<line x1="{PAD_L}" y1="{y:.1f}" x2="{W - PAD_R}" y2="{y:.1f}" stroke="#ddd"/>')
    parts += body
    parts.append("</svg>")
    return "\n".join(parts)


def _empty(title: str, why: str) -> str:
    return (f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {W} 60" role="img" class="chart" '
            f'aria-label="{esc(title)}" font-family="sans-serif" font-size="12"><title>{esc(title)}</title>'
            f'<text x="8" y="20" font-weight="bold">{esc(title)}</text>'
            f'<text x="8" y="44" fill="#666">{esc(why)}</text></svg>')


def service_times(sessions: Sequence[dict[str, Any]], standard_seconds: int, *,
                  title: str = "Service time today (minutes) vs standard") -> str:
    """One bar per session today (service time when printed, else recording time) and the standard line."""
    values: list[tuple[float, bool]] = []
    for s in sessions:
        v = _num(s.get("service_seconds"))
        printed = v is not None
        if v is None:
            v = _num(s.get("record_seconds"))
        if v is not None and v >= 0:
            values.append((v / 60, printed))
    if not values:
        return _empty(title, "No recordings today yet.")
    std_min = standard_seconds / 60
    y_max = _nice_max(max(max(v for v, _ in values), std_min) * 1.1)
    plot_w, plot_h = W - PAD_L - PAD_R, H - PAD_T - PAD_B
    bw = plot_w / len(values)
    body: list[str] = []
    for i, (v, printed) in enumerate(values):
        h = plot_h * v / y_max
        colour = OK_COLOUR if v <= std_min else BAD_COLOUR
        x = PAD_L + i * bw
        body.append(f'<rect x="{x + bw * 0.1:.1f}" y="{H - PAD_B - h:.1f}" width="{max(bw * 0.8, 1):.1f}" '
                    f'height="{h:.1f}" fill="{colour}" fill-opacity="{1.0 if printed else 0.55}">'
                    f"<title>#{i + 1}: {v:.1f} min{'' if printed else ' (recording only)'}</title></rect>")
    y = H - PAD_B - plot_h * std_min / y_max
    body.append(f'<line x1="{PAD_L}" y1="{y:.1f}" x2="{W - PAD_R}" y2="{y:.1f}" stroke="{BAD_COLOUR}" '
                f'stroke-dasharray="6 4" class="standard"/>')
    body.append(f'<text x="{W - PAD_R}" y="{y - 4:.1f}" text-anchor="end" fill="{BAD_COLOUR}">'
                f"standard {std_min:.0f} min</text>")
    within = sum(1 for v, _ in values if v <= std_min)
    body.append(f'<text x="{PAD_L}" y="{H - 12}">{len(values)} sessions, {within} within the standard '
                f"(pale: recording time, card not printed yet)</text>")
    return _frame(title, title, body, y_max, "")


def recordings_per_kelurahan(days: Sequence[dict[str, Any]], *,
                             title: str = "Recordings per day and kelurahan") -> str:
    """Stacked bars: one per day, one colour per kelurahan, with a legend."""
    kels = sorted({k for d in days for k in (d.get("by_kelurahan") or {})})
    totals = [sum(_num(n) or 0.0 for n in (d.get("by_kelurahan") or {}).values()) for d in days]
    if not days or not any(totals):
        return _empty(title, "No recordings in this period.")
    colours = {k: PALETTE[i % len(PALETTE)] for i, k in enumerate(kels)}
    y_max = _nice_max(max(totals) * 1.1)
    plot_w, plot_h = W - PAD_L - PAD_R - 120, H - PAD_T - PAD_B
    bw = plot_w / len(days)
    body: list[str] = []
    for i, d in enumerate(days):
        x = PAD_L + i * bw
        base = float(H - PAD_B)
        for k in kels:
            n = _num((d.get("by_kelurahan") or {}).get(k)) or 0.0
            if n <= 0:
                continue
            h = plot_h * n / y_max
            base -= h
            body.append(f'<rect x="{x + bw * 0.15:.1f}" y="{base:.1f}" width="{bw * 0.7:.1f}" height="{h:.1f}" '
                        f'fill="{colours[k]}"><title>{esc(d.get("day"))} {esc(k)}: {n:.0f}</title></rect>')
        body.append(f'<text x="{x + bw / 2:.1f}" y="{H - PAD_B + 14}" text-anchor="middle">'
                    f"{esc(str(d.get('day', ''))[5:])}</text>")
    for j, k in enumerate(kels[:12]):
        y = PAD_T + 8 + j * 14
        body.append(f'<rect x="{W - PAD_R - 112}" y="{y - 8}" width="10" height="10" fill="{colours[k]}"/>'
                    f'<text x="{W - PAD_R - 98}" y="{y + 1}">{esc(k[:16])}</text>')
    return _frame(title, title, body, y_max, "")


def backlog(history: Sequence[dict[str, Any]], *, title: str = "Backlog waiting for head office") -> str:
    """Packets waiting at the end of each day (line with points; bytes in the tooltips)."""
    pts = [(str(h.get("day", "")), _num(h.get("packets")) or 0.0, _num(h.get("bytes")) or 0.0) for h in history]
    if not pts:
        return _empty(title, "No journal yet.")
    y_max = _nice_max(max(p for _, p, _ in pts) * 1.1)
    plot_w, plot_h = W - PAD_L - PAD_R, H - PAD_T - PAD_B
    step = plot_w / max(len(pts) - 1, 1)
    coords = [(PAD_L + i * step, H - PAD_B - plot_h * p / y_max) for i, (_, p, _) in enumerate(pts)]
    body = [f'<polyline fill="none" stroke="{PALETTE[0]}" stroke-width="2" points="'
            + " ".join(f"{x:.1f},{y:.1f}" for x, y in coords) + '"/>']
    for (x, y), (day, p, b) in zip(coords, pts, strict=True):
        body.append(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="3.5" fill="{PALETTE[0]}">'
                    f"<title>{esc(day)}: {p:.0f} packets, {b / 1024**2:,.1f} MB</title></circle>")
        body.append(f'<text x="{x:.1f}" y="{H - PAD_B + 14}" text-anchor="middle">{esc(day[5:])}</text>')
    return _frame(title, title, body, y_max, "")


def stock_forecast(stock: dict[str, Any] | None, low_days: float, *, horizon_days: int = 30,
                   title: str = "Blank cards: forecast") -> str:
    """Blank cards left now and the straight line down at the recent rate; the low-stock zone shaded."""
    if not stock:
        return _empty(title, "Printing is off or no stock is recorded.")
    blanks = _num(stock.get("blanks")) or 0.0
    rate = _num(stock.get("rate_per_day")) or 0.0
    y_max = _nice_max(max(blanks, 1.0) * 1.1)
    plot_w, plot_h = W - PAD_L - PAD_R, H - PAD_T - PAD_B

    def x(day: float) -> float:
        return PAD_L + plot_w * min(day, horizon_days) / horizon_days

    def y(n: float) -> float:
        return H - PAD_B - plot_h * max(n, 0.0) / y_max

    body: list[str] = []
    low_level = rate * low_days
    if low_level > 0:
        body.append(f'<rect x="{PAD_L}" y="{y(min(low_level, y_max)):.1f}" width="{plot_w}" '
                    f'height="{H - PAD_B - y(min(low_level, y_max)):.1f}" fill="{BAD_COLOUR}" fill-opacity="0.12">'
                    f"<title>low stock: under {low_days:g} days</title></rect>")
    if rate > 0:
        empty_day = blanks / rate
        body.append(f'<line x1="{x(0):.1f}" y1="{y(blanks):.1f}" x2="{x(empty_day):.1f}" '
                    f'y2="{y(blanks - rate * min(empty_day, horizon_days)):.1f}" stroke="{PALETTE[1]}" stroke-width="2"/>')
        note = f"{blanks:.0f} left, {rate:.1f} a day: empty in about {empty_day:.0f} days"
    else:
        body.append(f'<line x1="{x(0):.1f}" y1="{y(blanks):.1f}" x2="{x(horizon_days):.1f}" y2="{y(blanks):.1f}" '
                    f'stroke="{PALETTE[1]}" stroke-width="2" stroke-dasharray="4 4"/>')
        note = f"{blanks:.0f} left; no use recorded yet"
    ribbon = _num(stock.get("ribbon_cards_left"))
    if ribbon is not None:
        note += f"; ribbon for {ribbon:.0f} cards"
    body.extend(f'<text x="{x(d):.1f}" y="{H - PAD_B + 14}" text-anchor="middle">+{d}d</text>'
                for d in range(0, horizon_days + 1, 5))
    body.append(f'<text x="{PAD_L}" y="{H - 12}">{esc(note)}</text>')
    return _frame(title, title, body, y_max, "")
