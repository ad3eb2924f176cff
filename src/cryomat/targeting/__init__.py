"""Automated imaging for materials: rank targets on low-magnification atlases by feature and
contrast analysis, keep beam footprints apart, and export SerialEM navigator files."""

from cryomat.targeting.atlas import AtlasAnalysis, analyse_atlas, classify_objects, rank_targets, score_map
from cryomat.targeting.navigator import (NavItem, Navigator, add_points, array_to_serialem_pixel, pixel_to_stage,
                                         read_nav, stage_to_pixel, write_nav)
from cryomat.targeting.select import select_targets

__all__ = ["AtlasAnalysis", "NavItem", "Navigator", "add_points", "analyse_atlas", "array_to_serialem_pixel",
           "classify_objects", "pixel_to_stage", "rank_targets", "read_nav", "score_map", "select_targets",
           "stage_to_pixel", "write_nav"]
