"""Training: the loop (fit), optimizers and schedules (optim), losses, the tasks, runs and their checkpoints
(experiment), the figures of a run (plots, figures), and what a character model learned (visualize)."""
