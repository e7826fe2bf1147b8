"""The run as a picture: every phase side by side on one time axis (the set-up between
phases cut out), messages accepted and sent per second, the queue depth, and the p50 and
p99 accept-to-sent latency of what was sent in each second."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ops.bench.measure import Series


@dataclass(frozen=True)
class PhaseSeries:
    label: str
    start: float  # Unix seconds: the phase's load starts
    end: float  # Unix seconds: the load stopped
    until: float  # Unix seconds: the end of the drain after it
    series: Series
    latency_label: str = "all tenants"


def draw(phases: list[PhaseSeries], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (rate_ax, depth_ax, lat_ax) = plt.subplots(
        3, 1, figsize=(18, 10), sharex=True, gridspec_kw={"height_ratios": [3, 1.4, 2]}
    )
    offset = 0.0
    gap = 4.0
    used: set[str] = set()

    def label(name: str) -> str | None:
        # Each line's name once in the legend, from whichever phase draws it first.
        if name in used:
            return None
        used.add(name)
        return name

    for index, phase in enumerate(phases):
        lead = 2.0
        origin = phase.start - lead
        width = phase.until - origin

        def x(t: float, origin: float = origin, offset: float = offset) -> float:
            return offset + t - origin

        s = phase.series
        xs = [x(t) for t in s.seconds]
        shade = "#f2f2f2" if index % 2 == 0 else "#ffffff"
        for ax in (rate_ax, depth_ax, lat_ax):
            ax.axvspan(offset, offset + width, color=shade, zorder=0)
            ax.axvline(x(phase.end), color="#bbbbbb", linestyle=":", linewidth=0.8)
        rate_ax.plot(
            xs,
            s.accepted,
            color="tab:blue",
            linewidth=1,
            label=label("accepted msg/s"),
        )
        rate_ax.plot(xs, s.sent, color="tab:green", linewidth=1, label=label("sent msg/s"))
        if any(d for _, d in s.backlog):
            depth_ax.plot(
                [x(t) for t, _ in s.backlog],
                [d for _, d in s.backlog],
                color="tab:purple",
                linewidth=1,
                label=label("queued + sending (sampled 1/s)"),
            )
        p50 = [(xx, v) for xx, v in zip(xs, s.p50, strict=True) if v is not None]
        p99 = [(xx, v) for xx, v in zip(xs, s.p99, strict=True) if v is not None]
        if p99:
            lat_ax.plot(
                [a for a, _ in p50],
                [b for _, b in p50],
                color="tab:orange",
                linewidth=1,
                label=label("p50 accept-to-sent"),
            )
            lat_ax.plot(
                [a for a, _ in p99],
                [b for _, b in p99],
                color="tab:red",
                linewidth=1,
                label=label("p99 accept-to-sent"),
            )
        rate_ax.text(
            offset + width / 2,
            1.01,
            phase.label,
            transform=rate_ax.get_xaxis_transform(),
            ha="center",
            va="bottom",
            fontsize=7,
            rotation=20,
        )
        if phase.latency_label != "all tenants":
            lat_ax.text(
                offset + 1,
                0.02,
                phase.latency_label,
                transform=lat_ax.get_xaxis_transform(),
                fontsize=6,
                color="tab:red",
            )
        offset += width + gap
    rate_ax.set_yscale("log", nonpositive="mask")  # a second with none: a gap
    rate_ax.set_ylim(bottom=10)
    rate_ax.set_ylabel("messages per second")
    rate_ax.grid(axis="y", alpha=0.3, which="both")
    for ax in (rate_ax, depth_ax, lat_ax):
        if ax.get_legend_handles_labels()[0]:
            ax.legend(loc="upper right", fontsize=8)
    depth_ax.set_ylabel("queue depth")
    depth_ax.grid(axis="y", alpha=0.3)
    lat_ax.set_yscale("log")
    lat_ax.set_ylabel("accept-to-sent (s)")
    lat_ax.set_xlabel(
        "seconds of phase time (set-up between phases cut out;"
        " dotted line: load stops, then the queue drains)"
    )
    lat_ax.grid(axis="y", alpha=0.3, which="both")
    fig.suptitle(title, fontsize=10, y=0.995)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
