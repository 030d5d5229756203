"""Training tasks, one module each: data generation and the task's own metric."""
