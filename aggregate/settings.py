"""The settings of head training, defined once: `HeadTrainingConfig`, `dgss fit-head` and the demo read them here."""

from enum import StrEnum

from dgss.settings import LRSchedule, Setting, Settings


class HeadName(StrEnum):
    """The segmentation heads, by the name `dgss fit-head --head` and run records use."""

    tsfreqagg = "tsfreqagg"
    mlp = "mlp"
    unet = "unet"


class TrainingPhases(StrEnum):
    """How a head and its time gate are trained: together, or as the release does, the per-timestep experts first
    and then the gate alone (`dgss.aggregate.phases`)."""

    joint = "joint"
    experts_then_gate = "experts-then-gate"


class BandSelection(StrEnum):
    """The cached bands a head trains on: every one, or the smooth Haar band LL alone (an ablation)."""

    all = "all"
    LL = "LL"


class TrainingSettings(Settings):
    head = Setting(kind=HeadName, default=HeadName.tsfreqagg, help="Head architecture.")
    epochs = Setting(kind=int, default=80, low=1,
                     help="Passes over the source images (release: 100); validation chooses the best epoch.")
    batch_size = Setting(kind=int, default=2, low=1, help="Images read per step (release: 2).")
    window = Setting(kind=int, default=128, low=0, optional=True,
                     help="Side of the random training windows in canvas pixels; 0 trains on whole canvases, as the "
                          "release does.")
    windows_per_image = Setting(kind=int, default=2, low=1, advanced=True, help="Windows cut from each image read.")
    lr = Setting(kind=float, default=2e-3, low=0, low_open=True, help="Adam learning rate (release: 2e-3).")
    lr_schedule = Setting(kind=LRSchedule, default=LRSchedule.constant, advanced=True,
                          help="constant (the release) or cosine: annealed from --lr to 0 over the run.")
    seed = Setting(kind=int, default=0, low=0, help="Seed of member 0; member m uses seed + m.")
    ensemble = Setting(kind=int, default=1, low=1, help="Independently seeded heads (the release uses 10); masks are "
                                                        "their per-pixel majority vote.")
    dice_weight = Setting(kind=float, default=0.0, low=0, advanced=True,
                          help="Weight of a soft-Dice term added to the cross-entropy.")
    validation_fraction = Setting(kind=float, default=0.2, low=0, high=0.5,
                                  help="Share of each source's images held out to choose the epoch and decision "
                                       "threshold (0: none, threshold 0.5, last epoch).")
    validate_every = Setting(kind=int, default=5, low=1, advanced=True,
                             help="Epochs between validations (and after the last).")
    flips = Setting(kind=bool, default=False, advanced=True,
                    help="Flip and rotate each training window by a random symmetry of the square (features, image "
                         "and labels together).")
    device = Setting(kind=str, default="cpu", help="cpu, cuda or cuda:N.")
    phases = Setting(kind=TrainingPhases, default=TrainingPhases.joint, advanced=True,
                     help="joint: the head and its time gate together; experts-then-gate (the release's): the first "
                          "half of the epochs trains every timestep's logits as an expert (no gate), the second half "
                          "only the tsfreqagg time gate, the experts frozen.")
    bands = Setting(kind=BandSelection, default=BandSelection.all, advanced=True,
                    help="Cached bands to train on: all, or LL (the smooth Haar band alone, no detail bands). Raw "
                         "maps without the Haar split are an extraction of their own: dgss extract --bands none.")


class InferenceSettings(Settings):
    """How a trained run is applied to a canvas (evaluate and predict)."""

    tile = Setting(kind=int, default=512, low=0, advanced=True,
                   help="Side of the tiles the heads are applied in, canvas pixels; 0: the whole canvas at once.")
    tile_context = Setting(kind=int, default=96, low=0, advanced=True,
                           help="Margin dropped from each inner tile edge, canvas pixels.")
    tta = Setting(kind=bool, default=None, optional=True,
                  help="Test-time flips: average every head over the eight flips and rotations of each canvas, for "
                       "eight times the head's inference cost; default: on for a run trained with --flips (on real "
                       "unseen cameras +0.002 to +0.008 Dice), off for one trained without (its heads never saw "
                       "flipped features).")


MEMORY_GIB = Setting(name="memory_gib", kind=float, default=4.0, low=0, advanced=True,
                     help="Decoded source images kept in RAM for the whole run instead of read from the store every "
                          "epoch (GiB; 0: stream every read). Results do not depend on it.")
"""fit-head's RAM budget (4 GiB: the 13 DRIVE training images of the shipped backbone's 512 px cache take about
1.4 GiB, a leave-one-out pair of sources about 4 GiB); not a training setting, so not in the run's record."""
