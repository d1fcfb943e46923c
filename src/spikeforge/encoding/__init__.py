"""Spike encoders: turning data into input spikes."""

from .poisson import events_to_raster, image_rates_hz, poisson_events, poisson_raster, raster_to_events

__all__ = ["events_to_raster", "image_rates_hz", "poisson_events", "poisson_raster", "raster_to_events"]
