"""Beam damage from dose series: Bragg-peak decay, critical dose, FRC/FRPR against fluence, MGy.

>>> from cryomat import damage
>>> res = damage.analyse_dose_series(frames, pixel_size=1.0, dose_per_frame=2.0)
>>> res.summary["critical_dose_e_per_A2"], res.summary["critical_dose_ci95_e_per_A2"]
>>> damage.dose_MGy_per_e_per_A2("H2O", 300)        # 3.77 MGy per e/A^2 (ESTAR, ice)
"""

from cryomat.damage.fit import DecayFit, fit_decay
from cryomat.damage.frc_dose import RingSums, threshold_crossing
from cryomat.damage.reflections import PatchIntegrator, find_reflections, group_by_d_spacing
from cryomat.damage.series import FRC_CONVENTIONS, DamageResult, analyse_dose_series, dose_schedule
from cryomat.damage.stopping import (Material, collision_stopping_power, dose_MGy_per_e_per_A2, fluence_to_MGy,
                                     material, parse_formula)

__all__ = [
    "DamageResult", "DecayFit", "FRC_CONVENTIONS", "Material", "PatchIntegrator", "RingSums",
    "analyse_dose_series", "collision_stopping_power", "dose_MGy_per_e_per_A2", "dose_schedule", "find_reflections",
    "fit_decay", "fluence_to_MGy", "group_by_d_spacing", "material", "parse_formula", "threshold_crossing",
]
