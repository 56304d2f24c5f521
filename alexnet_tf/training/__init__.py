"""Training: the loop, its state, the step functions, optimiser, schedules, metrics, TensorBoard, fine-tuning."""
