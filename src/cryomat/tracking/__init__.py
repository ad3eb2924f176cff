"""Time-resolved analysis: link objects through in-situ series, growth kinetics, events,
and population statistics across aliquots (time courses)."""

from cryomat.tracking.growth import fit_growth, growth_table
from cryomat.tracking.linking import estimate_frame_shift, link
from cryomat.tracking.metrics import hota, identity_metrics, link_scores
from cryomat.tracking.series import detect_series, find_events, track_series

__all__ = ["detect_series", "estimate_frame_shift", "find_events", "fit_growth", "growth_table", "hota",
           "identity_metrics", "link", "link_scores", "track_series"]
