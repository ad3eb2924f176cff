"""Shape descriptors, size distributions and morphology classification of segmented objects.

>>> from cryomat.measure import particle_table
>>> table = particle_table(labels, image, pixel_size=5.0)   # one row per object, units in names

Public API (stable): :func:`particle_table`, :func:`shape_descriptors`, :func:`object_contour`,
:data:`COLUMNS`; exact polygon geometry in :mod:`cryomat.measure.geometry`
(:func:`feret_diameters` by rotating calipers, :func:`polygon_area`, :func:`polygon_perimeter`).
"""

from cryomat.measure.descriptors import COLUMNS, object_contour, particle_table, shape_descriptors
from cryomat.measure.geometry import convex_hull, feret_diameters, polygon_area, polygon_moments, polygon_perimeter

__all__ = ["COLUMNS", "particle_table", "shape_descriptors", "object_contour", "feret_diameters", "convex_hull",
           "polygon_area", "polygon_perimeter", "polygon_moments"]
