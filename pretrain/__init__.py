"""Training a diffusion backbone on unlabelled fundus photos (`dgss train-diffusion`): presets, image pool,
checkpoints that resume exactly, and the model card a run leaves behind."""
