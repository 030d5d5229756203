"""Checking gradients: the numerical checker and its diagnoses (gradcheck), whole-layer checks (layercheck)
and the assertion for a user's own pytest suite (testing)."""
