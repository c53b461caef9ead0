"""Learned models: the motion representation, the choreographic memory (VQ-VAE) and the dance policy (GPT)."""
