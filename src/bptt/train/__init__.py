"""Training: the loop (fit), optimizers and schedules (optim), losses, the tasks, runs and their checkpoints
(experiment), and the figures of a run (plots, figures)."""
