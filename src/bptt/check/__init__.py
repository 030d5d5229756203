"""Checking gradients: the numerical checker and its diagnoses (gradcheck), whole-layer checks (layercheck),
the assertion for a user's own pytest suite (testing), and how far back through time a gradient reaches
(flow: ``bptt.check.gradient_flow``)."""

from bptt.check.flow import GradientFlow, gradient_flow

__all__ = ["GradientFlow", "gradient_flow"]
