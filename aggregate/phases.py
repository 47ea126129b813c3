"""The release's two-phase training of T&S-FreqAgg: per-timestep experts first, then the time gate alone.

``joint`` (dgss's default) trains the head and its gate together on the gated logits. ``experts-then-gate`` trains
as the release does: in the first phase every timestep's own logits (the shared head without the gate) are each
supervised by the loss, so that every timestep becomes an expert; in the second the experts are frozen (weights,
BatchNorm statistics, no dropout) and only the gate learns how to mix them, pixel by pixel.

Each member's first ``ceil(epochs / 2)`` epochs are the experts' and the remaining ``floor(epochs / 2)`` the gate's;
each phase has an Adam optimizer of its own, started afresh at its first epoch. The learning-rate schedule runs over
the member's whole run, as in joint training. Validation scores every head it sees, gated as it will be applied,
so a member keeps its best epoch of either phase.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from torch import nn

from dgss.aggregate.heads import head_config
from dgss.aggregate.settings import TrainingPhases
from dgss.errors import DgssError


class Phase(StrEnum):
    """What one epoch trains."""

    joint = "joint"
    experts = "experts"
    gate = "gate"


def check_phases(phases: str, epochs: int, head: str, head_params: dict[str, Any]) -> None:
    """DgssError where ``phases`` cannot train this head for this many epochs."""
    if phases == TrainingPhases.joint:
        return
    gate = getattr(head_config(head, **head_params), "gate", None)
    if gate != "pixel":
        raise DgssError(f"phases={phases} trains the tsfreqagg per-pixel time gate in its second phase; head {head} "
                        f"{'has gate=' + gate if gate else 'has no time gate'}: use phases=joint")
    if epochs < 2:
        raise DgssError(f"phases={phases} trains the experts, then the gate, half of the epochs each: give at least "
                        f"2 epochs, got {epochs}")


def epoch_phase(phases: str, epochs: int, epoch: int) -> Phase:
    """The phase of epoch ``epoch`` (0-based) of a member trained for ``epochs``."""
    if phases == TrainingPhases.joint:
        return Phase.joint
    return Phase.experts if epoch < epochs - epochs // 2 else Phase.gate


def trainable_parameters(head: nn.Module, phase: Phase) -> list[nn.Parameter]:
    """The parameters ``phase`` trains: all, all but the time gate's, or the time gate's alone."""
    if phase == Phase.joint:
        return list(head.parameters())
    gate = {id(parameter) for parameter in head.time_gate.parameters()}
    return [parameter for parameter in head.parameters() if (id(parameter) in gate) == (phase == Phase.gate)]


def enter_phase(head: nn.Module, phase: Phase) -> None:
    """Put ``head`` in the mode ``phase`` trains it in: training mode, but for the gate phase, where the frozen
    experts run as in evaluation (no dropout, BatchNorm statistics read, not updated); only the parameters the phase
    trains take gradients, so the gate phase does not backpropagate through the experts."""
    head.train(phase != Phase.gate)
    trained = {id(parameter) for parameter in trainable_parameters(head, phase)}
    for parameter in head.parameters():
        parameter.requires_grad_(id(parameter) in trained)
