"""Instance segmentation of particles in (low-dose) EM images.

>>> from cryomat.segmentation import segment_particles
>>> labels = segment_particles(image, pixel_size=5.0, dose_e_per_A2=1.0, split_touching=True)

Public API (stable):

- :func:`segment_particles` ``(image, *, pixel_size, dose_e_per_A2=None, method="classical",
  min_size_nm=None, split_touching=False, polarity="auto") -> labels`` (int32, 0 = background).
- :func:`threshold_watershed` ``(image, *, pixel_size, ...)``: the tuned Otsu + watershed baseline.
- :func:`match_instances` / :class:`InstanceScore`: instance F1 at an IoU threshold vs ground truth.
"""

from cryomat.segmentation.api import segment_particles, threshold_watershed
from cryomat.segmentation.metrics import InstanceScore, iou_table, match_instances

__all__ = ["segment_particles", "threshold_watershed", "match_instances", "iou_table", "InstanceScore"]
