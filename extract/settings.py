"""The settings of feature extraction, defined once: `ExtractionConfig`, `make_config`, `ExtractionRequest` and
`dgss extract` read their choices, defaults and bounds here."""

from enum import StrEnum

from dgss.settings import Setting, Settings


class Mode(StrEnum):
    """How the UNet sees an image: f(x0, t) (anchored), after DDIM inversion, or after q-sampled noise."""

    anchored = "anchored"
    ddim = "ddim"
    noised = "noised"


class Bands(StrEnum):
    """haar: LL, LH, HL, HH at half size; none: the raw map as one band."""

    haar = "haar"
    none = "none"


class OutsideFov(StrEnum):
    """What the canvas holds outside the field of view: black (as photographed) or the fundus extended past its
    border (`dgss.extract.fov_border`), so that the border makes no edge whatever its shape."""

    black = "black"
    extend = "extend"


class ExtractionSettings(Settings):
    mode = Setting(kind=Mode, default=Mode.anchored, advanced=True,
                   help="anchored (f(x0, t)), ddim (inversion) or noised (q-sampled).")
    draws = Setting(kind=int, default=1, low=1, advanced=True,
                    help="Noise draws averaged per timestep (mode noised): 8 timesteps x N draws UNet passes.")
    seed = Setting(kind=int, default=0, low=0, advanced=True, help="Seed of the noise draws (mode noised).")
    bands = Setting(kind=Bands, default=Bands.haar, advanced=True,
                    help="haar (LL, LH, HL, HH at half size) or none (raw maps).")
    input_size = Setting(kind=int, default=None, low=8, optional=True, advanced=True,
                         help="Model input side in pixels; default: the model's sample size.")
    canvas_size = Setting(kind=int, default=None, low=8, optional=True,
                          help="Side of the canvas every image is mapped to, in pixels; larger than the input size "
                               "means overlapping tiles (large images, e.g. HRF); default: the input size.")
    tile_overlap = Setting(kind=int, default=0, low=0, advanced=True,
                           help="Overlap of neighbouring tiles in pixels.")
    mantissa_bits = Setting(kind=int, default=5, low=1, high=10, advanced=True,
                            help="float16 mantissa bits kept (10: lossless; 5: relative error <= 1.6%, about 2x "
                                 "smaller).")
    inversion_steps = Setting(kind=int, default=None, low=1, optional=True, advanced=True,
                              help="DDIM inversion steps over the whole schedule (mode ddim): the path takes every "
                                   "T/N-th timestep up to the last cached one, the cached ones merged in; default 50 "
                                   "(about 50 UNet passes per image).")
    outside_fov = Setting(kind=OutsideFov, default=OutsideFov.black, advanced=True,
                          help="Canvas outside the FOV: black, or extend (the fundus continued past its border, so a "
                               "flat-cut or notched FOV draws no edge a head could take for a vessel).")
    canvas_field_deg = Setting(kind=float, default=None, low=0, low_open=True, optional=True,
                               help="Field angle in degrees the canvas side spans: every camera gets the same pixels "
                                    "per degree (45: DRIVE fills the canvas, CHASE_DB1's 30 deg field two thirds of "
                                    "it); default: every FOV fills the canvas.")
