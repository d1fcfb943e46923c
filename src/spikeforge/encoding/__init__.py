"""Spike encoders: turning data into input spikes."""

from .poisson import (
    bernoulli_spikes,
    events_to_raster,
    image_rates_hz,
    poisson_events,
    poisson_raster,
    raster_to_events,
    spike_probability,
)

__all__ = [
    "bernoulli_spikes",
    "events_to_raster",
    "image_rates_hz",
    "poisson_events",
    "poisson_raster",
    "raster_to_events",
    "spike_probability",
]
