"""METER (CLIP-ViT-B/16 + RoBERTa-base + co-attention), own implementation with official key names.

>>> from vlmbrain.models.meter import METER, meter_config
>>> model = METER(meter_config("tiny")).eval()
"""

from vlmbrain.models.meter.config import HEADS, VARIANTS, METERConfig, meter_config
from vlmbrain.models.meter.modeling import METER, resize_pos_embed
from vlmbrain.models.meter.readout import METERReadout

__all__ = ["METER", "METERReadout", "METERConfig", "meter_config", "resize_pos_embed", "HEADS", "VARIANTS"]
