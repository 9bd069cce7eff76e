"""Knowledge-distillation losses: pure functions on logits and target probabilities.

Shapes: B clips, C classes. Student and teacher logits [B, C]; label targets [B, C] float (one-hot or
multi-hot, soft after mixup); teacher targets [B, C] probabilities; has_teacher [B] bool.

Multi-label (the EfficientAT formulation, Schmid et al. 2023):
    loss = lambda * BCE(student, labels) + (1 - lambda) * BCE(student, sigmoid(teacher / T))
Single-label (Hinton et al. 2015):
    loss = lambda * CE(student, labels) + (1 - lambda) * T^2 * KL(softmax(teacher / T) || softmax(student / T))
`lambda` weights the label term in both. Clips without a teacher prediction (has_teacher False) get the
label loss alone, with weight 1; unlabelled clips (labelled False) the distillation term alone, with
weight 1; a clip with neither contributes nothing. The loss is the mean over the clips that contribute.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def teacher_targets(teacher_logits: torch.Tensor, temperature: float, multilabel: bool) -> torch.Tensor:
    """[B, C] teacher logits -> [B, C] probabilities: sigmoid(t / T) (multi-label) or softmax(t / T)."""
    scaled = teacher_logits.float() / temperature
    return torch.sigmoid(scaled) if multilabel else torch.softmax(scaled, dim=-1)


def label_loss_per_clip(logits: torch.Tensor, targets: torch.Tensor, multilabel: bool) -> torch.Tensor:
    """[B, C] logits, [B, C] float targets -> [B]: BCE averaged over classes, or cross-entropy.

    Their batch mean is AudioClassifier.label_loss.
    """
    if multilabel:
        return F.binary_cross_entropy_with_logits(logits, targets, reduction="none").mean(dim=-1)
    return F.cross_entropy(logits, targets, reduction="none")


def kd_loss_per_clip(
    student_logits: torch.Tensor, teacher_probs: torch.Tensor, temperature: float, multilabel: bool
) -> torch.Tensor:
    """[B, C] student logits, [B, C] teacher probabilities -> [B] distillation term.

    Multi-label: BCE(student, teacher_probs) averaged over classes (the student logits are not scaled).
    Single-label: T^2 * KL(teacher_probs || softmax(student / T)), summed over classes.
    """
    if multilabel:
        return F.binary_cross_entropy_with_logits(student_logits, teacher_probs, reduction="none").mean(dim=-1)
    log_student = torch.log_softmax(student_logits.float() / temperature, dim=-1)
    kl = torch.xlogy(teacher_probs, teacher_probs) - teacher_probs * log_student
    return temperature**2 * kl.sum(dim=-1)


def distillation_loss(
    student_logits: torch.Tensor,
    label_targets: torch.Tensor,
    teacher_probs: torch.Tensor,
    has_teacher: torch.Tensor,
    labelled: torch.Tensor,
    lam: float,
    temperature: float,
    multilabel: bool,
) -> dict[str, torch.Tensor]:
    """Scalars {"loss", "label_loss", "kd_loss"}; has_teacher, labelled [B] bool.

    loss: mean over contributing clips of lam * label + (1 - lam) * kd (labelled, with a teacher target),
    label (labelled, without), kd (unlabelled, with). label_loss: mean label term over labelled clips;
    kd_loss: mean distillation term over clips with a teacher target (0 where there are none). Rows of
    teacher_probs without a teacher, and label targets of unlabelled clips, are ignored.
    """
    label = label_loss_per_clip(student_logits, label_targets, multilabel)
    teacher_probs = torch.where(has_teacher.unsqueeze(-1), teacher_probs, torch.zeros_like(teacher_probs))
    kd = kd_loss_per_clip(student_logits, teacher_probs, temperature, multilabel)
    zero = torch.zeros_like(kd)
    per_clip = torch.where(has_teacher & labelled, lam * label + (1 - lam) * kd, torch.where(labelled, label, torch.where(has_teacher, kd, zero)))
    contributing = (has_teacher | labelled).sum().clamp(min=1)
    return {
        "loss": per_clip.sum() / contributing,
        "label_loss": torch.where(labelled, label, zero).sum() / labelled.sum().clamp(min=1),
        "kd_loss": torch.where(has_teacher, kd, zero).sum() / has_teacher.sum().clamp(min=1),
    }
